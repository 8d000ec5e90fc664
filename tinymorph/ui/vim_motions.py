"""Where the vim keymap's motions land in the editor's document.

Owns: turning a parsed motion (`vim_keys.Command`) and a cursor location into a target location,
with the state motions keep between commands: the column `j`/`k` aim for, the last `f t F T`
and the last search (for `; ,` and `n N`). The text arithmetic is in `vim_text.py`.
"""

from collections.abc import Callable

from tinymorph.ui import vim_text
from tinymorph.ui.vim_edits import Edits, Location
from tinymorph.ui.vim_keys import INCLUSIVE_MOTIONS, Command

Motion = tuple[Location, bool, bool]
"""(target, linewise, inclusive): where a motion lands and how an operator takes the range."""
KEEP_COLUMN = frozenset(["j", "k", "<c-d>", "<c-u>"])
"""Line-wise motions that keep the column the cursor wants (the others go to the first non-blank)."""


def first_non_blank(line: str) -> int:
    """The column of `line`'s first character that is not a blank (`^`)."""
    return len(line) - len(line.lstrip())


class Motions:
    """Motions over one document, with Vim's memory of the wanted column, the last find and the
    last search."""

    def __init__(self, edits: Edits, notify: Callable[[str], None]) -> None:
        self.edits = edits
        self.notify = notify
        self.want_col = 0
        """The column `j` and `k` aim for: the last one moved to sideways (`$`: every line's end)."""
        self.last_find: tuple[str, str] | None = None
        self.last_search: tuple[str, bool, bool] | None = None
        """(pattern, backward, whole word) of the last `/`, `?`, `*` or `#`."""

    def land(self, cmd: Command, at: Location) -> Motion | None:
        """Where `cmd`'s motion lands from `at`: (location, linewise, inclusive), or None when it
        cannot move (f with no such character, a search with no match)."""
        row, col = at
        lines = self.edits.lines()
        n, verb = cmd.n, cmd.verb
        last = len(lines) - 1
        inclusive = verb in INCLUSIVE_MOTIONS
        if verb in ("h", "l"):
            limit = len(lines[row]) - (0 if cmd.operator else 1)
            return (row, max(0, min(col + (n if verb == "l" else -n), max(limit, 0)))), False, False
        if verb in ("j", "+", "k", "-", "<c-d>", "<c-u>"):
            step = {"j": n, "+": n, "k": -n, "-": -n, "<c-d>": 15 * n, "<c-u>": -15 * n}[verb]
            to = max(0, min(row + step, last))
            return (to, col if verb in KEEP_COLUMN else first_non_blank(lines[to])), True, False
        if verb in ("G", "gg"):
            # A file ending in a line break shows an empty last row; Vim has no such line, so G
            # stops at the last line of text.
            end = last - 1 if last > 0 and not lines[last] else last
            to = max(0, min((n - 1) if cmd.count is not None else (end if verb == "G" else 0), last))
            return (to, first_non_blank(lines[to])), True, False
        if verb == "0":
            return (row, 0), False, False
        if verb == "^":
            return (row, first_non_blank(lines[row])), False, False
        if verb == "$":
            end_row = min(row + n - 1, last)
            self.want_col = 1 << 30
            if cmd.operator:  # up to the line's end, not its line break
                return (end_row, len(lines[end_row])), False, False
            return (end_row, max(len(lines[end_row]) - 1, 0)), False, inclusive
        if verb in ("}", "{"):
            move = vim_text.paragraph_forward if verb == "}" else vim_text.paragraph_backward
            target_row = move(lines, row, n)
            end_col = len(lines[target_row]) if verb == "}" and target_row == last else 0
            return (target_row, end_col), False, False
        if verb in ("f", "t", "F", "T", ";", ","):
            return self._find(cmd, row, col, lines[row])
        text, index = self.edits.text(), self.edits.index((row, col))
        if verb in ("w", "W"):
            big = verb == "W"
            if cmd.operator:
                target = vim_text.words_forward_for_operator(text, index, n, big)
            else:
                target = index
                for _ in range(n):
                    target = vim_text.word_forward(text, target, big)
            return self.edits.location(target), False, False
        if verb in ("b", "B", "e", "E"):
            step_fn = vim_text.word_backward if verb in "bB" else vim_text.word_end
            target = index
            for _ in range(n):
                target = step_fn(text, target, verb in "BE")
            return self.edits.location(target), False, inclusive
        if verb == "%":
            match = vim_text.matching_bracket(text, index)
            return None if match is None else (self.edits.location(match), False, True)
        return self._search_motion(cmd, text, index)

    def _find(self, cmd: Command, row: int, col: int, line: str) -> Motion | None:
        if cmd.verb in (";", ","):
            if self.last_find is None:
                return None
            kind, char = self.last_find
            if cmd.verb == ",":
                kind = kind.swapcase()
        else:
            kind, char = cmd.verb, cmd.char
            self.last_find = (kind, char)
        target = vim_text.find_in_line(line, col, char, kind, cmd.n, repeat=cmd.verb in (";", ","))
        if target is None:
            return None
        return (row, target), False, kind in "ft"

    def _search_motion(self, cmd: Command, text: str, index: int) -> Motion | None:
        if cmd.verb in ("*", "#"):
            start, end = vim_text.word_object(text, index, around=False)
            word = text[start:end]
            if not word.strip():
                return None
            self.last_search = (word, cmd.verb == "#", True)
            backward, whole = cmd.verb == "#", True
        elif self.last_search is None:
            return None
        else:
            word, backward, whole = self.last_search
            backward = backward != (cmd.verb == "N")
        found = vim_text.search(text, word, index, backward, whole)
        if found is None:
            self.notify(f"Pattern not found: {word}")
            return None
        return self.edits.location(found), False, False
