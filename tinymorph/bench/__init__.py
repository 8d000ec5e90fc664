"""`tinymorph bench`: how fast the editor answers and how well, measured in one run on this machine,
written to docs/benchmarks.md. Never a timed unit test: these machines are shared and noisy, so
the report compares rows of the same run.

Owns: the command and the report. The measures live in `bench.engine` (decode paths side by side,
suggestion latency, the int8 weights' perplexity), `bench.keys` (keystrokes and ghost text in a
real terminal), `bench.quality` and `bench.quality_arms` (keystroke savings), `bench.concepts`
(concept sliders) and `bench.llama` (the llama.cpp anchor, when llama-cpp-python is installed).
`tinymorph bench sae` is `bench.sae`.
"""

import argparse
import dataclasses
import importlib.util
import os
import platform
import shlex
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console

from tinymorph.config import Settings


def _first_sentence(doc: str) -> str:
    """The module docstring's first sentence, whole (help text ends where its sentence does)."""
    flat = " ".join(doc.split())
    end = flat.find(". ")
    return flat if end < 0 else flat[: end + 1]


def run_bench(argv: list[str]) -> int:
    import torch

    from tinymorph.bench import engine
    from tinymorph.cli_common import worker_threads
    from tinymorph.lm.manifest import resolve_model
    from tinymorph.lm.model import load_model
    from tinymorph.paths import app_paths
    from tinymorph.sae.loading import load_sae

    parser = argparse.ArgumentParser(prog="tinymorph bench", description=_first_sentence(__doc__ or ""))
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--reps", type=int, default=10, help="requests per latency case (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the decode comparison")
    parser.add_argument("--keys", type=int, default=120, help="keys typed per terminal case (default 120)")
    parser.add_argument("--ghost", type=int, default=25, help="words typed to time the ghost text (default 25)")
    parser.add_argument("--quality", type=Path, metavar="TEXT",
                        help="a file or folder of held-out prose: also simulate a writer typing it (keystroke savings)")
    parser.add_argument("--quality-words", type=int, default=200)
    parser.add_argument("--text", type=Path, help="held-out prose for the int8 weights' perplexity (default: built-in)")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--only", choices=["quality", "ghost", "concepts", "sae"],
                        help="quality: only the simulated writer of --quality (no terminal, no llama.cpp, no extra); "
                        "ghost: only the ghost text's latency in a terminal (word ends and inside words), printed; "
                        "concepts: only the time to make a concept slider and to answer after a nudge, before and "
                        "now (written to docs/benchmarks-concepts.md); sae: what the shipped SAE costs against "
                        "--sae-before (start to ready, the lens per typed character, keys in a terminal; written to "
                        "docs/benchmarks-sae-serving.md)")
    parser.add_argument("--sae-before", type=Path, metavar="FOLDER", help="with --only sae: the SAE to compare with")
    parser.add_argument("--starts", type=int, default=3, help="with --only sae: worker starts per SAE (default 3)")
    parser.add_argument("--json", type=Path, help="with --only quality: write the last arm's summary here")
    parser.add_argument("--quality-offset", type=int, default=0,
                        help="type held-out chunks from this one on (default 0; docs/suggestions.md tunes on 3)")
    parser.add_argument("--sweep-confidence", metavar="LIST",
                        help="with --only quality: the new path at each suggestion_confidence (0,0.1,...) instead")
    args = parser.parse_args(argv)
    args.argv = argv
    console = Console()
    if args.only == "quality":
        return _only_quality(args, console)
    if args.only == "concepts":
        return _only_concepts(args, console)
    if args.only == "sae":
        return _only_sae(args, console)
    if importlib.util.find_spec("pyte") is None:
        # Said before anything runs: the terminal stage is the bench's first.
        console.print("tinymorph bench draws the editor in a terminal emulator, pyte, which comes with the bench "
                      "extra: python -m pip install -e \".[bench]\"")
        return 2
    if args.only == "ghost":
        from tinymorph.bench.keys import ghost_latency, terminal_home

        folder, env = terminal_home()
        for name, letters in (("after a word's last key", 0), ("inside a word, after its second letter", 2)):
            times, dropped = ghost_latency(folder, env, ["--model", args.model], args.ghost, letters=letters)
            console.print(f"ghost text {name}: {len(times)} words, median "
                          f"{statistics.median(times or [float('nan')]):.0f} ms, p95 {engine.pct(times, 95):.0f} ms "
                          f"({dropped} left out: ghost text from an earlier key still showed)")
        return 0
    settings = Settings(model=args.model)
    threads, cores = worker_threads(settings), torch.get_num_threads()
    manifest = resolve_model(args.model)
    report: dict[str, object] = {"threads": threads, "cores": cores}
    # First the editor in a terminal (separate processes; the least robust part, and it needs no
    # model in this process), then the engine here.
    console.print("[bold]keystrokes and ghost text[/] in a terminal")
    report.update(_terminal(args, threads, cores))
    console.print("[bold]worker start to ready[/]")
    report["ready"] = engine.ready_times(
        (("bf16 decode weights (before)", dataclasses.replace(settings, int8_decode=False)),
         ("int8 decode weights (now)", dataclasses.replace(settings, int8_decode=True))), manifest, 3)
    lm = load_model(manifest, app_paths().models_cache, lambda *_: None, int8_decode=True)
    sae = load_sae("default", manifest, lm.d_model, int(lm.model.config.num_hidden_layers))

    console.print(f"[bold]decode paths[/] (3 alternatives; {threads} thread(s), as the worker runs)")
    torch.set_num_threads(threads)
    report["decode"] = engine.decode_candidates(lm, sae, args.repeats)
    torch.set_num_threads(cores)
    report["decode_all_cores"] = engine.decode_candidates(lm, sae, 1, (engine.BEFORE, engine.NOW))
    report["llama"] = _llama(manifest, lm, threads, cores, console)

    console.print("[bold]suggestion latency[/]")
    torch.set_num_threads(cores)  # the editor before this run let torch take every core
    report["latency_before"] = engine.latencies(lm, sae, engine.BEFORE, args.reps)
    torch.set_num_threads(threads)
    report["latency_now"] = engine.latencies(lm, sae, engine.NOW, args.reps, prefill_threads=cores)
    torch.set_num_threads(cores)
    report["latency_now_all_cores"] = engine.latencies(lm, sae, engine.NOW, args.reps)

    console.print("[bold]packed attention and int8 decode weights[/]: perplexity and greedy tokens")
    report["perplexity"], report["greedy"] = _weights_quality(lm, args.text)

    if args.quality is not None:
        from tinymorph.bench import quality_arms

        report["quality"] = quality_arms.run_arms(lm, sae, args, threads, console)
    _write(args, report, argv)
    console.print(f"written to {args.out}")
    return 0


def _llama(manifest, lm, threads: int, cores: int, console: Console) -> dict[str, object]:  # type: ignore[no-untyped-def]
    from tinymorph.bench.engine import _text
    from tinymorph.bench.llama import llama_decode_speed
    from tinymorph.lm.model import assemble_gguf

    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        console.print("llama-cpp-python is not installed (pip install -e '.[bench]'): no llama.cpp anchor",
                      markup=False)
        return {}
    with tempfile.TemporaryDirectory() as folder:
        gguf = assemble_gguf(manifest, Path(folder))
        ids = [lm.tokenizer.bos_token_id, *lm.tokenizer(_text(lm, 0, 200), add_special_tokens=False).input_ids]
        out: dict[str, object] = {}
        for name, n in (("worker", threads), ("all", cores)):
            # In a child process: a native crash there (llama-cpp-python 0.3.36 built with AVX-512
            # and AMX segfaults on some Xeons) becomes a row of the report, not the end of the run.
            speed = _in_child(llama_decode_speed, gguf, ids, lm.hook_layer, n)
            if isinstance(speed, str):
                console.print(f"[yellow]llama.cpp anchor, {n} thread(s): {speed}[/]")
                out["error"] = speed
                return out
            out[name] = speed
        return out


def _child_main(conn, function, args) -> None:  # type: ignore[no-untyped-def]
    try:
        conn.send(function(*args))
    except Exception as exc:  # reported to the parent, which writes it into the report
        conn.send(f"{type(exc).__name__}: {exc}")


def _in_child(function, *args, timeout_s: float = 600.0):  # type: ignore[no-untyped-def]
    """`function(*args)` in a spawned child process; its result, or a sentence saying how the child
    failed (a signal, an exit code, an exception, a timeout)."""
    import multiprocessing
    import signal

    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child_main, args=(send, function, args), daemon=True)
    child.start()
    send.close()
    result = None
    if receive.poll(timeout_s):
        try:
            result = receive.recv()
        except EOFError:  # the child died before it answered
            result = None
    child.join(10)
    if result is not None:
        return result
    if child.exitcode is None:
        child.kill()
        return f"no answer in {timeout_s:.0f} s (killed)"
    if child.exitcode < 0:
        return f"crashed: {signal.Signals(-child.exitcode).name}"
    return f"exited with code {child.exitcode}"


def _weights_quality(lm, text: Path | None) -> tuple[tuple[float, float, float], tuple[int, int]]:  # type: ignore[no-untyped-def]
    from tinymorph.bench import engine
    from tinymorph.sae.corpus import heldout_sequences, open_corpus, token_sequences

    if text is not None:
        sequences = heldout_sequences(open_corpus(text, ["SOURCES.md"]), lm.tokenizer, 256, 20 * 255)
        prompts = [lm.tokenizer.decode(s[1:61]) for s in sequences[:20]]
    else:
        sequences = token_sequences(iter([engine.PROSE]), lm.tokenizer, 256)
        prompts = [engine._text(lm, 23 * k, 60) for k in range(20)]
    return engine.perplexities(lm, sequences), engine.greedy_match(lm, prompts)


def _only_concepts(args: argparse.Namespace, console: Console) -> int:
    """`--only concepts`: `bench.concepts` with the worker's threads, printed and written to
    docs/benchmarks-concepts.md (or --out when given)."""
    from tinymorph.bench import concepts
    from tinymorph.cli_common import worker_threads
    from tinymorph.lm.manifest import resolve_model
    from tinymorph.lm.model import load_model
    from tinymorph.paths import app_paths
    from tinymorph.sae.loading import load_sae

    manifest = resolve_model(args.model)
    lm = load_model(manifest, app_paths().models_cache, lambda *_: None, int8_decode=True)
    sae = load_sae("default", manifest, lm.d_model, int(lm.model.config.num_hidden_layers))
    lines = concepts.run(lm, sae, worker_threads(Settings(model=args.model)))
    return _write_only(args, console, "benchmarks-concepts.md",
                       "Concept sliders: time to make one, and to answer after a nudge", "concepts.py", lines)


def _write_only(args: argparse.Namespace, console: Console, name: str, title: str, module: str,
                lines: list[str]) -> int:
    """Print `lines` and write them under `title` to docs/`name` (or --out when given), headed by
    the command, the date and the machine; `module` (in tinymorph/bench/) says what is timed."""
    out = args.out if args.out != Path("docs/benchmarks.md") else Path("docs") / name
    head = [f"# {title}", "",
            f"`{shlex.join(['tinymorph', 'bench', *args.argv])}`, {time.strftime('%Y-%m-%d')}, "
            f"{platform.machine()}, {os.cpu_count()} cores (`tinymorph/bench/{module}` says what is timed).", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(head + lines) + "\n", encoding="utf-8")
    for line in lines:
        console.print(line, markup=False)
    return 0


def _only_sae(args: argparse.Namespace, console: Console) -> int:
    """`--only sae`: `bench.sae_serving` for --sae-before against the shipped SAE, printed and
    written to docs/benchmarks-sae-serving.md (or --out when given)."""
    from tinymorph.bench import sae_serving

    if args.sae_before is None or not args.sae_before.is_dir():
        console.print("--only sae needs --sae-before FOLDER (an SAE in sae-lens format with its feature data)")
        return 2
    return _write_only(args, console, "benchmarks-sae-serving.md", "What the shipped SAE costs the writer",
                       "sae_serving.py", sae_serving.run(args, console))


def _only_quality(args: argparse.Namespace, console: Console) -> int:
    """`--only quality`: load the model and the SAE, run the --quality arms, print them, and write
    the last arm's summary to --json."""
    import json

    from tinymorph.bench import quality_arms
    from tinymorph.cli_common import worker_threads
    from tinymorph.lm.manifest import resolve_model
    from tinymorph.lm.model import load_model
    from tinymorph.paths import app_paths
    from tinymorph.sae.loading import load_sae

    if args.quality is None:
        console.print("--only quality needs --quality TEXT (a file or folder of held-out prose)")
        return 2
    settings = Settings(model=args.model)
    manifest = resolve_model(args.model)
    lm = load_model(manifest, app_paths().models_cache, lambda *_: None, int8_decode=True)
    sae = load_sae("default", manifest, lm.d_model, int(lm.model.config.num_hidden_layers))
    if args.sweep_confidence:
        return quality_arms.sweep_confidence(lm, sae, args, worker_threads(settings), console)
    results = quality_arms.run_arms(lm, sae, args, worker_threads(settings), console)
    for line in quality_arms.quality_lines(results, args):
        console.print(line, markup=False, highlight=False)
    if args.json is not None:
        args.json.write_text(json.dumps(list(results.values())[-1].as_json(), indent=2) + "\n", encoding="utf-8")
        console.print(f"written to {args.json}")
    return 0


def _terminal(args: argparse.Namespace, threads: int, cores: int) -> dict[str, object]:
    from tinymorph.bench.keys import ghost_latency, median, terminal_home, type_keys

    folder, env = terminal_home()
    model = ["--model", args.model]
    def once_more(run, *args, **kwargs):  # type: ignore[no-untyped-def]
        """A start that never reached 'ready' in 120 s is tried once more, and said (a bench
        run is long; one stuck start should not lose it)."""
        try:
            return run(*args, **kwargs)
        except TimeoutError as exc:
            Console().print(f"[yellow]a tinymorph start never became ready; trying once more[/] ({str(exc)[:200]})")
            retries.append(str(exc)[:200])
            return run(*args, **kwargs)

    retries: list[str] = []
    generating = [*model, "--idle-delay-ms", "0"]
    cases = {
        "no model": once_more(type_keys, folder, env, ["--no-suggestions"], args.keys, ready=("suggestions off",)),
        f"worker generating ({threads} thread, niced: the editor)": once_more(
            type_keys, folder, env, generating, args.keys),
        f"worker generating ({cores} threads, niced)": once_more(
            type_keys, folder, {**env, "TINYMORPH_WORKER_THREADS": str(cores)}, generating, args.keys),
        f"worker generating ({cores} threads, not niced: before)": once_more(
            type_keys, folder, {**env, "TINYMORPH_WORKER_THREADS": str(cores), "TINYMORPH_WORKER_NICE": "0"},
            generating, args.keys),
    }
    ghost, ghost_dropped = once_more(ghost_latency, folder, env, model, args.ghost)
    in_word, in_word_dropped = once_more(ghost_latency, folder, env, model, args.ghost, letters=2)
    return {"keys": cases, "ghost": ghost, "ghost_median": median(ghost), "ghost_dropped": ghost_dropped,
            "ghost_in_word": in_word, "ghost_in_word_dropped": in_word_dropped, "retries": retries}


def _write(args: argparse.Namespace, r: dict, argv: list[str]) -> None:  # type: ignore[type-arg]
    import torch

    from tinymorph.bench import engine

    threads, cores = r["threads"], r["cores"]
    decode, before, now = r["decode"], engine.BEFORE.name, engine.NOW.name
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{shlex.join(['tinymorph', 'bench', *argv])}` on {time.strftime('%Y-%m-%d')}, "
        f"{platform.machine()}, {cores} cores, torch {torch.__version__}, model `{args.model}`. The worker runs "
        f"{threads} torch thread(s) (one fewer than the cores), niced and SCHED_BATCH. Rerun it to reproduce; "
        "numbers move with machine load, so compare rows of the same run.",
        "",
        "## Decode: tokens/s per alternative, 3 alternatives, the candidates side by side",
        "",
        f"`Generator.suggest` on four 200-token prompts, up to 24 tokens, {threads} thread(s), interleaved "
        f"{args.repeats} times (median); with 1 and 16 SAE features turned up the alternatives are also ranked.",
        "",
        "| decode path | unsteered | 1 feature | 16 features | 1 feature vs before |",
        "|---|---:|---:|---:|---:|",
        *(f"| {name} | {v.get(0, 0):.1f} | {v.get(1, 0):.1f} | {v.get(16, 0):.1f} | "
          f"{v.get(1, 0) / decode[before][1]:.2f}x |" for name, v in decode.items()),
        "",
        f"With all {cores} cores: before {r['decode_all_cores'][before][1]:.1f}, now "
        f"{r['decode_all_cores'][now][1]:.1f} tokens/s per alternative (1 feature).",
        "",
    ]
    llama = r.get("llama") or {}
    if "error" in llama:
        lines += ["### The anchor: llama.cpp on the same GGUF (Q4_K_M)", "",
                  f"llama.cpp ran in a child process and failed there: {llama['error']}. No anchor in this run. "
                  "On CPUs with AVX-512 and AMX, llama-cpp-python 0.3.36 as the bench extra builds it has been seen "
                  "to segfault on this GGUF; a build without them works (see README, Benchmarks), slower than "
                  "its best build.", ""]
    elif llama:
        w, a = llama["worker"], llama["all"]
        summed = 3 * decode[now][1]
        lines += [
            "### The anchor: llama.cpp on the same GGUF (Q4_K_M), same run",
            "",
            "| llama.cpp (llama-cpp-python 0.3.36), greedy | threads | tokens/s |",
            "|---|---:|---:|",
            f"| one sequence, unsteered | {w.threads} | {w.single:.1f} |",
            f"| one sequence, unsteered | {a.threads} | {a.single:.1f} |",
            f"| 3 sequences in one batch, control vector at the hook layer, per sequence | {w.threads} | "
            f"{w.batch3_per_sequence:.1f} |",
            f"| the same | {a.threads} | {a.batch3_per_sequence:.1f} |",
            "",
            f"tinymorph now, summed over its 3 alternatives (1 feature, {threads} thread(s)): {summed:.1f} tokens/s "
            f"= {summed / w.single:.2f}x llama.cpp's single sequence at {w.threads} thread(s), "
            f"{summed / a.single:.2f}x at {a.threads}.",
            "",
        ]
    lines += ["## Suggestion latency (engine, the worker's code path)", "",
              "First token and full suggestion (3 alternatives, up to 24 tokens, cut at a sentence end), ms. "
              "*Cold*: empty KV cache. *One-word edit*: the cache holds the text before ' and' was typed. "
              "*Slider nudge*: the same text, a feature's strength moved from +0.125 to +0.145.", "",
              "| path | threads | context | case | tokens run | first token p50 | p95 | full p50 | p95 |",
              "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for key, name, t in (("latency_before", "before", cores), ("latency_now", "now", threads),
                         ("latency_now_all_cores", "now", cores)):
        for row in r[key]:
            lines.append(f"| {name} | {t} | {row['context']} | {row['case']} | {row['prefilled']:.0f} | "
                         f"{row['first_p50']:.0f} | {row['first_p95']:.0f} | {row['full_p50']:.0f} | "
                         f"{row['full_p95']:.0f} |")
    (before, packed, int8), (same, total) = r["perplexity"], r["greedy"]
    lines += ["", "## What the packed attention and the int8 decode weights cost", "",
              "Held-out perplexity, the same sequences in each arm (teacher forcing, one sequence at a time):", "",
              "| arm | perplexity | vs before |", "|---|---:|---:|",
              f"| before: transformers' SDPA, bf16 weights | {before:.3f} | |",
              f"| query heads packed per KV head (what prefills run now), bf16 weights | {packed:.3f} | "
              f"{packed / before - 1:+.2%} |",
              f"| the same, int8 copies used for every input (the editor: decode steps only) | {int8:.3f} | "
              f"{int8 / before - 1:+.2%} |", "",
              f"Greedy suggestions (24 tokens, no steering) before and now are the same on {same} of {total} "
              "prompts.", ""]
    if "quality" in r:
        from tinymorph.bench.quality_arms import quality_lines

        lines += quality_lines(r["quality"], args)
    keys = r["keys"]
    idle = keys["no model"]
    lines += ["## Keystrokes in a real terminal", "",
              f"tinymorph in a pseudo-terminal, {args.keys} keys typed at 8 per second at the end of a line; each "
              "key timed from the write to the moment the emulated screen (pyte) shows it. 'Worker generating': "
              "the idle delay is 0, so every key asks for a suggestion. Lost or reordered: characters of the typed "
              "text missing or out of place in the saved file.", "",
              "| case | p50 | p95 | p99 | p99 vs no model | lost or reordered | not shown in 2 s |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, run in keys.items():
        lines.append(f"| {name} | {run.pct(50):.1f} ms | {run.pct(95):.1f} ms | {run.pct(99):.1f} ms | "
                     f"{run.pct(99) / idle.pct(99):.2f}x | {run.lost_or_reordered} | {run.missed} |")
    lines += ["", f"Ghost text after the last key of a word (default idle delay {Settings().idle_delay_ms} ms), "
                  f"{len(r['ghost'])} words: "
                  f"median {r['ghost_median']:.0f} ms, p95 {engine.pct(r['ghost'], 95):.0f} ms ({r['ghost_dropped']} "
                  "word(s) left out: ghost text already showed before their last key). Inside a word, after its "
                  f"second letter (ghost text that finishes it), {len(r['ghost_in_word'])} words: median "
                  f"{statistics.median(r['ghost_in_word'] or [float('nan')]):.0f} ms, "
                  f"p95 {engine.pct(r['ghost_in_word'], 95):.0f} ms "
                  f"({r['ghost_in_word_dropped']} left out: ghost text from an earlier key still showed).", "",
              "Worker start to 'ready' (`EngineClient.start` to `WorkerReady`: the process spawned, the model "
              "loaded from the cache, the SAE and its features), and from 'ready' to the answer of a suggestion "
              "asked at once (3 alternatives, 400 characters of context), seconds, 3 starts each, interleaved:", "",
              "| worker | start to ready, median | each | ready to first suggestion, median | each |",
              "|---|---:|---|---:|---|",
              *(f"| {name} | {statistics.median(s for s, _ in v):.2f} | {', '.join(f'{s:.2f}' for s, _ in v)} | "
                f"{statistics.median(f for _, f in v):.2f} | {', '.join(f'{f:.2f}' for _, f in v)} |"
                for name, v in r["ready"].items()), ""]
    if r["retries"]:
        lines += [f"Starts that never became ready in 120 s and were tried again: {len(r['retries'])} "
                  f"({'; '.join(r['retries'])}).", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
