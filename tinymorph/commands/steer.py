"""`tinymorph steer eval|concept`: does steering work, and what does a concept slider look like?

Owns: argument parsing, the rich tables, and the markdown and JSON written with --markdown and
--json (for docs/). The numbers come from `tinymorph.evals`; errors reach `cli.main`.
- `steer eval CORPUS`: the per-feature table (SAE features, with a strength-0 control row each).
- `steer eval CORPUS --concepts FILE.toml` (or `--text FILE_OR_FOLDER` for the prompts): the
  four-arm evaluation of concept sliders (unsteered, selection, steered, prompted).
- `steer concept "the sea"`: what the slider is made of, and suggestions with and without it.
"""

import argparse
import dataclasses
import json
import shlex
import statistics
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tinymorph.cli_common import add_model_options, add_sae_option, settings_from_args
from tinymorph.commands.features import feature_folder, load_cli_sae
from tinymorph.domain import DEFAULT_CONCEPT_STRENGTH
from tinymorph.errors import ConfigError
from tinymorph.paths import app_paths

SAMPLE_CONTEXT = (
    "After breakfast we walked down through the town. The streets were still quiet, and at the "
    "corner by the bakery my sister stopped and said that"
)
"""The context `steer concept` continues when none is given (written for tinymorph)."""


def shown(strength: float) -> str:
    """A strength as the tables print it: +0.15, and +0.125 where two decimals would round it."""
    return f"{strength:+.2f}" if round(strength, 2) == strength else f"{strength:+.3f}"


def prompts_from(path: Path, n: int, exclude: list[str], split: str) -> list[str]:
    """`n` prompts: the first 60 words of chunks spread over one side of the split of `path` (a
    folder or one file). Raises SAEError (from the corpus) when there is no text, ConfigError when
    there are fewer chunks than prompts asked for."""
    from tinymorph.sae.corpus import open_corpus

    chunks = list(open_corpus(path, exclude).chunks(split))  # type: ignore[arg-type]
    prompts = [" ".join(c.split()[:60]) for c in chunks[:: max(1, len(chunks) // max(1, n))]][:n]
    if len(prompts) < n:
        raise ConfigError(f"{path} gives {len(prompts)} prompts ({split} side); ask for fewer with --prompts")
    return prompts


def _command(args: argparse.Namespace) -> str:
    """The command line that made a report, for the report (docs quote it)."""
    return shlex.join(["tinymorph", "steer", *args.argv])


def run_features(args: argparse.Namespace, lm, sae, gen, data, prompts, decoding, console) -> int:  # type: ignore[no-untyped-def]
    from tinymorph.evals.steer import decode_throughput, pick_features, steer_eval

    if args.features:
        features = [int(x) for x in args.features.split(",")]
    else:
        features = pick_features(data, args.n_features, args.pick_seed, steers_only=args.pick == "steers")
    strengths = [float(x) for x in args.strengths.split(",")]
    results = steer_eval(lm, sae, data, prompts, features, strengths, console.print, decoding, gen)
    speed = decode_throughput(gen, prompts[:3], [1, 16], decoding, repeats=5)  # interleaved; the median of 5
    table = Table(title=f"steering {sae.sae_id}: {len(prompts)} held-out prompts, {decoding.describe()}")
    for col in ("feature", "label", "strength", "feature rises", "writes its words", "act. unsteered", "act. steered",
                "perplexity"):
        table.add_column(col)
    rows = []
    for r in results:
        row = (str(r.feature), r.label[:40], shown(r.strength) + (" (control)" if r.strength == 0 else ""),
               f"{r.rises_rate:.0%}", f"{r.words_rate:.0%}",
               f"{r.mean_act_unsteered:.2f}", f"{r.mean_act_steered:.2f}",
               f"{r.perplexity_unsteered:.1f} → {r.perplexity_steered:.1f} ({r.perplexity_rise:+.0%})")
        rows.append(row)
        table.add_row(*row)
    out = Console()
    out.print(table)
    summary = []
    for s in sorted({r.strength for r in results}):
        cells = [r for r in results if r.strength == s]
        concept = sum(r.rises_rate for r in cells) / len(cells)
        words = sum(r.words_rate for r in cells) / len(cells)
        ppl = statistics.median(r.perplexity_rise for r in cells)
        name = shown(s) + (" (control: ranking, no push)" if s == 0 else "")
        summary.append(f"| {name} | {concept:.0%} | {words:.0%} | {ppl:+.0%} |")
        out.print(f"strength {name}: the feature rises in {concept:.0%} of suggestions, its words are written in "
                  f"{words:.0%}; median perplexity {ppl:+.0%}")
    ratio = {n: speed[n] / speed[0] for n in speed}
    out.print("decode tokens/s per alternative: " + ", ".join(
        f"{n} features {v:.1f} ({ratio[n]:.2f}x)" for n, v in speed.items()))
    if args.markdown:
        lines = [
            f"Command: `{_command(args)}`", "", f"Decoding: {decoding.describe()}.", "",
            "| strength | feature rises | writes its words | median perplexity rise |", "|---|---:|---:|---:|",
            *summary, "",
            "| feature | label | strength | feature rises | writes its words | act. unsteered | act. steered | "
            "perplexity |",
            "|---:|---|---|---:|---:|---:|---:|---|",
            *("| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows), "",
            "| active features | decode tokens/s | vs unsteered |", "|---:|---:|---:|",
            *(f"| {n} | {v:.1f} | {ratio[n]:.2f}x |" for n, v in speed.items()),
        ]
        args.markdown.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


def run_concepts(args: argparse.Namespace, gen, data, prompts, decoding, console) -> int:  # type: ignore[no-untyped-def]
    from tinymorph.evals.concepts import ARMS, as_json, concept_eval, perplexity_rise, read_concepts, summary

    cases = read_concepts(args.concepts)
    strength = args.strength if args.strength is not None else DEFAULT_CONCEPT_STRENGTH
    label = (lambda i: f"#{i} {data.features[i].label}") if data is not None else (lambda i: f"#{i}")
    results = concept_eval(gen, cases, prompts, decoding, strength, console.print, label)
    totals = summary(results)
    out = Console()
    table = Table(title=f"concept sliders at {shown(strength)}: {len(cases)} concepts x {len(prompts)} prompts, "
                        f"{decoding.describe()}")
    table.add_column("concept")
    for arm in ARMS:
        table.add_column(f"{arm}\nrate / ppl / rep.")
    for r in results:
        table.add_row(r.case.name, *(
            f"{r.arms[a].concept_rate:.0%} / {r.arms[a].perplexity:.1f} / {r.arms[a].repetition:.1%}" for a in ARMS))
    table.add_row("median", *(
        f"{totals[a]['concept_rate']:.0%} / {totals[a]['perplexity']:.1f} / {totals[a]['repetition']:.1%}"
        for a in ARMS), style="bold")
    out.print(table)
    for arm in ARMS:
        out.print(f"{arm}: concept {totals[arm]['concept_rate']:.0%}, perplexity {totals[arm]['perplexity']:.2f} "
                  f"({perplexity_rise(totals, arm):+.0%} vs unsteered, "
                  f"{perplexity_rise(totals, arm, 'selection'):+.0%} vs selection), "
                  f"repetition {totals[arm]['repetition']:.1%}")
    if args.json:
        report = as_json(results)
        report["command"] = _command(args)
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    if args.markdown:
        lines = [
            f"Command: `{_command(args)}`", "",
            f"{len(cases)} concepts, {len(prompts)} prompts each, {decoding.describe()}; concept sliders at "
            f"{shown(strength)}. Each cell: concept rate / median perplexity under the unsteered model / "
            "share of repeated word 3-grams.", "",
            "| arm | concept rate (median) | median perplexity | vs unsteered | vs selection | repetition |",
            "|---|---:|---:|---:|---:|---:|",
            *(f"| {a} | {totals[a]['concept_rate']:.0%} | {totals[a]['perplexity']:.2f} | "
              f"{perplexity_rise(totals, a):+.0%} | {perplexity_rise(totals, a, 'selection'):+.0%} | "
              f"{totals[a]['repetition']:.1%} |" for a in ARMS), "",
            "| concept | query | " + " | ".join(ARMS) + " |", "|---|---|" + "---|" * len(ARMS),
            *(f"| {r.case.name} | {r.case.query} | " + " | ".join(
                f"{r.arms[a].concept_rate:.0%} / {r.arms[a].perplexity:.1f} / {r.arms[a].repetition:.0%}"
                for a in ARMS) + " |" for r in results),
        ]
        args.markdown.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from tinymorph.engine.generate import Generator
    from tinymorph.engine.lens import lens_weights, max_act_tensor
    from tinymorph.evals.steer import GREEDY, Decoding
    from tinymorph.features import load_feature_data

    if args.corpus is None and args.text is None:
        raise ConfigError("steer eval needs prompts: a CORPUS folder (its held-out side) or --text FILE_OR_FOLDER")
    console = Console(stderr=True)
    settings = settings_from_args(args, app_paths())
    lm, sae, _manifest = load_cli_sae(args, console)
    data = load_feature_data(feature_folder(args), sae.d_sae)
    source, split = (args.text, "all") if args.text is not None else (args.corpus, "heldout")
    prompts = prompts_from(source, args.prompts, args.exclude, split)
    decoding = (
        dataclasses.replace(GREEDY, tokens=args.tokens) if args.greedy
        else Decoding(settings.temperature, settings.alternatives, args.seed, args.tokens,
                      settings.suggestion_confidence)
    )
    gen = Generator(lm, settings.context_tokens, sae, max_act_tensor(data), steer_prompt=args.steer_prompt,
                    lens_weights=lens_weights(data))
    if args.concepts is not None:
        return run_concepts(args, gen, data, prompts, decoding, console)
    return run_features(args, lm, sae, gen, data, prompts, decoding, console)


def run_concept(args: argparse.Namespace) -> int:
    from tinymorph.domain import SteeringSpec, SteeringTerm
    from tinymorph.engine.concepts import TEMPLATES, build_concept
    from tinymorph.engine.generate import Generator
    from tinymorph.engine.lens import max_act_tensor
    from tinymorph.evals.steer import Decoding, shown_suggestion
    from tinymorph.features import load_feature_data

    settings = settings_from_args(args, app_paths())
    lm, sae, _manifest = load_cli_sae(args, Console(stderr=True))
    data = load_feature_data(feature_folder(args), sae.d_sae)
    concept = build_concept(lm, args.words, sae)
    strength = args.strength if args.strength is not None else DEFAULT_CONCEPT_STRENGTH
    out = Console()
    out.print(f"[bold]concept slider {concept.name!r}[/] at {shown(strength)} (residual-norm multiples)")
    out.print(f"made of: the in-context vector of {concept.name!r}, the mean change that 'This passage is about "
              f"{concept.name}.' (and {len(TEMPLATES) - 1} other phrasings) makes to the residual stream after layer "
              f"{lm.hook_layer} over {concept.tokens} tokens of neutral text; its length is {concept.shift:.0f}, "
              f"{concept.shift / lm.median_norm:.3f} median residual norms")
    table = Table("SAE feature", "label", "cosine with the slider", title="the features closest to it")
    for i, cos in concept.features:
        table.add_row(f"#{i}", data.features[i].label, f"{cos:.2f}")
    out.print(table)
    gen = Generator(lm, settings.context_tokens, sae, max_act_tensor(data))
    decoding = Decoding(settings.temperature, settings.alternatives, args.seed, settings.max_new_tokens,
                        settings.suggestion_confidence)
    term = SteeringTerm(strength, direction=tuple(concept.direction.tolist()), label=concept.name, concept=concept.name)
    context = args.context or SAMPLE_CONTEXT
    out.print(f"\n[dim]…{context[-160:]}[/]")
    for title, spec in (("unsteered", SteeringSpec()), (f"steered toward {concept.name!r}", SteeringSpec((term,)))):
        result = shown_suggestion(gen, context, spec, decoding)
        out.print(f"[bold]{title}[/] (the first is what the editor shows):")
        for k, alternative in enumerate(result.alternatives or ("(nothing)",), start=1):
            out.print(f"  {k}. {alternative}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tinymorph steer", description="Measure and try steering.")
    sub = parser.add_subparsers(dest="action", required=True)
    ev = sub.add_parser("eval", help="does steering work: SAE features, or concept sliders with --concepts")
    ev.add_argument("corpus", type=Path, nargs="?", help="folder of text; prompts come from its held-out chunks")
    ev.add_argument("--text", type=Path, metavar="FILE_OR_FOLDER",
                    help="take the prompts from all of this text instead (text no model or SAE was tuned on)")
    ev.add_argument("--concepts", type=Path, metavar="FILE.toml",
                    help="[[concept]] tables (name, query, words): the four-arm evaluation of concept sliders")
    ev.add_argument("--strength", type=float,
                    help=f"concept sliders' strength (default {DEFAULT_CONCEPT_STRENGTH}, the editor's)")
    ev.add_argument("--json", type=Path, help="with --concepts: write every arm, sample and the summary as JSON")
    ev.add_argument("--features", help="comma-separated feature indices (default: a seeded sample)")
    ev.add_argument("--n-features", type=int, default=8)
    ev.add_argument("--pick-seed", type=int, default=0, help="seed of the feature sample (default 0)")
    ev.add_argument(
        "--pick", choices=["random", "steers"], default="steers",
        help="the sample: any feature, or only features that steer: output score and probe (default)",
    )
    ev.add_argument("--strengths", default="0.125,0.25",
                    help="feature strengths (default 0.125,0.25; a control row at 0 is added)")
    ev.add_argument("--prompts", type=int, default=10)
    ev.add_argument("--tokens", type=int, default=24, help="longest suggestion in tokens (default 24)")
    ev.add_argument("--greedy", action="store_true",
                    help="decode greedily, one continuation (default: as the editor does: sampled alternatives, "
                         "the one it shows first)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the sampled suggestions (default 0)")
    ev.add_argument("--steer-prompt", action="store_true",
                    help="steer every context position too, not only from the cursor on (the editor steers from the "
                         "cursor, which keeps its KV cache when a slider moves)")
    ev.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    ev.add_argument("--markdown", type=Path, help="also write the tables as markdown to this file")
    concept = sub.add_parser("concept", help="make a concept slider from words and show what it does")
    concept.add_argument("words", help="what a writer would type: 'sea', 'rain and storms', 'formal letters'")
    concept.add_argument("--strength", type=float, help=f"default {DEFAULT_CONCEPT_STRENGTH}")
    concept.add_argument("--context", help="the text to continue (default: a few sentences of ordinary prose)")
    concept.add_argument("--seed", type=int, default=0)
    for p in (ev, concept):
        add_sae_option(p)
        add_model_options(p)
    args = parser.parse_args(argv)
    args.argv = argv
    return run_eval(args) if args.action == "eval" else run_concept(args)
