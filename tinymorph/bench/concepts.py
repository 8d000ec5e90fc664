"""`tinymorph bench --only concepts`: what a concept slider costs the writer in time, before and now,
measured in one run (ratios of the same run; these machines are shared and noisy).

Owns: two measures, each interleaved over a few queries written for the bench (not the
evaluation's concepts):
- making a slider: the direction as it was made before (its baseline, the neutral sentences read
  alone, read again for every slider), now for the first slider ever made on a machine (the
  no-topic baseline computed), for the first slider of a later worker (the baseline read from the
  cache folder) and for every later slider (the baseline kept);
- the first token and the whole suggestion (3 alternatives, up to 24 tokens) after a concept slider
  is nudged (+0.30 to +0.32, the same text of 511 tokens), with the push eased once an alternative
  says the concept (now) and kept on (before).
"""

import statistics
import tempfile
import time

import torch

from tinymorph.bench.engine import _ask, _text
from tinymorph.domain import SteeringSpec, SteeringTerm
from tinymorph.engine.concepts import NEUTRAL_SENTENCES, ConceptMaker, _residuals, build_concept, concept_baseline
from tinymorph.engine.directions import with_bos
from tinymorph.engine.generate import CONCEPT_EASE, Generator
from tinymorph.lm.model import LoadedModel

QUERIES = ("lighthouses", "baking bread", "thunderstorms", "chess", "a quiet library", "regret")
"""Concepts the bench makes sliders of (written for the bench)."""


def _ms(work) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    work()
    return (time.perf_counter() - t0) * 1000


def concept_costs(lm: LoadedModel, sae, reps: int = 2) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Median ms per case (keys: 'make before', 'make now, first ever', 'make now, first of a worker',
    'make now, later', 'nudge first token before', 'nudge first token now', 'nudge full before',
    'nudge full now'), the cases of each query run one after the other, queries repeated `reps`
    times."""
    times: dict[str, list[float]] = {}
    kept = concept_baseline(lm)
    cache = tempfile.TemporaryDirectory(prefix="tinymorph-bench-")
    ConceptMaker(lm, cache.name).baseline()  # written once, as the first slider ever made writes it

    def before(query: str) -> None:  # the baseline read again for every slider, as it was made
        _residuals(lm, [with_bos(lm, s) for s in NEUTRAL_SENTENCES])
        build_concept(lm, query, sae, kept)

    text = _text(lm, 0, 509)
    gens = {"before": Generator(lm, 511, sae, concept_ease=1.0),
            "now": Generator(lm, 511, sae, concept_ease=CONCEPT_EASE)}
    for rep in range(reps):
        for k, query in enumerate(QUERIES):
            times.setdefault("make before", []).append(_ms(lambda q=query: before(q)))
            times.setdefault("make now, first ever", []).append(_ms(lambda q=query: build_concept(lm, q, sae)))
            times.setdefault("make now, first of a worker", []).append(
                _ms(lambda q=query: ConceptMaker(lm, cache.name).make(q, sae)))
            times.setdefault("make now, later", []).append(_ms(lambda q=query: build_concept(lm, q, sae, kept)))
            direction = tuple(build_concept(lm, query, sae, kept).direction.tolist())
            for arm, gen in gens.items():
                rid = rep * len(QUERIES) + k
                _ask(gen, rid, text, SteeringSpec((SteeringTerm(0.30, direction=direction, concept=query),)), tokens=1)
                nudged = _ask(gen, rid, text, SteeringSpec((SteeringTerm(0.32, direction=direction, concept=query),)))
                times.setdefault(f"nudge first token {arm}", []).append(nudged.first_token_ms)
                times.setdefault(f"nudge full {arm}", []).append(nudged.total_ms)
    cache.cleanup()
    return {case: statistics.median(v) for case, v in times.items()}


def concept_lines(costs: dict[str, float], threads: int) -> list[str]:
    """The markdown report of `concept_costs`."""
    rows = [
        ("make a concept slider", "make before",
         ("make now, first ever", "make now, first of a worker", "make now, later")),
        ("first token after a concept slider nudge", "nudge first token before", ("nudge first token now",)),
        ("whole suggestion after the nudge", "nudge full before", ("nudge full now",)),
    ]
    lines = [f"torch threads: {threads}. Medians over {len(QUERIES)} queries, interleaved.", "",
             "| measure | before (ms) | now (ms) | now / before |", "|---|---:|---:|---:|"]
    for name, was, nows in rows:
        for now in nows:
            label = name + (f" ({now.split(', ')[1]})" if ", " in now else "")
            lines.append(f"| {label} | {costs[was]:.0f} | {costs[now]:.0f} | {costs[now] / costs[was]:.2f}x |")
    return lines


def run(lm: LoadedModel, sae, threads: int) -> list[str]:  # type: ignore[no-untyped-def]
    """Measure with `threads` torch threads and return the report's lines."""
    torch.set_num_threads(threads)
    return concept_lines(concept_costs(lm, sae), threads)
