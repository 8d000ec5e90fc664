"""`tinymorph features build|show|search`: feature dashboards and search in the terminal (rich).

Owns: argument parsing and drawing. `show` reads only the feature file (no model); `search`
loads the model too, unless --no-model. Errors reach `cli.main`.
"""

import argparse
from pathlib import Path

from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from tinymorph.cli_common import (
    add_model_options,
    add_sae_option,
    add_split_option,
    load_cli_model,
    settings_from_args,
)
from tinymorph.commands import lens as lens_commands
from tinymorph.domain import SaeSource
from tinymorph.errors import SAEError
from tinymorph.features import (
    SCORE_DIGITS,
    STEERS_CONCEPT_RATE,
    STEERS_SCORE,
    FeatureContext,
    FeatureData,
    FeatureInfo,
    load_feature_data,
)
from tinymorph.labels import relabel
from tinymorph.lens_table import save_feature_files
from tinymorph.lm.manifest import resolve_model, resolve_sae
from tinymorph.paths import app_paths


def sae_source(args: argparse.Namespace, choice: str | None = None) -> SaeSource:
    """The SAE `choice` names, else the one the settings choose (`lm.manifest.resolve_sae`), for
    the model the settings choose. Raises SAEError for "none"."""
    settings = settings_from_args(args, app_paths())
    manifest = resolve_model(settings.model, settings.hub_model)
    source = resolve_sae(choice or settings.sae, manifest, app_paths().cache_dir)
    if source.feature_folder is None:
        raise SAEError("this command needs an SAE; --sae none chooses none")
    return source


def feature_folder(args: argparse.Namespace) -> Path:
    """Where the chosen SAE's feature data lives."""
    folder = sae_source(args).feature_folder
    assert folder is not None  # sae_source refuses "none"
    return folder


def load_cli_sae(args: argparse.Namespace, console: Console):  # type: ignore[no-untyped-def]
    """Load the model and the SAE chosen by `args` (returns lm, sae, manifest)."""
    from tinymorph.sae.loading import load_sae

    lm, manifest = load_cli_model(args, console)
    settings = settings_from_args(args, app_paths())
    sae = load_sae(
        sae_source(args),
        manifest,
        lm.d_model,
        int(lm.model.config.num_hidden_layers),
        allow_downloads=settings.allow_downloads,
    )
    return lm, sae, manifest


def _context_text(c: FeatureContext) -> Text:
    text = Text()
    for i, (token, act) in enumerate(zip(c.tokens, c.acts, strict=False)):
        shown = token.replace("\n", "⏎")
        if act > 0:
            level = 90 + int(act * 1.6)  # brighter background for stronger activation
            style = (
                f"bold on rgb({min(255, level)},{max(0, 140 - act)},0)"
                if i == c.peak
                else f"on rgb({level // 2},{level // 3},0)"
            )
            text.append(shown, style=style)
        else:
            text.append(shown, style="dim")
    text.append(f"   {c.act:.2f}", style="cyan")
    return text


def dashboard(f: FeatureInfo, data: FeatureData) -> Panel:
    """A rich panel for one feature: label, density, logit effects and top contexts."""
    stats = Text.assemble(
        ("density ", "dim"),
        f"{f.density:.4%}",
        ("   max activation ", "dim"),
        f"{f.max_act:.2f}",
        ("   output score ", "dim"),
        "not measured" if f.output_score is None else f"{f.output_score:.3f}",
        ("   probe concept rate ", "dim"),
        "not measured" if f.concept_rate is None else f"{f.concept_rate:.0%}",
        ("  (steers: adding it makes the model write what it promotes)" if f.steers else "", "yellow"),
        ("   (dense)" if f.dense else "", "yellow"),
        ("   (dead: never active on the scanned text)" if f.dead else "", "red"),
    )
    logits = Table.grid(padding=(0, 2))
    logits.add_column(style="green")
    logits.add_column(style="red")
    logits.add_row("promotes", "suppresses")
    for (pt, pv), (st, sv) in zip(f.promoted, f.suppressed, strict=False):
        logits.add_row(f"{pt!r} {pv:+.2f}", f"{st!r} {sv:+.2f}")
    contexts = [_context_text(c) for c in f.contexts] or [Text("no activation on the scanned text", style="dim")]
    return Panel(
        Group(stats, Text(""), logits, Text(""), Text("top activating contexts", style="bold"), *contexts),
        title=f"feature {f.index}: {f.label}",
        subtitle=f"{data.sae_id} · {data.hook_name} · {data.tokens_scanned:,} tokens scanned",
    )


def run_show(args: argparse.Namespace) -> int:
    data = load_feature_data(feature_folder(args))
    Console().print(dashboard(data.get(args.index), data))
    return 0


def run_search(args: argparse.Namespace) -> int:
    from tinymorph.sae.search import search_features

    console = Console()
    data = load_feature_data(feature_folder(args))
    lm = sae = None
    if not args.no_model:
        lm, sae, _manifest = load_cli_sae(args, Console(stderr=True))
    hits = search_features(lm, sae, data, args.text, limit=args.limit)
    if not hits:
        console.print(f"no feature matches {args.text!r}")
        return 1
    table = Table(title=f"features for {args.text!r}")
    for col in ("feature", "label", "density", "output score", "found by", "top context"):
        table.add_column(col)
    for hit in hits:
        f = data.features[hit.index]
        how = " + ".join(
            w
            for w, s in (
                ("words", hit.text_score),
                (f"fires {hit.activation:.0%}", hit.activation),
                ("writes them", hit.steering),
            )
            if s
        )
        context = f.contexts[0].text.replace("\n", " ").strip() if f.contexts else ""
        score = "" if f.output_score is None else f"{f.output_score:.2f}" + (" steers" if f.steers else "")
        table.add_row(str(f.index), f.label, f"{f.density:.3%}", score, how, context[-60:])
    console.print(table)
    return 0


def run_build(args: argparse.Namespace) -> int:
    from tinymorph.sae.corpus import open_corpus, tagged_heldout_sequences
    from tinymorph.sae.feature_data import build_feature_data

    console = Console(stderr=True)
    corpora = [open_corpus(path, args.exclude) for path in args.corpus]
    lm, sae, _manifest = load_cli_sae(args, console)
    sequences: list[list[int]] = []
    quotable: list[bool] = []
    for corpus in corpora:  # the token budget shared evenly
        seqs, flags = tagged_heldout_sequences(
            corpus, lm.tokenizer, args.seq_len, args.tokens // len(corpora), args.quote or ("*",), args.split
        )
        sequences += seqs
        quotable += flags
    out = args.out or feature_folder(args)
    out.mkdir(parents=True, exist_ok=True)
    with Progress(console=console) as progress:
        side = "held-out" if args.split == "heldout" else "all"
        task = progress.add_task(f"scanning {side} text", total=len(sequences))
        data = build_feature_data(
            lm, sae, sequences, quotable=quotable, report=lambda done, _t: progress.update(task, completed=done)
        )
    path = save_feature_files(data, out)
    dead = sum(f.dead for f in data.features)
    console.print(
        f"{len(data)} features, {data.tokens_scanned:,} tokens scanned ({sum(quotable):,} of {len(quotable):,} "
        f"sequences quotable), {dead} never active -> {path}"
    )
    return 0


def run_score(args: argparse.Namespace) -> int:
    import dataclasses

    from tinymorph.labels import FUNCTION_ZIPF, LABEL_WORDS, content_word, writes
    from tinymorph.sae.corpus import open_corpus, spread_prompts
    from tinymorph.sae.output_score import judged_words, output_scores, probe_word_rates

    console = Console(stderr=True)
    folder = feature_folder(args)
    lm, sae, _manifest = load_cli_sae(args, console)
    data = load_feature_data(folder, sae.d_sae)
    # The training side: the steering evaluation reads held-out text, so choosing features by
    # these scores and evaluating them never share a prompt.
    corpus = open_corpus(args.corpus, args.exclude)
    prompts = spread_prompts(corpus, lm.tokenizer, args.prompts, args.prompt_len, "train")
    with Progress(console=console) as progress:
        task = progress.add_task(f"output score: every feature over {len(prompts)} prompts", total=sae.d_sae)
        scores = output_scores(
            lm, sae, prompts, strength=args.strength, report=lambda done, _t: progress.update(task, completed=done)
        )
        output = [round(o, SCORE_DIGITS) for o in scores.tolist()]  # as stored: the file agrees with the choice
        chosen = [f for f, o in zip(data.features, output, strict=True) if o >= STEERS_SCORE and not f.dense]
        candidates = [f.index for f in chosen]
        task = progress.add_task(f"probe: do {len(candidates)} features write their words?", total=len(candidates))
        rates = probe_word_rates(
            lm, sae, prompts[: args.probe_prompts], candidates, [judged_words(f) for f in chosen],
            strength=args.strength, report=lambda done, _t: progress.update(task, completed=done),
        )
    concept = dict(zip(candidates, rates.tolist(), strict=True))
    features = tuple(
        dataclasses.replace(f, output_score=o, concept_rate=concept.get(f.index))
        for f, o in zip(data.features, output, strict=True)
    )
    # output features now say "writes"
    path = save_feature_files(relabel(dataclasses.replace(data, features=features)), folder)
    steering = [f for f in features if f.steers and not f.dense]
    labels = [writes(f)[:LABEL_WORDS] for f in steering]
    content = sum(bool(words) and all(content_word(w) for w in words) for words in labels)
    console.print(
        f"scores written to {path}: {len(steering)} of {len(features)} features steer (output score >= "
        f"{STEERS_SCORE}, writes its words on >= {STEERS_CONCEPT_RATE:.0%} of probe prompts, not dense); "
        f"{content} of them with labels of content words by the labeler's rule (labels.content_word: Zipf < "
        f"{FUNCTION_ZIPF}; some function words pass it)"
    )
    return 0


def run_label(args: argparse.Namespace) -> int:
    folder = feature_folder(args)
    data = relabel(load_feature_data(folder))
    path = save_feature_files(data, folder)
    topical = sum(bool(f.topical) for f in data.features)
    Console(stderr=True).print(f"{len(data)} labels written to {path} ({topical} topical)")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tinymorph features", description="SAE feature dashboards and search.")
    sub = parser.add_subparsers(dest="action", required=True)
    show = sub.add_parser("show", help="print one feature's dashboard")
    show.add_argument("index", type=int)
    search = sub.add_parser("search", help="find features by words: labels and contexts, and what fires on TEXT")
    search.add_argument("text")
    search.add_argument("--limit", type=int, default=10)
    search.add_argument("--no-model", action="store_true", help="search labels and contexts only (no model load)")
    build = sub.add_parser("build", help="build the feature data (labels, contexts, logit effects) of an SAE")
    build.add_argument("corpus", type=Path, nargs="+", help="folders of text; their held-out sides are scanned")
    build.add_argument(
        "--tokens", type=int, default=400_000, help="held-out tokens to scan, shared by the folders (default 400,000)"
    )
    build.add_argument(
        "--quote", action="append", metavar="GLOB",
        help="only files whose name matches may be quoted in the dashboards' contexts (repeatable; default: all). "
        "Labels use every file's contexts.",
    )
    build.add_argument("--seq-len", type=int, default=128)
    add_split_option(build)
    build.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    build.add_argument("--out", type=Path, help="folder for features.json.gz (default: beside the SAE)")
    score = sub.add_parser(
        "score", help="measure each feature's output score (does steering with it bring its tokens?)"
    )
    score.add_argument("corpus", type=Path, help="folder of text; chunk openings of its training side are the prompts")
    score.add_argument("--prompts", type=int, default=12, help="prompts per feature (default 12)")
    score.add_argument("--prompt-len", type=int, default=16, help="tokens per prompt, BOS included (default 16)")
    score.add_argument("--probe-prompts", type=int, default=8,
                       help="prompts for the probe (does steering write its words?), 12 tokens each (default 8)")
    score.add_argument("--strength", type=float, default=0.2, help="steering strength (default 0.2)")
    score.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    label = sub.add_parser("label", help="make the readable labels again from the feature file (no model)")
    for p in (show, search, build, score, label, *lens_commands.add_parsers(sub)):
        add_sae_option(p)
        add_model_options(p)
    args = parser.parse_args(argv)
    actions = {"show": run_show, "search": run_search, "build": run_build, "score": run_score, "label": run_label,
               **lens_commands.ACTIONS}
    return actions[args.action](args)
