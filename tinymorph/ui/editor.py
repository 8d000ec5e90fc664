"""The editor widget: Textual's TextArea with model suggestions as ghost text.

Owns: when to ask for a suggestion (after an idle pause, at a line end or before whitespace),
showing it with `TextArea.suggestion`, accepting it (all, or a word), rejecting it, cycling
alternatives, and dropping it when the cursor moves. Asks through messages; never talks to the
worker itself.
"""

import dataclasses
from typing import Protocol

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.actions import SkipAction
from textual.binding import Binding
from textual.reactive import Reactive, reactive
from textual.strip import Strip
from textual.timer import Timer
from textual.widgets import TextArea
from textual.widgets.text_area import DocumentNavigator, Selection

from tinymorph.engine.continuation import can_suggest_at
from tinymorph.suggestions import SuggestionMemory, context_window, next_word
from tinymorph.ui.large_documents import CachedHeightWrappedDocument, LineWords
from tinymorph.ui.messages import SuggestionEnded, SuggestionOrigin, SuggestionWanted

# Characters of text before the cursor kept to match a worker's answer with the text.
MATCH_CHARS = 200
HIGHLIGHT_LIMIT_CHARS = 256_000
"""Markdown highlighting (tree-sitter) is on for documents up to this size: above it every
keystroke re-parses through a Python callback and typing lags (~0.5 s per key at 1 MB here)."""


class Keymap(Protocol):
    """A keymap that sees every key before the editor's bindings (`ui/vim.py`)."""

    @property
    def typing_inserts(self) -> bool:
        """False while a key the keymap passes on must not type into the document."""
        ...

    async def handle_key(self, event: events.Key) -> bool:
        """True if the keymap used `event` (the editor then does nothing more with it)."""
        ...


class SuggestingEditor(TextArea):
    """A TextArea that shows continuations from the model as dimmed ghost text.

    Tab accepts all (and indents when there is nothing to accept), Ctrl+Right the next word,
    Esc rejects; Alt+] / Alt+[ (or Ctrl+Down / Ctrl+Up) cycle alternatives. Typing the
    suggestion's next characters keeps the rest; moving the cursor drops it.
    """

    BINDINGS = [
        Binding("tab", "accept_suggestion", "Accept", id="accept_suggestion"),
        Binding("ctrl+right", "accept_word", "Accept word", show=False, id="accept_word"),
        Binding("escape", "reject_suggestion", "Reject", show=False, id="reject_suggestion"),
        Binding("alt+right_square_bracket,ctrl+down", "next_alternative", "Next alt.", id="next_alternative"),
        Binding("alt+left_square_bracket,ctrl+up", "previous_alternative", "Prev. alt.", show=False,
                id="previous_alternative"),
        Binding("ctrl+home", "document_start", "Start of document", show=False, id="document_start"),
        Binding("ctrl+end", "document_end", "End of document", show=False, id="document_end"),
        Binding("ctrl+shift+home", "document_start(True)", "Select to start", show=False, id="select_to_start"),
        Binding("ctrl+shift+end", "document_end(True)", "Select to end", show=False, id="select_to_end"),
    ]
    """None of them is a priority binding: the editor runs its bindings itself, in the order the keys
    came (see `_on_key`)."""

    DEFAULT_CSS = """
    SuggestingEditor {
        scrollbar-gutter: stable;  /* the scrollbar appearing would re-wrap the whole document */
    }
    SuggestingEditor .text-area--suggestion {
        color: $foreground 50%;
        text-style: italic;
    }
    SuggestingEditor .editor--inlay {
        color: $foreground 40%;
    }
    SuggestingEditor.-vim-insert .text-area--cursor {
        /* vim keymap: a thin cursor in insert mode, the block in normal mode */
        background: transparent;
        color: $foreground;
        text-style: bold underline;
    }
    """
    COMPONENT_CLASSES = {"editor--inlay"}
    suggestion: Reactive[str] = reactive("", repaint=False)
    """TextArea's ghost text, redeclared so that a change repaints only the cursor's line
    (`watch_suggestion`), not the whole editor: suggestions stream in a token at a time, and a
    full repaint per token re-rendered and re-sent every visible row while the writer typed."""
    INLAY_MIN_ROOM = 10
    """Cells the cursor's line must have free for the feature lens to show."""

    def __init__(self, text: str, *, idle_delay_ms: int, context_chars: int, **kwargs) -> None:
        # Set before TextArea.__init__: it moves the selection, which calls watch_selection.
        self._moving_by_edit = True
        self.suggestions_enabled = False
        self._held = False
        self.keymap: Keymap | None = None
        """The keymap that takes keys first (None: the default keys only)."""
        self.alternatives: tuple[str, ...] = ()
        self._idle_timer: Timer | None = None
        self._pending_before: str | None = None
        self._text_cache: str | None = None
        self._words: LineWords | None = None  # None: recount when asked (after a load, undo or redo)
        self.generation = 0
        """Counts the changes to the document (edits, undo, redo, loads), counted as they happen:
        the app compares it with the generation last saved to know whether the text is modified."""
        language = "markdown" if len(text) <= HIGHLIGHT_LIMIT_CHARS else None
        # The text goes in at mount, unwrapped, and soft wrap comes on after: TextArea wraps the
        # whole document several times while it is constructed (~1 s each for 10 MB here).
        self._text_at_mount = text
        super().__init__("", language=language, soft_wrap=False, tab_behavior="indent", **kwargs)
        self.idle_delay_s = idle_delay_ms / 1000
        self.context_chars = context_chars
        self.memory = SuggestionMemory()
        self.alternative_index = 0
        self._typed = ""  # characters of the shown suggestion the writer has typed or accepted
        self._accepted_chars = 0
        self._origin: SuggestionOrigin | None = None
        self._moving_by_edit = False
        self._inlay = ""
        self._cursor_row_key: tuple[object, ...] = ()
        self._cursor_row_at = 0
        # The writer moves sliders in the steering panel and watches the ghost text change.
        self.hide_suggestion_on_blur = False

    # --- large documents -------------------------------------------------------------------
    # TextArea reads `self.text` (the whole document joined) and the wrapped height for every
    # line it draws. Both are cached here and reset by the only public methods that change the
    # document: edit (every insert, delete and replace), undo, redo and load_text.

    def load_text(self, text: str) -> None:
        """Replace the document (and clear the edit history), as TextArea does, then install the
        wrapped document whose height is cached."""
        super().load_text(text)
        self._document_changed()
        self._words = None
        self.wrapped_document = CachedHeightWrappedDocument(
            self.document, width=self.wrap_width if self.soft_wrap else 0, tab_width=self.indent_width
        )
        self.navigator = DocumentNavigator(self.wrapped_document)

    def _document_changed(self) -> None:
        self._text_cache = None
        self.generation += 1

    def on_mount(self) -> None:
        if self._text_at_mount:
            self.load_text(self._text_at_mount)  # unwrapped: cheap
            self._text_at_mount = ""
        self.generation = 0  # the file's own text
        self.soft_wrap = True  # one wrap of the whole document, by CachedHeightWrappedDocument

    def word_count(self) -> int:
        """Words in the document: kept edit by edit; recounted whole (O(document)) only after a
        load, an undo or a redo, when `words_known` is False."""
        if self._words is None:
            self._words = LineWords(self.document.lines)
        return self._words.total

    @property
    def words_known(self) -> bool:
        """True if `word_count` answers without counting the whole document."""
        return self._words is not None

    @property
    def text(self) -> str:
        """The entire document (cached until the next edit)."""
        if self._text_cache is None:
            self._text_cache = self.document.text
        return self._text_cache

    @text.setter
    def text(self, value: str) -> None:
        self.load_text(value)

    # --- the feature lens: an inlay hint beside the cursor's line ------------------------

    @property
    def inlay(self) -> str:
        """Dimmed text drawn at the right end of the cursor's (visual) line; never part of the
        document, not selectable, not saved."""
        return self._inlay

    @inlay.setter
    def inlay(self, text: str) -> None:
        if text != self._inlay:
            self._inlay = text
            self.refresh_cursor_line()

    def _cursor_row_y(self) -> int:
        """The cursor's visual row in the document (wrapped rows counted): found once per cursor
        position, document state and wrap width, not once per line drawn (`render_line` asks for
        every visible line, and the lookup walks the wrapped line's sections)."""
        key = (self.cursor_location, self.generation, self.wrap_width, self.soft_wrap)
        if self._cursor_row_key != key:
            self._cursor_row_key = key
            self._cursor_row_at = self.wrapped_document.location_to_offset(self.cursor_location)[1]
        return self._cursor_row_at

    def watch_suggestion(self) -> None:
        self.refresh_cursor_line()

    def refresh_cursor_line(self) -> None:
        """Repaint the visual rows of the cursor's document line: where the ghost text and the
        inlay are drawn (a soft-wrapped line spans several rows)."""
        if not self.is_mounted:
            return
        row = self.cursor_location[0]
        _, first_y = self.wrapped_document.location_to_offset((row, 0))
        self.refresh_lines(first_y, len(self.wrapped_document.get_offsets(row)) + 1)

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        if not self._inlay:
            return strip
        if self.scroll_offset.y + y != self._cursor_row_y():
            return strip
        width = strip.cell_length
        room = width - len(strip.text.rstrip()) - 2
        if room < self.INLAY_MIN_ROOM:
            return strip
        hint = f"◂ {self._inlay}"
        hint = hint if len(hint) <= room else hint[: room - 1] + "…"
        style = self.rich_style + self.get_component_rich_style("editor--inlay", partial=True)
        return Strip.join([strip.crop(0, width - len(hint) - 1), Strip([Segment(hint + " ", Style.chain(style))])])

    def restart_suggestion(self) -> None:
        """Drop the ghost text and everything remembered, and ask again now (the steering
        changed, so earlier continuations no longer answer the question)."""
        if self.suggestion:
            self._end("dropped")
        self.memory = SuggestionMemory()
        self._pending_before = None
        if self.suggestions_enabled:
            self.suggest_now()

    # --- asking --------------------------------------------------------------------------

    def before_cursor(self, chars: int = MATCH_CHARS) -> str:
        """The last `chars` characters before the cursor."""
        row, column = self.cursor_location
        parts = [self.document[row][:column]]
        size = len(parts[0])
        while size < chars and row > 0:
            row -= 1
            parts.append(self.document[row] + "\n")
            size += len(parts[-1])
        return "".join(reversed(parts))[-chars:]

    @property
    def suggestions_held(self) -> bool:
        """True while typing is not text (vim's normal mode): no suggestion is asked for or shown,
        and one showing is dropped. Unlike `suggestions_enabled` this is not the writer's switch."""
        return self._held

    @suggestions_held.setter
    def suggestions_held(self, held: bool) -> None:
        if held == self._held:
            return
        self._held = held
        if held:
            if self._idle_timer is not None:
                self._idle_timer.stop()
                self._idle_timer = None
            if self.suggestion:
                self._end("dropped")
            self._pending_before = None
        else:
            self.schedule_suggestion()

    def schedule_suggestion(self) -> None:
        """(Re)start the idle timer; when it fires, ask for a suggestion if one fits."""
        if self._idle_timer is not None:
            self._idle_timer.stop()
        if self.suggestions_enabled and not self._held:
            # Textual's timers divide by their delay: a 0 ms setting becomes 1 ms.
            self._idle_timer = self.set_timer(max(self.idle_delay_s, 0.001), self.suggest_now)

    def suggest_now(self) -> None:
        """Ask for a suggestion at the cursor now, if one fits here (what the idle timer calls)."""
        self._idle_timer = None
        if self.suggestion or not self.selection.is_empty or self.read_only or self._held:
            return
        row, column = self.cursor_location
        if not can_suggest_at(self.document[row], column):
            return
        before = self.before_cursor()
        if not before.strip():
            return
        recalled = self.memory.recall_with_origin(before)
        if recalled.alternatives:
            origin = recalled.origin
            if isinstance(origin, SuggestionOrigin):
                origin = dataclasses.replace(origin, latency_ms=None)  # shown again, not waited for
            self.show_alternatives(recalled.alternatives, origin)
            return
        cursor_index = self.document.get_index_from_location(self.cursor_location)
        start = context_window(cursor_index, self.context_chars)
        text = self.document.get_text_range(self.document.get_location_from_index(start), self.cursor_location)
        self._pending_before = before
        self.post_message(SuggestionWanted(text, start, before))

    # --- showing -------------------------------------------------------------------------

    def offer(
        self, before: str, text: str, final: bool, alternatives: tuple[str, ...] = (),
        origin: SuggestionOrigin | None = None,
    ) -> bool:
        """Show the worker's answer for the text `before` the cursor, if it still fits.
        Streaming calls pass `final=False` and the growing first alternative as `text`; the final
        call passes the alternatives and the `origin` of the request that made them."""
        if (before != self._pending_before or self.before_cursor() != before or not self.selection.is_empty
                or self._held):
            return False
        if final:
            self._pending_before = None
            self.memory.remember(before, alternatives, origin)
            if alternatives:
                self.show_alternatives(alternatives, origin)
            elif self.suggestion:
                self.suggestion = ""
            return True
        if text and not self.alternatives:
            self.suggestion = text
        return True

    def show_alternatives(self, alternatives: tuple[str, ...], origin: SuggestionOrigin | None = None) -> None:
        """Show `alternatives` (the first as ghost text); `origin` goes into the suggestion log."""
        self._origin = origin
        self.alternatives = alternatives
        self.alternative_index = 0
        self._typed = ""
        self._accepted_chars = 0
        self.suggestion = alternatives[0]

    def _end(self, outcome: str) -> None:
        if self.alternatives:
            self.post_message(
                SuggestionEnded(outcome, self.alternative_index, len(self.alternatives), self._accepted_chars,
                                self._origin)
            )
        self.alternatives = ()
        self._typed = ""
        self._accepted_chars = 0
        self.suggestion = ""

    # --- actions -------------------------------------------------------------------------

    def action_accept_suggestion(self) -> None:
        """Insert the whole suggestion (Tab). Without one, Tab indents."""
        if not self.suggestion:
            raise SkipAction()
        self._accepted_chars += len(self.suggestion)
        self.insert(self.suggestion)  # edit() sees the whole suggestion inserted and ends it

    def action_accept_word(self) -> None:
        """Insert the suggestion's next word (Ctrl+Right). Without one, move a word right."""
        if not self.suggestion:
            self.action_cursor_word_right()
            return
        word = next_word(self.suggestion)
        self._accepted_chars += len(word)
        self.insert(word)  # edit() trims the suggestion by the inserted word

    def action_document_start(self, select: bool = False) -> None:
        """Move the cursor to the start of the document (Ctrl+Home; with Shift, select)."""
        self.move_cursor((0, 0), select=select)

    def action_document_end(self, select: bool = False) -> None:
        """Move the cursor to the end of the document (Ctrl+End; with Shift, select)."""
        self.move_cursor(self.document.end, select=select)

    def action_reject_suggestion(self) -> None:
        """Drop the suggestion (Esc), and the answer still on its way for this place: it would
        bring the ghost text back a moment after the writer sent it away."""
        self._pending_before = None
        if not self.suggestion:
            raise SkipAction()
        self._end("partially_accepted" if self._accepted_chars else "rejected")

    def _cycle(self, step: int) -> None:
        if len(self.alternatives) < 2 or not self.suggestion:
            raise SkipAction()
        n = len(self.alternatives)
        for k in range(1, n + 1):
            index = (self.alternative_index + step * k) % n
            candidate = self.alternatives[index]
            if candidate.startswith(self._typed) and len(candidate) > len(self._typed):
                self.alternative_index = index
                self.suggestion = candidate[len(self._typed) :]
                return

    def action_next_alternative(self) -> None:
        """Show the next alternative (Alt+] or Ctrl+Down)."""
        self._cycle(+1)

    def action_previous_alternative(self) -> None:
        """Show the previous alternative (Alt+[ or Ctrl+Up)."""
        self._cycle(-1)

    # --- keeping the suggestion in step with edits and cursor moves ----------------------

    def edit(self, edit):  # type: ignore[no-untyped-def]
        """Textual trims the suggestion when the inserted text is its start, and clears it
        otherwise; tinymorph also tracks what was typed, to cycle and to record outcomes."""
        had = self.suggestion
        if had and edit.from_location != edit.to_location:
            # A deletion (or a replacement) inserts "", which every suggestion starts with, so
            # Textual would keep ghost text that no longer fits the text before it.
            self.suggestion = ""
        self._moving_by_edit = True
        first_row = min(edit.from_location, edit.to_location)[0]
        old_last_row = max(edit.from_location, edit.to_location)[0]
        try:
            result = super().edit(edit)
        finally:
            self._moving_by_edit = False
            self._document_changed()
        if self._words is not None:
            self._words.replace(first_row, old_last_row, self.document.lines[first_row : result.end_location[0] + 1])
        if had and self.suggestion and had.startswith(edit.text):
            self._typed += edit.text
        elif had and not self.suggestion:
            # Either all of it went in (Tab, the last word, or typed to the end) or the writer
            # typed something else.
            self._end(
                "accepted" if had == edit.text
                else "partially_accepted" if self._accepted_chars
                else "dropped"
            )
        self.schedule_suggestion()
        return result

    def undo(self) -> None:
        self._drop_on_history_change(super().undo)

    def redo(self) -> None:
        self._drop_on_history_change(super().redo)

    def _drop_on_history_change(self, change) -> None:  # type: ignore[no-untyped-def]
        self._moving_by_edit = True
        try:
            change()
        finally:
            self._moving_by_edit = False
            self._document_changed()
            self._words = None
        if self.suggestion:
            self._end("dropped")
        self.schedule_suggestion()

    def watch_selection(self, previous_selection: Selection, selection: Selection) -> None:
        if not self._moving_by_edit and previous_selection != selection:
            if self.suggestion:
                self._end("dropped")
            self._pending_before = None
            self.schedule_suggestion()

    async def _on_key(self, event: events.Key) -> None:
        """Apply every key in the order typed: bound keys run their action here, in the editor's
        own queue, like the characters typed around them.

        Textual checks non-priority bindings only after the key has bubbled up to the App, while
        a printable key is inserted as soon as the editor takes it; when keys arrive in a burst
        (the app was busy), a character typed after End could land before End had moved the
        cursor. So the editor looks the key up in the active bindings (its own, then the
        screen's and the App's, as Textual would) and runs the action before taking the next key.
        A binding whose action does not apply (SkipAction) falls through to the TextArea: Tab
        with no suggestion indents. A `keymap` sees the key before all of this.
        """
        if self.keymap is not None and await self.keymap.handle_key(event):
            event.stop()
            event.prevent_default()
            return
        if not event.is_printable:
            active = self.screen.active_bindings.get(event.key)
            if active is not None and active.enabled and not active.binding.priority:
                event.stop()
                event.prevent_default()
                if await self.app.run_action(active.binding.action, active.node):
                    return
        if self.keymap is not None and not self.keymap.typing_inserts:
            event.stop()
            event.prevent_default()
            return
        if event.key == "escape":  # in an editor Esc never moves focus away (TextArea's indent mode would)
            event.stop()
            event.prevent_default()
            return
        await super()._on_key(event)
