"""The text changes of the vim keymap, each one edit of the editor, and vim's undo steps.

Owns: the unnamed register, line-wise deletes and puts, `J`, `~`, `r`, `o`/`O`, keeping the
normal-mode cursor on a character, and making one command (with the insert session it opened)
one undo step. Changes go through TextArea's public editing API (`delete`, `insert`, `replace`,
`undo`), so the editor's suggestion bookkeeping and history see them as any other edit.
"""

from textual.widgets import TextArea

Location = tuple[int, int]


class Edits:
    """Editing helpers over one TextArea for `ui/vim.py`."""

    def __init__(self, editor: TextArea) -> None:
        self.editor = editor
        self.register: tuple[str, bool] = ("", False)
        """The unnamed register: the text last deleted or yanked, and whether it was whole lines."""
        self._marker: object = None
        self._lines_before: list[str] | None = None

    # --- reading -------------------------------------------------------------------------

    def lines(self) -> list[str]:
        """The document's lines (TextArea's own list: read, never change it)."""
        return self.editor.document.lines

    def line(self, row: int) -> str:
        return self.editor.document[row]

    def text(self) -> str:
        return self.editor.text

    def index(self, location: Location) -> int:
        """The character index of `location` in `text()` (lines joined by one "\\n")."""
        row, col = location
        return sum(len(line) + 1 for line in self.lines()[:row]) + col

    def location(self, index: int) -> Location:
        """The location of character `index` of `text()` (clamped to the text)."""
        index = max(0, index)
        lines = self.lines()
        for row, line in enumerate(lines):
            if index <= len(line):
                return row, index
            index -= len(line) + 1
        return len(lines) - 1, len(lines[-1])

    def after(self, location: Location) -> Location:
        """One character after `location`: the next column, or the next line's start at a line end."""
        row, col = location
        if col < len(self.line(row)):
            return row, col + 1
        if row + 1 < self.editor.document.line_count:
            return row + 1, 0
        return location

    def rows_text(self, first: int, last: int) -> str:
        return "\n".join(self.lines()[first : last + 1])

    def clamp(self) -> None:
        """Normal mode's cursor sits on a character, never past a line's last one."""
        row, col = self.editor.cursor_location
        length = len(self.line(row))
        if self.editor.selection.is_empty and col >= length > 0:
            self.editor.move_cursor((row, length - 1))

    # --- one command, one undo step ------------------------------------------------------

    def begin(self) -> None:
        """A change starts: what follows, until `end`, is undone by one `u`."""
        history = self.editor.history
        history.checkpoint()
        stack = history.undo_stack
        self._marker = stack[-1] if stack else None
        self._lines_before = list(self.lines())

    def end(self) -> None:
        """The change is over. If it took several of TextArea's undo batches (an operator, then
        an insert session typed over seconds and lines), they are undone and made again as one
        replace of the rows that changed; if the history cannot be walked back to exactly the
        text before (it dropped old batches), it is left as it is."""
        history = self.editor.history
        before, self._lines_before = self._lines_before, None
        stack = history.undo_stack
        ids = [id(batch) for batch in stack]
        start = ids.index(id(self._marker)) + 1 if self._marker is not None and id(self._marker) in ids else 0
        batches = len(stack) - start
        history.checkpoint()
        if before is None or batches < 2 or (self._marker is None and len(stack) == history.max_checkpoints):
            return
        after = list(self.lines())
        cursor = self.editor.cursor_location
        for _ in range(batches):
            self.editor.undo()
        if self.lines() != before:  # not where the change began: put everything back
            for _ in range(batches):
                self.editor.redo()
            return
        self._replace_rows(before, after)
        self.editor.move_cursor(cursor)
        history.checkpoint()

    def _replace_rows(self, before: list[str], after: list[str]) -> None:
        """One edit that turns the document's `before` lines into `after`: the rows between their
        common first and last lines are replaced."""
        prefix = 0
        while prefix < min(len(before), len(after)) and before[prefix] == after[prefix]:
            prefix += 1
        suffix = 0
        while (suffix < min(len(before), len(after)) - prefix
               and before[len(before) - 1 - suffix] == after[len(after) - 1 - suffix]):
            suffix += 1
        if suffix:
            new = "".join(line + "\n" for line in after[prefix : len(after) - suffix])
            self.editor.replace(new, (prefix, 0), (len(before) - suffix, 0))
        elif prefix:
            new = "".join("\n" + line for line in after[prefix:])
            self.editor.replace(new, (prefix - 1, len(before[prefix - 1])), self.editor.document.end)
        else:
            self.editor.replace("\n".join(after), (0, 0), self.editor.document.end)

    # --- changes ---------------------------------------------------------------------------

    def delete_rows(self, first: int, last: int) -> None:
        """Delete rows first..last with their line breaks; the cursor goes to the line after."""
        count = self.editor.document.line_count
        if last + 1 < count:
            self.editor.delete((first, 0), (last + 1, 0))
            row = first
        elif first > 0:
            self.editor.delete((first - 1, len(self.line(first - 1))), (last, len(self.line(last))))
            row = first - 1
        else:
            self.editor.delete((0, 0), (last, len(self.line(last))))
            row = 0
        line = self.line(row)
        self.editor.move_cursor((row, len(line) - len(line.lstrip())))

    def change_rows(self, first: int, last: int) -> None:
        """Empty rows first..last into one line, keeping the first one's indent (`cc`, `S`)."""
        first_line = self.line(first)
        indent = first_line[: len(first_line) - len(first_line.lstrip())]
        self.editor.replace(indent, (first, 0), (last, len(self.line(last))))
        self.editor.move_cursor((first, len(indent)))

    def open_line(self, below: bool) -> None:
        """`o` / `O`: a new empty line below or above the cursor's, the cursor on it."""
        row = self.editor.cursor_location[0]
        if below:
            self.editor.insert("\n", (row, len(self.line(row))))
            self.editor.move_cursor((row + 1, 0))
        else:
            self.editor.insert("\n", (row, 0))
            self.editor.move_cursor((row, 0))

    def join(self, row: int, lines: int) -> None:
        """`J`: join `lines` lines from `row` with one space between them (none before an empty
        line or a closing bracket), leading blanks of the joined lines dropped."""
        last = min(row + lines - 1, self.editor.document.line_count - 1)
        if last == row:
            return
        joined = self.line(row)
        for r in range(row + 1, last + 1):
            part = self.line(r).lstrip()
            space = "" if not part or part[0] in ")]}" or joined.endswith((" ", "\t")) or not joined else " "
            joined = joined.rstrip() + space + part if space else joined + part
        col = len(joined) - len(self.line(last).lstrip()) - 1
        self.editor.replace(joined, (row, 0), (last, len(self.line(last))))
        self.editor.move_cursor((row, max(col, 0)))

    def toggle_case(self, row: int, col: int, count: int) -> None:
        """`~`: switch the case of `count` characters from the cursor, and move past them."""
        end = min(col + count, len(self.line(row)))
        if end > col:
            self.toggle_range((row, col), (row, end))
            self.editor.move_cursor((row, end))

    def toggle_range(self, start: Location, end: Location) -> None:
        self.editor.replace(self.editor.get_text_range(start, end).swapcase(), start, end)

    def replace_chars(self, row: int, col: int, count: int, char: str) -> None:
        """`r` + char: replace `count` characters with `char` (nothing if the line is shorter)."""
        if col + count > len(self.line(row)):
            return
        self.editor.replace(char * count, (row, col), (row, col + count))
        self.editor.move_cursor((row, col + count - 1))

    def put(self, after: bool, count: int) -> None:
        """`p` / `P`: the register `count` times after (before) the cursor; whole lines go below
        (above) the cursor's line."""
        text, linewise = self.register
        if not text and not linewise:
            return
        row, col = self.editor.cursor_location
        if linewise:
            block = "\n".join([text] * count)
            if after and row + 1 >= self.editor.document.line_count:
                self.editor.insert("\n" + block, (row, len(self.line(row))))
            else:
                self.editor.insert(block + "\n", (row + 1 if after else row, 0))
            self.editor.move_cursor((row + 1 if after else row, 0))
            return
        at = min(col + 1, len(self.line(row))) if after else col
        result = self.editor.insert(text * count, (row, at))
        end_row, end_col = result.end_location
        self.editor.move_cursor((end_row, max(end_col - 1, 0)))
