"""Residual-stream activations for SAE training: run the model up to the hook layer over token
sequences, drop BOS, mix, and hand out fixed-size batches in an order that a resumed run can
reproduce from any step.

Owns: the activation stream fed to sae-lens's `SAETrainer` (an iterator of (batch_tokens, d_model)
float32 tensors). BOS is dropped because its norm is an outlier (~7x the median at layer 12 of
Gemma 3 270M) that the editor never steers.

Order: an epoch is the sequences in a seeded order (`shuffled(sequences, seed + epoch)`), cut into
blocks of `seqs_per_block` sequences. A block's activation rows are shuffled with a generator
seeded by the block's number and cut into `block_batches` batches (the few rows left over are
dropped). Step `s` is therefore always batch `s % block_batches` of block `s // block_batches`,
so `batches(start_step=s)` recomputes one block and goes on exactly where an interrupted run
stopped. Mixing within a block follows sae-lens's activation store (a buffer of several batches,
shuffled); the sequences in a block come from all over the corpus. No Textual, no store.
"""

import math
from collections.abc import Iterator

import torch

from tinymorph.lm.hooks import run_to_layer
from tinymorph.lm.model import LoadedModel, decoder_layers
from tinymorph.sae.corpus import shuffled


class ActivationStream:
    """Batches of (batch_tokens, d_model) float32 residual-stream activations at `layer`, forever
    (epoch after epoch), in an order fixed by `seed`.

    `sequences` are BOS-prefixed token id lists of equal length (see `corpus.token_sequences`).
    Raises ValueError if they do not fill one batch.
    """

    def __init__(
        self,
        lm: LoadedModel,
        layer: int,
        sequences: list[list[int]],
        batch_tokens: int,
        *,
        seed: int = 0,
        block_batches: int = 8,
        model_batch: int = 4,
    ) -> None:
        self.lm, self.layer, self.sequences = lm, layer, sequences
        self.batch_tokens, self.model_batch, self.seed = batch_tokens, model_batch, seed
        rows_per_sequence = max(1, len(sequences[0]) - 1) if sequences else 1
        # A small corpus (a writer's own pages) gets smaller blocks, down to one batch.
        self.block_batches = min(block_batches, len(sequences) * rows_per_sequence // batch_tokens)
        if self.block_batches == 0:
            raise ValueError(f"{len(sequences)} sequences do not fill one batch of {batch_tokens} tokens")
        self.seqs_per_block = math.ceil(self.block_batches * batch_tokens / rows_per_sequence)
        self.blocks_per_epoch = len(sequences) // self.seqs_per_block
        self._epoch_order: tuple[int, list[list[int]]] | None = None
        self.tokens_read = 0

    @property
    def tokens_per_epoch(self) -> int:
        """Training rows one epoch gives (BOS excluded, leftovers of each block dropped)."""
        return self.blocks_per_epoch * self.block_batches * self.batch_tokens

    def _order(self, epoch: int) -> list[list[int]]:
        if self._epoch_order is None or self._epoch_order[0] != epoch:
            self._epoch_order = (epoch, shuffled(self.sequences, self.seed + epoch))
        return self._epoch_order[1]

    def block(self, number: int) -> torch.Tensor:
        """The shuffled activation rows of block `number`: (block_batches * batch_tokens, d)."""
        epoch, index = divmod(number, self.blocks_per_epoch)
        chosen = self._order(epoch)[index * self.seqs_per_block : (index + 1) * self.seqs_per_block]
        layers = decoder_layers(self.lm.model)
        device = self.lm.model.device
        parts = []
        for start in range(0, len(chosen), self.model_batch):
            ids = torch.tensor(chosen[start : start + self.model_batch], device=device)  # (B, T)
            resid = run_to_layer(self.lm.model, layers, self.layer, ids)  # (B, T, d)
            parts.append(resid[:, 1:].reshape(-1, resid.shape[-1]).float())  # BOS dropped: (B*(T-1), d)
        rows = torch.cat(parts)  # (N, d)
        self.tokens_read += rows.shape[0]
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + number)
        perm = torch.randperm(rows.shape[0], generator=generator).to(rows.device)
        return rows[perm][: self.block_batches * self.batch_tokens]

    def batches(self, start_step: int = 0) -> Iterator[torch.Tensor]:
        """Batches from step `start_step` on: each (batch_tokens, d), never ending."""
        number, skip = divmod(start_step, self.block_batches)
        while True:
            rows = self.block(number)
            for i in range(skip, self.block_batches):
                yield rows[i * self.batch_tokens : (i + 1) * self.batch_tokens]
            skip, number = 0, number + 1
