"""Decoding that spells the typed characters: the torch half of token healing.

Owns: the mask that keeps, for each row, only the tokens consistent with the characters it has
yet to spell (`engine.healing` says which; this applies it to the logits), and the rule that
prefers a token covering the typed letters over one spelling only their start. Imports torch;
no Textual, no store.
"""

import math

import torch

from tinymorph.engine.healing import TokenStrings

COVER_NATS = 4.0
"""See `Speller.constrain`: how much likelier a token that spells only part of the typed word
must be than the best token that spells all of it, to be drawn instead."""


class Speller:
    """The vocabulary of one tokenizer as strings, and the logits masks built from it. Not
    thread-safe (the worker's one thread)."""

    def __init__(self, tokenizer) -> None:  # type: ignore[no-untyped-def]
        self.tokenizer = tokenizer
        self._token_strings: TokenStrings | None = None
        self._allowed: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def allowed(self, required: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(covering, partial) token ids for the `required` characters (`TokenStrings.allowed`).
        The vocabulary's strings are built on first use; the answers for the last 256
        strings are kept (" ", asked at every word end, is half the vocabulary)."""
        if self._token_strings is None:
            self._token_strings = TokenStrings.of(self.tokenizer)
        ids = self._allowed.pop(required, None)
        if ids is None:
            covering, partial = self._token_strings.allowed(required)
            ids = (torch.tensor(covering, dtype=torch.long), torch.tensor(partial, dtype=torch.long))
            if len(self._allowed) >= 256:
                self._allowed.pop(next(iter(self._allowed)))
        self._allowed[required] = ids  # most recent last
        return ids

    def constrain(self, logits: torch.Tensor, required: list[str]) -> torch.Tensor:
        """`logits` (n, V) with every token that disagrees with its row's `required` characters
        at -inf (rows with nothing required untouched). A token that spells only the start of the
        typed characters ("Tom" for "Tomorr") is kept only when no token that covers them
        ("Tomorrow") is within COVER_NATS of it: its probability counts every word that starts
        with it, most of which the typed letters rule out, and the model, having read "Tom", goes
        on as if the writer meant the name."""
        if not any(required):
            return logits
        logits = logits.clone()  # (n, V); may be a broadcast view of one row
        for row, chars in enumerate(required):
            if chars:
                covering, partial = self.allowed(chars)  # (k1,), (k2,)
                best_cover = float(logits[row, covering].max()) if len(covering) else -math.inf
                best_part = float(logits[row, partial].max()) if len(partial) else -math.inf
                ids = covering if best_cover >= best_part - COVER_NATS else torch.cat([covering, partial])
                kept = logits[row, ids]
                logits[row] = -math.inf
                logits[row, ids] = kept
        return logits

    def piece(self, token: int) -> str | None:
        """The characters of `token` (None for a special token)."""
        if self._token_strings is None:
            self.allowed("")
        assert self._token_strings is not None
        return self._token_strings.strings[token]
