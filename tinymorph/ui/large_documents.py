"""What keeps a large document cheap to edit, for the editor widget: the word count kept line by
line (`LineWords`) and the wrapped height computed once per wrap (`CachedHeightWrappedDocument`).

Owns no widget; `ui.editor.SuggestingEditor` installs and updates both.
"""

from textual.widgets.text_area import Location, WrappedDocument


class LineWords:
    """Words per line of a document (whitespace-separated, as `str.split` counts them: a word
    never spans a newline, so the total is the document's count). An edit recounts only the
    lines it touched; counting 10 MB whole takes ~290 ms here."""

    def __init__(self, lines: list[str]) -> None:
        self.counts = [len(line.split()) for line in lines]
        self.total = sum(self.counts)

    def replace(self, first_row: int, old_last_row: int, new_lines: list[str]) -> None:
        """Rows first_row..old_last_row (inclusive) of the old document are now `new_lines`."""
        new = [len(line.split()) for line in new_lines]
        self.total += sum(new) - sum(self.counts[first_row : old_last_row + 1])
        self.counts[first_row : old_last_row + 1] = new


class CachedHeightWrappedDocument(WrappedDocument):
    """Textual's public WrappedDocument, with `height` computed once per wrap, not per rendered line.

    Textual's `height` sums over every line and TextArea reads it for each line it draws: with
    150,000 lines that is ~90 ms a frame. `wrap` and `wrap_range` are the only writers of the
    wrap offsets, so they reset the cache. The editor installs it through the public
    `wrapped_document` and `navigator` attributes (see `SuggestingEditor.load_text`)."""

    _height: int | None = None
    _wrapped_at: tuple[int, int] | None = None

    def wrap(self, width: int, tab_width: int | None = None) -> None:
        # A full re-wrap at the width and tab width of the last one gives the same offsets:
        # every edit since went through `wrap_range`. TextArea asks for such re-wraps (when the
        # scrollbar appears, on resize events that keep the width), each ~2 s for 10 MB here.
        key = (width, tab_width or self._tab_width)
        if key == self._wrapped_at:
            return
        self._height = None
        super().wrap(width, tab_width)
        self._wrapped_at = key

    def wrap_range(self, start: Location, old_end: Location, new_end: Location) -> None:
        self._height = None
        super().wrap_range(start, old_end, new_end)

    @property
    def height(self) -> int:
        if self._height is None:
            self._height = super().height
        return self._height
