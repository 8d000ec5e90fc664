"""Feature labels a writer can read: a few English words, made offline from what a feature fires on
and what it makes the model write.

Owns: `readable_label` and `relabel`. Imports `features` and `wordfreq` (English word frequencies,
Speer 2022); no torch, no model: labels are rebuilt from the feature file alone
(`tinymorph features label`), and `features build` / `features score` call the same code.

- A feature that steers toward words (output score >= `features.STEERS_SCORE`, Arad et al. 2025)
  is an output feature: "→ writes: gold, metals, bullion", its promoted tokens that are English
  words.
- A feature whose input and output agree is a topic: some content word near the peaks of its
  top contexts shares its stem (`STEM` letters) with a content word among the tokens its decoder
  direction promotes (the logit lens of `W_dec[i]`, nostalgebraist 2020; describing a feature by
  its activating inputs *and* its output effect: Gur-Arieh et al. 2025, "Enhancing Automated
  Interpretability with Output-Centric Feature Descriptions"). A coffee feature fires on "grind",
  "beans", "coffee" and promotes "coffee", "espresso", "barista": "coffee, espresso". Its label is
  the agreeing words first (strongest context first), then its other agreeing context words, then
  its other promoted content words, one spelling of each stem. These are the features the lens
  shows (`topical`): on the lens development sentences this rule took the sentences whose topic
  the lens named from 45% to 78% on a 16k SAE (`features eval-lens`, 7.08M-token checkpoint;
  docs/sae.md).
- Any other is a detector: the English content words where it fires across its top contexts,
  "county, town, state", if its contexts agree on them: each word must appear near the peak
  of at least `AGREE_SHARE` of them. When they agree on none, the label is the one strongest
  word. Contexts count more than single tokens: the words around the strongest
  token count too (a feature that fires on "the" in "the banks of the Danube" is about rivers,
  not about "the"), each weighted by the activation there, by closeness to the peak, and by how
  rare the word is in English (function words weigh nothing, so they never make a label).
  A detector is not topical: what it fires on may be a word ("went", "under") without being a
  topic, and its decoder does not say the same; the lens leaves it out.
- Token fragments ("igans"), other scripts and words English does not use are dropped: a word
  must be ASCII letters with a Zipf frequency >= `ENGLISH_ZIPF` in English.
"""

import dataclasses
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

from tinymorph.features import STEERS_SCORE, FeatureContext, FeatureData, FeatureInfo

ENGLISH_ZIPF = 2.5
"""Least Zipf frequency in English (wordfreq) of a label word: ~3 per 10 million words."""
FUNCTION_ZIPF = 6.3
"""From this Zipf frequency up a word is a function word ("and" 7.4, "about" 6.4; "time" 6.3)."""
LABEL_WORDS = 3
LENS_WORDS = 2
"""Words of a label the feature lens shows beside the cursor."""
KEPT_WORDS = 8
"""Context words kept per feature in the feature file (`FeatureInfo.context_words`)."""
AGREE_SHARE = 0.25
"""Least fraction of a feature's top contexts a word must appear in (near the peak) to be part of
its label: words its contexts agree on. Chosen on the lens development sentences
(docs/evals/lens-topics.toml, [[dev]] only)."""
TOPIC_SHARE = 0.08
"""Least fraction of a feature's top contexts in which a word it also promotes must appear near the
peak for the feature to be a topic (`input_output_words`): 2 of the 24 contexts a build scans (a
rare feature with 12 or fewer contexts passes with 1). One context is an anecdote ("kitchen" in 1 of
24 contexts of a feature that promotes `garden, lawn, DIY` made the label `kitchen, garden`, shown
on 7 of the 40 dev sentences about dogs, hiking, snow ...). Chosen on the lens development sentences
(docs/evals/lens-topics.toml, [[dev]] only, offline replay: docs/sae.md)."""
WINDOW = 2
"""Words on each side of a context's peak that count (at `NEAR` of the peak word's weight)."""
NEAR = 0.35
STEM = 4
"""Letters two words must share at the start to count as one stem ("wash", "washing"); shorter
words must be equal."""
SPELLING = 5
"""Letters two label words may share at the start before the second is left out as another
spelling of the first ("weddings" after "wedding")."""

_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")


def _zipf(word: str) -> float:
    from wordfreq import zipf_frequency  # a 60 MB word list, loaded on first use

    return float(zipf_frequency(word, "en"))


SLURS = frozenset({
    "nigger", "niggers", "nigga", "niggas", "negro", "negroes", "darkey", "darkeys", "darky", "coon", "coons",
    "kike", "kikes", "chink", "chinks", "gook", "gooks", "spic", "spics", "wetback", "wetbacks", "raghead",
    "faggot", "faggots", "fag", "fags", "dyke", "dykes", "tranny", "retard", "retards", "squaw", "squaws",
    "injun", "injuns", "redskin", "redskins", "jap", "japs", "wop", "wops", "dago", "dagos", "paki", "pakis",
})
"""Words never shown as labels: slurs, which the 19th-century books use. A label is read beside
the writer's own text; it must not put such a word there."""


def english(word: str) -> bool:
    """True for a lower-case English word: ASCII letters, more than one, used in English, not a
    slur (`SLURS`)."""
    return (
        len(word) > 1 and word.isascii() and word.isalpha() and word not in SLURS and _zipf(word) >= ENGLISH_ZIPF
    )


def content_word(word: str) -> bool:
    """An English word that is not a function word."""
    return english(word) and _zipf(word) < FUNCTION_ZIPF


def _words_near_peak(c: FeatureContext) -> Iterable[tuple[str, float]]:
    """(word, weight) for the words within WINDOW of the context's peak:
    the peak word weighs 0.3 + its activation share, its neighbours NEAR of their own."""
    starts, pos = [], 0
    for token in c.tokens:
        starts.append(pos)
        pos += len(token)
    text = "".join(c.tokens)
    words = []  # (word, its token indices)
    for m in _WORD.finditer(text):
        tokens = [i for i, s in enumerate(starts) if s < m.end() and s + len(c.tokens[i]) > m.start()]
        words.append((m.group(0), tokens))
    if not words:
        return
    # The peak's word; when the peak is punctuation or a space, the word after it (not its own).
    peak = next((k for k, (_w, toks) in enumerate(words) if c.peak in toks), None)
    if peak is None:
        peak = next((k for k, (_w, toks) in enumerate(words) if min(toks) > c.peak), len(words) - 1)
    for k, (word, toks) in enumerate(words):
        if abs(k - peak) <= WINDOW:
            act = max(c.acts[i] for i in toks) / 100
            yield word.lower(), (0.3 + act) * (1.0 if k == peak else NEAR)


def context_words(contexts: Sequence[FeatureContext]) -> tuple[tuple[str, float, float], ...]:
    """The English content words near the peaks of `contexts`: (word, weight, share), heaviest
    first, at most `KEPT_WORDS`. The weight sums, over contexts, the word's weight near the peak
    (`_words_near_peak`) times how rare it is in English; the share is the fraction of contexts
    in which it appears near the peak (how much the contexts agree on it)."""
    weights: dict[str, float] = defaultdict(float)
    seen: dict[str, int] = defaultdict(int)
    for c in contexts:
        here = set()
        for word, weight in _words_near_peak(c):
            if content_word(word):
                rarity = min(1.0, (FUNCTION_ZIPF - _zipf(word)) / 2.0)  # 0 for function words, 1 for rarer
                weights[word] += weight * rarity
                here.add(word)
        for word in here:
            seen[word] += 1
    ranked = sorted(weights, key=lambda w: (-weights[w], w))[:KEPT_WORDS]
    return tuple((w, round(weights[w], 4), round(seen[w] / len(contexts), 4)) for w in ranked)


def _context_words(info: FeatureInfo) -> tuple[tuple[str, float, float], ...]:
    # Built feature data keeps the words of every scanned context (some not quotable); older
    # files have only the shown contexts.
    return info.context_words or (context_words(info.contexts) if info.contexts else ())


def fires_on(info: FeatureInfo) -> list[str]:
    """The English content words where `info` fires, strongest first."""
    return [w for w, _weight, _share in _context_words(info)]


def agreeing_words(info: FeatureInfo) -> list[str]:
    """The words where `info` fires that its contexts agree on: each near the peak of at least
    `AGREE_SHARE` of them, strongest first. Empty when the contexts share no content word (a
    label made from them would be unrelated words)."""
    return [w for w, _weight, share in _context_words(info) if share >= AGREE_SHARE]


def agreement(info: FeatureInfo) -> float:
    """The largest share of contexts that one content word appears in near the peak, 0..1."""
    return max((share for _w, _weight, share in _context_words(info)), default=0.0)


def writes(info: FeatureInfo) -> list[str]:
    """The English words among the tokens its decoder direction promotes, in order, once each."""
    out: list[str] = []
    for token, _value in info.promoted:
        word = token.strip().lower()
        if english(word) and word not in out:
            out.append(word)
    return out


def readable_label(info: FeatureInfo) -> tuple[str, bool]:
    """(label, topical) of a feature: "→ writes: a, b, c" for an output feature, "a, b, c" for a
    topic or a detector ("dead" for a feature that never fired). `topical` is True only for a
    topic: its context words and its promoted words agree (`input_output_words`)."""
    if info.dead:
        return "dead", False
    promoted = writes(info)
    agreed = input_output_words(info)
    if info.output_score is not None and info.output_score >= STEERS_SCORE and promoted:
        words = promoted[:LABEL_WORDS]
        return "→ writes: " + ", ".join(words), bool(agreed)
    if agreed:
        return ", ".join(_one_spelling([*agreed, *agreeing_words(info), *_written_content(info)])[:LABEL_WORDS]), True
    found = agreeing_words(info)[:LABEL_WORDS]
    if found:
        return ", ".join(found), False
    scattered = fires_on(info)[:1]
    if scattered:
        # The contexts agree on no word: one word says less than three unrelated ones.
        return scattered[0], False
    if promoted:
        return "→ before: " + ", ".join(promoted[:LABEL_WORDS]), False
    return "no English words", False


def same_stem(a: str, b: str, letters: int = STEM) -> bool:
    """True when `a` and `b` start with the same `letters` letters (or are equal, when either is
    shorter)."""
    return a[:letters] == b[:letters] if min(len(a), len(b)) >= letters else a == b


def writes_words(text: str, words: Sequence[str]) -> bool:
    """True when a whole word of `text` shares its stem with one of `words` (`same_stem`, case
    ignored): "years" in the text for a feature that writes "year". The judge of whether steering
    with a feature wrote what its label says (`sae.output_score.probe_word_rates`, `tinymorph
    steer eval`)."""
    targets = [w.lower() for w in words]
    return any(same_stem(w.lower(), t) for w in _WORD.findall(text) for t in targets)


def input_output_words(info: FeatureInfo) -> list[str]:
    """The content words near the peaks of at least `TOPIC_SHARE` of `info`'s contexts
    (strongest first) that share a stem with a content word its decoder direction promotes: where
    what it fires on and what it makes the model write agree. Empty for most features of function
    words, syntax and noise."""
    outputs = _written_content(info)
    return [w for w, _weight, share in _context_words(info)
            if share >= TOPIC_SHARE and any(same_stem(w, o) for o in outputs)]


def _written_content(info: FeatureInfo) -> list[str]:
    """The content words among the English words its decoder direction promotes (`writes`)."""
    return [w for w in writes(info) if content_word(w)]


def _one_spelling(words: Sequence[str]) -> list[str]:
    """`words` in order, leaving out repeats and later spellings of an earlier word's stem."""
    kept: list[str] = []
    for w in words:
        if not any(same_stem(w, k, SPELLING) for k in kept):
            kept.append(w)
    return kept


def lens_label(label: str) -> str:
    """A feature's label as the feature lens shows it: its first LENS_WORDS words ("→ writes:"
    and "→ before:" dropped)."""
    text = label.removeprefix("→ writes:").removeprefix("→ before:").strip()
    return ", ".join(w.strip() for w in text.split(",")[:LENS_WORDS])


def relabel(data: FeatureData) -> FeatureData:
    """`data` with every feature's label (and topical flag) made by `readable_label`."""
    features = []
    for f in data.features:
        label, topical = readable_label(f)
        features.append(dataclasses.replace(f, label=label, topical=topical))
    return dataclasses.replace(data, features=tuple(features))
