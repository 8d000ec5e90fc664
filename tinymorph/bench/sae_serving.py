"""`tinymorph bench --only sae --sae-before FOLDER`: what a wider SAE costs the writer, the SAE
before and the shipped one side by side in one run.

Owns: three measures, each interleaved between the two SAEs so machine load falls on both alike:
- worker start to 'ready' (`engine.ready_times`: process spawned, model loaded, SAE and its lens
  table loaded) and from 'ready' to the first suggestion, seconds;
- the lens's share of a keystroke in the worker's own code: `Generator.lens_of` (prefill of the
  new tokens through the KV cache, the SAE encoding of their rows, the lens summary) for a text
  typed one character at a time, ms per character, median and p95; the same prefill without an
  SAE is the floor;
- keys typed in a real terminal with the worker generating at every key (`bench.keys.type_keys`),
  p50 / p95 / p99 ms from the key's write to the screen showing it, against no model.
Runs the real model; never a unit test. Prints the lines and returns them for the report.
"""

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

from rich.console import Console

from tinymorph.config import Settings

TYPED = (
    "My grandmother kept bees behind the house. Every summer she would put on her veil, light the smoker, "
    "and open the hives while I watched from the kitchen window."
)


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def _lens_times(before: Path, chars: int) -> dict[str, list[float]]:
    """ms per typed character of `Generator.lens_of`, interleaved: no SAE, the SAE in `before`,
    the shipped one."""
    import torch

    from tinymorph.cli_common import worker_threads
    from tinymorph.engine.generate import Generator
    from tinymorph.engine.lens import lens_tensors
    from tinymorph.features import load_feature_data
    from tinymorph.lens_table import lens_table
    from tinymorph.lm.manifest import resolve_model, resolve_sae
    from tinymorph.lm.model import load_model
    from tinymorph.paths import app_paths
    from tinymorph.sae.loading import load_sae

    settings = Settings()
    torch.set_num_threads(worker_threads(settings))  # as the worker runs
    manifest = resolve_model(settings.model)
    lm = load_model(manifest, app_paths().models_cache, lambda *_: None, int8_decode=True)
    generators: dict[str, Generator] = {"no SAE (prefill only)": Generator(lm, settings.context_tokens)}
    for name, choice in ((f"before: {before.name}", str(before)), ("shipped", "default")):
        source = resolve_sae(choice, manifest, app_paths().cache_dir)
        sae = load_sae(source, manifest, lm.d_model, int(lm.model.config.num_hidden_layers))
        assert source.feature_folder is not None
        max_acts, weights, groups = lens_tensors(lens_table(load_feature_data(source.feature_folder, sae.d_sae)))
        generators[f"{name} ({sae.d_sae:,} features)"] = Generator(
            lm, settings.context_tokens, sae, max_acts, lens_weights=weights, lens_groups=groups)
    times: dict[str, list[float]] = {name: [] for name in generators}
    start = TYPED[:40]
    for gen in generators.values():
        gen.lens_of(start)  # the KV cache of the start, as an editor that has been open a while
    for k in range(len(start) + 1, len(start) + 1 + chars):
        text = (TYPED * 4)[:k]
        for name, gen in generators.items():
            began = time.perf_counter()
            gen.lens_of(text)
            times[name].append((time.perf_counter() - began) * 1000)
    return times


def run(args: argparse.Namespace, console: Console) -> list[str]:
    """The three measures for the SAE in `args.sae_before` against the shipped one, as Markdown
    lines. Raises RuntimeError if a worker fails or a terminal never becomes ready."""
    from tinymorph.bench import engine
    from tinymorph.bench.keys import terminal_home, type_keys
    from tinymorph.lm.manifest import resolve_model

    before = Path(args.sae_before).resolve()
    settings = Settings(model=args.model)
    manifest = resolve_model(args.model)
    lines = [f"SAE before: `{before.name}`; shipped: `{manifest.default_sae}`.", ""]

    console.print("[bold]worker start to ready[/], each SAE")
    arms = ((f"before: {before.name}", dataclasses.replace(settings, sae=str(before))),
            ("shipped", dataclasses.replace(settings, sae="default")))
    ready = engine.ready_times(arms, manifest, args.starts)
    lines += ["Worker start to 'ready' and 'ready' to the first suggestion, seconds, "
              f"{args.starts} starts each, interleaved:", "",
              "| SAE | start to ready, median | each | ready to first suggestion, median | each |",
              "|---|---:|---|---:|---|"]
    for name, runs in ready.items():
        up, first = [r[0] for r in runs], [r[1] for r in runs]
        lines.append(f"| {name} | {statistics.median(up):.2f} | {', '.join(f'{u:.2f}' for u in up)} | "
                     f"{statistics.median(first):.2f} | {', '.join(f'{f:.2f}' for f in first)} |")

    console.print("[bold]the lens per typed character[/] (Generator.lens_of)")
    lens = _lens_times(before, args.keys)
    floor = statistics.median(next(iter(lens.values())))
    lines += ["", f"`Generator.lens_of` per typed character (prefill of the new tokens through the KV cache, "
              f"SAE encoding, lens summary), {args.keys} characters, interleaved, ms:", "",
              "| SAE | median | p95 | median vs no SAE |", "|---|---:|---:|---:|"]
    for name, values in lens.items():
        lines.append(f"| {name} | {statistics.median(values):.1f} | {_p95(values):.1f} | "
                     f"{statistics.median(values) / floor:.2f}x |")

    console.print("[bold]keys typed in a terminal[/], worker generating at every key")
    folder, env = terminal_home()
    generating = ["--model", args.model, "--idle-delay-ms", "0"]
    cases = {
        "no model": type_keys(folder, env, ["--no-suggestions"], args.keys, ready=("suggestions off",)),
        f"before: {before.name}": type_keys(folder, env, [*generating, "--sae", str(before)], args.keys),
        "shipped": type_keys(folder, env, [*generating, "--sae", "default"], args.keys),
    }
    base = cases["no model"].pct(99)
    lines += ["", f"{args.keys} keys typed at 8 per second in a pseudo-terminal, each timed from the write to the "
              "screen showing it (`bench.keys`), ms:", "",
              "| case | p50 | p95 | p99 | p99 vs no model | lost or reordered | not shown in 2 s |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, run_ in cases.items():
        lines.append(f"| {name} | {run_.pct(50):.1f} | {run_.pct(95):.1f} | {run_.pct(99):.1f} "
                     f"| {run_.pct(99) / base:.2f}x | {run_.lost_or_reordered} | {run_.missed} |")
    return lines
