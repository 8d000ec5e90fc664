"""The feature lens's per-feature numbers, small enough to read before the first suggestion.

Owns: `LensTable` (per feature: its max activation on held-out text, its weight in the lens, the
group of features sharing its shown label, the label), computing it from feature data, and
`lens.json`, the file beside `features.json.gz` that holds it. The worker and the editor read
this file (~0.8 MB for 16,384 features) at start instead of parsing the whole feature file (~4 s
for 16,384 features on a 2-core CPU, 2 s of it in `json.loads`, which holds the GIL: in the
editor's process that froze typing), which only feature search needs. No torch, no Textual, no
store.
"""

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from tinymorph.features import FILE_NAME, FeatureData, FeatureInfo
from tinymorph.labels import lens_label

LENS_FILE = "lens.json"


@dataclass(frozen=True)
class LensTable:
    """Per feature (index order): `max_act`, its largest activation on held-out text (floored at
    1e-6); `weight`, how much its lighting up says about the writer's text (`weight_of`); `group`,
    the index of the first feature whose shown label has the same words, in any order, or the same
    first word (the lens shows a label once: "bee, bees · bee, soup" would stutter); `label`, its
    label (`FeatureInfo.label`), which the editor shows in the lens and the panel."""

    max_act: tuple[float, ...]
    weight: tuple[float, ...]
    group: tuple[int, ...]
    label: tuple[str, ...]


def lens_table(data: FeatureData) -> LensTable:
    """The lens numbers of every feature of `data`."""
    by_words: dict[str, int] = {}
    by_first: dict[str, int] = {}
    groups = []
    for f in data.features:
        words, first = _label_key(f.label), lens_label(f.label).split(",")[0].strip()
        group = by_words.get(words, by_first.get(first, f.index))
        by_words.setdefault(words, group)
        by_first.setdefault(first, group)
        groups.append(group)
    return LensTable(
        tuple(floored_max_act(f) for f in data.features),
        tuple(weight_of(f) for f in data.features),
        tuple(groups),
        tuple(f.label for f in data.features),
    )


def floored_max_act(f: FeatureInfo) -> float:
    """A feature's largest activation on held-out text, floored at 1e-6 (activations are divided
    by it)."""
    return max(f.max_act, 1e-6)


def _label_key(label: str) -> str:
    """The shown label's words as a set: "came, come" and "come, came" read as the same label."""
    return ", ".join(sorted(w.strip() for w in lens_label(label).split(",")))


def weight_of(f: FeatureInfo) -> float:
    """A feature's weight in the lens: its inverse density ln(1/density) / ln(10^4) (as idf weighs
    words: a feature firing on 1 token in 10^4 says more than one firing on 1 in 30) for a topic
    (`FeatureInfo.topical`: its contexts and its promoted words agree, `labels.readable_label`);
    0 for dense and dead features and for every feature that is not a topic. (Weighing topics by
    how much their contexts agree as well cut the dev sentences whose topic was named from 82%
    to 72% on a 16k SAE, in an offline replay of the lens: docs/sae.md.)"""
    if f.dense or f.dead or not f.topical:
        return 0.0
    return max(0.0, math.log(1 / max(f.density, 1e-6)) / math.log(1e4))


def _fingerprint(folder: Path) -> str:
    return hashlib.sha256((folder / FILE_NAME).read_bytes()).hexdigest()


def save_feature_files(data: FeatureData, folder: Path) -> Path:
    """Write `features.json.gz` and, beside it, `lens.json` made from it. Returns the first."""
    path = data.save(folder)
    table = lens_table(data)
    record = {"features_sha256": _fingerprint(folder), **{k: list(v) for k, v in table.__dict__.items()}}
    tmp = folder / (LENS_FILE + ".partial")
    tmp.write_text(json.dumps(record, separators=(",", ":")), encoding="utf-8")
    tmp.replace(folder / LENS_FILE)
    return path


def load_lens_table(folder: Path, d_sae: int) -> LensTable | None:
    """The lens table saved beside the feature file in `folder`, or None when there is none, it
    is damaged, it has another width, or the feature file changed since (then the caller makes
    it from the feature data)."""
    try:
        record = json.loads((folder / LENS_FILE).read_text(encoding="utf-8"))
        if record["features_sha256"] != _fingerprint(folder):
            return None
        table = LensTable(tuple(map(float, record["max_act"])), tuple(map(float, record["weight"])),
                          tuple(map(int, record["group"])), tuple(map(str, record["label"])))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # an older lens.json (no labels) is made again from the feature data
    if not len(table.max_act) == len(table.weight) == len(table.group) == len(table.label) == d_sae:
        return None
    return table
