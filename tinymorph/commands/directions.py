"""`tinymorph directions build FILE.toml`: a steering direction from contrast pairs.

Owns: argument parsing. The direction is mean(positive) - mean(negative) at the hook layer
(`engine.directions`), written as JSON beside the TOML (or to --out). Errors reach `cli.main`.
"""

import argparse
from pathlib import Path

from rich.console import Console

from tinymorph.cli_common import add_model_options, load_cli_model


def main(argv: list[str]) -> int:
    from tinymorph.engine.directions import contrast_direction, read_pairs, save_direction

    parser = argparse.ArgumentParser(
        prog="tinymorph directions", description="Steering directions from contrast pairs."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    build = sub.add_parser("build", help="mean difference of positive and negative texts at the hook layer")
    build.add_argument("files", type=Path, nargs="+", help="TOML files with name and [[pairs]] positive/negative")
    build.add_argument("--out", type=Path, help="output folder (default: beside each TOML file)")
    add_model_options(build)
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    lm, manifest = load_cli_model(args, console)
    for path in args.files:
        pairs = read_pairs(path)
        vector = contrast_direction(lm, pairs)
        out = (args.out or path.parent) / (path.stem + ".json")
        save_direction(out, pairs.name, manifest.hub_id or manifest.name, lm.hook_layer, vector, path.name)
        console.print(
            f"{pairs.name}: {len(pairs.positive)} pairs, |direction| = {float(vector.norm()):.0f} "
            f"({float(vector.norm()) / lm.median_norm:.2f} x median residual norm) -> {out}"
        )
    return 0
