"""Suggestion bookkeeping that needs neither Textual nor torch: reusing recent suggestions,
accepting a word, and choosing which slice of the document the model sees.

Owns: pure functions and a small memory the UI consults before asking the worker.
Imports nothing heavy.
"""

import re
from collections import deque
from dataclasses import dataclass

# Characters of text before the cursor that identify where a suggestion was made.
_KEY_CHARS = 200
_NEXT_WORD = re.compile(r"\s*\S+")


def next_word(suggestion: str) -> str:
    """The part of `suggestion` that Ctrl+Right accepts: leading whitespace and one word."""
    match = _NEXT_WORD.match(suggestion)
    return match.group(0) if match else suggestion


@dataclass(frozen=True)
class _Remembered:
    before: str
    alternatives: tuple[str, ...]
    origin: object


@dataclass(frozen=True)
class Recalled:
    """Alternatives that still fit, and the `origin` they were remembered with."""

    alternatives: tuple[str, ...]
    origin: object = None


class SuggestionMemory:
    """The last few suggestions, so that one that still fits the text is shown again instead of
    recomputed (after the writer types into it, deletes back, or moves away and returns)."""

    def __init__(self, size: int = 16) -> None:
        self._items: deque[_Remembered] = deque(maxlen=size)

    def remember(self, before: str, alternatives: tuple[str, ...], origin: object = None) -> None:
        """Remember `alternatives` offered when the text before the cursor was `before`, with
        `origin` (whatever the caller wants back with them: the request that made them)."""
        if alternatives:
            self._items.append(_Remembered(before[-_KEY_CHARS:], alternatives, origin))

    def recall(self, before: str) -> tuple[str, ...]:
        """Alternatives that still fit `before`: the remembered text followed by a proper
        prefix of an alternative. Returns the unseen remainders (most recent first), or ()."""
        return self.recall_with_origin(before).alternatives

    def recall_with_origin(self, before: str) -> Recalled:
        """As `recall`, with the origin the alternatives were remembered with."""
        for item in reversed(self._items):
            for cut in range(len(before), max(-1, len(before) - 400), -1):
                if before[:cut].endswith(item.before):
                    typed = before[cut:]
                    rest = tuple(
                        alt[len(typed) :] for alt in item.alternatives
                        if alt.startswith(typed) and len(alt) > len(typed)
                    )
                    if rest:
                        return Recalled(rest, item.origin)
                    break
        return Recalled(())


def context_window(cursor_index: int, chars: int) -> int:
    """Where the text sent to the worker starts, as a character offset.

    About `chars` characters before the cursor, rounded down to a multiple of `chars // 4`,
    so that the start stays put while the writer types: the token prefix, and so the KV cache,
    survive until the start jumps forward by a quarter window.
    """
    step = max(1, chars // 4)
    start = max(0, cursor_index - chars)
    return (start // step) * step
