"""Building feature data (dashboards and labels) for an SAE, locally, from held-out text.

Owns: one scan of held-out text through the model (up to the SAE's layer) and the SAE, keeping
per feature its top activating contexts (one per sequence, strongest first) and its activation
density; the logit effect of each decoder direction (`W_dec[i]` through the final norm and the
unembedding, the "logit lens" of nostalgebraist 2020 as Neuronpedia's dashboards show it); and
a label made from both (`tinymorph.labels`). No network model. No Textual, no store.
"""

from collections.abc import Callable, Sequence

import torch

from tinymorph.features import FeatureContext, FeatureData, FeatureInfo
from tinymorph.labels import context_words, relabel
from tinymorph.lm.hooks import hook_name_for_layer, run_to_layer
from tinymorph.lm.model import LoadedModel, decoder_layers
from tinymorph.sae.loading import LoadedSAE

TOP_CONTEXTS = 24
"""Contexts kept per feature while scanning (labels use all; the file keeps `SHOWN_CONTEXTS` of
the quotable ones, and the words of all)."""
SHOWN_CONTEXTS = 8
BEFORE, AFTER = 16, 4
"""Tokens shown before and after the peak in a context window."""
PER_TOKEN = 64
"""Largest activations kept per token (for the per-token shading of context windows)."""
LOGIT_TOKENS = 8
"""Suppressed tokens kept per feature, and the promoted word tokens the output score measures."""
PROMOTED_TOKENS = 24
"""Promoted tokens kept per feature (its logit lens): the labels look for words its contexts share
among them (`labels.input_output_words`). On the lens development sentences with a 16k SAE
(offline replay of the lens, 7.08M-token checkpoint), 24 named the topic in 82% against 78% with
8 (docs/sae.md); the feature file grows ~1.5 MB."""


@torch.no_grad()
def logit_effects(
    lm: LoadedModel, directions: torch.Tensor, n: int = LOGIT_TOKENS, chunk: int = 256, n_bottom: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top `n` and bottom `n_bottom` (default `n`) output tokens of each direction (F, d) through
    the model's final norm and unembedding (the logit lens): returns (top_ids, top_vals) (F, n)
    and (bottom_ids, bottom_vals) (F, n_bottom)."""
    norm, head = lm.model.model.norm, lm.model.get_output_embeddings()
    tops, bottoms = [], []
    for start in range(0, directions.shape[0], chunk):
        block = directions[start : start + chunk].to(head.weight.dtype)  # (c, d)
        logits = head(norm(block)).float()  # (c, vocab)
        tops.append(logits.topk(n, dim=-1))
        bottoms.append((-logits).topk(n if n_bottom is None else n_bottom, dim=-1))
    return (
        torch.cat([t.indices for t in tops]),
        torch.cat([t.values for t in tops]),
        torch.cat([b.indices for b in bottoms]),
        -torch.cat([b.values for b in bottoms]),
    )


class _Scan:
    """Running statistics over the scanned sequences."""

    def __init__(self, d_sae: int, n_seq: int, seq_len: int) -> None:
        self.top_vals = torch.zeros(TOP_CONTEXTS, d_sae)  # (K, F) strongest per-sequence maxima
        self.top_seq = torch.zeros(TOP_CONTEXTS, d_sae, dtype=torch.long)  # (K, F)
        self.top_pos = torch.zeros(TOP_CONTEXTS, d_sae, dtype=torch.long)  # (K, F) position in sequence
        self.active = torch.zeros(d_sae, dtype=torch.long)  # (F,) tokens with act > 0
        self.per_token = min(PER_TOKEN, d_sae)
        self.tok_idx = torch.zeros(n_seq, seq_len, self.per_token, dtype=torch.int32)  # strongest features per token
        self.tok_val = torch.zeros(n_seq, seq_len, self.per_token, dtype=torch.float16)
        self.tokens = 0

    def add(self, first_seq: int, acts: torch.Tensor) -> None:
        """acts: (B, T, F) for sequences first_seq.. (position 0, BOS, is all zeros)."""
        b = acts.shape[0]
        self.active += (acts > 0).sum((0, 1))
        self.tokens += b * (acts.shape[1] - 1)
        top = acts.topk(self.per_token, dim=-1)  # (B, T, P)
        self.tok_idx[first_seq : first_seq + b] = top.indices.int()
        self.tok_val[first_seq : first_seq + b] = top.values.half()
        seq_max, seq_pos = acts.max(dim=1)  # (B, F) each
        seq_ids = torch.arange(first_seq, first_seq + b).unsqueeze(1).expand_as(seq_pos)  # (B, F)
        vals = torch.cat([self.top_vals, seq_max])  # (K+B, F)
        best = vals.topk(TOP_CONTEXTS, dim=0)  # over sequences
        self.top_vals = best.values
        self.top_seq = torch.cat([self.top_seq, seq_ids]).gather(0, best.indices)
        self.top_pos = torch.cat([self.top_pos, seq_pos]).gather(0, best.indices)

    def act_at(self, seq: int, pos: int, feature: int) -> float:
        hits = (self.tok_idx[seq, pos] == feature).nonzero()
        return float(self.tok_val[seq, pos, hits[0, 0]]) if len(hits) else 0.0


@torch.no_grad()
def build_feature_data(
    lm: LoadedModel,
    sae: LoadedSAE,
    sequences: list[list[int]],
    *,
    quotable: Sequence[bool] | None = None,
    batch: int = 8,
    report: Callable[[int, int], None] = lambda _done, _total: None,
) -> FeatureData:
    """Scan `sequences` (BOS-prefixed token lists of equal length, held-out text) and build the
    feature data of `sae`. Labels are made from the top contexts in all sequences; the contexts
    kept in the file (quoted by dashboards) only from sequences whose `quotable` entry is True
    (default: all), so text whose licence forbids redistribution can train labels without being
    shipped. `report(sequences_done, total)` is called after every batch.
    Memory: ~0.5 KB per scanned token (the per-token top activations)."""
    n_seq, seq_len = len(sequences), len(sequences[0])
    scan = _Scan(sae.d_sae, n_seq, seq_len)
    layers = decoder_layers(lm.model)
    for start in range(0, n_seq, batch):
        ids = torch.tensor(sequences[start : start + batch])  # (B, T)
        resid = run_to_layer(lm.model, layers, sae.layer, ids)  # (B, T, d)
        acts = sae.encode(resid)  # (B, T, F)
        acts[:, 0] = 0  # BOS is never encoded: its norm is an outlier the SAE was not trained on
        scan.add(start, acts)
        report(min(start + batch, n_seq), n_seq)
    top_ids, top_vals, bottom_ids, bottom_vals = logit_effects(
        lm, sae.directions(), n=PROMOTED_TOKENS, n_bottom=LOGIT_TOKENS
    )
    decode = _Decoder(lm)
    features = tuple(
        _feature_info(i, scan, sequences, quotable, decode, top_ids[i], top_vals[i], bottom_ids[i], bottom_vals[i])
        for i in range(sae.d_sae)
    )
    return relabel(FeatureData(sae.sae_id, sae.model_name, hook_name_for_layer(sae.layer), scan.tokens, features))


class _Decoder:
    """Token id -> text, cached (the tokenizer's decode of one id)."""

    def __init__(self, lm: LoadedModel) -> None:
        self.tokenizer, self.cache = lm.tokenizer, {}  # type: ignore[var-annotated]

    def __call__(self, token_id: int) -> str:
        if token_id not in self.cache:
            self.cache[token_id] = self.tokenizer.decode([token_id])
        return self.cache[token_id]  # type: ignore[no-any-return]


def _feature_info(
    i: int,
    scan: _Scan,
    sequences: list[list[int]],
    quotable: Sequence[bool] | None,
    decode: _Decoder,
    top_ids: torch.Tensor,
    top_vals: torch.Tensor,
    bottom_ids: torch.Tensor,
    bottom_vals: torch.Tensor,
) -> FeatureInfo:
    max_act = float(scan.top_vals[0, i])
    ranked = [
        (int(s), int(p), float(v))
        for s, p, v in zip(scan.top_seq[:, i], scan.top_pos[:, i], scan.top_vals[:, i], strict=False)
        if v > 0
    ]
    contexts: list[FeatureContext] = []
    shown: list[FeatureContext] = []
    for seq, pos, act in ranked:
        lo, hi = max(1, pos - BEFORE), min(len(sequences[seq]), pos + AFTER + 1)
        tokens = tuple(decode(t) for t in sequences[seq][lo:hi])
        acts = tuple(round(100 * scan.act_at(seq, p, i) / max_act) for p in range(lo, hi))
        contexts.append(FeatureContext(tokens, acts, pos - lo, act))
        if (quotable is None or quotable[seq]) and len(shown) < SHOWN_CONTEXTS:
            shown.append(contexts[-1])
    promoted = tuple((decode(int(t)), float(v)) for t, v in zip(top_ids, top_vals, strict=False))
    suppressed = tuple((decode(int(t)), float(v)) for t, v in zip(bottom_ids, bottom_vals, strict=False))
    density = float(scan.active[i]) / max(1, scan.tokens)
    # Labelled by `relabel`, from the words of every context (`context_words`), shown or not.
    return FeatureInfo(
        i, "", density, max_act, promoted, suppressed, tuple(shown), context_words=context_words(contexts)
    )
