"""The feature lens: which SAE features the text just before the cursor lights up (runs in the worker).

Owns: scaling SAE activations to fractions of each feature's held-out max, weighing them by how
much a feature says about the writer's text (`lens_weights`), keeping each position's strongest
features (`encode_rows`) and summing the last LENS_TOKENS positions into the few the editor
shows, each label once and none below MIN_LENS_SCORE (`summarize`). `Generator` keeps one row per
context position in its prefix cache, so a keystroke encodes only its new tokens. Imports torch; no Textual, no store.
"""

from collections.abc import Sequence

import torch

from tinymorph.features import FeatureData
from tinymorph.lens_table import LensTable, floored_max_act, weight_of
from tinymorph.lm.steering import FeatureSource

LENS_TOKENS = 16
"""The feature lens looks at this many tokens before the cursor (most of a sentence): a feature
that stays lit over them says more about the text than one that flashes on one word. 16 against
12 (and 20, 24) chosen on the lens development sentences with `MIN_LENS_SCORE` (docs/sae.md)."""
LENS_FEATURES = 3
"""Features the lens reports (`FeaturesLit`), best first."""
_LENS_KEEP = 16
"""Strongest features kept per position for the lens."""
MIN_LENS_SCORE = 0.06
"""The least score (`summarize`) of a feature the lens shows; below it, silence. Chosen with
LENS_TOKENS on the lens development sentences (docs/evals/lens-topics.toml, [[dev]] only) for
the shipped 16k SAE, in an offline replay of the lens over cached activations: at 0.04, 0.06
and 0.08 the sentences whose topic was named went 90/85/78% and the labels on topic 50/53/54%,
0.08 leaving 3 of 40 sentences silent (docs/sae.md)."""

LensRow = tuple[tuple[int, float], ...] | None
"""(feature, activation) pairs of one position, strongest first; None where not encoded (BOS)."""


def lens_tensors(table: LensTable) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(max_acts (d_sae,), weights (d_sae,), groups) for `Generator` from a `LensTable`."""
    return torch.tensor(table.max_act), torch.tensor(table.weight), list(table.group)


def max_act_tensor(data: FeatureData) -> torch.Tensor:
    """(d_sae,) each feature's max activation on held-out text (floored at 1e-6), to scale
    activations to fractions of it."""
    return torch.tensor([floored_max_act(f) for f in data.features])


def lens_weights(data: FeatureData) -> torch.Tensor:
    """(d_sae,) each feature's weight in the lens (`lens_table.weight_of`)."""
    return torch.tensor([weight_of(f) for f in data.features])


def encode_rows(
    sae: FeatureSource,
    resid: torch.Tensor,
    first: int,
    max_acts: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
) -> list[LensRow]:
    """Encode the positions of `resid` (T, d), the hook layer's output before any steering, from
    `first` on with `sae` (the earlier ones get None): each position's _LENS_KEEP strongest
    features, by activation as a fraction of `max_acts` (d_sae,) (at most 1) times `weights`
    (d_sae,) (`lens_weights`), zeros left out."""
    rows: list[LensRow] = [None] * resid.shape[0]
    if first >= resid.shape[0]:
        return rows
    acts = sae.encode(resid[first:].float())  # (n, F)
    if max_acts is not None:
        acts = (acts / max_acts).clamp(max=1.0)  # fraction of each feature's held-out max
    if weights is not None:
        acts = acts * weights  # (n, F) * (F,)
    top = acts.topk(min(_LENS_KEEP, acts.shape[-1]), dim=-1)
    for offset, (idx, val) in enumerate(zip(top.indices.tolist(), top.values.tolist(), strict=True)):
        rows[first + offset] = tuple((i, v) for i, v in zip(idx, val, strict=True) if v > 0)
    return rows


def summarize(
    rows: list[LensRow], groups: Sequence[int] | None = None, min_score: float = 0.0
) -> tuple[tuple[int, float], ...]:
    """The at most LENS_FEATURES features that say the most about the last LENS_TOKENS of `rows`
    (one per position, oldest first): (index, score), best first, the score being the mean over
    the encoded positions among them of the weighted activation (`encode_rows`). Features scoring
    below `min_score` are left out (the lens prefers silence to noise), and of features in the
    same `groups` entry (the same label, `LensTable.group`) only the best is kept."""
    kept = [r for r in rows[-LENS_TOKENS:] if r]
    total: dict[int, float] = {}
    for row in kept:
        for i, v in row:
            total[i] = total.get(i, 0.0) + v
    shown: list[tuple[int, float]] = []
    seen: set[int] = set()
    for i, v in sorted(total.items(), key=lambda kv: -kv[1]):
        score = v / len(kept)
        group = groups[i] if groups is not None else i
        if score < min_score or len(shown) == LENS_FEATURES:
            break
        if group not in seen:
            seen.add(group)
            shown.append((i, score))
    return tuple(shown)
