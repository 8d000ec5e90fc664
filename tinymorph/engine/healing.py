"""Token healing: finishing the word being typed, whatever tokens its letters fall into.

Owns: splitting the text before the cursor into a context that ends on a token boundary and the
characters the continuation must start with (`split_typed_word`), and the vocabulary as strings
(`TokenStrings`), which says which tokens are consistent with those characters.
After "The committee will reconv" the context is "The committee will" and the continuation must
start with " reconv": Gemma's tokenizer makes "▁recon" + "vene" of the whole word, so the
prefix "reconv" never is a token boundary, and a model fed "▁recon" "v" sees a split it never saw
in training. The method is token healing (guidance-ai's `token_healing`, llama.cpp's
`common_token_healing`): back up to a boundary, then constrain the first generated tokens to
those whose text agrees with the typed characters. Imports no torch and nothing of ours.
"""

import bisect
import re
from collections.abc import Sequence
from functools import lru_cache

_TYPED_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]*)*$")
"""A word being typed at the end of the text: letters or digits, apostrophes inside ("sailor'",
"don't")."""
_BYTE_TOKEN = re.compile(r"<0x([0-9A-F]{2})>")


def split_typed_word(text: str) -> tuple[str, str]:
    """Split the text before the cursor into (context, required): `context` ends before the word
    being typed and before the spaces that precede it (a trailing "▁" is the start of the next
    token in Gemma's tokenizer, never the end of one); `required` is the rest, the characters the
    continuation must begin with: " reconv", " " after a word end, "" after punctuation or a line
    break. context + required == text."""
    match = _TYPED_WORD.search(text)
    head = text[: match.start()] if match else text
    context = head.rstrip(" ")
    return context, text[len(context) :]


def consume(required: str, piece: str) -> str | None:
    """What is still required after a token whose text is `piece`: "" once `piece` covers
    `required` (its extra characters are the continuation), the rest of `required` when `piece` is
    a start of it, None when they disagree."""
    if piece.startswith(required):
        return ""
    if required.startswith(piece) and piece:
        return required[len(piece) :]
    return None


class TokenStrings:
    """The vocabulary as text: token id -> the characters it stands for (SentencePiece's "▁" as a
    space, a byte token <0xNN> as its ASCII character), None for special and non-ASCII byte
    tokens, which no typed text can require. `allowed(required)` lists the ids consistent with
    `required`, those that cover it and those that spell only its start, in O(log V + answers),
    from the strings sorted once (Gemma's 262,144; the pieces alone took 0.16 s here)."""

    def __init__(self, pieces: Sequence[str], special_ids: Sequence[int] = ()) -> None:
        """`pieces`: the tokenizer's `convert_ids_to_tokens(range(V))`; `special_ids`: ids that
        are never text (BOS, EOS, padding, image markers)."""
        special = set(special_ids)
        self.strings: list[str | None] = [None if i in special else _piece_text(p) for i, p in enumerate(pieces)]
        ordered = sorted((s, i) for i, s in enumerate(self.strings) if s)
        self._keys = [s for s, _ in ordered]
        self._ids = [i for _, i in ordered]
        self._exact: dict[str, list[int]] = {}
        for s, i in ordered:
            self._exact.setdefault(s, []).append(i)
        self.allowed = lru_cache(maxsize=256)(self._allowed)  # " " (every word end) is asked for most

    @classmethod
    def of(cls, tokenizer) -> "TokenStrings":  # type: ignore[no-untyped-def]
        """From a transformers tokenizer (its special tokens, the added ones too, are never text)."""
        special = {*tokenizer.all_special_ids, *(i for i, t in tokenizer.added_tokens_decoder.items() if t.special)}
        return cls(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))), sorted(special))

    def _allowed(self, required: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(covering, partial): the token ids whose text starts with `required`, and those whose
        text is a shorter, non-empty start of it."""
        partial: list[int] = []
        for end in range(1, len(required)):
            partial += self._exact.get(required[:end], [])
        lo = bisect.bisect_left(self._keys, required)
        hi = bisect.bisect_left(self._keys, required + "\U0010ffff")
        return tuple(self._ids[lo:hi]), tuple(partial)


def _piece_text(piece: str) -> str | None:
    byte = _BYTE_TOKEN.fullmatch(piece)
    if byte:
        value = int(byte.group(1), 16)
        return chr(value) if value < 0x80 else None
    return piece.replace("▁", " ")
