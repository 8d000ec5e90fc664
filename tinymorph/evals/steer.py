"""Does steering work? For SAE features at several strengths, over held-out prompts: how often
the feature's own activation rises in the steered continuation, and what it costs in fluency.

Owns: `tinymorph steer eval`'s numbers. Method: greedy continuations (same prompt, same length)
without and with steering; the feature's activation is re-encoded from each generated text by
the unsteered model and the SAE (mean over the continuation's tokens), as in the steering
evaluations of Templeton et al. 2024 and Neuronpedia's steering page; fluency is the
continuation's perplexity under the unsteered model. Also the decode throughput with 0, 1 and 16
active features, measured in the same run (steering must not slow generation).
No Textual, no store.
"""

import copy
import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from tinymorph.domain import SteeringSpec, SteeringTerm
from tinymorph.engine.generate import MIN_P, ConceptMeter, Generator, max_act_tensor, sample
from tinymorph.features import FeatureData
from tinymorph.lm.model import LoadedModel, decoder_layers
from tinymorph.lm.steering import resolve_steering, steered
from tinymorph.sae.loading import LoadedSAE


@dataclass
class SteerResult:
    """One (feature, strength) cell of the table."""

    feature: int
    label: str
    strength: float
    concept_rate: float
    """Fraction of prompts whose steered continuation activates the feature more than the unsteered one."""
    mean_act_unsteered: float
    mean_act_steered: float
    perplexity_unsteered: float
    """Median over prompts of the continuation's perplexity under the unsteered model."""
    perplexity_steered: float

    @property
    def perplexity_rise(self) -> float:
        return self.perplexity_steered / self.perplexity_unsteered - 1


def pick_features(data: FeatureData, n: int, seed: int = 0, steers_only: bool = False) -> list[int]:
    """`n` features spread over the SAE: alive, not dense (active on 0.01%-2% of tokens), with a
    word in their label; with `steers_only`, also marked as steering (`FeatureInfo.steers`:
    output score, after Arad et al. 2025, and probe concept rate). A seeded sample, so runs are
    comparable."""
    pool = [
        f.index
        for f in data.features
        if 1e-4 <= f.density <= 0.02
        and any(c.isalpha() for c in f.label.split("→")[0])
        and (f.steers or not steers_only)
    ]
    return sorted(random.Random(seed).sample(pool, min(n, len(pool))))


@torch.no_grad()
def _score(
    lm: LoadedModel, sae: LoadedSAE, prompt_ids: list[int], continuation: list[int]
) -> tuple[torch.Tensor, float]:
    """(mean SAE activations over the continuation (d_sae,), its perplexity) under the unsteered model."""
    ids = torch.tensor([prompt_ids + continuation])  # (1, T)
    captured: list[torch.Tensor] = []
    handle = decoder_layers(lm.model)[sae.layer].register_forward_hook(
        lambda _m, _a, out: captured.append(out[0] if isinstance(out, tuple) else out)
    )
    try:
        logits = lm.model(input_ids=ids, use_cache=False).logits[0].float()  # (T, V)
    finally:
        handle.remove()
    n = len(continuation)
    acts = sae.encode(captured[0][0, -n:]).mean(0)  # (F,)
    logp = torch.log_softmax(logits[-n - 1 : -1], dim=-1)  # predictions of the continuation tokens
    nll = -logp.gather(-1, torch.tensor(continuation)[:, None]).mean()
    return acts, math.exp(float(nll))


@dataclass(frozen=True)
class Decoding:
    """How continuations are decoded: as the editor does (sampled at `temperature` with min-p,
    `alternatives` rows, the one shown first chosen by `ConceptMeter`; pass the editor's
    `Settings`' values), or greedy with 1 row (`GREEDY`)."""

    temperature: float
    alternatives: int
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0

    def describe(self) -> str:
        if self.greedy:
            return "greedy"
        return (
            f"sampled at temperature {self.temperature:g} (min-p {MIN_P:g}), "
            f"{self.alternatives} alternatives, the first shown"
        )


GREEDY = Decoding(temperature=0.0, alternatives=1)


@torch.no_grad()
def continue_tokens(
    gen: Generator, prompt: str, spec: SteeringSpec, tokens: int, decoding: Decoding = GREEDY, seed: int = 0
) -> tuple[list[int], float]:
    """The continuation of `prompt` under `spec` that the editor would show first: exactly
    `tokens` tokens (or to EOS) per alternative, decoded as `decoding` says (seeded with
    `decoding.seed + seed`), ranked by `ConceptMeter` as `Generator.suggest` ranks them.
    Returns (its token ids, decode time in seconds, prefill excluded)."""
    lm = gen.lm
    ids = gen.context_ids(prompt)
    layer = decoder_layers(lm.model)[lm.hook_layer]
    steering = resolve_steering(spec, lm.d_model, lm.median_norm, gen.sae)
    n = decoding.alternatives
    meter = ConceptMeter(gen.sae, spec, n, gen.max_acts)
    generator = torch.Generator().manual_seed(decoding.seed + seed)
    eos = lm.tokenizer.eos_token_id
    with steered(layer, steering):
        logits, _ = gen.prefill(ids, spec.key())
        assert gen.prefix is not None
        cache = copy.deepcopy(gen.prefix.cache)
        cache.batch_repeat_interleave(n)
        token = sample(logits.expand(n, -1), decoding.temperature, generator)  # (n,)
        out: list[list[int]] = [[] for _ in range(n)]
        ended = [False] * n
        t0 = time.perf_counter()
        with meter.reading(layer):
            for _ in range(tokens):
                live = [False] * n
                for row in range(n):
                    ended[row] = ended[row] or int(token[row]) == eos
                    if not ended[row]:
                        out[row].append(int(token[row]))
                        live[row] = True
                if all(ended) or all(len(o) >= tokens for o in out):
                    break
                step = lm.model(input_ids=token[:, None], past_key_values=cache, use_cache=True)
                meter.count(live)
                token = sample(step.logits[:, -1].float(), decoding.temperature, generator)
        best = out[meter.order()[0]]  # the ranking's one SAE encode counts as decode time
        seconds = time.perf_counter() - t0
    return best or [eos], seconds


def steer_eval(
    lm: LoadedModel,
    sae: LoadedSAE,
    data: FeatureData,
    prompts: list[str],
    features: list[int],
    strengths: list[float],
    tokens: int = 24,
    report: Callable[[str], None] = lambda _s: None,
    decoding: Decoding = GREEDY,
) -> list[SteerResult]:
    """The table: one SteerResult per (feature, strength). Prompt k's steered and unsteered
    continuations share the seed `decoding.seed + k`."""
    gen = Generator(lm, 511, sae, max_act_tensor(data))
    base = []
    for k, prompt in enumerate(prompts):
        ids = gen.context_ids(prompt)
        cont, _ = continue_tokens(gen, prompt, SteeringSpec(), tokens, decoding, seed=k)
        base.append((ids, cont, *_score(lm, sae, ids, cont)))
    results = []
    for f in features:
        for s in strengths:
            spec = SteeringSpec((SteeringTerm(s, feature=f),))
            rises, acts_u, acts_s, ppl_u, ppl_s = 0, [], [], [], []
            for k, (prompt, (ids, _cont, acts0, ppl0)) in enumerate(zip(prompts, base, strict=True)):
                cont, _ = continue_tokens(gen, prompt, spec, tokens, decoding, seed=k)
                acts1, ppl1 = _score(lm, sae, ids, cont)
                rises += float(acts1[f]) > float(acts0[f])
                acts_u.append(float(acts0[f]))
                acts_s.append(float(acts1[f]))
                ppl_u.append(ppl0)
                ppl_s.append(ppl1)
            results.append(
                SteerResult(
                    f,
                    data.features[f].label,
                    s,
                    rises / len(prompts),
                    statistics.mean(acts_u),
                    statistics.mean(acts_s),
                    statistics.median(ppl_u),
                    statistics.median(ppl_s),
                )
            )
            report(
                f"feature {f} at {s:+.2f}: concept {results[-1].concept_rate:.0%}, "
                f"perplexity {results[-1].perplexity_rise:+.0%}"
            )
    return results


def decode_throughput(
    lm: LoadedModel,
    sae: LoadedSAE,
    prompt: str,
    n_features: list[int],
    tokens: int = 48,
    repeats: int = 3,
    decoding: Decoding = GREEDY,
) -> dict[int, float]:
    """Decode tokens/s (per alternative) with 0 and with n active features (add mode, which also
    runs the `ConceptMeter`), interleaved in one run so that machine noise hits all settings
    alike; the median over `repeats`."""
    gen = Generator(lm, 511, sae)
    speeds: dict[int, list[float]] = {n: [] for n in [0, *n_features]}
    for _ in range(repeats):
        for n in speeds:
            spec = SteeringSpec(tuple(SteeringTerm(0.01, feature=i) for i in range(n)))
            out, seconds = continue_tokens(gen, prompt, spec, tokens, decoding)
            speeds[n].append(len(out) / max(seconds, 1e-6))
    return {n: statistics.median(v) for n, v in speeds.items()}
