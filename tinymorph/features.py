"""Feature data: what each SAE feature is about, readable without torch.

Owns: the `features.json.gz` format kept beside an SAE (per feature: a short label, activation
density, top activating contexts with per-token activations, and the output tokens its decoder
direction promotes and suppresses), reading and writing it, and the text half of feature search.
Built by `tinymorph.sae.feature_data`; read by the CLI, the worker and the UI. Imports nothing
heavy (no torch), so the editor's process can read labels.
"""

import gzip
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from tinymorph.errors import SAEError

FORMAT = 1
FILE_NAME = "features.json.gz"
DENSE_FRACTION = 0.10
"""A feature active on more than this fraction of tokens counts as dense."""
STEERS_SCORE = 0.05
"""Output score from which a feature is shown as one that steers (moves >= 5% of the next-token
probability onto its promoted tokens at +0.2, `output_score.SCORE_STRENGTH`)."""
SCORE_DIGITS = 6
"""Decimals an output score is stored with (the probe's candidates are chosen on that value)."""
STEERS_CONCEPT_RATE = 0.5
"""Probe concept rate from which a feature is shown as one that steers: on at least half the
probe prompts, the text written while steering with it has one of its words and the unsteered
text has none (`tinymorph.sae.output_score.probe_word_rates`)."""


@dataclass(frozen=True)
class FeatureContext:
    """A window of held-out text around one of the feature's strongest activations."""

    tokens: tuple[str, ...]
    """Decoded tokens of the window, in order."""
    acts: tuple[int, ...]
    """Per-token activation as a percentage (0-100) of the feature's max activation."""
    peak: int
    """Index into `tokens` of the strongest token."""
    act: float
    """The activation at the peak, in the SAE's units."""

    @property
    def text(self) -> str:
        return "".join(self.tokens)


@dataclass(frozen=True)
class FeatureInfo:
    """Everything tinymorph knows about one feature (latent) of an SAE."""

    index: int
    label: str
    """A few English words made from where it fires and what it promotes (`tinymorph.labels`; no
    model wrote it): "county, town, state" for a detector, "→ writes: gold, metals" for a
    feature that steers toward words."""
    density: float
    """Fraction of held-out tokens on which it is active (> 0)."""
    max_act: float
    """Its largest activation over the held-out text."""
    promoted: tuple[tuple[str, float], ...]
    """Output tokens whose logits its decoder direction raises most: (token, logit per unit act)."""
    suppressed: tuple[tuple[str, float], ...]
    """Output tokens whose logits it lowers most."""
    contexts: tuple[FeatureContext, ...]
    """Top activating contexts, strongest first."""
    output_score: float | None = None
    """How much steering with it at +0.2 (`SCORE_STRENGTH`) moves next-token probability onto the
    tokens it promotes (Arad et al. 2025; `tinymorph.sae.output_score`), in [-1, 1]; None when
    not measured. Features near 0 detect their topic but do not make the model write it."""

    concept_rate: float | None = None
    """Fraction of probe prompts (training-side text) on which a greedy continuation steered with
    it at +0.2 writes one of the first 8 English words it promotes (`labels.writes`; its label
    shows the first 3) and the unsteered continuation writes none
    (`tinymorph.sae.output_score.probe_word_rates`; feature files scored before 2026-12-05 hold
    the earlier probe: its own activation rose); None when not measured."""

    topical: bool | None = None
    """Whether it is a topic: a content word near the peaks of its contexts (at least 2 of 24,
    `labels.TOPIC_SHARE`) shares its stem with a content word its decoder direction promotes
    (`tinymorph.labels.input_output_words`). The
    feature lens shows topics only; None when not labelled."""

    context_words: tuple[tuple[str, float, float], ...] = ()
    """The content words near the peaks of all its scanned top contexts (`labels.context_words`):
    (word, weight, share of contexts it appears in), heaviest first. Kept because the shown
    `contexts` are only those whose licence allows quoting them; the label uses every context."""

    @property
    def steers(self) -> bool:
        """True when steering with it moves next-token probability onto its words (output score
        >= `STEERS_SCORE`) and the text it writes has them (probe concept rate >=
        `STEERS_CONCEPT_RATE`). Unmeasured: False."""
        return (
            self.output_score is not None
            and self.output_score >= STEERS_SCORE
            and self.concept_rate is not None
            and self.concept_rate >= STEERS_CONCEPT_RATE
        )

    @property
    def dead(self) -> bool:
        return self.density == 0

    @property
    def dense(self) -> bool:
        return self.density > DENSE_FRACTION


@dataclass(frozen=True)
class FeatureData:
    """The feature data of one SAE."""

    sae_id: str
    model: str
    hook_name: str
    tokens_scanned: int
    features: tuple[FeatureInfo, ...]

    def __len__(self) -> int:
        return len(self.features)

    def get(self, index: int) -> FeatureInfo:
        """Raises SAEError for an index outside 0..len-1."""
        if not 0 <= index < len(self.features):
            raise SAEError(f"feature {index} does not exist; this SAE has features 0..{len(self.features) - 1}")
        return self.features[index]

    def save(self, folder: Path) -> Path:
        """Write `folder/features.json.gz` (compact JSON, gzip) and return its path."""
        data = {
            "format": FORMAT,
            **{k: v for k, v in asdict(self).items() if k != "features"},
            "features": [_encode(f) for f in self.features],
        }
        path = folder / FILE_NAME
        tmp = path.with_suffix(".partial")
        with gzip.open(tmp, "wt", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"), ensure_ascii=False)
        tmp.replace(path)
        return path


def _encode(f: FeatureInfo) -> dict[str, object]:
    return {
        "label": f.label,
        "density": round(f.density, 7),
        "max_act": round(f.max_act, 4),
        "promoted": [[t, round(v, 3)] for t, v in f.promoted],
        "suppressed": [[t, round(v, 3)] for t, v in f.suppressed],
        "contexts": [[list(c.tokens), list(c.acts), c.peak, round(c.act, 3)] for c in f.contexts],
        **({"output_score": round(f.output_score, SCORE_DIGITS)} if f.output_score is not None else {}),
        **({"concept_rate": round(f.concept_rate, 3)} if f.concept_rate is not None else {}),
        **({"topical": f.topical} if f.topical is not None else {}),
        **({"words": [list(w) for w in f.context_words]} if f.context_words else {}),
    }


def load_feature_data(folder: Path, d_sae: int | None = None) -> FeatureData:
    """Read `folder/features.json.gz`. Raises SAEError if it is missing, malformed, of another
    format version, or (when `d_sae` is given) does not have one entry per feature."""
    path = folder / FILE_NAME
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
        features = tuple(
            FeatureInfo(
                index=i,
                label=str(raw["label"]),
                density=float(raw["density"]),
                max_act=float(raw["max_act"]),
                promoted=tuple((str(t), float(v)) for t, v in raw["promoted"]),
                suppressed=tuple((str(t), float(v)) for t, v in raw["suppressed"]),
                contexts=tuple(
                    FeatureContext(tuple(map(str, toks)), tuple(map(int, acts)), int(peak), float(act))
                    for toks, acts, peak, act in raw["contexts"]
                ),
                output_score=float(raw["output_score"]) if raw.get("output_score") is not None else None,
                concept_rate=float(raw["concept_rate"]) if raw.get("concept_rate") is not None else None,
                topical=bool(raw["topical"]) if raw.get("topical") is not None else None,
                context_words=tuple((str(w), float(v), float(sh)) for w, v, sh in raw.get("words", ())),
            )
            for i, raw in enumerate(data["features"])
        )
        result = FeatureData(
            str(data["sae_id"]), str(data["model"]), str(data["hook_name"]), int(data["tokens_scanned"]), features
        )
    except FileNotFoundError:
        raise SAEError(
            f"{folder} has no feature data ({FILE_NAME}); build it with `tinymorph features build`"
        ) from None
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise SAEError(f"the feature data {path} is damaged: {exc}") from None
    if d_sae is not None and len(result) != d_sae:
        raise SAEError(f"the feature data {path} describes {len(result)} features; the SAE has {d_sae}")
    return result


_WORD = re.compile(r"[a-z0-9']+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class SearchHit:
    """One feature found by search, with the score of each way it was found."""

    index: int
    score: float
    """Reciprocal-rank fusion of the rankings it appears in (higher is better)."""
    text_score: float
    """How well the label, contexts and promoted tokens match the query words (0: not at all)."""
    activation: float
    """Its activation on the query text as a fraction of its max over held-out text (0: silent)."""
    steering: float = 0.0
    """Output score times query words among its promoted tokens (0: it does not write them)."""


NEAR_PEAK = 3
"""Tokens on each side of a context's peak that count as "where the feature fires"."""


def text_scores(data: FeatureData, query: str) -> dict[int, float]:
    """Score features by the query's words in their label (3 each), at the peak token of a top
    context (2 each), within NEAR_PEAK tokens of a peak (1 each), in their promoted tokens (1 each)
    and elsewhere in their contexts (0.1 each: a context mentions many things the feature is not
    about). Matching is on whole words, case-insensitive. Features with no match are left out."""
    words = set(_words(query))
    if not words:
        return {}
    scores: dict[int, float] = {}
    for f in data.features:
        score = 3.0 * len(words & set(_words(f.label)))
        for c in f.contexts:
            near = "".join(c.tokens[max(0, c.peak - NEAR_PEAK) : c.peak + NEAR_PEAK + 1])
            score += 2.0 * len(words & set(_words(c.tokens[c.peak])))
            score += 1.0 * sum(w in words for w in _words(near))
            score += 0.1 * sum(w in words for w in _words(c.text))
        score += sum(len(words & set(_words(t))) for t, _v in f.promoted)
        if score:
            scores[f.index] = score
    return scores


def steer_scores(data: FeatureData, query: str) -> dict[int, float]:
    """Features that would make the model *write* the query's words: those whose promoted
    tokens contain a query word, scored by their output score (times the words matched). These
    are the features worth steering with (Arad et al. 2025); the features that fire on the words
    (`text_scores`, activation search) mostly only detect them. Features with no measured or no
    positive output score are left out."""
    words = set(_words(query))
    scores: dict[int, float] = {}
    for f in data.features:
        if not words or not f.output_score or f.output_score <= 0:
            continue
        matched = len(words & {w for t, _v in f.promoted for w in _words(t)})
        if matched:
            scores[f.index] = f.output_score * matched
    return scores


def fuse(
    text: dict[int, float],
    activation: dict[int, float],
    limit: int = 10,
    k: int = 20,
    steering: dict[int, float] | None = None,
) -> list[SearchHit]:
    """Merge the rankings (words, activation, and `steering` from `steer_scores`) by
    reciprocal-rank fusion (Cormack et al. 2009: score = sum of 1 / (k + rank)); return the best
    `limit` hits."""
    steering = steering or {}

    def ranks(scores: dict[int, float]) -> dict[int, int]:
        return {i: r for r, i in enumerate(sorted(scores, key=lambda i: -scores[i]), start=1)}

    rankings = (ranks(text), ranks(activation), ranks(steering))
    fused = {i: sum(1 / (k + r[i]) for r in rankings if i in r) for i in set(text) | set(activation) | set(steering)}
    best = sorted(fused, key=lambda i: (-fused[i], i))[:limit]
    return [SearchHit(i, fused[i], text.get(i, 0.0), activation.get(i, 0.0), steering.get(i, 0.0)) for i in best]
