"""The `--quality` arms of `tinymorph bench`: the suggestion paths compared on the same held-out
text, requests and seeds, each adding one change to the one before, and their report. The
simulated writer is `bench.quality`. Imports torch lazily; no Textual, no store.
"""

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from tinymorph.config import Settings

if TYPE_CHECKING:
    from tinymorph.bench.quality import QualityResult


QUALITY_ARMS = (
    # name, Generator(heal_words, greedy_first, first_by_logprob), simulate_writer(in_word), confidence
    # (None: the setting's)
    ("before: word ends only, the first alternative sampled, to a sentence end", False, False, False, False, 0.0),
    ("+ finish the word (token healing, asked inside words too)", True, False, False, True, 0.0),
    ("  (instead of greedy: the best of the 3 sampled by total log-probability first)", True, False, True, True, 0.0),
    ("+ the likeliest first (greedy alternative 0)", True, True, False, True, 0.0),
    ("+ stop where confidence ends (now)", True, True, False, True, None),
)
"""The suggestion paths compared by `--quality`, each adding one change to the one before, on the
same text, requests and seeds (the int8 decode path of the editor in every arm)."""


def quality_text(folder: Path, offset: int = 0) -> str:
    """Three held-out chunks of `folder` (a corpus folder; a single file: its first chunks),
    starting at chunk `offset`."""
    from tinymorph.sae.corpus import open_corpus

    corpus = open_corpus(folder, ["SOURCES.md"])
    chunks = list(corpus.chunks("heldout") if len(corpus.files) > 1 else corpus.chunks("all"))
    return "\n\n".join(chunks[offset : offset + 3])


def run_arms(lm, sae, args: argparse.Namespace, threads: int, console: Console) -> "dict[str, QualityResult]":  # type: ignore[no-untyped-def]
    import torch

    from tinymorph.bench import engine
    from tinymorph.bench.quality import simulate_writer
    from tinymorph.engine.generate import Generator

    text = quality_text(args.quality, args.quality_offset)
    torch.set_num_threads(threads)
    confidence = Settings().suggestion_confidence
    out = {}
    with engine.running(lm, engine.NOW):
        for name, heal, greedy, by_logprob, in_word, cut in QUALITY_ARMS:
            gen = Generator(lm, 511, sae, sampler=engine.NOW.sampler, heal_words=heal, greedy_first=greedy,
                            first_by_logprob=by_logprob)
            t0 = time.perf_counter()
            result = simulate_writer(gen, text, words=args.quality_words, in_word=in_word,
                                     confidence=confidence if cut is None else cut)
            out[name] = result
            console.print(f"{name}: keystroke savings {result.keystroke_savings:.1%}, acceptance "
                          f"{result.acceptance_rate:.1%} ({time.perf_counter() - t0:.0f} s)")
    return out


def sweep_confidence(lm, sae, args: argparse.Namespace, threads: int, console: Console) -> int:  # type: ignore[no-untyped-def]
    """The new path (finish the word, likeliest first) at each threshold of --sweep-confidence."""
    import torch

    from tinymorph.bench import engine
    from tinymorph.bench.quality import simulate_writer
    from tinymorph.engine.generate import Generator

    text = quality_text(args.quality, args.quality_offset)
    torch.set_num_threads(threads)
    console.print("| suggestion_confidence | keystroke savings | acceptance | shown per 100 words | "
                  "words right of words shown |", markup=False)
    with engine.running(lm, engine.NOW):
        for theta in (float(t) for t in args.sweep_confidence.split(",")):
            gen = Generator(lm, 511, sae, sampler=engine.NOW.sampler)
            q = simulate_writer(gen, text, words=args.quality_words, in_word=True, confidence=theta)
            console.print(f"| {theta} | {q.keystroke_savings:.1%} | {q.acceptance_rate:.1%} | {q.per_100_words():.0f} "
                          f"| {q.word_precision:.1%} |", markup=False)
    return 0


def quality_lines(results: dict, args: argparse.Namespace) -> list[str]:  # type: ignore[type-arg]
    """The report's section on how useful the suggestions are (`--quality`)."""
    lines = ["## How useful the suggestions are (`--quality`)", "",
             f"A simulated writer types {args.quality_words} words of held-out prose (`{args.quality}`) a character "
             "at a time, taking a suggestion with Tab when all of it is right and word by word (Ctrl+Right) while "
             "it is right (Trnka and McCoy 2008; `bench/quality.py`). Each arm adds one change to the one above; "
             f"same text, same seeds. The confidence cut is `suggestion_confidence` = "
             f"{Settings().suggestion_confidence}.", "",
             "| path | keystroke savings | first word right | acceptance | shown per 100 words | words right of "
             "words shown | word end: shown, acceptance | in word: shown, acceptance |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, q in results.items():
        lines.append(f"| {name} | {q.keystroke_savings:.1%} | {q.first_word_rate:.1%} | {q.acceptance_rate:.1%} | "
                     f"{q.per_100_words():.0f} | {q.word_precision:.1%} | "
                     f"{q.shown['word end']}, {q.rate(q.taken, 'word end'):.1%} | "
                     f"{q.shown['in word']}, {q.rate(q.taken, 'in word'):.1%} |")
    return [*lines, ""]
