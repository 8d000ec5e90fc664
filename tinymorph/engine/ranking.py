"""Ranking the alternatives by how much they show what the writer turned up (runs in the worker).

Owns: reading the hook layer while the alternatives decode (`reading`), and scoring and ordering
them from those readings (`ConceptMeter`), so that the alternative shown first is the one that
shows the steering most. Imports torch; no Textual, no store.
"""

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from tinymorph.domain import SteeringSpec
from tinymorph.engine.concepts import ConceptWords
from tinymorph.lm.steering import FeatureSource

CONCEPT_CLOSE = 0.45
"""Closeness (`ConceptWords.closeness`, an input-embedding cosine) from which an alternative shows
the concept: for "sea", "ocean" 0.75, "boat" 0.56, "harbour" 0.46; "table" 0.38, "went" 0.23."""


class ConceptMeter:
    """How strongly each alternative shows what the writer turned up, from the hook layer's
    readings taken while it was decoded, so that the alternative shown first is the one that
    shows it most.

    The readings are the hook layer's output *before* the steering hook adds to it. Steering
    acts only after that layer, so up to there every position (and every key and value the
    layers up to it attend to) is exactly what the unsteered model computes on the same tokens:
    the reading equals re-encoding the generated text with the unsteered model, at no extra
    forward pass.

    Score of a row: the mean over its generated tokens of
    - sum_i sign_i * a_i / max_i over the spec's "add" terms with an SAE feature i (a_i its SAE
      activation, max_i its max on held-out text, 1 when unknown), encoded by the SAE once at the
      end (~4 ms for 24 steps of 3 rows on 2 CPU cores), plus
    - sum_j sign_j * <x, u_j> / median_norm over its "add" terms with a direction (concept sliders,
      directions the writer made): x the reading, u_j the unit direction, plus
    - for a concept slider, sign * the closeness of the alternative's words to the words the
      writer typed (`engine.concepts.ConceptWords`, a cosine in [-1, 1], which dominates the
      projection, ~0.05 in these units),
    where sign is the sign of the term's strength; terms at strength 0 are left out. A spec with
    no such term makes an inactive meter (`active` False), which keeps the sampled order.
    With a concept slider turned up, the alternatives that show the concept (a word at least
    CONCEPT_CLOSE close to the writer's) come first, the most fluent of them first (the smallest
    mean gap between the logit of each token it drew and the best logit there): among samples
    that all say "sea", the writer should see the one that reads best.
    Method: best-of-n sampling (as in Nakano et al. 2021, WebGPT, with a reward model), here
    ranked by the model's own reading instead.
    """

    def __init__(
        self,
        sae: FeatureSource | None,
        spec: SteeringSpec,
        rows: int,
        max_acts: torch.Tensor | None = None,
        median_norm: float = 1.0,
        words: ConceptWords | None = None,
    ) -> None:
        added = [t for t in spec.terms if t.mode == "add" and t.strength != 0]
        features = [(t.feature, math.copysign(1.0, t.strength)) for t in added if t.feature is not None]
        self.sae = sae if features else None
        self.features = torch.tensor([f for f, _ in features], dtype=torch.long)  # (k,)
        scale = max_acts[self.features] if max_acts is not None and features else torch.ones(len(features))
        self.weights = torch.tensor([sign for _, sign in features]) / scale  # (k,)
        directions = [(torch.tensor(t.direction), math.copysign(1.0, t.strength)) for t in added if t.direction]
        self.directions = (
            torch.stack([sign * d / d.norm() / median_norm for d, sign in directions]) if directions else None
        )  # (j, d): signed unit directions, in residual-norm units
        self.words = words
        self.concepts = (
            [(words.query_ids(t.concept), math.copysign(1.0, t.strength)) for t in added if t.concept]
            if words is not None
            else []
        )
        self.rows = rows

    @property
    def active(self) -> bool:
        return self.sae is not None or self.directions is not None

    @property
    def has_concept(self) -> bool:
        """True when a concept slider is turned up (what `mentions` looks for)."""
        return self.words is not None and any(sign > 0 for _ids, sign in self.concepts)

    def mentions(self, token: int) -> bool:
        """True if `token` is at least CONCEPT_CLOSE close (input-embedding cosine) to the words of
        a concept slider turned up: the token says the concept ("ocean" for "sea")."""
        if self.words is None:
            return False
        return any(sign > 0 and self.words.token_closeness(ids, token) >= CONCEPT_CLOSE for ids, sign in self.concepts)

    def scores(
        self, readings: list[torch.Tensor], live: list[list[bool]], texts: list[str] | None = None
    ) -> torch.Tensor:
        """(rows,) score of each row (0 for a row with no token read). `readings`: one (rows, d)
        hook-layer output per decode step; `live`: which rows' tokens at that step belong to
        their text; `texts`: each row's text as shown (for concept sliders)."""
        closeness = torch.zeros(self.rows)
        if self.words is not None and texts is not None:
            for query_ids, sign in self.concepts:
                closeness += torch.tensor([sign * self.words.closeness(query_ids, t) for t in texts])
        if not readings or not self.active:
            return closeness
        hidden = torch.stack(readings).float()  # (steps, rows, d)
        per_token = torch.zeros(hidden.shape[:2])  # (steps, rows)
        if self.sae is not None:
            acts = self.sae.encode(hidden)[..., self.features]  # (steps, rows, k)
            per_token += acts @ self.weights
        if self.directions is not None:
            per_token += (hidden @ self.directions.T).sum(-1)  # (steps, rows, j) -> (steps, rows)
        mask = torch.tensor(live, dtype=torch.float32)  # (steps, rows)
        return (per_token * mask).sum(0) / mask.sum(0).clamp(min=1) + closeness

    def order(
        self,
        readings: list[torch.Tensor],
        live: list[list[bool]],
        texts: list[str] | None = None,
        surprise: list[float] | None = None,
    ) -> list[int]:
        """Rows, best first; ties (and an inactive meter) keep the sampled order. `surprise`: each
        row's mean logit gap (see the class docstring), for concept sliders."""
        if not self.active:
            return list(range(self.rows))
        scores = self.scores(readings, live, texts).tolist()
        shows = [False] * self.rows
        if self.words is not None and texts is not None and surprise is not None:
            for query_ids, sign in self.concepts:
                if sign > 0:
                    close = [self.words.closeness(query_ids, t) >= CONCEPT_CLOSE for t in texts]
                    shows = [a or b for a, b in zip(shows, close, strict=True)]

        def key(r: int) -> tuple[bool, float]:
            return (not shows[r], surprise[r] if shows[r] and surprise is not None else -scores[r])

        return sorted(range(self.rows), key=key)


@contextmanager
def reading(layer: torch.nn.Module, into: list[torch.Tensor]) -> Iterator[None]:
    """Append the last position of `layer`'s output, (B, d), at every forward pass while open.
    Registered first (prepend), so it reads the output before any steering hook adds to it."""

    def hook(_m: torch.nn.Module, _a: object, out: object) -> None:
        hidden = out[0] if isinstance(out, tuple) else out  # (B, T, d)
        into.append(hidden[:, -1].detach().clone())  # type: ignore[index]

    handle = layer.register_forward_hook(hook, prepend=True)
    try:
        yield
    finally:
        handle.remove()
