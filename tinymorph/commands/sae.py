"""`tinymorph sae train|eval`: train an SAE on a folder of text, evaluate one on held-out text.

Owns: argument parsing and rich progress / tables for these commands. The work lives in
`tinymorph.sae`. Errors from the TinymorphError hierarchy reach `cli.main`, which prints them.
"""

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from tinymorph.cli_common import add_model_options, add_sae_option, add_split_option, load_cli_model
from tinymorph.commands.features import load_cli_sae
from tinymorph.errors import SAEError
from tinymorph.sae.kl_finetune import KL_CHECKPOINT_TOKENS, KL_LR
from tinymorph.sae.runs import TrainOptions

LOG_EVERY_STEPS = 25
"""Steps between progress lines when the output is not a terminal."""


def _train_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    d = TrainOptions()
    p = sub.add_parser(
        "train",
        help="train a TopK SAE on folders of .txt/.md files (or fine-tune one, or resume a run)",
        description="Train an SAE (sae-lens, TopK + AuxK) on the residual stream of the model at one "
        "layer, over the training side of one or more folders of text, mixed (5% of each folder's "
        "chunks are held out for `sae eval`). Writes the SAE, a checkpoint and held-out metrics at "
        "every checkpoint into --out and nothing anywhere else. Ctrl+C stops after the current "
        "step and leaves a usable SAE; --resume goes on from the last checkpoint.",
    )
    p.add_argument("corpus", type=Path, nargs="*", help="folders of .txt / .md files (read recursively), or files")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--resume", action="store_true",
        help="go on from the last checkpoint in --out, with the corpora, options, data order and schedule "
        "that run started with",
    )
    p.add_argument(
        "--from", dest="start_from", metavar="SAE",
        help="fine-tune this SAE ('default' for the shipped one, or a folder in sae-lens format) on the "
        "corpus instead of starting from random weights",
    )
    p.add_argument(
        "--layer", type=int, help=f"decoder layer whose output is encoded (default {d.layer}; with --from: that SAE's)"
    )
    p.add_argument("--width", type=int, help=f"number of latents (default {d.d_sae}; with --from: that SAE's)")
    p.add_argument("--k", type=int, help=f"active latents per token, the L0 (default {d.k}; with --from: that SAE's)")
    p.add_argument("--tokens", type=int, default=d.tokens, help=f"training tokens (default {d.tokens:,})")
    p.add_argument(
        "--seq-len", type=int, default=d.seq_len, help=f"tokens per sequence, BOS included (default {d.seq_len})"
    )
    p.add_argument(
        "--objective", choices=("mse", "kl"), default=d.objective,
        help="mse: train on reconstruction (sae-lens). kl: fine-tune the --from SAE on the model's next-token "
        "distribution with it spliced in, plus reconstruction (end-to-end; lowers the loss increase; ~117 "
        "tokens/s on 2 cores) (default mse)",
    )
    p.add_argument("--lr", type=float, help=f"learning rate (default {d.lr}; with --objective kl: {KL_LR})")
    p.add_argument(
        "--checkpoint-tokens", type=int,
        help=f"training tokens between checkpoints (default {d.checkpoint_tokens:,}; with --objective kl: "
        f"{KL_CHECKPOINT_TOKENS:,}; with --resume: the run's)",
    )
    p.add_argument(
        "--eval-tokens", type=int,
        help=f"held-out tokens per corpus evaluated at each checkpoint; 0: none (default {d.eval_tokens:,}; "
        "with --resume: the run's)",
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, help=f"cpu or cuda (default {d.device})")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip files whose name matches")
    add_model_options(p)


def _start_folder(choice: str, args: argparse.Namespace) -> Path:
    from tinymorph.commands.features import sae_source

    source = sae_source(args, choice)
    if source.folder is None:
        raise SAEError(f"--from needs the shipped SAE or a local folder, not {choice!r}")
    return source.folder


def _base_shape(folder: Path) -> dict[str, int]:
    """Layer, width and k of the SAE in `folder` (its cfg.json), for fine-tuning it as it is.
    Raises SAEError when cfg.json cannot be read."""
    from tinymorph.lm.hooks import layer_for_hook

    try:
        cfg = json.loads((folder / "cfg.json").read_text(encoding="utf-8"))
        shape = {"d_sae": int(cfg["d_sae"])}
        if "k" in cfg:
            shape["k"] = int(cfg["k"])
        hook = (cfg.get("metadata") or {}).get("hook_name") or cfg.get("hook_name")
        if hook:
            shape["layer"] = layer_for_hook(hook)
        return shape
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SAEError(f"cannot read the SAE to start from, {folder / 'cfg.json'}: {exc}") from exc


def _first(*values: int | None) -> int:
    return next(v for v in values if v is not None)


def run_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from tinymorph.sae.corpus import open_corpus
    from tinymorph.sae.kl_finetune import finetune_kl
    from tinymorph.sae.runs import resume_state
    from tinymorph.sae.train import train_sae

    console = Console(stderr=True)
    start_from = _start_folder(args.start_from, args) if args.start_from else None
    if args.resume:
        if args.corpus or start_from:
            raise SAEError("--resume goes on with the corpora and SAE the run started with; give only --out")
        options, corpora, _meta = resume_state(args.out)
        # Where it runs and what is measured on the way may change; what is trained may not.
        options = replace(
            options,
            device=args.device,
            checkpoint_tokens=args.checkpoint_tokens or options.checkpoint_tokens,
            eval_tokens=options.eval_tokens if args.eval_tokens is None else args.eval_tokens,
        )
    else:
        if not args.corpus:
            raise SAEError("give one or more folders of text to train on (or --resume with --out)")
        corpora = [open_corpus(path, args.exclude) for path in args.corpus]
        base = _base_shape(start_from) if start_from else {}
        kl = args.objective == "kl"
        if kl and start_from is None:
            raise SAEError("--objective kl fine-tunes a trained SAE: give --from SAE ('default' for the shipped one)")
        options = TrainOptions(
            layer=_first(args.layer, base.get("layer"), TrainOptions.layer),
            d_sae=_first(args.width, base.get("d_sae"), TrainOptions.d_sae),
            k=_first(args.k, base.get("k"), TrainOptions.k),
            tokens=args.tokens,
            seq_len=args.seq_len,
            lr=_first(args.lr, KL_LR if kl else TrainOptions.lr),
            objective=args.objective,
            checkpoint_tokens=_first(
                args.checkpoint_tokens, KL_CHECKPOINT_TOKENS if kl else TrainOptions.checkpoint_tokens
            ),
            eval_tokens=TrainOptions.eval_tokens if args.eval_tokens is None else args.eval_tokens,
            seed=args.seed,
            device=args.device,
        )
    lm, manifest = load_cli_model(args, console)
    files = sum(len(c.files) for c in corpora)
    verb = "resuming" if args.resume else "fine-tuning" if start_from else "training"
    verb += " (KL + MSE)" if options.objective == "kl" else ""
    console.print(f"{verb} on {files} files in {', '.join(str(c.root) for c in corpora)}; writing to {args.out}")
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} tok"),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("tokenising", total=options.tokens, stats="")

        steps = [0]

        def report(p):  # type: ignore[no-untyped-def]
            steps[0] += 1
            if not console.is_terminal and steps[0] % LOG_EVERY_STEPS == 0:
                # In a log file (a run left in the background) the bar never draws: a line instead.
                console.print(f"{p.tokens:,} tokens  {p.summary()}  {time.strftime('%H:%M:%S')}")
            progress.update(task, description="training", completed=p.tokens, stats=p.summary())

        def checkpointed(c):  # type: ignore[no-untyped-def]
            held = "  ".join(
                f"{name}: FVE {m.variance_explained:.3f}, +{m.ce_increase:.3f} nats, dead {m.dead_fraction:.1%}"
                for name, m in c.metrics.items()
            )
            progress.console.print(f"checkpoint at {c.tokens:,} tokens ({c.seconds / 60:.0f} min)  {held}")

        result = (finetune_kl if options.objective == "kl" else train_sae)(
            lm,
            corpora,
            args.out,
            options,
            model_name=manifest.hub_id or manifest.name,
            command=shlex.join(["tinymorph", "sae", *sys.argv[2:]]),
            resume=args.resume,
            start_from=start_from,
            report=report,
            on_checkpoint=checkpointed,
        )
    state = "done" if result.completed else "stopped; resume with --resume --out " + shlex.quote(str(args.out))
    console.print(f"{state}: {result.tokens:,} tokens, this part {result.seconds / 60:.1f} min -> {result.out_dir}")
    return 0 if result.completed else 130


def _eval_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "eval",
        help="evaluate an SAE on held-out text (a folder's held-out side, or all of a writer's own text)",
        description="L0, variance explained, CE-loss recovered (zero and mean ablation), KL with the "
        "reconstruction spliced in vs a random error of the same norm, dead and dense features.",
    )
    p.add_argument("corpus", type=Path, metavar="PATH", help="a text file or a folder of .txt / .md files")
    add_split_option(p)
    p.add_argument("--tokens", type=int, default=32_768, help="held-out tokens (default 32,768)")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    p.add_argument("--save", action="store_true", help="write metrics.json into the SAE's folder")
    add_sae_option(p)
    add_model_options(p)


def run_eval(args: argparse.Namespace) -> int:
    from tinymorph.sae.corpus import heldout_sequences, open_corpus
    from tinymorph.sae.evaluate import evaluate_sae

    console = Console(stderr=True)
    corpus = open_corpus(args.corpus, args.exclude)
    lm, sae, _manifest = load_cli_sae(args, console)
    sequences = heldout_sequences(corpus, lm.tokenizer, args.seq_len, args.tokens, args.split)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("evaluating (5 forward passes per batch)", total=len(sequences))
        metrics = evaluate_sae(lm, sae, sequences, report=lambda done, _t: progress.update(task, completed=done))
    what = "held-out tokens of" if args.split == "heldout" else "tokens of all of"
    source = args.corpus.name if args.corpus.is_file() else corpus.root.name
    table = Table(title=f"{sae.sae_id} on {metrics.tokens:,} {what} {source}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.as_dict().items():
        if isinstance(value, float):
            table.add_row(name, f"{value:.4f}")
    Console().print(table)
    if args.save:
        if sae.folder is None:
            raise SAEError("--save needs an SAE in a local folder")
        record = {
            **metrics.as_dict(),
            "corpus": str(args.corpus),
            "split": args.split,
            "corpus_fingerprint": corpus.fingerprint(),
            "seq_len": args.seq_len,
            "command": shlex.join(["tinymorph", "sae", *sys.argv[2:]]),
        }
        (sae.folder / "metrics.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
        console.print(f"saved {sae.folder / 'metrics.json'}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tinymorph sae", description="Train and evaluate sparse autoencoders.")
    sub = parser.add_subparsers(dest="action", required=True)
    _train_parser(sub)
    _eval_parser(sub)
    args = parser.parse_args(argv)
    return run_train(args) if args.action == "train" else run_eval(args)
