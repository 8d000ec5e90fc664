"""`tinymorph bench keymap`: whether typing in the vim keymap's insert mode is as fast as without it.

Owns: the keystroke cases of `tinymorph bench` (a real terminal, keys at 8 per second, each timed
until the emulated screen shows it) with the default keymap and with `--keymap vim` (in insert
mode), interleaved in one run, with and without the model generating at every key. Prints a table
and writes it to --out. Needs the bench extra (pyte).
"""

import argparse
import importlib.util
import os
import shlex
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table


def run_keymap_bench(argv: list[str]) -> int:
    summary = (__doc__ or "").splitlines()[0]
    parser = argparse.ArgumentParser(prog="tinymorph bench keymap", description=summary)
    parser.add_argument("--keys", type=int, default=120, help="keys typed per case (default 120)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the four cases (default 2)")
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks-keymap.md"))
    args = parser.parse_args(argv)
    console = Console()
    if importlib.util.find_spec("pyte") is None:
        console.print("tinymorph bench keymap draws the editor in a terminal emulator, pyte, which comes with the "
                      "bench extra: python -m pip install -e \".[bench]\"")
        return 2
    from tinymorph.bench.keys import KeyRun, type_keys
    from tinymorph.paths import app_paths

    home = Path(tempfile.mkdtemp(prefix="tinymorph-bench-"))
    (home / "cache").mkdir()
    (home / "cache" / "models").symlink_to(app_paths().models_cache)  # the model copy, not rebuilt
    env = {**os.environ, "TERM": "xterm-256color", "TINYMORPH_HOME": str(home)}
    folder = Path(tempfile.mkdtemp(prefix="tinymorph-bench-files-"))
    cases: dict[str, tuple[list[str], str, tuple[str, ...]]] = {
        "no model, default keys": (["--no-suggestions"], "", ("suggestions off",)),
        "no model, vim keymap (insert mode)": (["--no-suggestions", "--keymap", "vim"], "A", ("suggestions off",)),
        "worker generating, default keys": (["--model", args.model, "--idle-delay-ms", "0"], "",
                                            (": ready", ": generating")),
        "worker generating, vim keymap (insert mode)": (
            ["--model", args.model, "--idle-delay-ms", "0", "--keymap", "vim"], "A", (": ready", ": generating")),
    }
    runs: dict[str, list[KeyRun]] = {name: [] for name in cases}
    for round_ in range(args.rounds):
        for name, (flags, insert, ready) in cases.items():
            run = type_keys(folder, env, flags, args.keys, ready=ready, insert=insert)
            runs[name].append(run)
            console.print(f"round {round_ + 1}, {name}: p50 {run.pct(50):.1f} ms, p99 {run.pct(99):.1f} ms, "
                          f"lost or reordered {run.lost_or_reordered}")
    table = Table("case", "p50 ms", "p95 ms", "p99 ms", "p99 vs default keys", "lost or reordered", "not shown in 2 s")
    rows = []
    for name, found in runs.items():
        merged = KeyRun(expected="")
        for run in found:
            merged.latencies_ms += run.latencies_ms
            merged.missed += run.missed
        base_name = name.split(",")[0] + ", default keys"
        base = KeyRun(expected="")
        for run in runs[base_name]:
            base.latencies_ms += run.latencies_ms
        lost = sum(run.lost_or_reordered for run in found)
        row = [name, f"{merged.pct(50):.1f}", f"{merged.pct(95):.1f}", f"{merged.pct(99):.1f}",
               f"{merged.pct(99) / base.pct(99):.2f}x", str(lost), str(merged.missed)]
        table.add_row(*row)
        rows.append("| " + " | ".join(row) + " |")
    console.print(table)
    lines = [
        "# Typing with the vim keymap", "",
        f"Written by `{shlex.join(['tinymorph', 'bench', 'keymap', *argv])}` on {time.strftime('%Y-%m-%d')}. "
        f"tinymorph in a pseudo-terminal, {args.keys} keys typed at 8 per second at the end of a line, each timed "
        "from the write to the moment the emulated screen (pyte) shows it; the four cases interleaved, "
        f"{args.rounds} round(s), pooled. With the vim keymap the keys are typed in insert mode (after `A`). "
        "'Worker generating': the idle delay is 0, so every key asks for a suggestion.", "",
        "| case | p50 ms | p95 ms | p99 ms | p99 vs default keys | lost or reordered | not shown in 2 s |",
        "|---|---:|---:|---:|---:|---:|---:|", *rows, "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    console.print(f"written to {args.out}")
    return 0
