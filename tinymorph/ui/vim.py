"""The vim keymap (`--keymap vim`): modes, counts, operators, registers, `.` and the command line.

Owns: every key the editor receives while the vim keymap is on, before the editor's own bindings:
what it means in normal, visual and command-line mode, and Esc in insert mode. In insert mode
every other key goes on to the editor as with the default keymap, so ghost text, Tab and
Ctrl+Right work unchanged and the editor's suggestion logic never learns which keymap is on; it
only sees `suggestions_held`, which holds ghost text back outside insert mode.
The grammar is in `vim_keys.py`, where motions land in `vim_text.py`. A whole command, and an
insert session with the change that began it, is one undo step, as in Vim (`:help undo-blocks`).
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from textual import events
from textual.widgets.text_area import Selection

from tinymorph.ui import vim_text
from tinymorph.ui.editor import SuggestingEditor
from tinymorph.ui.vim_edits import Edits, Location
from tinymorph.ui.vim_keys import Command, parse
from tinymorph.ui.vim_motions import KEEP_COLUMN, Motion, Motions

Mode = Literal["normal", "insert", "visual", "visual_line", "command"]
MODE_LABELS: dict[Mode, str] = {
    "normal": "NORMAL", "insert": "-- INSERT --", "visual": "-- VISUAL --",
    "visual_line": "-- VISUAL LINE --", "command": "",
}
_KEY_TOKENS = {
    "left": "h", "right": "l", "up": "k", "down": "j", "home": "0", "end": "$", "delete": "x",
    "backspace": "h", "enter": "+", "escape": "<esc>", "ctrl+r": "<c-r>", "ctrl+d": "<c-d>",
    "ctrl+u": "<c-u>", "space": "l",
}
_EDITING_ACTIONS = frozenset([
    "delete_left", "delete_right", "delete_word_left", "delete_word_right", "cut", "paste",
    "delete_to_start_of_line", "delete_to_end_of_line_or_delete_line", "delete_line",
])
"""TextArea's own bindings that change the text: outside insert mode they do nothing (in Vim,
Ctrl+W or Ctrl+K in normal mode never delete)."""


@dataclass
class VimHost:
    """What the keymap asks of the app for the command line: each given, not reached for."""

    save: Callable[[], bool]
    """`:w` (Ctrl+S's rules: asks first if the file changed on disk); True if written."""
    quit: Callable[[], Awaitable[None]]
    """`:q` (Ctrl+Q's rules: asks first about unsaved changes)."""
    discard_and_quit: Callable[[], None]
    """`:q!`: quit, dropping unsaved changes (they stay in the version history)."""
    reload: Callable[[], None]
    """`:e!`: reload the file from disk, asking first when there are unsaved changes."""
    modified: Callable[[], bool]
    show_mode: Callable[[str], None]
    """Show the mode (or the command line being typed) in the status bar."""
    notify: Callable[[str], None]


class VimKeymap:
    """Vim's modal editing over a SuggestingEditor. The editor calls `handle_key` with every key
    first; True means the keymap used it. `typing_inserts` is False outside insert mode, so that
    a key the keymap does not use never types into the document."""

    def __init__(self, editor: SuggestingEditor, host: VimHost) -> None:
        self.editor = editor
        self.host = host
        self.edits = Edits(editor)
        self.motions = Motions(self.edits, host.notify)
        self.mode: Mode = "normal"
        self.tokens: list[str] = []
        self.command_line = ""
        self._command_kind = ":"
        self._anchor: Location = (0, 0)
        self._vcursor: Location = (0, 0)
        self._last_change: tuple[Command, str | None] | None = None
        self._change: Command | None = None
        self._insert_start: Location = (0, 0)
        self._replaying = False
        self._search_operator: Command | None = None

    # --- mode ----------------------------------------------------------------------------

    @property
    def typing_inserts(self) -> bool:
        """Whether a key the keymap passes on may insert text (only in insert mode)."""
        return self.mode == "insert"

    def start(self) -> None:
        """Begin in normal mode (call once the editor is mounted)."""
        self._set_mode("normal")
        self.edits.clamp()

    def _set_mode(self, mode: Mode) -> None:
        self.mode = mode
        self.editor.suggestions_held = mode != "insert"
        self.editor.set_class(mode == "insert", "-vim-insert")
        self._show_status()

    def _show_status(self) -> None:
        if self.mode == "command":
            self.host.show_mode(self._command_kind + self.command_line)
        else:
            self.host.show_mode(f"{MODE_LABELS[self.mode]} {''.join(self.tokens)}".rstrip())

    # --- keys ----------------------------------------------------------------------------

    async def handle_key(self, event: events.Key) -> bool:
        """Take `event` if it means something in the current mode. In insert mode only Esc is
        taken: it drops the ghost text and returns to normal mode in one press."""
        if self.mode == "insert":
            if event.key != "escape":
                return False
            if self.editor.suggestion:
                self.editor.action_reject_suggestion()
            self._leave_insert()
            return True
        if self.mode == "command":
            await self._command_key(event)
            return True
        token = event.character if event.is_printable and event.character else _KEY_TOKENS.get(event.key)
        if token is None:
            active = self.editor.screen.active_bindings.get(event.key)
            return active is not None and active.binding.action in _EDITING_ACTIONS
        await self.feed(token)
        return True

    async def feed(self, token: str) -> None:
        """One key token (a character, or a name such as "<esc>", "<c-r>") in normal or visual
        mode: wait for the rest of a command, or run it."""
        if token == "<esc>":
            self.tokens = []
            if self.mode in ("visual", "visual_line"):
                self._leave_visual()
            self._show_status()
            return
        self.tokens.append(token)
        parsed = parse(self.tokens, visual=self.mode != "normal")
        if parsed == "incomplete":
            self._show_status()
            return
        self.tokens = []
        if isinstance(parsed, Command):
            await self.run(parsed)
        if self.mode == "normal":
            self.edits.clamp()
        self._show_status()

    # --- running a command ---------------------------------------------------------------

    async def run(self, cmd: Command) -> None:
        """Run one parsed command."""
        if self.mode in ("visual", "visual_line"):
            self._visual(cmd)
            return
        if cmd.verb == ".":
            self._repeat(cmd.count)
            return
        if cmd.verb in (":", "/", "?"):
            self._command_kind, self.command_line = cmd.verb, ""
            self._search_operator = cmd if cmd.operator else None
            self._set_mode("command")
            return
        if cmd.verb == "u":
            for _ in range(cmd.n):
                self.editor.undo()
            return
        if cmd.verb == "<c-r>":
            for _ in range(cmd.n):
                self.editor.redo()
            return
        if cmd.verb in ("v", "V"):
            self._anchor = self._vcursor = self.editor.cursor_location
            self._set_mode("visual" if cmd.verb == "v" else "visual_line")
            self._show_visual()
            return
        if cmd.is_change:
            self._change = cmd
            self.edits.begin()
        if cmd.operator is not None:
            self._operate(cmd)
        elif cmd.verb in ("x", "X", "s", "S", "J", "~", "p", "P", "D", "C", "Y", "r", "i", "a", "I", "A", "o", "O"):
            self._simple(cmd)
        else:
            target = self._motion(cmd)
            if target is not None:
                self._move(target[0], keep_col=cmd.verb in KEEP_COLUMN)
        if cmd.is_change and self.mode != "insert":
            self._finish_change(None)

    def _move(self, to: Location, keep_col: bool = False) -> None:
        if keep_col:
            line = self.edits.line(to[0])
            to = (to[0], min(self.motions.want_col, max(len(line) - 1, 0)))
        self.editor.move_cursor(to)
        if not keep_col:
            self.motions.want_col = to[1]

    def _search_operate(self, cmd: Command) -> None:
        """`d/word`, `c?word`: the operator from the cursor to the match (exclusive)."""
        cursor = self.editor.cursor_location
        motion = self.motions.land(Command(cmd.count, cmd.operator, "n"), cursor)
        if motion is None:
            return
        self._change = cmd
        self.edits.begin()
        start, end = sorted([cursor, motion[0]])
        self._apply(cmd.operator or "", start, end)
        if self.mode != "insert":
            self._finish_change(None)

    def _motion(self, cmd: Command) -> Motion | None:
        return self.motions.land(cmd, self._cursor())

    def _cursor(self) -> Location:
        return self._vcursor if self.mode in ("visual", "visual_line") else self.editor.cursor_location

    # --- operators and commands ------------------------------------------------------------

    def _operate(self, cmd: Command) -> None:
        op, (row, col) = cmd.operator or "", self.editor.cursor_location
        lines = self.edits.lines()
        if cmd.verb == "line":
            self._apply(op, (row, 0), (min(row + cmd.n - 1, len(lines) - 1), 0), linewise=True)
            return
        if cmd.verb in ("iw", "aw", "iW", "aW", "is", "as"):
            text, index = self.edits.text(), self.edits.index((row, col))
            if cmd.verb[1] == "s":
                first_char, end_char = vim_text.sentence_object(text, index, cmd.verb[0] == "a")
            else:
                first_char, end_char = vim_text.word_object(text, index, cmd.verb[0] == "a", cmd.verb[1] == "W")
            self._apply(op, self.edits.location(first_char), self.edits.location(end_char))
            return
        if cmd.verb in ("ip", "ap"):
            first, last = vim_text.paragraph_object(lines, row, cmd.verb == "ap")
            self._apply(op, (first, 0), (last, 0), linewise=True)
            return
        if op == "c" and cmd.verb in ("w", "W") and col < len(lines[row]) and not lines[row][col].isspace():
            # `:help cw`: on a word, cw changes to its end (the blanks after it stay).
            text, index = self.edits.text(), self.edits.index((row, col))
            last = vim_text.word_end_here(text, index, cmd.verb == "W")
            for _ in range(cmd.n - 1):
                last = vim_text.word_end(text, last, cmd.verb == "W")
            self._apply(op, (row, col), self.edits.after(self.edits.location(last)))
            return
        motion = self._motion(cmd)
        if motion is None:
            return
        target, linewise, inclusive = motion
        if linewise:
            self._apply(op, (row, 0), (target[0], 0), linewise=True)
            return
        start, end = sorted([(row, col), target])
        if inclusive:
            end = self.edits.after(end)
        self._apply(op, start, end)

    def _apply(self, op: str, start: Location, end: Location, linewise: bool = False) -> None:
        """Yank, delete or change [start, end), or rows start..end whole when `linewise`."""
        if linewise:
            first, last = sorted([start[0], end[0]])
            self.edits.register = (self.edits.rows_text(first, last), True)
            if op == "d":
                self.edits.delete_rows(first, last)
            elif op == "c":
                self.edits.change_rows(first, last)
                self._enter_insert()
            else:
                self.editor.move_cursor((first, self.editor.cursor_location[1] if first == last else 0))
            return
        self.edits.register = (self.editor.get_text_range(start, end), False)
        if op in ("d", "c"):
            self.editor.delete(start, end)
        self.editor.move_cursor(start)
        if op == "c":
            self._enter_insert()

    def _simple(self, cmd: Command) -> None:
        row, col = self.editor.cursor_location
        line = self.edits.line(row)
        verb, n = cmd.verb, cmd.n
        if verb in ("x", "X", "s", "D", "C", "Y", "S"):
            expanded = {"x": ("d", "l"), "X": ("d", "h"), "s": ("c", "l"), "D": ("d", "$"),
                        "C": ("c", "$"), "Y": ("y", "line"), "S": ("c", "line")}[verb]
            self._operate(Command(cmd.count, *expanded))
        elif verb in ("i", "a", "I", "A"):
            at = {"i": col, "a": min(col + 1, len(line)), "I": len(line) - len(line.lstrip()), "A": len(line)}[verb]
            self.editor.move_cursor((row, at))
            self._enter_insert()
        elif verb in ("o", "O"):
            self.edits.open_line(below=verb == "o")
            self._enter_insert()
        elif verb == "J":
            self.edits.join(row, max(n, 2))
        elif verb == "~":
            self.edits.toggle_case(row, col, n)
        elif verb == "r":
            self.edits.replace_chars(row, col, n, cmd.char)
        elif verb in ("p", "P"):
            self.edits.put(after=verb == "p", count=n)

    # --- insert mode, `.` and undo steps ---------------------------------------------------

    def _enter_insert(self) -> None:
        self._insert_start = self.editor.cursor_location
        self._set_mode("insert")

    def _leave_insert(self) -> None:
        cursor = self.editor.cursor_location
        inserted = self.editor.get_text_range(self._insert_start, cursor) if cursor >= self._insert_start else ""
        self._set_mode("normal")
        if cursor[1] > 0:
            self.editor.move_cursor((cursor[0], cursor[1] - 1))
        if self._change is not None:
            self._finish_change(inserted)

    def _finish_change(self, inserted: str | None) -> None:
        if self._change is not None and not self._replaying:
            self._last_change = (self._change, inserted)
        self._change = None
        self.edits.end()

    def _repeat(self, count: int | None) -> None:
        """`.`: the last change again, with `count` in place of its own when one is typed."""
        if self._last_change is None:
            return
        cmd, inserted = self._last_change
        if count is not None:
            cmd = Command(count, cmd.operator, cmd.verb, cmd.char)
        self._replaying = True
        try:
            self._change = cmd
            self.edits.begin()
            if cmd.operator is not None:
                self._operate(cmd)
            else:
                self._simple(cmd)
            if self.mode == "insert":
                self.editor.insert(inserted or "")
                self._leave_insert()
            else:
                self._finish_change(None)
        finally:
            self._replaying = False

    # --- visual mode -------------------------------------------------------------------------

    def _show_visual(self) -> None:
        anchor, cursor = self._anchor, self._vcursor
        if self.mode == "visual_line":
            first, last = sorted([anchor[0], cursor[0]])
            lines = self.edits.lines()
            start, end = ((first, 0), (last, len(lines[last])))
            self.editor.selection = Selection(start, end) if cursor[0] >= anchor[0] else Selection(end, start)
        elif cursor >= anchor:
            self.editor.selection = Selection(anchor, cursor)
        else:
            self.editor.selection = Selection(self.edits.after(anchor), cursor)

    def _leave_visual(self) -> None:
        self._set_mode("normal")
        self.editor.move_cursor(self._vcursor)

    def _visual(self, cmd: Command) -> None:
        if cmd.verb in ("v", "V"):
            wanted: Mode = "visual" if cmd.verb == "v" else "visual_line"
            if self.mode == wanted:
                self._leave_visual()
            else:
                self._set_mode(wanted)
                self._show_visual()
            return
        if cmd.verb in ("d", "x", "c", "y", "~"):
            start, end = sorted([self._anchor, self._vcursor])
            linewise = self.mode == "visual_line"
            self._set_mode("normal")
            self.editor.move_cursor(start)
            if cmd.verb == "~":
                self.edits.begin()
                self.edits.toggle_range(start, self.edits.after(end))
                self.edits.end()
                return
            op = "d" if cmd.verb == "x" else cmd.verb
            if op != "y":
                self._change = Command(None, op, "visual")
                self.edits.begin()
            self._apply(op, start, end if linewise else self.edits.after(end), linewise=linewise)
            if op == "d":
                self._finish_change(None)
            return
        motion = self._motion(cmd)
        if motion is not None:
            target = motion[0]
            if cmd.verb in KEEP_COLUMN:
                line = self.edits.line(target[0])
                target = (target[0], min(self.motions.want_col, max(len(line) - 1, 0)))
            else:
                self.motions.want_col = target[1]
            self._vcursor = target
            self._show_visual()

    # --- the command line ----------------------------------------------------------------------

    async def _command_key(self, event: events.Key) -> None:
        if event.key == "escape" or (event.key == "backspace" and not self.command_line):
            self._set_mode("normal")
        elif event.key == "enter":
            kind, line = self._command_kind, self.command_line
            self._set_mode("normal")
            if kind == ":":
                await self.execute(line.strip())
            elif line:
                self.motions.last_search = (line, kind == "?", False)
                operator, self._search_operator = self._search_operator, None
                await self.feed("n") if operator is None else self._search_operate(operator)
        elif event.key == "backspace":
            self.command_line = self.command_line[:-1]
        elif event.is_printable and event.character:
            self.command_line += event.character
        self._show_status()

    async def execute(self, line: str) -> None:
        """Run one `:` command: w, q, q!, wq, x, e!, set wrap / nowrap, or a line number."""
        if line in ("w", "write"):
            self.host.save()
        elif line in ("q", "quit"):
            await self.host.quit()
        elif line in ("q!", "quit!"):
            self.host.discard_and_quit()
        elif line in ("wq", "x", "xit", "exit"):
            if (line != "wq" and not self.host.modified()) or self.host.save():
                await self.host.quit()
        elif line in ("e!", "edit!"):
            self.host.reload()
        elif line in ("set wrap", "set nowrap"):
            self.editor.soft_wrap = line == "set wrap"
        elif line.isdigit():
            self.editor.move_cursor((max(0, min(int(line) - 1, self.editor.document.line_count - 1)), 0))
        elif line:
            self.host.notify(f"Not an editor command: {line}")
