"""Residual-stream activations for SAE training: run the model up to the hook layer over token
sequences, drop BOS, mix, and hand out fixed-size batches.

Owns: the activation source fed to sae-lens's `SAETrainer` (an iterator of (batch_tokens, d_model)
float32 tensors). BOS is dropped because its norm is an outlier (~7x the median at layer 12 of
Gemma 3 270M) that the editor never steers. Mixing follows sae-lens's activation store: fill a
buffer of several batches, shuffle it, hand out half, refill. No Textual, no store.
"""

from collections.abc import Iterator

import torch

from tinymorph.lm.hooks import run_to_layer
from tinymorph.lm.model import LoadedModel, decoder_layers


class ActivationSource:
    """Yields (batch_tokens, d_model) float32 residual-stream activations at `layer`.

    `sequences` are BOS-prefixed token id lists of equal length (see `corpus.token_sequences`),
    already in a mixed order; they are read once, `model_batch` sequences per forward pass.
    `tokens_read` counts activation rows produced so far. Iteration ends when the sequences run
    out; `StopIteration` then reaches the trainer, which is why `train_sae` checks the budget
    against `available_tokens` first.
    """

    def __init__(
        self,
        lm: LoadedModel,
        layer: int,
        sequences: list[list[int]],
        batch_tokens: int,
        model_batch: int = 4,
        buffer_batches: int = 8,
        seed: int = 0,
    ) -> None:
        self.lm, self.layer, self.sequences = lm, layer, sequences
        self.batch_tokens, self.model_batch, self.buffer_batches = batch_tokens, model_batch, buffer_batches
        self.generator = torch.Generator().manual_seed(seed)
        self.tokens_read = 0
        self._rows = self._activation_rows()
        self._buffer = torch.empty(0, lm.d_model)

    @property
    def available_tokens(self) -> int:
        """Activation rows the sequences can give (BOS excluded)."""
        return sum(len(s) - 1 for s in self.sequences)

    def _activation_rows(self) -> Iterator[torch.Tensor]:
        layers = decoder_layers(self.lm.model)
        for start in range(0, len(self.sequences), self.model_batch):
            ids = torch.tensor(self.sequences[start : start + self.model_batch])  # (B, T)
            resid = run_to_layer(self.lm.model, layers, self.layer, ids)  # (B, T, d)
            rows = resid[:, 1:].reshape(-1, resid.shape[-1]).float()  # BOS dropped: (B*(T-1), d)
            self.tokens_read += rows.shape[0]
            yield rows

    def _refill(self) -> None:
        wanted = self.buffer_batches * self.batch_tokens
        parts = [self._buffer]
        have = self._buffer.shape[0]
        for rows in self._rows:
            parts.append(rows)
            have += rows.shape[0]
            if have >= wanted:
                break
        buffer = torch.cat(parts)
        self._buffer = buffer[torch.randperm(buffer.shape[0], generator=self.generator)]

    def __iter__(self) -> "ActivationSource":
        return self

    def __next__(self) -> torch.Tensor:
        if self._buffer.shape[0] < (self.buffer_batches // 2 + 1) * self.batch_tokens:
            self._refill()
        if self._buffer.shape[0] < self.batch_tokens:
            raise StopIteration
        batch, self._buffer = self._buffer[: self.batch_tokens], self._buffer[self.batch_tokens :]
        return batch  # (batch_tokens, d)
