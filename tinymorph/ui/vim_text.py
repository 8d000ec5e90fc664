"""Vim's motions, text objects and search over a document's text, as pure functions.

Owns: where `w b e W B E`, `{ }`, `f t F T`, `%`, the text objects `iw aw is as ip ap` and `/ ?`
land, given the document as one string (lines joined by "\\n") and a character index. Knows
nothing of keys, modes or widgets (`ui/vim.py` does); imports nothing of ours and not Textual.
Behaviour follows Vim's own documentation (`:help word-motions`, `:help object-select`,
`:help exclusive`), simplified where noted.
"""

import re

_BRACKETS = {"(": ")", "[": "]", "{": "}", ")": "(", "]": "[", "}": "{"}
_SENTENCE_END = re.compile(r"[.!?][)\]\"']*(?:[ \t]+|$)")


def char_class(ch: str, big: bool = False) -> int:
    """0: blank (space, tab, newline); 1: a word character (or, for WORDs, any non-blank);
    2: other punctuation. Vim's `word` is a run of one class; a `WORD` is a run of non-blanks."""
    if ch.isspace():
        return 0
    if big or ch.isalnum() or ch == "_":
        return 1
    return 2


def _empty_line_at(text: str, i: int) -> bool:
    """True if index `i` is the start of an empty line."""
    return (i == 0 or text[i - 1] == "\n") and (i == len(text) or text[i] == "\n")


def word_forward(text: str, i: int, big: bool = False) -> int:
    """`w` / `W`: the start of the next word, or an empty line (which counts as a word); the end of
    the text if there is none."""
    n = len(text)
    if i >= n:
        return n
    cls = char_class(text[i], big)
    j = i
    if cls:
        while j < n and char_class(text[j], big) == cls:
            j += 1
    while j < n and char_class(text[j], big) == 0:
        if j > i and _empty_line_at(text, j):
            return j
        j += 1
    return j


def word_end(text: str, i: int, big: bool = False) -> int:
    """`e` / `E`: the last character of this word, or of the next one if already at an end.
    Inclusive (an operator takes that character)."""
    n = len(text)
    j = i + 1
    while j < n and char_class(text[j], big) == 0:
        j += 1
    if j >= n:
        return max(n - 1, 0)
    cls = char_class(text[j], big)
    while j + 1 < n and char_class(text[j + 1], big) == cls:
        j += 1
    return j


def word_end_here(text: str, i: int, big: bool = False) -> int:
    """The last character of the word (or run of punctuation) under `i`, `i` itself if it ends
    there: where `cw` stops."""
    cls = char_class(text[i], big)
    while i + 1 < len(text) and char_class(text[i + 1], big) == cls:
        i += 1
    return i


def word_backward(text: str, i: int, big: bool = False) -> int:
    """`b` / `B`: the start of this word, or of the previous one if already at a start; an empty
    line stops it."""
    j = i - 1
    while j > 0 and char_class(text[j], big) == 0:
        if _empty_line_at(text, j):
            return j
        j -= 1
    if j <= 0:
        return 0
    cls = char_class(text[j], big)
    while j > 0 and char_class(text[j - 1], big) == cls:
        j -= 1
    return j


def words_forward_for_operator(text: str, i: int, count: int, big: bool = False) -> int:
    """Where `dw` / `d3w` stop: as `w`, except that when the last word moved over ends its line,
    the operator stops at that line's end rather than taking the next line's indent (`:help
    word`, "Another special case")."""
    j = i
    for _ in range(count):
        j = word_forward(text, j, big)
    newline = text.rfind("\n", i, j)
    if newline != -1 and not text[newline + 1 : j].strip():
        return newline
    return j


def _blank(line: str) -> bool:
    return not line.strip()


def paragraph_forward(lines: list[str], row: int, count: int = 1) -> int:
    """`}`: the row of the next blank line after the paragraph, or the last row. A line of only
    spaces counts as blank here (Vim wants it empty); writers cannot see the difference."""
    last = len(lines) - 1
    for _ in range(count):
        while row < last and _blank(lines[row]):
            row += 1
        while row < last and not _blank(lines[row]):
            row += 1
    return row


def paragraph_backward(lines: list[str], row: int, count: int = 1) -> int:
    """`{`: the row of the previous blank line before the paragraph, or row 0."""
    for _ in range(count):
        while row > 0 and _blank(lines[row]):
            row -= 1
        while row > 0 and not _blank(lines[row]):
            row -= 1
    return row


def find_in_line(line: str, col: int, char: str, kind: str, count: int = 1, repeat: bool = False) -> int | None:
    """`f t F T` + `char`: the column they land on in `line` from `col`, or None if `char` is not
    there `count` times. `f`/`F` land on the character, `t`/`T` one before (after) it. A `repeat`
    (`;` `,`) of t/T starting right beside `char` goes on to the next one (`:help cpo-;`)."""
    at = col
    skip = 1 if repeat and kind in "tT" else 0
    for _ in range(count):
        if kind in "ft":
            start = at + 1 + (skip if at + 1 < len(line) and line[at + 1] == char else 0)
            found = line.find(char, start)
        else:
            end = at - (skip if at > 0 and line[at - 1] == char else 0)
            found = line.rfind(char, 0, max(end, 0))
        skip = 0
        if found == -1:
            return None
        at = found
    if kind == "t":
        return at - 1
    if kind == "T":
        return at + 1
    return at


def matching_bracket(text: str, i: int) -> int | None:
    """`%`: the bracket matching the first of `()[]{}` at or after `i` on its line, or None."""
    line_end = text.find("\n", i)
    line_end = len(text) if line_end == -1 else line_end
    j = i
    while j < line_end and text[j] not in _BRACKETS:
        j += 1
    if j >= line_end:
        return None
    opening = text[j]
    closing = _BRACKETS[opening]
    step = 1 if opening in "([{" else -1
    depth = 0
    k = j
    while 0 <= k < len(text):
        if text[k] == opening:
            depth += 1
        elif text[k] == closing:
            depth -= 1
            if depth == 0:
                return k
        k += step
    return None


def word_object(text: str, i: int, around: bool, big: bool = False) -> tuple[int, int]:
    """`iw` / `aw` (`iW` / `aW`): the [start, end) of the word (or run of blanks) under `i`;
    `aw` adds the blanks after it, or before it when none follow. Stays on the line."""
    line_start = text.rfind("\n", 0, i) + 1
    line_end = text.find("\n", i)
    line_end = len(text) if line_end == -1 else line_end
    if i >= line_end:
        return i, i
    cls = char_class(text[i], big)
    start, end = i, i + 1
    while start > line_start and char_class(text[start - 1], big) == cls:
        start -= 1
    while end < line_end and char_class(text[end], big) == cls:
        end += 1
    if around and cls:
        after = end
        while after < line_end and char_class(text[after], big) == 0:
            after += 1
        if after > end:
            return start, after
        while start > line_start and char_class(text[start - 1], big) == 0:
            start -= 1
    return start, end


def paragraph_object(lines: list[str], row: int, around: bool) -> tuple[int, int]:
    """`ip` / `ap`: the first and last row (inclusive) of the paragraph (or run of blank lines)
    under `row`; `ap` adds the blank lines after it, or before it when none follow."""
    blank = _blank(lines[row])
    first, last = row, row
    while first > 0 and _blank(lines[first - 1]) == blank:
        first -= 1
    while last < len(lines) - 1 and _blank(lines[last + 1]) == blank:
        last += 1
    if around and not blank:
        after = last
        while after < len(lines) - 1 and _blank(lines[after + 1]):
            after += 1
        if after > last:
            return first, after
        while first > 0 and _blank(lines[first - 1]):
            first -= 1
    return first, last


def sentence_object(text: str, i: int, around: bool) -> tuple[int, int]:
    """`is` / `as`: the [start, end) of the sentence under `i` within its paragraph; `as` adds the
    blanks after it. A sentence ends at `.`, `!` or `?` (closing quotes and brackets allowed)
    followed by a blank or the line's end; paragraph breaks end one too (`:help sentence`)."""
    para_start = text.rfind("\n\n", 0, i)
    para_start = 0 if para_start == -1 else para_start + 2
    para_end = text.find("\n\n", i)
    para_end = len(text) if para_end == -1 else para_end
    start = para_start
    for match in _SENTENCE_END.finditer(text, para_start, para_end):
        boundary = match.end()
        if boundary > i:
            end_text = match.start() + len(match.group().rstrip(" \t\n"))
            return (start, boundary) if around else (start, end_text)
        start = boundary
    end = para_end
    while end > start and text[end - 1] in " \t\n":
        end -= 1
    return start, para_end if around else end


def search(text: str, pattern: str, i: int, backward: bool = False, whole_word: bool = False) -> int | None:
    """`/` `?` `n` `N` `*`: the start of the next match of `pattern` after `i` (before it, going
    backward), wrapping around the text; None if there is none. The pattern is plain text, not a
    regular expression (a writer searching for "e.g." means the dots); `whole_word` (`*`) matches
    it only between word boundaries."""
    if not pattern:
        return None
    regex = re.compile((r"\b%s\b" if whole_word else "%s") % re.escape(pattern))
    starts = [m.start() for m in regex.finditer(text)]
    if not starts:
        return None
    if backward:
        before = [s for s in starts if s < i]
        return before[-1] if before else starts[-1]
    after = [s for s in starts if s > i]
    return after[0] if after else starts[0]
