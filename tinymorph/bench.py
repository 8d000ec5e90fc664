"""`tinymorph bench`: suggestion latency and keystroke latency with the real model.

Owns: the benchmark that issue targets are judged by (never a timed unit test). Prints a table
(rich) and writes docs/benchmarks.md. Measures, on this machine, in one run:
- time to first token and to a full suggestion (3 alternatives), p50/p95, at 128- and
  511-token contexts, cold (empty KV cache) and after a one-word edit (KV cache reused);
- the UI's keystroke handling latency p50/p99 while the worker generates, next to the same
  measure with no model running (a ratio from the same run: these machines are noisy).
Prose comes from text built into the code, so the benchmark needs no corpus.
"""

import argparse
import asyncio
import gc
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tinymorph.config import Settings
from tinymorph.lm.model import CALIBRATION_TEXT

PROSE = (CALIBRATION_TEXT + " ") * 12  # ~1,500 tokens of ordinary prose


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def bench_engine(model: str, reps: int) -> list[dict]:
    """Engine latencies in this process (the worker's code path without the queue hop)."""
    from tinymorph.engine.generate import Generator
    from tinymorph.engine.protocol import SuggestRequest
    from tinymorph.lm.manifest import resolve_model
    from tinymorph.lm.model import load_model
    from tinymorph.paths import app_paths

    lm = load_model(resolve_model(model), app_paths().models_cache, lambda *_: None)
    tok = lm.tokenizer
    all_ids = tok(PROSE, add_special_tokens=False).input_ids
    rows = []
    for context in (128, 511):
        gen = Generator(lm, context)
        results: dict[str, list[tuple[float, float]]] = {"cold": [], "one-word edit": []}
        for rep in range(reps):
            # A different stretch of prose each rep, cut to context - 1 tokens (+ BOS).
            start = rep * 37
            text = tok.decode(all_ids[start : start + context - 1])
            gen._prefix = None  # cold: nothing cached
            req = SuggestRequest(rep, text, alternatives=3, max_new_tokens=24, seed=rep)
            cold = gen.suggest(req, lambda: False, lambda *_: None)
            # One-word edit: the writer types " and" after the same text.
            edited = tok.decode(all_ids[start + 8 : start + context - 1]) + " and"
            gen._prefix = None
            gen.prefill(gen.context_ids(tok.decode(all_ids[start + 8 : start + context - 1])), ())
            warm = gen.suggest(SuggestRequest(rep, edited, alternatives=3, max_new_tokens=24, seed=rep),
                               lambda: False, lambda *_: None)
            assert cold is not None and warm is not None
            results["cold"].append((cold.first_token_ms, cold.total_ms))
            results["one-word edit"].append((warm.first_token_ms, warm.total_ms))
        for case, values in results.items():
            first, total = [v[0] for v in values], [v[1] for v in values]
            rows.append({
                "context": context, "case": case,
                "first_p50": pct(first, 50), "first_p95": pct(first, 95),
                "full_p50": pct(total, 50), "full_p95": pct(total, 95),
            })
    del lm, gen
    gc.collect()
    return rows


async def _keystrokes(with_model: bool, model: str, keys: int) -> list[float]:
    from tinymorph.cli_common import worker_config
    from tinymorph.engine.client import EngineClient
    from tinymorph.lm.manifest import resolve_model
    from tinymorph.paths import app_paths, package_data_dir
    from tinymorph.store import Store
    from tinymorph.ui.app import make_app

    settings = Settings(idle_delay_ms=0, suggestions=with_model, model=model)
    folder = Path(tempfile.mkdtemp())
    path = folder / "bench.md"
    path.write_text(PROSE[:2500])
    engine = EngineClient(worker_config(settings, app_paths(), resolve_model(model))) if with_model else None
    app = make_app(path, settings, Store(None), engine, package_data_dir("themes"))
    latencies = []
    async with app.run_test(size=(100, 30)) as pilot:
        app.editor.move_cursor(app.editor.document.end)
        if with_model:
            while not app.model_ready:
                await pilot.pause(0.1)
        letters = "the sea was calm and the boats came in " * 10
        for ch in letters[:keys]:
            t0 = time.perf_counter()
            await pilot.press("space" if ch == " " else ch)
            latencies.append((time.perf_counter() - t0) * 1000)
            # Every keystroke asks anew (idle delay 0), so the worker generates throughout.
            await pilot.pause(0.02)
        app.exit()
    if engine is not None:
        engine.stop()
    return latencies


def run_bench(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tinymorph bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--reps", type=int, default=12, help="requests per case (default 12)")
    parser.add_argument("--keys", type=int, default=150, help="keystrokes per UI case (default 150)")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args(argv)
    console = Console()
    console.print("[bold]engine latencies[/] (real model, this process)")
    rows = bench_engine(args.model, args.reps)
    table = Table("context (tokens)", "case", "first token p50", "p95", "full suggestion p50", "p95")
    for r in rows:
        table.add_row(str(r["context"]), r["case"], f"{r['first_p50']:.0f} ms", f"{r['first_p95']:.0f} ms",
                      f"{r['full_p50']:.0f} ms", f"{r['full_p95']:.0f} ms")
    console.print(table)
    console.print("[bold]keystroke handling[/] (headless app; worker process generating)")
    idle = asyncio.run(_keystrokes(False, args.model, args.keys))
    busy = asyncio.run(_keystrokes(True, args.model, args.keys))
    keys = Table("case", "p50", "p99", "p99 ratio to no model")
    keys.add_row("no model", f"{pct(idle, 50):.1f} ms", f"{pct(idle, 99):.1f} ms", "1.00")
    keys.add_row("worker generating", f"{pct(busy, 50):.1f} ms", f"{pct(busy, 99):.1f} ms",
                 f"{pct(busy, 99) / pct(idle, 99):.2f}")
    console.print(keys)
    _write(args.out, rows, idle, busy, args)
    console.print(f"written to {args.out}")
    return 0


def _write(out: Path, rows: list[dict], idle: list[float], busy: list[float], args) -> None:
    import platform

    import torch

    lines = [
        "# Benchmarks",
        "",
        f"Written by `tinymorph bench --reps {args.reps} --keys {args.keys}` on "
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, model `{args.model}` (bf16). Rerun it to reproduce; numbers move "
        "with machine load, so compare rows of the same run.",
        "",
        "## Suggestion latency (engine)",
        "",
        "Time from the worker taking a request to the first sampled token, and to all 3 alternatives "
        "(up to 24 tokens, cut at a sentence end). *Cold*: empty KV cache, the whole context is "
        "prefilled. *One-word edit*: the cache holds the text before the edit; only the new tokens run.",
        "",
        "| context (tokens) | case | first token p50 | p95 | full suggestion p50 | p95 |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['context']} | {r['case']} | {r['first_p50']:.0f} ms | {r['first_p95']:.0f} ms | "
                     f"{r['full_p50']:.0f} ms | {r['full_p95']:.0f} ms |")
    lines += [
        "",
        "## Keystroke handling in the editor",
        "",
        "Time for the headless app (Textual Pilot) to take one keystroke and settle, measured around "
        "`pilot.press`, with the suggestion idle delay at 0 so that every keystroke sends a request and "
        "the worker process generates throughout; next to the same run with no model.",
        "",
        "Read this with care: `pilot.press` waits for the app to settle and repaint, so the no-model "
        "row is mostly Pilot's own cost, not key handling; the ratio between the rows is what the "
        "worker costs the UI. On a 2-core machine the worker's torch threads compete with the UI "
        "process for both cores. The issue's target (keystroke p99 <= 16 ms while generating) is not "
        "shown by this measure.",
        "",
        "| case | p50 | p99 | p99 ratio to no model |",
        "|---|---|---|---|",
        f"| no model | {pct(idle, 50):.1f} ms | {pct(idle, 99):.1f} ms | 1.00 |",
        f"| worker generating | {pct(busy, 50):.1f} ms | {pct(busy, 99):.1f} ms "
        f"| {pct(busy, 99) / pct(idle, 99):.2f} |",
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines), encoding="utf-8")
