"""The engine's speed, in this process, on the worker's code path (`Generator.suggest`): suggestion
latency at 128- and 511-token contexts, and decode throughput of the candidate decode paths side
by side in one run.

Owns: `latencies` and `decode_candidates`. Imports torch. Prose comes from text built into the
code (`PROSE`), so the benchmark needs no corpus.
"""

import math
import queue
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from tinymorph.domain import SteeringSpec, SteeringTerm
from tinymorph.engine.generate import Generator
from tinymorph.engine.protocol import SuggestionReady, SuggestRequest
from tinymorph.engine.sampling import sample
from tinymorph.lm.attention import NAME as PACKED_ATTENTION
from tinymorph.lm.model import CALIBRATION_TEXT, LoadedModel
from tinymorph.lm.quantize import int8_everywhere

PROSE = (CALIBRATION_TEXT + " ") * 12  # ~1,500 tokens of ordinary prose


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; nan for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def softmax_sample(
    logits: torch.Tensor, temperature: float, generator: torch.Generator, min_p: float = 0.05
) -> torch.Tensor:
    """The sampling the editor used before this benchmark's changes (kept here to measure it):
    min-p by a softmax over the whole 262k-token vocabulary. Same distribution as `sample`."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # (B, V)
    probs = probs * (probs >= min_p * probs.amax(dim=-1, keepdim=True))
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@dataclass(frozen=True)
class DecodePath:
    """A decode path: which weights, attention and sampling a Generator runs with, and whether
    steering starts at the cursor (the KV cache survives a slider change) or covers the context."""

    name: str
    int8: bool
    attention: str
    sampler: Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]
    steer_prompt: bool = False


PATHS = (
    DecodePath("before: bf16, SDPA with enable_gqa, softmax over the vocabulary", False, "sdpa", softmax_sample,
               steer_prompt=True),
    DecodePath("+ min-p on the logits", False, "sdpa", sample),
    DecodePath("+ query heads packed per KV head", False, PACKED_ATTENTION, sample),
    DecodePath("+ int8 decode weights (the editor now)", True, PACKED_ATTENTION, sample),
)
BEFORE, NOW = PATHS[0], PATHS[-1]


@contextmanager
def running(lm: LoadedModel, path: DecodePath) -> Iterator[None]:
    """Run `lm` as `path` says while open (`lm` loaded with int8 decode weights)."""
    lm.model.set_attn_implementation(path.attention)
    try:
        if path.int8:
            yield
        else:
            with int8_everywhere(lm.model, on=False):
                yield
    finally:
        lm.model.set_attn_implementation(PACKED_ATTENTION)


def _text(lm: LoadedModel, start: int, tokens: int) -> str:
    ids = lm.tokenizer(PROSE, add_special_tokens=False).input_ids
    return str(lm.tokenizer.decode(ids[start : start + tokens]))


def _ask(
    gen: Generator, rid: int, text: str, steering: SteeringSpec | None = None, tokens: int = 24
) -> SuggestionReady:
    req = SuggestRequest(rid, text, steering=steering or SteeringSpec(), alternatives=3, max_new_tokens=tokens,
                         seed=rid)
    result = gen.suggest(req, lambda: False, lambda *_: None)
    assert result is not None
    return result


def latencies(  # type: ignore[no-untyped-def]
    lm: LoadedModel, sae, path: DecodePath, reps: int, prefill_threads: int = 0
) -> list[dict]:
    """First token and full suggestion (3 alternatives, up to 24 tokens), p50/p95, in ms:
    cold (empty KV cache) at 128 and 511 tokens; after a one-word edit at 511 (the cache holds
    the text before it); after a slider nudge at 511 (same text, a feature's strength moved).
    `prefill_threads`: the generator's threads for long prefills, as the worker sets them."""
    rows = []
    with running(lm, path):
        for context in (128, 511):
            gen = Generator(lm, context, sae, sampler=path.sampler, steer_prompt=path.steer_prompt,
                            prefill_threads=prefill_threads)
            cases: dict[str, list[SuggestionReady]] = {"cold": [], "one-word edit": [], "slider nudge": []}
            for rep in range(reps):
                text = _text(lm, rep * 37, context - 2)
                gen._prefix = None  # cold: nothing cached
                cases["cold"].append(_ask(gen, rep, text))
                if context == 511:
                    _ask(gen, rep, text, tokens=1)  # the text before the edit is cached
                    cases["one-word edit"].append(_ask(gen, rep, text + " and"))
                    feature = SteeringSpec((SteeringTerm(0.125, feature=rep),)) if sae is not None else SteeringSpec()
                    _ask(gen, rep, text, feature, tokens=1)
                    nudged = SteeringSpec((SteeringTerm(0.145, feature=rep),)) if sae is not None else SteeringSpec()
                    cases["slider nudge"].append(_ask(gen, rep, text, nudged))
            for case, done in cases.items():
                if done:
                    first, total = [r.first_token_ms for r in done], [r.total_ms for r in done]
                    rows.append({"context": context, "case": case, "first_p50": pct(first, 50),
                                 "first_p95": pct(first, 95), "full_p50": pct(total, 50), "full_p95": pct(total, 95),
                                 "prefilled": statistics.median(r.prefill_tokens for r in done)})
    return rows


def decode_candidates(  # type: ignore[no-untyped-def]
    lm: LoadedModel, sae, repeats: int, paths: tuple[DecodePath, ...] = PATHS
) -> dict[str, dict[int, float]]:
    """Decode tokens/s per alternative (3 alternatives, the steering's ranking on) with 0, 1 and
    16 active SAE features, for each path, interleaved `repeats` times (machine noise hits all
    alike), the median. Each measure sums `SuggestionReady.decode_steps / decode_ms` over four
    prompts of 24 tokens."""
    prompts = [_text(lm, 40 * k, 200) for k in range(4)]
    speeds: dict[str, dict[int, list[float]]] = {p.name: {0: [], 1: [], 16: []} for p in paths}
    for _ in range(repeats):
        for path in paths:
            with running(lm, path):
                gen = Generator(lm, 511, sae, sampler=path.sampler, steer_prompt=path.steer_prompt)
                for n in (0, 1, 16) if sae is not None else (0,):
                    spec = SteeringSpec(tuple(SteeringTerm(0.01, feature=i) for i in range(n)))
                    done = [_ask(gen, k, p, spec) for k, p in enumerate(prompts)]
                    steps, ms = sum(r.decode_steps for r in done), sum(r.decode_ms for r in done)
                    speeds[path.name][n].append(1000 * steps / max(ms, 1e-6))
    return {name: {n: statistics.median(v) for n, v in by_n.items() if v} for name, by_n in speeds.items()}


def perplexities(lm: LoadedModel, sequences: list[list[int]]) -> tuple[float, float, float]:
    """Held-out perplexity, teacher forcing over whole sequences (one at a time, as a prefill
    runs), of three arms on the same sequences: before (transformers' SDPA, bf16 weights), the
    query heads packed per key/value head (`lm.attention`, what prefills run now; bf16 weights),
    and the same with the int8 decode copies used for every input (the editor uses them for
    decode steps only, so this bounds what they cost). Returns (before, packed, packed + int8)."""
    def ppl(attention: str, int8: bool) -> float:
        nll, count = 0.0, 0
        lm.model.set_attn_implementation(attention)
        try:
            with torch.no_grad(), int8_everywhere(lm.model, int8):
                for s in sequences:
                    ids = torch.tensor([s])
                    logp = torch.log_softmax(lm.model(input_ids=ids).logits[0, :-1].float(), -1)
                    nll -= float(logp.gather(-1, ids[0, 1:, None]).sum())
                    count += len(s) - 1
        finally:
            lm.model.set_attn_implementation(PACKED_ATTENTION)
        return math.exp(nll / count)

    return ppl("sdpa", False), ppl(PACKED_ATTENTION, False), ppl(PACKED_ATTENTION, True)


def greedy_match(lm: LoadedModel, prompts: list[str], tokens: int = 24) -> tuple[int, int]:
    """On each prompt, decode `tokens` greedily with the editor's loop (1 alternative, no
    steering) before and now: (prompts whose tokens match exactly, prompts)."""
    same = 0
    for k, text in enumerate(prompts):
        out = []
        for path in (BEFORE, NOW):
            with running(lm, path):
                gen = Generator(lm, 511, sampler=path.sampler)
                result = gen.suggest(SuggestRequest(k, text, alternatives=1, max_new_tokens=tokens, temperature=0),
                                     lambda: False, lambda *_: None)
                out.append(result.alternatives if result else ())
        same += out[0] == out[1]
    return same, len(prompts)


def ready_times(arms, manifest, starts: int) -> dict[str, list[tuple[float, float]]]:  # type: ignore[no-untyped-def]
    """(seconds from `EngineClient.start` to `WorkerReady`, seconds from then to the answer of a
    suggestion asked at once), `starts` times each of two `arms` ((name, Settings) pairs, e.g. the
    worker with bf16 weights only and with the int8 decode copies, or with two SAEs), interleaved.
    Raises RuntimeError if a worker fails, is not ready in 120 s or does not answer in 60 s."""
    from tinymorph.cli_common import worker_config
    from tinymorph.engine.client import EngineClient
    from tinymorph.engine.protocol import (
        Event,
        RequestFailed,
        SuggestionReady,
        SuggestRequest,
        WorkerDied,
        WorkerFailed,
        WorkerReady,
    )
    from tinymorph.paths import app_paths

    pair = tuple(arms)
    out: dict[str, list[tuple[float, float]]] = {name: [] for name, _settings in pair}
    for start in range(starts):
        # Each kind goes first in every other round: a worker that has just been stopped is still
        # giving its memory back while the next one loads.
        for name, arm in pair if start % 2 == 0 else pair[::-1]:
            config = worker_config(arm, app_paths(), manifest)
            events: queue.Queue[Event] = queue.Queue()
            client = EngineClient(config)
            started = time.perf_counter()
            client.start(events.put)
            try:
                while not isinstance(event := events.get(timeout=120), WorkerReady):
                    if isinstance(event, WorkerFailed):
                        raise RuntimeError(f"the worker failed: {event.message}")
                ready = time.perf_counter()
                client.request(SuggestRequest(client.next_request_id(), PROSE[:400], alternatives=3,
                                              max_new_tokens=24))
                while not isinstance(event := events.get(timeout=60), SuggestionReady):
                    if isinstance(event, RequestFailed | WorkerDied):
                        raise RuntimeError(f"{name}: {event}")
                out[name].append((ready - started, time.perf_counter() - ready))
            except queue.Empty as exc:
                raise RuntimeError(f"{name}: the worker was not ready in 120 s, or did not answer in 60 s "
                                   f"(start {start + 1}; its log: {config.log_file})") from exc
            finally:
                client.stop()
    return out
