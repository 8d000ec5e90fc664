"""Vim's normal-mode grammar: turning the keys typed so far into a command, or waiting for more.

Owns: `parse`, which reads `[count] [operator [count]] (motion | text object | operator again)`
or `[count] command [char]` from a list of key tokens (`:help count`, `:help operator`), and the
sets of keys that name motions, commands and changes. Knows nothing of the document or widgets;
imports nothing of ours.
"""

from dataclasses import dataclass
from typing import Literal

OPERATORS = frozenset("dcy")
MOTIONS = frozenset(["h", "j", "k", "l", "w", "b", "e", "W", "B", "E", "0", "^", "$", "G", "gg", "+", "-",
                     "{", "}", "%", ";", ",", "n", "N", "*", "#", "f", "t", "F", "T", "<c-d>", "<c-u>"])
INCLUSIVE_MOTIONS = frozenset(["e", "E", "$", "%", "f", "t", "F", "T"])
"""`:help inclusive`: an operator takes the character the motion lands on (F and T are
exclusive in Vim; with them the range's far end is the cursor's side, handled by the caller)."""
COMMANDS = frozenset(["x", "X", "s", "S", "J", "~", "p", "P", "D", "C", "Y", "i", "a", "I", "A", "o", "O",
                      "v", "V", "u", "<c-r>", ".", ":", "/", "?", "r"])
CHANGES = frozenset(["x", "X", "s", "S", "J", "~", "p", "P", "D", "C", "i", "a", "I", "A", "o", "O", "r"])
"""Commands that change the text: what `.` repeats (with d and c)."""
TEXT_OBJECTS = frozenset(["iw", "aw", "iW", "aW", "is", "as", "ip", "ap"])
_NEEDS_CHAR = frozenset("ftFTr")

Parsed = Literal["incomplete", "invalid"]


@dataclass(frozen=True)
class Command:
    """One complete normal-mode command: `count` (None if none was typed; counts before and after
    an operator multiply, `2d3w` deletes 6 words), an `operator` (d, c, y) or None, the `verb` (a
    motion, a text object such as "iw", "line" for `dd`/`cc`/`yy`, or a command key) and the
    character typed after f, t, F, T or r."""

    count: int | None
    operator: str | None
    verb: str
    char: str = ""

    @property
    def n(self) -> int:
        """The count, 1 if none was typed."""
        return self.count or 1

    @property
    def is_change(self) -> bool:
        """Whether `.` repeats this command."""
        return self.operator in ("d", "c") or (self.operator is None and self.verb in CHANGES)


def _count(tokens: list[str], i: int) -> tuple[int | None, int]:
    digits = ""
    while i < len(tokens) and tokens[i].isdigit() and (digits or tokens[i] != "0"):
        digits += tokens[i]
        i += 1
    return (int(digits) if digits else None), i


def _motion(tokens: list[str], i: int) -> tuple[str, str] | Parsed:
    """The motion at `tokens[i:]`: (verb, char), or why there is none yet."""
    token = tokens[i]
    if token == "g":
        if i + 1 == len(tokens):
            return "incomplete"
        return ("gg", "") if tokens[i + 1] == "g" else "invalid"
    if token in _NEEDS_CHAR:
        if i + 1 == len(tokens):
            return "incomplete"
        return token, tokens[i + 1]
    return (token, "") if token in MOTIONS else "invalid"


def _times(a: int | None, b: int | None) -> int | None:
    if a is None and b is None:
        return None
    return (a or 1) * (b or 1)


def parse(tokens: list[str], visual: bool = False) -> Command | Parsed:
    """Read one command from `tokens` (each a typed character, or a name such as "<c-r>").
    Returns the Command, "incomplete" (wait for the next key) or "invalid" (drop the keys).
    In visual mode an operator applies to the selection at once, with no motion."""
    count, i = _count(tokens, 0)
    if i == len(tokens):
        return "incomplete"
    token = tokens[i]
    if token in OPERATORS and not visual:
        count2, i = _count(tokens, i + 1)
        if i == len(tokens):
            return "incomplete"
        total = _times(count, count2)
        if tokens[i] == token:
            return Command(total, token, "line")
        if tokens[i] in ("/", "?"):  # up to a search match, typed on the command line next
            return Command(total, token, tokens[i])
        if tokens[i] in ("i", "a"):
            if i + 1 == len(tokens):
                return "incomplete"
            obj = tokens[i] + tokens[i + 1]
            return Command(total, token, obj) if obj in TEXT_OBJECTS else "invalid"
        motion = _motion(tokens, i)
        if isinstance(motion, str):
            return motion
        return Command(total, token, motion[0], motion[1])
    if token in COMMANDS or (visual and token in OPERATORS):
        if token == "r":
            if i + 1 == len(tokens):
                return "incomplete"
            return Command(count, None, "r", tokens[i + 1])
        return Command(count, None, token)
    motion = _motion(tokens, i)
    if isinstance(motion, str):
        return motion
    return Command(count, None, motion[0], motion[1])
