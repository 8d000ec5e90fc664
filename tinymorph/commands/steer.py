"""`tinymorph steer eval CORPUS`: does steering by SAE feature work, and what does it cost?

Owns: argument parsing, the rich table, and the markdown written with --markdown (for docs/).
Errors reach `cli.main`.
"""

import argparse
import dataclasses
import shlex
import statistics
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tinymorph.cli_common import add_model_options, add_sae_option
from tinymorph.commands.features import feature_folder, load_cli_sae


def shown(strength: float) -> str:
    """A strength as the tables print it: +0.15, and +0.125 where two decimals would round it."""
    return f"{strength:+.2f}" if round(strength, 2) == strength else f"{strength:+.3f}"


def main(argv: list[str]) -> int:
    from tinymorph.config import Settings
    from tinymorph.engine.generate import Generator, max_act_tensor
    from tinymorph.evals.steer import GREEDY, Decoding, decode_throughput, pick_features, steer_eval
    from tinymorph.features import load_feature_data
    from tinymorph.sae.corpus import open_corpus

    parser = argparse.ArgumentParser(prog="tinymorph steer", description="Measure steering by SAE feature.")
    sub = parser.add_subparsers(dest="action", required=True)
    ev = sub.add_parser("eval", help="concept rate and fluency cost over held-out prompts; decode speed")
    ev.add_argument("corpus", type=Path, help="folder of text; prompts come from its held-out chunks")
    ev.add_argument("--features", help="comma-separated feature indices (default: a seeded sample)")
    ev.add_argument("--n-features", type=int, default=8)
    ev.add_argument("--pick-seed", type=int, default=0, help="seed of the feature sample (default 0)")
    ev.add_argument(
        "--pick", choices=["random", "steers"], default="steers",
        help="the sample: any feature, or only features that steer: output score and probe concept rate (default)",
    )
    ev.add_argument("--strengths", default="0.3,0.6,1.0", help="comma-separated strengths (default 0.3,0.6,1.0)")
    ev.add_argument("--prompts", type=int, default=10)
    ev.add_argument("--tokens", type=int, default=24, help="tokens generated per continuation")
    ev.add_argument(
        "--greedy", action="store_true",
        help="decode greedily, one continuation (default: as the editor does: sampled alternatives, "
        "the one it would show first)",
    )
    ev.add_argument("--seed", type=int, default=0, help="seed of the sampled continuations (default 0)")
    ev.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    ev.add_argument("--markdown", type=Path, help="also write the table as markdown to this file")
    add_sae_option(ev)
    add_model_options(ev)
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    lm, sae, _manifest = load_cli_sae(args, console)
    data = load_feature_data(feature_folder(args), sae.d_sae)
    if args.features:
        features = [int(x) for x in args.features.split(",")]
    else:
        features = pick_features(data, args.n_features, args.pick_seed, steers_only=args.pick == "steers")
    strengths = [float(x) for x in args.strengths.split(",")]
    chunks = list(open_corpus(args.corpus, args.exclude).chunks("heldout"))
    prompts = [" ".join(c.split()[:60]) for c in chunks[:: max(1, len(chunks) // args.prompts)]][: args.prompts]
    defaults = Settings()
    decoding = (
        dataclasses.replace(GREEDY, tokens=args.tokens) if args.greedy
        else Decoding(defaults.temperature, defaults.alternatives, args.seed, args.tokens)
    )
    gen = Generator(lm, defaults.context_tokens, sae, max_act_tensor(data))
    results = steer_eval(lm, sae, data, prompts, features, strengths, console.print, decoding, gen)
    speed = decode_throughput(gen, prompts[:3], [1, 16], decoding, repeats=5)  # interleaved; the median of 5
    table = Table(
        title=f"steering {sae.sae_id}: {len(prompts)} held-out prompts, {args.tokens} tokens, {decoding.describe()}"
    )
    for col in ("feature", "label", "strength", "concept shows", "act. unsteered", "act. steered", "perplexity"):
        table.add_column(col)
    rows = []
    for r in results:
        row = (
            str(r.feature),
            r.label[:40],
            shown(r.strength),
            f"{r.concept_rate:.0%}",
            f"{r.mean_act_unsteered:.2f}",
            f"{r.mean_act_steered:.2f}",
            f"{r.perplexity_unsteered:.1f} → {r.perplexity_steered:.1f} ({r.perplexity_rise:+.0%})",
        )
        rows.append(row)
        table.add_row(*row)
    out = Console()
    out.print(table)
    summary = []
    for s in strengths:
        cells = [r for r in results if r.strength == s]
        concept = sum(r.concept_rate for r in cells) / len(cells)
        ppl = statistics.median(r.perplexity_rise for r in cells)
        summary.append(f"| {shown(s)} | {concept:.0%} | {ppl:+.0%} |")
        out.print(
            f"strength {shown(s)}: concept shows in {concept:.0%} of continuations; median perplexity rise {ppl:+.0%}"
        )
    ratio = {n: speed[n] / speed[0] for n in speed}
    speeds = ", ".join(f"{n} features {v:.1f} ({ratio[n]:.2f}x)" for n, v in speed.items())
    out.print(f"decode tokens/s per alternative: {speeds}")
    if args.markdown:
        lines = [
            f"Command: `{shlex.join(['tinymorph', 'steer', *sys.argv[2:]])}`",
            "",
            f"Decoding: {decoding.describe()}; {args.tokens} tokens per continuation.",
            "",
            "| strength | concept shows | median perplexity rise |",
            "|---:|---:|---:|",
            *summary,
            "",
            "| feature | label | strength | concept shows | act. unsteered | act. steered | perplexity |",
            "|---:|---|---:|---:|---:|---:|---|",
            *("| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows),
            "",
            "| active features | decode tokens/s | vs unsteered |",
            "|---:|---:|---:|",
            *(f"| {n} | {v:.1f} | {ratio[n]:.2f}x |" for n, v in speed.items()),
        ]
        args.markdown.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0
