"""Does steering by SAE feature work? For features at several strengths, over held-out prompts:
how often the feature's own activation rises in the suggestion the editor shows, and how often
that suggestion writes the words the feature's decoder direction promotes, against a strength-0
control that ranks the alternatives the same way, and what it costs in fluency.

Owns: `tinymorph steer eval`'s per-feature numbers, and the pieces every steering evaluation
shares: `shown_suggestion` (the editor's own `Generator.suggest`: same sampling, sentence cut,
token healing and ranking) and `score_text` (activations and perplexity under the unsteered
model). Method: the feature's activation is re-encoded from each shown suggestion by the
unsteered model and the SAE (mean over its tokens), as in the steering evaluations of Templeton
et al. 2024 and Neuronpedia's steering page; fluency is its perplexity under the unsteered
model. Also the decode throughput with 0, 1 and 16 active features, measured in the same run.
No Textual, no store.
"""

import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch

from tinymorph.domain import SteeringSpec, SteeringTerm
from tinymorph.engine.generate import Generator
from tinymorph.engine.lens import max_act_tensor
from tinymorph.engine.protocol import SuggestionReady, SuggestRequest
from tinymorph.engine.sampling import MIN_P
from tinymorph.features import FeatureData
from tinymorph.labels import writes_words
from tinymorph.lm.model import LoadedModel, decoder_layers
from tinymorph.sae.loading import LoadedSAE
from tinymorph.sae.output_score import judged_words


@dataclass(frozen=True)
class Decoding:
    """How suggestions are decoded: as the editor does (sampled at `temperature` with min-p,
    `alternatives` rows, the one shown first chosen by the ranking; pass the editor's
    `Settings`' values), or greedy with 1 row (`GREEDY`). `tokens`: the longest suggestion."""

    temperature: float
    alternatives: int
    seed: int = 0
    tokens: int = 24
    confidence: float = 0.0
    """The editor's `suggestion_confidence`: cut after the first word where confidence ends."""

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0

    def describe(self) -> str:
        if self.greedy:
            return f"greedy, up to {self.tokens} tokens cut at a sentence end"
        cut = f" or where confidence falls below {self.confidence:g}" if self.confidence > 0 else ""
        return (
            f"sampled at temperature {self.temperature:g} (min-p {MIN_P:g}; the first greedy), "
            f"{self.alternatives} alternatives, up to {self.tokens} tokens cut at a sentence end{cut}, the one "
            "the editor shows first"
        )


GREEDY = Decoding(temperature=0.0, alternatives=1)


def shown_suggestion(
    gen: Generator,
    text: str,
    spec: SteeringSpec,
    decoding: Decoding,
    seed: int = 0,
    rank_by: SteeringSpec | None = None,
) -> SuggestionReady:
    """What the editor would show after `text` under `spec`: `gen.suggest` with the editor's
    decoding, seeded with `decoding.seed + seed`; `rank_by` ranks the alternatives by another
    spec (see `Generator.suggest`). Its `alternatives[0]` is the ghost text ('' if none)."""
    req = SuggestRequest(
        0, text, steering=spec, alternatives=decoding.alternatives, max_new_tokens=decoding.tokens,
        temperature=decoding.temperature, seed=decoding.seed + seed, confidence=decoding.confidence,
    )
    result = gen.suggest(req, lambda: False, lambda _t, _ms: None, rank_by=rank_by)
    assert result is not None  # never stale: is_stale always says no
    return result


def first(result: SuggestionReady) -> str:
    """The suggestion shown first ('' when every alternative was cut to nothing)."""
    return result.alternatives[0] if result.alternatives else ""


@dataclass(frozen=True)
class TextScore:
    """A suggestion read by the unsteered model after its prompt."""

    tokens: int
    perplexity: float
    """exp(mean negative log-likelihood of its tokens); nan for an empty suggestion."""
    acts: torch.Tensor | None
    """(d_sae,) its SAE activations averaged over its tokens (None without an SAE or tokens)."""


@torch.no_grad()
def score_text(lm: LoadedModel, prompt_ids: list[int], text: str, sae: LoadedSAE | None = None) -> TextScore:
    """Perplexity (and, with `sae`, mean SAE activations at the SAE's layer) of `text` as written
    after `prompt_ids` (BOS-prefixed context tokens), under the unsteered model. The text is
    tokenized on its own, as the writer's document would be after accepting it."""
    continuation = lm.tokenizer(text, add_special_tokens=False).input_ids if text else []
    if not continuation:
        return TextScore(0, math.nan, None)
    ids = torch.tensor([prompt_ids + continuation])  # (1, T)
    captured: list[torch.Tensor] = []
    handle = None
    if sae is not None:
        handle = decoder_layers(lm.model)[sae.layer].register_forward_hook(
            lambda _m, _a, out: captured.append(out[0] if isinstance(out, tuple) else out)
        )
    try:
        logits = lm.model(input_ids=ids, use_cache=False).logits[0].float()  # (T, V)
    finally:
        if handle is not None:
            handle.remove()
    n = len(continuation)
    logp = torch.log_softmax(logits[-n - 1 : -1], dim=-1)  # predictions of the continuation tokens
    nll = -logp.gather(-1, torch.tensor(continuation)[:, None]).mean()
    acts = sae.encode(captured[0][0, -n:]).mean(0) if sae is not None else None  # (F,)
    return TextScore(n, math.exp(float(nll)), acts)


def median(values: list[float]) -> float:
    """The median of the finite values (nan when there are none)."""
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


@dataclass
class SteerResult:
    """One (feature, strength) row of the table. Strength 0 is the control: the same ranking of
    the same sampled alternatives, no push."""

    feature: int
    label: str
    strength: float
    rises_rate: float
    """Fraction of prompts whose shown suggestion activates the feature more than the unsteered
    suggestion (no slider at all) does."""
    mean_act_unsteered: float
    mean_act_steered: float
    perplexity_unsteered: float
    """Median over prompts of the shown suggestion's perplexity under the unsteered model."""
    perplexity_steered: float
    words_rate: float
    """Fraction of prompts whose shown suggestion writes one of the feature's words
    (`sae.output_score.judged_words`, matched by `labels.writes_words`) while the unsteered
    suggestion writes none: the text, not the SAE."""

    @property
    def perplexity_rise(self) -> float:
        return self.perplexity_steered / self.perplexity_unsteered - 1


def pick_features(data: FeatureData, n: int, seed: int = 0, steers_only: bool = False) -> list[int]:
    """`n` features spread over the SAE: alive, not dense (active on 0.01%-2% of tokens), with a
    readable label; with `steers_only`, also marked as steering (`FeatureInfo.steers`: output
    score, after Arad et al. 2025, and probe concept rate). A seeded sample, so runs are
    comparable."""
    pool = [
        f.index
        for f in data.features
        if 1e-4 <= f.density <= 0.02 and any(c.isalpha() for c in f.label) and (f.steers or not steers_only)
    ]
    return sorted(random.Random(seed).sample(pool, min(n, len(pool))))


def steer_eval(
    lm: LoadedModel,
    sae: LoadedSAE,
    data: FeatureData,
    prompts: list[str],
    features: list[int],
    strengths: list[float],
    report: Callable[[str], None] = lambda _s: None,
    decoding: Decoding = GREEDY,
    gen: Generator | None = None,
) -> list[SteerResult]:
    """The table: per feature, a strength-0 control row (ranked by the feature, no push), then one
    row per strength. Every row of a prompt k shares the seed `decoding.seed + k` with the
    unsteered suggestion it is compared with. `gen`: the editor's Generator to use (default: a
    new one on `lm` and `sae`)."""
    gen = gen or Generator(lm, 511, sae, max_act_tensor(data))
    ids = [gen.context_ids(p.rstrip(" ")) for p in prompts]
    base_texts = [first(shown_suggestion(gen, p, SteeringSpec(), decoding, k)) for k, p in enumerate(prompts)]
    base = [score_text(lm, i, t, sae) for i, t in zip(ids, base_texts, strict=True)]
    results = []
    for f in features:
        ranking = SteeringSpec((SteeringTerm(1.0, feature=f),))
        words = judged_words(data.features[f])
        for s in [0.0, *(x for x in strengths if x != 0)]:
            spec = SteeringSpec((SteeringTerm(s, feature=f),))
            texts = [first(shown_suggestion(gen, p, spec, decoding, k, rank_by=ranking)) for k, p in enumerate(prompts)]
            rows = [score_text(lm, i, t, sae) for i, t in zip(ids, texts, strict=True)]

            def act(score: TextScore, f: int = f) -> float:
                return float(score.acts[f]) if score.acts is not None else 0.0

            results.append(SteerResult(
                f, data.features[f].label, s,
                sum(act(r) > act(b) for r, b in zip(rows, base, strict=True)) / len(prompts),
                statistics.mean(act(b) for b in base), statistics.mean(act(r) for r in rows),
                median([b.perplexity for b in base]), median([r.perplexity for r in rows]),
                sum(writes_words(t, words) and not writes_words(b, words)
                    for t, b in zip(texts, base_texts, strict=True)) / len(prompts),
            ))
            report(f"feature {f} at {s:+.3f}: feature rises {results[-1].rises_rate:.0%}, "
                   f"writes its words {results[-1].words_rate:.0%}, perplexity {results[-1].perplexity_rise:+.0%}")
    return results


def decode_throughput(
    gen: Generator,
    prompts: list[str],
    n_features: list[int],
    decoding: Decoding,
    repeats: int = 3,
) -> dict[int, float]:
    """Decode tokens/s per alternative (`SuggestionReady.decode_steps / decode_ms`) with 0 and
    with n active features (add mode, which also ranks), interleaved in one run so that machine
    noise hits all settings alike; summed over `prompts`, the median over `repeats`."""
    speeds: dict[int, list[float]] = {n: [] for n in [0, *n_features]}
    for _ in range(repeats):
        for n in speeds:
            spec = SteeringSpec(tuple(SteeringTerm(0.01, feature=i) for i in range(n)))
            done = [shown_suggestion(gen, p, spec, decoding, k) for k, p in enumerate(prompts)]
            speeds[n].append(1000 * sum(r.decode_steps for r in done) / max(sum(r.decode_ms for r in done), 1e-6))
    return {n: statistics.median(v) for n, v in speeds.items()}
