"""Where a continuation stops and how it is cut for display (pure text; no torch).

Owns: the rules that turn raw generated text into ghost text. Following Copilot and llama.vim,
a suggestion is a few words to a sentence: it stops at a line end or a sentence end, and it
never ends in the middle of a word.
"""

import re

# A sentence ends at . ! ? (or an ellipsis), optionally followed by closing quotes or brackets,
# then whitespace. Abbreviations ("Mr. Smith") cut early; that costs a short suggestion, never
# a wrong one.
_SENTENCE_END = re.compile(r"""[.!?…]+["'”’)\]]*(?=\s)""")
_MIN_WORDS_BEFORE_STOP = 2


def cut_continuation(text: str, finished: bool) -> tuple[str, bool]:
    """Cut raw generated `text` to what the writer should see.

    Returns (shown, done). `done` is True once the text has reached a line or sentence end,
    so that generation can stop. When `finished` is True (no more tokens will come), a
    trailing partial word is dropped; while streaming, it is dropped too, so ghost text only
    ever grows by whole words.
    """
    newline = text.find("\n")
    if newline != -1:
        return text[:newline].rstrip(), True
    for match in _SENTENCE_END.finditer(text):
        shown = text[: match.end()]
        if len(shown.split()) >= _MIN_WORDS_BEFORE_STOP:
            return shown, True
    stripped = text.rstrip()
    if re.search(r"""[.!?…]["'”’)\]]*$""", stripped) and finished:
        return stripped, True
    # Drop the trailing partial word: everything after the last whitespace, unless the text
    # has no whitespace after its first character (it completes the word being typed).
    last_space = max(text.rfind(" "), text.rfind("\t"))
    if last_space > 0:
        return text[:last_space].rstrip(), False
    return ("", False) if not finished else (stripped, False)


def can_suggest_at(line: str, column: int) -> bool:
    """True if the cursor at `column` of `line` is a place for a suggestion: at the end of the
    line or before whitespace, and not at the start of an empty line's first column in an
    empty document (nothing to continue). No suggestions in the middle of a word."""
    after = line[column:]
    return after == "" or after[0].isspace()


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words_of(text: str) -> list[str]:
    """The words of `text`, lower-cased ("sailor's" stays one word)."""
    return _WORD.findall(text.lower())


def repeated_trigrams(text: str) -> int:
    """How many word 3-grams of `text` repeat an earlier one ("the forest of the forest, in the
    forest of the forest" has 3): the loops that steering, or a small model, falls into."""
    words = words_of(text)
    seen: set[tuple[str, ...]] = set()
    repeats = 0
    for i in range(len(words) - 2):
        gram = tuple(words[i : i + 3])
        repeats += gram in seen
        seen.add(gram)
    return repeats


LOOP_SHARE = 0.2
"""A text whose repeated word 3-grams are more than this share of its 3-grams loops."""


def loops(text: str) -> bool:
    """True when `text` goes round in circles: more than LOOP_SHARE of its word 3-grams repeat an
    earlier one ("in the forest of the forest, in the forest of the forest": 4 of 11). One
    repeat in a long sentence ("the sea, and the sea") is not a loop."""
    grams = len(words_of(text)) - 2
    return grams > 0 and repeated_trigrams(text) / grams > LOOP_SHARE
