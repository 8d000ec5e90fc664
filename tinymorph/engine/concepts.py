"""Concept sliders: a direction toward what the writer types ("sea", "rain and storms", "formal
letters"), made from what the model itself does with those words.

Owns: `build_concept` and the text it uses. Imports torch; no Textual, no store.

Method: an in-context vector (Liu et al. 2024, "In-context Vectors: Making In Context Learning More
Effective and Controllable Through Latent Space Steering"; the same idea as function vectors,
Todd et al. 2024). Each of a few neutral sentences is read by the model twice, after a short
sentence naming the concept ("This passage is about sea.") and after the same sentence naming no
topic in particular ("This passage is about something."), and the residual stream at the hook
layer is compared over the neutral sentence's own tokens: the mean difference is what knowing
*this* topic does to the model's state while it reads other text. (Contrasting with the sentence
read alone, as before, also kept what any topic sentence does; docs/steering.md measures both.) Added while the model
writes, it makes the model write as if it had been told the topic, and more strongly than the
sentence itself would (docs/steering.md measures both, with `tinymorph steer eval --concepts`).
Only the query is used; no word list, corpus or network. The SAE, when loaded, names the
features the direction is made of, for the writer to see.
"""

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from tinymorph.engine.directions import with_bos
from tinymorph.errors import SteeringError
from tinymorph.lm.hooks import run_to_layer
from tinymorph.lm.model import LoadedModel, decoder_layers
from tinymorph.lm.steering import FeatureSource
from tinymorph.private import private_file

log = logging.getLogger(__name__)

TEMPLATES = (
    "This passage is about {}.",
    "The following text is about {}.",
    "Topic: {}.",
)
"""Short sentences naming a concept, placed before each neutral sentence."""

NEUTRAL_SENTENCES = (
    "She opened the window and listened to the street below.",
    "The meeting ran late, so they ordered sandwiches and kept going.",
    "He found the letter in the drawer, folded twice and never sent.",
    "We walked to the station and waited for the next train.",
    "The report was due on Friday, and nobody had started it.",
    "In the evening the children read aloud by the lamp.",
    "The old clock in the hall stopped at a quarter past three.",
    "They painted the kitchen yellow and regretted it by spring.",
    "My neighbour lends me books and never asks for them back.",
    "The teacher wrote three questions on the board and sat down.",
    "After lunch the office was quiet except for the printer.",
    "The road curved past the school and up toward the church.",
    "I wrote the number on the back of my hand so I would not forget it.",
    "The bus was late again, and the driver apologised to everyone.",
    "Her brother fixed the chair with two nails and a piece of string.",
    "We talked about nothing in particular until it was time to go.",
    "The shop on the corner sells newspapers, stamps and cheap umbrellas.",
    "He had never learned to swim, though he had always meant to.",
    "The form asked for my address, my age and my reasons.",
    "By the time the film ended, most of the audience had gone home.",
    "The dog waited by the door every afternoon at four.",
    "She kept the receipts in a shoebox under the bed.",
    "The instructions were printed in very small letters on the lid.",
    "Nobody remembered who had first suggested the picnic.",
)
"""Ordinary sentences on no topic in particular, written for tinymorph (no corpus at run time)."""

GENERIC_TOPIC = "something"
"""What the templates name in the baseline a concept is contrasted with."""

CONCEPT_FEATURES = 5
"""SAE features named as what a concept is made of."""

FUNCTION_WORD_ZIPF = 6.3
"""Words of a query at least this frequent in English (`wordfreq` Zipf scale: "and" 7.4, "about"
6.4; "time" 6.3, "love" 5.8, "sea" 5.1) are left out when alternatives are ranked by closeness to
the query: they say nothing about the concept."""


@dataclass(frozen=True)
class Concept:
    """A concept slider's direction and what it is made of."""

    name: str
    """What the writer typed, trimmed: the slider's name."""
    direction: torch.Tensor
    """(d_model,) float32: the mean change of the residual stream at the hook layer that the
    concept sentences cause. Its orientation is what steers; its norm (`shift`) is a measure."""
    tokens: int
    """Neutral tokens the mean was taken over."""
    features: tuple[tuple[int, float], ...] = ()
    """The SAE features whose decoder directions `W_dec[i]` are closest to the direction:
    (index, cosine), largest first; empty without an SAE."""

    @property
    def shift(self) -> float:
        """||direction||: how far knowing the topic moves the residual stream (residual units)."""
        return float(self.direction.norm())


@torch.no_grad()
def concept_baseline(lm: LoadedModel) -> torch.Tensor:
    """(d_model,) float32: the hook layer's residual stream summed over the neutral sentences'
    tokens (all but BOS and each sentence's first) read after each template naming GENERIC_TOPIC,
    over TEMPLATES x NEUTRAL_SENTENCES. The same for every concept: the worker computes it once,
    with its first concept slider."""
    return _neutral_sum(lm, _after_templates(lm, GENERIC_TOPIC))[0]


@torch.no_grad()
def build_concept(
    lm: LoadedModel, query: str, sae: FeatureSource | None = None, baseline: torch.Tensor | None = None
) -> Concept:
    """The concept slider for `query`: mean over TEMPLATES x NEUTRAL_SENTENCES of the residual
    stream (after decoder layer `lm.hook_layer`) over a neutral sentence's tokens read after the
    template naming `query`, minus the same tokens read after the template naming GENERIC_TOPIC
    (`baseline`, from `concept_baseline`; computed here when not given). The first token of each
    sentence is left out (its tokenization depends on what precedes it). Raises SteeringError for
    a query without a letter or digit. Time: `tinymorph bench --only concepts`."""
    name = " ".join(query.split())
    if not any(c.isalnum() for c in name):
        raise SteeringError("type a word or two to make a concept slider")
    base = baseline if baseline is not None else concept_baseline(lm)
    named, count = _neutral_sum(lm, _after_templates(lm, name))
    direction = (named - base) / count  # the same tokens, after this topic and after none
    return Concept(name, direction, count, _closest_features(sae, direction))


def _after_templates(lm: LoadedModel, topic: str) -> list[list[int]]:
    """BOS + each template naming `topic` + each neutral sentence, TEMPLATES x NEUTRAL_SENTENCES."""
    return [with_bos(lm, t.format(topic) + " " + s) for t in TEMPLATES for s in NEUTRAL_SENTENCES]


def _neutral_sum(lm: LoadedModel, sequences: list[list[int]]) -> tuple[torch.Tensor, int]:
    """The hook layer's residual stream (d,) summed over the neutral-sentence tokens of each of
    `sequences` (TEMPLATES x NEUTRAL_SENTENCES order: each ends with its sentence), and how many
    tokens that is: each sentence's tokens but BOS and its first (whose tokenization depends on
    what precedes it)."""
    lengths = [len(with_bos(lm, s)) - 2 for s in NEUTRAL_SENTENCES]
    total, count = torch.zeros(lm.d_model), 0
    for k, resid in enumerate(_residuals(lm, sequences)):
        n = lengths[k % len(NEUTRAL_SENTENCES)]
        total += resid[-n:].sum(0)
        count += n
    return total, count


class ConceptMaker:
    """Makes concept sliders on one model, computing the no-topic baseline (`concept_baseline`)
    once. With `cache_dir`, the baseline is kept there (`baseline_key`), so only the first slider
    ever made on this machine with this model and layer pays for it (`tinymorph bench --only
    concepts`: ~0.8 s on 2 cores); a damaged or unreadable file is made again. Not thread-safe: the
    worker calls it from one thread."""

    def __init__(self, lm: LoadedModel, cache_dir: str | Path | None = None) -> None:
        self.lm = lm
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._baseline: torch.Tensor | None = None
        self._layer = lm.hook_layer

    def make(self, query: str, sae: FeatureSource | None = None) -> Concept:
        """`build_concept(lm, query, sae)` with the baseline kept. Raises SteeringError as it does."""
        return build_concept(self.lm, query, sae, self.baseline())

    def baseline(self) -> torch.Tensor:
        """The no-topic baseline (d_model,) for the model's current hook layer: kept, read from
        `cache_dir`, or computed (and written there)."""
        if self._baseline is None or self._layer != self.lm.hook_layer:
            found = self._read()
            self._baseline = found if found is not None else self._compute()
            self._layer = self.lm.hook_layer
        return self._baseline

    def _path(self) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / "concepts" / f"baseline-{baseline_key(self.lm)[:24]}.safetensors"

    def _read(self) -> torch.Tensor | None:
        path = self._path()
        if path is None or not path.exists():
            return None
        from safetensors.torch import load_file

        try:
            found = load_file(path)["baseline"].float()
        except Exception as exc:  # damaged (safetensors raises its own error) or unreadable: make it again
            log.warning("concept baseline %s unreadable (%s); computing it again", path, exc)
            return None
        return found if found.shape == (self.lm.d_model,) else None

    def _compute(self) -> torch.Tensor:
        baseline = concept_baseline(self.lm)
        path = self._path()
        if path is not None:
            from safetensors.torch import save_file

            try:
                tmp = private_file(path.with_suffix(".partial"))  # 0600 in a 0700 folder before any byte
                save_file({"baseline": baseline.contiguous()}, str(tmp))
                tmp.replace(path)
            except OSError as exc:  # a read-only cache: the slider works, the next worker recomputes
                log.warning("cannot keep the concept baseline in %s: %s", path, exc)
        return baseline


def baseline_key(lm: LoadedModel) -> str:
    """sha256 hex of what the no-topic baseline depends on: the model's name, its width, the hook
    layer, its measured median residual norm (a function of its weights) and the text the
    baseline reads (TEMPLATES, NEUTRAL_SENTENCES, GENERIC_TOPIC)."""
    parts = [lm.name, lm.d_model, lm.hook_layer, repr(lm.median_norm), TEMPLATES, NEUTRAL_SENTENCES, GENERIC_TOPIC]
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()


def _residuals(lm: LoadedModel, sequences: list[list[int]]) -> list[torch.Tensor]:
    """The hook layer's output (T_i, d) float32 for each token sequence, run up to that layer in
    one right-padded batch (causal attention: padding after a sequence never reaches its tokens)."""
    longest = max(len(s) for s in sequences)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    ids = torch.tensor([s + [pad] * (longest - len(s)) for s in sequences])  # (B, T)
    hidden = run_to_layer(lm.model, decoder_layers(lm.model), lm.hook_layer, ids).float()  # (B, T, d)
    return [hidden[i, : len(s)] for i, s in enumerate(sequences)]


def _closest_features(sae: FeatureSource | None, direction: torch.Tensor) -> tuple[tuple[int, float], ...]:
    if sae is None:
        return ()
    w_dec = sae.directions()  # (F, d)
    cos = (w_dec @ direction) / (w_dec.norm(dim=-1) * direction.norm()).clamp(min=1e-12)  # (F,)
    top = cos.topk(CONCEPT_FEATURES)
    return tuple((int(i), float(v)) for i, v in zip(top.indices, top.values, strict=True))


class ConceptWords:
    """How close the words of a text are to the words of a concept, through the model's own input
    embeddings: the largest cosine between any token of the text and any content token of the
    query. A suggestion that says "ocean" or "sea" is close to "sea"; one about the weather is
    not. Used to rank alternatives for a concept slider (`engine.generate.ConceptMeter`): built
    from the query and the model only, never from an evaluation's word list."""

    def __init__(self, lm: LoadedModel) -> None:
        self.tokenizer = lm.tokenizer
        # (V, d), the model's dtype
        self.embeddings: torch.Tensor = lm.model.get_input_embeddings().weight  # type: ignore[assignment]

    def query_ids(self, query: str) -> list[int]:
        """The tokens of the query's content words (each with its leading space, as a word in
        running text is tokenized); all its words if none is a content word."""
        from wordfreq import zipf_frequency

        words = query.split()
        content = [w for w in words if zipf_frequency(w, "en") < FUNCTION_WORD_ZIPF] or words
        return [i for w in content for i in self.tokenizer(" " + w, add_special_tokens=False).input_ids]

    @torch.no_grad()
    def token_closeness(self, query_ids: list[int], token: int) -> float:
        """max over the query tokens q of cos(E[token], E[q]); 0 without query tokens. ~10 us."""
        if not query_ids:
            return 0.0
        t = self.embeddings[token].float()  # (d,)
        q = self.embeddings[query_ids].float()  # (k, d)
        return float(((q @ t) / (q.norm(dim=-1) * t.norm()).clamp(min=1e-12)).max())

    @torch.no_grad()
    def closeness(self, query_ids: list[int], text: str) -> float:
        """max over the text's tokens t and the query tokens q of cos(E[t], E[q]); 0 for no text."""
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        if not ids or not query_ids:
            return 0.0
        t = self.embeddings[ids].float()  # (n, d)
        q = self.embeddings[query_ids].float()  # (k, d)
        cos = (t / t.norm(dim=-1, keepdim=True)) @ (q / q.norm(dim=-1, keepdim=True)).T  # (n, k)
        return float(cos.max())
