"""`tinymorph features lens|eval-lens|eval-search`: the feature lens outside the editor, and how
well the lens and feature search name what a text is about.

Owns: argument parsing and tables for these commands. The lens runs through the worker's own
code (`Generator.lens_of`: the same prefill, encoding, weights and summary the editor's lens uses);
search through `sae.search.search_features`, as Ctrl+F's feature rows; judging through
`evals.lens`. Errors reach `cli.main`.
"""

import argparse
import json
import re
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tinymorph.errors import ConfigError, SAEError
from tinymorph.features import FeatureData, load_feature_data
from tinymorph.labels import lens_label

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*\s*")


def add_parsers(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:  # type: ignore[type-arg]
    """The three subparsers, for `commands.features.main` to give the model and SAE options."""
    lens = sub.add_parser(
        "lens", help="what the editor's feature lens shows with the cursor at the end of TEXT",
        description="Run TEXT (or each sentence of --file, the cursor after it) through the model and the "
        "SAE as the editor does, and print the features the lens would show, best first.",
    )
    lens.add_argument("text", nargs="?", help="the text before the cursor")
    lens.add_argument("--file", type=Path, help="a text file: the lens after each of its sentences")
    lens.add_argument("--json", type=Path, metavar="PATH", help="also write the result as JSON")
    ev = sub.add_parser("eval-lens", help="judge the lens on hand-written topic sentences")
    ev.add_argument("topics", type=Path, help="a TOML set like docs/evals/lens-topics.toml")
    ev.add_argument("--json", type=Path, metavar="PATH", help="also write per-sentence results as JSON")
    es = sub.add_parser("eval-search", help="judge feature search on hand-written words")
    es.add_argument("words", type=Path, help="a TOML set like docs/evals/search-words.toml")
    es.add_argument("--rows", type=int, default=5, help="search rows that count (default 5)")
    es.add_argument("--json", type=Path, metavar="PATH", help="also write per-word results as JSON")
    return [lens, ev, es]


def _generator(args: argparse.Namespace) -> tuple[Any, FeatureData]:
    """A Generator set up as the worker sets it up (`engine.worker`), and the feature data."""
    from tinymorph.cli_common import settings_from_args
    from tinymorph.commands.features import load_cli_sae
    from tinymorph.engine.generate import Generator
    from tinymorph.engine.lens import lens_tensors
    from tinymorph.lens_table import lens_table
    from tinymorph.paths import app_paths

    lm, sae, _manifest = load_cli_sae(args, Console(stderr=True))
    if sae.folder is None:
        raise SAEError("this SAE has no local feature data; build it with `tinymorph features build`")
    data = load_feature_data(sae.folder, sae.d_sae)
    max_acts, weights, groups = lens_tensors(lens_table(data))
    context = settings_from_args(args, app_paths()).context_tokens  # as the worker is configured
    generator = Generator(lm, context, sae, max_acts, lens_weights=weights, lens_groups=groups)
    return generator, data


def _features(data: FeatureData, lit: tuple[tuple[int, float], ...]) -> list[dict[str, Any]]:
    return [{"index": i, "label": lens_label(data.features[i].label), "score": round(v, 4)} for i, v in lit]


def run_lens(args: argparse.Namespace) -> int:
    if (args.text is None) == (args.file is None):
        raise ConfigError("give TEXT or --file PATH (one of them)")
    generator, data = _generator(args)
    if args.file is not None:
        text = args.file.read_text(encoding="utf-8")
        ends = [m.end() for m in _SENTENCE.finditer(text)]
        results = [{"text": text[:end], "features": _features(data, generator.lens_of(text[:end]))} for end in ends]
    else:
        results = [{"text": args.text, "features": _features(data, generator.lens_of(args.text))}]
    console = Console()
    for result in results:
        table = Table(title=repr(result["text"][-70:]), title_justify="left")
        for col in ("feature", "label", "score"):
            table.add_column(col)
        for f in result["features"]:
            table.add_row(str(f["index"]), f["label"], f"{f['score']:.3f}")
        if not result["features"]:
            table.add_row("", "(silent: no feature says enough)", "")
        console.print(table)
    if args.json:
        args.json.write_text(json.dumps(results if args.file else results[0], indent=2), encoding="utf-8")
    return 0


def run_eval_lens(args: argparse.Namespace) -> int:
    from tinymorph.evals.lens import LensScore, load_topics, on_topic

    topics = load_topics(args.topics)
    generator, data = _generator(args)
    scores = {"dev": LensScore(), "validation": LensScore()}
    rows = []
    table = Table(title=f"feature lens on {args.topics.name} ({data.sae_id})")
    for col in ("split", "topic", "labels shown (✓ on topic)"):
        table.add_column(col)
    for t in topics:
        shown = _features(data, generator.lens_of(t.text))
        labels = [f["label"] for f in shown]
        scores[t.split].add(labels, t.words)
        rows.append({"split": t.split, "topic": t.topic, "labels": labels, "scores": [f["score"] for f in shown],
                     "on_topic": [on_topic(label, t.words) for label in labels]})
        marked = " · ".join(("✓ " if on_topic(label, t.words) else "") + label for label in labels) or "(silent)"
        table.add_row(t.split, t.topic, marked)
    console = Console()
    console.print(table)
    summary = {split: s.as_dict() for split, s in scores.items()}
    for split, s in summary.items():
        console.print(f"{split}: topic named in {s['named_rate']:.0%} of {s['sentences']} sentences; "
                      f"{s['on_topic_rate']:.0%} of {s['labels']} labels on topic; silent on {s['silent']}")
    if args.json:
        args.json.write_text(json.dumps({"sae": data.sae_id, "summary": summary, "sentences": rows}, indent=2),
                             encoding="utf-8")
    return 0


def run_eval_search(args: argparse.Namespace) -> int:
    from tinymorph.commands.features import load_cli_sae
    from tinymorph.evals.lens import load_search_words, on_topic
    from tinymorph.sae.search import search_features

    words = load_search_words(args.words)
    lm, sae, _manifest = load_cli_sae(args, Console(stderr=True))
    if sae.folder is None:
        raise SAEError("this SAE has no local feature data; build it with `tinymorph features build`")
    data = load_feature_data(sae.folder, sae.d_sae)
    found = {"dev": [0, 0], "validation": [0, 0]}
    rows = []
    table = Table(title=f"feature search on {args.words.name} ({data.sae_id}): first {args.rows} rows")
    for col in ("split", "word", "rows (✓ about it)"):
        table.add_column(col)
    for w in words:
        hits = search_features(lm, sae, data, w.word, limit=args.rows)
        labels = [data.features[h.index].label for h in hits]
        about = [on_topic(label, w.related) for label in labels]
        found[w.split][0] += any(about)
        found[w.split][1] += 1
        rows.append({"split": w.split, "word": w.word, "labels": labels, "about": about})
        marked = (("✓ " if a else "") + lab for lab, a in zip(labels, about, strict=True))
        table.add_row(w.split, w.word, " · ".join(marked))
    console = Console()
    console.print(table)
    for split, (hit, n) in found.items():
        console.print(
            f"{split}: a row about the word in the first {args.rows} for {hit} of {n} words ({hit / max(1, n):.0%})"
        )
    if args.json:
        record = {"sae": data.sae_id, "found": found, "words": rows}
        args.json.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return 0


ACTIONS = {"lens": run_lens, "eval-lens": run_eval_lens, "eval-search": run_eval_search}
