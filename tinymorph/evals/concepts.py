"""Do concept sliders bring the writer's concept into the suggestion, and at what cost? Four arms
per concept, judged by words the slider never saw.

Owns: `tinymorph steer eval --concepts`'s numbers. For each concept (`name`, `query`: what a
writer types, `words`: only to judge) and each held-out prompt, four suggestions are made with
the editor's own `Generator.suggest`, sharing the prompt, the seed, the decoding and the number
of alternatives:
- unsteered: no slider, the editor's suggestion as a writer sees it (cut after the first word
  where confidence ends, which no arm under a slider's ranking is);
- selection: the null control, the concept slider's ranking of the alternatives with no push
  (strength 0): what choosing among the samples does by itself;
- steered: the concept slider made from `query` at its strength (it ranks by itself);
- prompted: no push, a hidden sentence naming the concept before the context, the slider's
  ranking: the baseline a writer could do by hand (AxBench, Wu et al. 2025, found that prompting
  beats SAE steering).
Per arm: the concept rate (the share of prompts whose shown suggestion contains one of `words`
as a whole word, case-insensitive), the median perplexity of the shown suggestions under the
unsteered model after the prompt (without the hidden sentence), and the share of repeated word
3-grams. The summary holds medians over concepts. No Textual, no store.
"""

import math
import statistics
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tinymorph.domain import SteeringSpec, SteeringTerm
from tinymorph.engine.concepts import Concept, ConceptMaker
from tinymorph.engine.continuation import repeated_trigrams, words_of
from tinymorph.engine.generate import Generator
from tinymorph.errors import ConfigError
from tinymorph.evals.steer import Decoding, first, median, score_text, shown_suggestion

ARMS = ("unsteered", "selection", "steered", "prompted")


@dataclass(frozen=True)
class ConceptCase:
    """One concept to judge: `query` builds the slider; `words` only judge it."""

    name: str
    query: str
    words: tuple[str, ...]


def read_concepts(path: Path) -> list[ConceptCase]:
    """The `[[concept]]` tables of a TOML file. Raises ConfigError naming the first bad field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        cases = [
            ConceptCase(str(c["name"]), str(c["query"]), tuple(str(w) for w in c["words"]))
            for c in data["concept"]
        ]
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"bad concepts file {path}: {exc}") from None
    if not cases or any(not c.words or not c.query.strip() for c in cases):
        raise ConfigError(f"{path}: every [[concept]] needs a name, a query and words")
    return cases


def shows(text: str, words: tuple[str, ...]) -> bool:
    """True if one of `words` is a whole word of `text`, case-insensitive ("seas" does not match
    "sea", "seashore" matches neither)."""
    return bool(set(words_of(text)) & {w.lower() for w in words})


def repetition(texts: list[str]) -> float:
    """The share of word 3-grams, over all `texts`, that repeat an earlier 3-gram of the same text."""
    total = sum(max(0, len(words_of(t)) - 2) for t in texts)
    return sum(repeated_trigrams(t) for t in texts) / total if total else 0.0


def hidden_sentence(name: str) -> str:
    """What the prompted arm puts before the context."""
    return f"This passage is about {name}."


@dataclass
class ArmResult:
    """One arm of one concept."""

    samples: list[str]
    """The suggestion shown first, one per prompt ('' where every alternative was cut to nothing)."""
    hits: list[bool]
    perplexities: list[float]

    @property
    def concept_rate(self) -> float:
        return sum(self.hits) / len(self.hits) if self.hits else 0.0

    @property
    def perplexity(self) -> float:
        return median(self.perplexities)

    @property
    def repetition(self) -> float:
        return repetition(self.samples)

    def as_dict(self) -> dict[str, object]:
        return {"concept_rate": self.concept_rate, "perplexity": self.perplexity, "repetition": self.repetition,
                "samples": self.samples}


@dataclass
class ConceptResult:
    """All four arms of one concept."""

    case: ConceptCase
    slider: str
    """What the slider is made of, for the report."""
    strength: float
    arms: dict[str, ArmResult] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"name": self.case.name, "query": self.case.query, "slider": self.slider, "strength": self.strength,
                "arms": {arm: result.as_dict() for arm, result in self.arms.items()}}


def describe(concept: Concept, label: Callable[[int], str] = lambda i: f"#{i}") -> str:
    """A concept slider in one line: its name, how far it moves the residual stream, and the SAE
    features closest to it."""
    made = ", ".join(f"{label(i)} ({cos:.2f})" for i, cos in concept.features)
    return f"in-context vector of {concept.name!r} (shift {concept.shift:.0f})" + (f"; closest: {made}" if made else "")


def concept_eval(
    gen: Generator,
    cases: list[ConceptCase],
    prompts: list[str],
    decoding: Decoding,
    strength: float,
    report: Callable[[str], None] = lambda _s: None,
    label: Callable[[int], str] = lambda i: f"#{i}",
) -> list[ConceptResult]:
    """The four arms for every case over `prompts`; prompt k of every arm is seeded `decoding.seed
    + k`. The slider is `ConceptMaker(gen.lm).make(case.query, gen.sae)` at `strength`."""
    lm = gen.lm
    contexts = [gen.context_ids(p.rstrip(" ")) for p in prompts]

    def arm(make: Callable[[int, str], str], words: tuple[str, ...]) -> ArmResult:
        samples = [make(k, p) for k, p in enumerate(prompts)]
        scores = [score_text(lm, ids, text) for ids, text in zip(contexts, samples, strict=True)]
        return ArmResult(samples, [shows(t, words) for t in samples], [s.perplexity for s in scores])

    plain = [first(shown_suggestion(gen, p, SteeringSpec(), decoding, k)) for k, p in enumerate(prompts)]
    maker = ConceptMaker(lm)
    results = []
    for case in cases:
        concept = maker.make(case.query, gen.sae)
        term = SteeringTerm(strength, direction=tuple(concept.direction.tolist()), label=concept.name,
                            concept=concept.name)
        ranking = SteeringSpec((term.with_strength(1.0),))
        pushed = SteeringSpec((term,))
        hidden = hidden_sentence(case.name)
        result = ConceptResult(case, describe(concept, label), strength)

        def selection(k: int, p: str, ranking: SteeringSpec = ranking) -> str:
            return first(shown_suggestion(gen, p, SteeringSpec(), decoding, k, rank_by=ranking))

        def steered(k: int, p: str, pushed: SteeringSpec = pushed) -> str:
            return first(shown_suggestion(gen, p, pushed, decoding, k))

        def prompted(k: int, p: str, hidden: str = hidden, ranking: SteeringSpec = ranking) -> str:
            return first(shown_suggestion(gen, f"{hidden}\n\n{p}", SteeringSpec(), decoding, k, rank_by=ranking))

        result.arms["unsteered"] = arm(lambda k, _p: plain[k], case.words)
        result.arms["selection"] = arm(selection, case.words)
        result.arms["steered"] = arm(steered, case.words)
        result.arms["prompted"] = arm(prompted, case.words)
        results.append(result)
        report(f"{case.name}: " + ", ".join(
            f"{a} {r.concept_rate:.0%} (ppl {r.perplexity:.1f})" for a, r in result.arms.items()
        ))
    return results


def summary(results: list[ConceptResult]) -> dict[str, dict[str, float]]:
    """Per arm, the median over concepts of the concept rate, the perplexity and the repetition."""
    return {
        arm: {
            "concept_rate": statistics.median(r.arms[arm].concept_rate for r in results),
            "perplexity": median([r.arms[arm].perplexity for r in results]),
            "repetition": statistics.median(r.arms[arm].repetition for r in results),
        }
        for arm in ARMS
    } if results else {}


def as_json(results: list[ConceptResult]) -> dict[str, object]:
    """The `--json` report: every concept's arms with their samples, and the summary."""
    return {"concepts": [r.as_dict() for r in results], "summary": summary(results)}


def perplexity_rise(totals: dict[str, dict[str, float]], arm: str, base_arm: str = "unsteered") -> float:
    """The arm's median perplexity over `base_arm`'s, minus 1 (nan when unknown). Over
    "selection" it is the push alone: the unsteered arm is the editor's plain suggestion, cut
    after the first word where confidence ends, while the arms under a slider's ranking are not
    cut there and show the ranking's pick (docs/steering.md: 3 words against 12 on modern prose)."""
    base = totals.get(base_arm, {}).get("perplexity", math.nan)
    return totals.get(arm, {}).get("perplexity", math.nan) / base - 1 if base else math.nan
