"""Judging the feature lens and feature search against sets of everyday sentences and words
written by hand (`docs/evals/lens-topics.toml`, `docs/evals/search-words.toml`).

Owns: reading those sets, and the judge: a label is on topic when one of its words is one of the
entry's words (exact, lower case). The judge reads labels only; it never sees activations, so a
lens cannot grade itself. The model runs elsewhere (`commands.lens`); no torch here, no Textual,
no store.
"""

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tinymorph.errors import TinymorphError

Split = Literal["dev", "validation"]
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Topic:
    """One sentence with its topic and the words that name it."""

    split: Split
    topic: str
    text: str
    words: frozenset[str]


@dataclass(frozen=True)
class SearchWord:
    """One search query and the words a row about it would have in its label."""

    split: Split
    word: str
    related: frozenset[str]


def _load(path: Path) -> dict[str, list[dict[str, object]]]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TinymorphError(f"cannot read the evaluation set {path}: {exc}") from exc


def load_topics(path: Path) -> list[Topic]:
    """The [[dev]] and [[validation]] entries of a lens topic set. Raises TinymorphError when the
    file cannot be read or an entry lacks `topic`, `text` or `words`."""
    data = _load(path)
    try:
        return [
            Topic(split, str(e["topic"]), str(e["text"]), frozenset(str(w).lower() for w in e["words"]))  # type: ignore[attr-defined]
            for split in ("dev", "validation")
            for e in data.get(split, [])
        ]
    except KeyError as exc:
        raise TinymorphError(f"{path}: an entry lacks {exc}") from None


def load_search_words(path: Path) -> list[SearchWord]:
    """The [[dev]] and [[validation]] entries of a search word set. Raises TinymorphError as
    `load_topics` does."""
    data = _load(path)
    try:
        return [
            SearchWord(split, str(e["word"]), frozenset(str(w).lower() for w in e["related"]))  # type: ignore[attr-defined]
            for split in ("dev", "validation")
            for e in data.get(split, [])
        ]
    except KeyError as exc:
        raise TinymorphError(f"{path}: an entry lacks {exc}") from None


def on_topic(label: str, words: frozenset[str]) -> bool:
    """True when one of the words of `label` (lower case, letters only) is in `words`."""
    return any(w in words for w in _WORD.findall(label.lower()))


@dataclass
class LensScore:
    """The lens on a set of sentences: how often a shown label names the topic."""

    sentences: int = 0
    named: int = 0
    """Sentences where at least one shown label is on topic."""
    labels: int = 0
    on_topic: int = 0
    silent: int = 0
    """Sentences where the lens showed nothing."""

    def add(self, labels: list[str], words: frozenset[str]) -> None:
        hits = [on_topic(label, words) for label in labels]
        self.sentences += 1
        self.named += any(hits)
        self.labels += len(labels)
        self.on_topic += sum(hits)
        self.silent += not labels

    def as_dict(self) -> dict[str, float]:
        return {
            "sentences": self.sentences,
            "named_rate": self.named / max(1, self.sentences),
            "labels": self.labels,
            "on_topic_rate": self.on_topic / max(1, self.labels),
            "silent": self.silent,
        }
