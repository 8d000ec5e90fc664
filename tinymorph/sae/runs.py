"""A training run and its output folder, shared by both objectives of `tinymorph sae train`
(`sae.train`: reconstruction with sae-lens; `sae.kl_finetune`: KL + MSE fine-tune).

Owns: what a run is (`TrainOptions`, `TrainProgress`, `CheckpointReport`, `TrainResult`) and its
folder: the SAE and `tinymorph.json` swapped into place (`publish_sae`), the checkpoint swapped in
whole (`write_checkpoint`, `checkpoint_folder`), `train_state.json` (`run_state`, read back by
`resume_state`), held-out metrics per checkpoint (`heldout_for`, `evaluate_checkpoint`,
`record_checkpoint` into `checkpoints.jsonl`), the training side of the corpora
(`training_sequences`) and Ctrl+C / SIGTERM as a request to stop after the current step
(`stop_requests`). No Textual, no store.

Output folder:
- `cfg.json`, `sae_weights.safetensors`, `tinymorph.json`: the SAE as of the last checkpoint
  (inference format, `save_dtype`), usable at any time with `--sae FOLDER`;
- `checkpoint/`: the objective's training checkpoint (weights, optimiser state, ...);
- `train_state.json`: options, corpora and their fingerprints, the command: what `--resume` reads;
- `checkpoints.jsonl`: held-out metrics at every checkpoint (`sae.evaluate.EvalMetrics`).
"""

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from sae_lens import SAE

from tinymorph import __version__
from tinymorph.errors import SAEError
from tinymorph.lm.hooks import hook_name_for_layer
from tinymorph.lm.model import LoadedModel
from tinymorph.sae.corpus import Corpus, heldout_sequences, open_corpus, token_sequences
from tinymorph.sae.evaluate import EvalMetrics, evaluate_sae
from tinymorph.sae.loading import LoadedSAE

META_FILE = "tinymorph.json"

STATE_FILE = "train_state.json"

CHECKPOINT_DIR = "checkpoint"

HISTORY_FILE = "checkpoints.jsonl"


@dataclass(frozen=True)
class TrainOptions:
    """What to train. Defaults are those of the SAE tinymorph ships (docs/sae.md says why)."""

    layer: int = 12
    """Decoder layer whose output (residual stream, `blocks.L.hook_resid_post`) is encoded."""
    d_sae: int = 16384
    """Number of latents (features)."""
    k: int = 48
    """Active latents per token (TopK); this is the SAE's L0."""
    tokens: int = 20_000_000
    """Training tokens (activation rows, BOS excluded). Beyond the corpus, it is read again."""
    batch_tokens: int = 4096
    """Activation rows per optimiser step."""
    seq_len: int = 256
    """Tokens per sequence fed to the model, BOS included."""
    lr: float = 1e-3
    lr_end: float | None = None
    """Learning rate at the end of the linear decay over the last 20% of steps (None: lr / 10;
    a fixed end above a small fine-tuning lr would raise the rate as it "decays")."""
    aux_coefficient: float = 1.0
    """Weight of the AuxK loss that makes dead latents reconstruct the residual error."""
    dead_window_steps: int = 50
    """Steps without firing after which a latent counts as dead (and joins the AuxK loss)."""
    autocast: bool = True
    """bf16 autocast for the SAE step (~1.5x faster on CPU; same quality in our runs)."""
    save_dtype: str = "bfloat16"
    """dtype of the saved weights."""
    checkpoint_tokens: int = 1_000_000
    """Training tokens between checkpoints (each also evaluated on held-out text)."""
    eval_tokens: int = 8192
    """Held-out tokens per corpus for the metrics recorded at each checkpoint (0: none)."""
    seed: int = 0
    objective: str = "mse"
    """Training objective. "mse": sae-lens's reconstruction training (this module). "kl": fine-tune
    a trained SAE on the model's next-token predictions with it spliced in (`sae.kl_finetune`;
    there a step is 4 sequences and `batch_tokens` is not used)."""
    device: str = "cpu"
    """Where the model and the SAE run ("cuda" on a GPU). Not part of what is trained: a run may
    be resumed on another device."""


@dataclass
class TrainProgress:
    """One report per optimiser step."""

    tokens: int
    total_tokens: int
    mse_loss: float
    l0: float
    variance_explained: float
    """1 - ||x - x_hat||^2 / ||x - mean(x)||^2 over the batch."""
    dead_fraction: float
    """Latents that have not fired for `dead_window_steps` steps (with `--objective kl`, for
    `kl_finetune.KL_DEAD_WINDOW_TOKENS` tokens); NaN when not tracked."""
    kl: float | None = None
    """KL(clean || spliced) over the batch, nats per token: `--objective kl` only."""

    def summary(self) -> str:
        """The step's numbers as one line for a progress bar or a log."""
        loss = f"KL {self.kl:.3f}" if self.kl is not None else f"mse {self.mse_loss:.3g}"
        dead = f"  dead {self.dead_fraction:.1%}" if self.dead_fraction == self.dead_fraction else ""
        return f"{loss}  L0 {self.l0:.1f}  var.expl. {self.variance_explained:.3f}{dead}"


@dataclass
class CheckpointReport:
    """One checkpoint: training tokens so far and held-out metrics per corpus (by folder name)."""

    tokens: int
    seconds: float
    metrics: dict[str, EvalMetrics]


@dataclass
class TrainResult:
    """What `train_sae` did: where the SAE is, how many tokens it saw, how long this part took (s)."""

    out_dir: Path
    tokens: int
    seconds: float
    completed: bool
    """False when training was stopped (Ctrl+C): the folder holds a checkpoint to `--resume`."""
    metadata: dict[str, object] = field(default_factory=dict)


def publish_sae(out_dir: Path, write: Callable[[Path], None], metadata: dict[str, object]) -> None:
    """`write(work)` fills a fresh folder beside `out_dir` with an SAE in sae-lens's format;
    `tinymorph.json` (`metadata`) joins it and each file is renamed into `out_dir`, so a reader
    never sees a half-written file."""
    work = out_dir / ".partial"
    shutil.rmtree(work, ignore_errors=True)
    write(work)
    (work / META_FILE).write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    for item in work.iterdir():
        os.replace(item, out_dir / item.name)
    work.rmdir()


def write_checkpoint(out_dir: Path, write: Callable[[Path], None], state: dict[str, object]) -> None:
    """`write(partial)` creates `checkpoint.partial/` in `out_dir`; it is swapped in whole for
    `checkpoint/` (a crash mid-write leaves the previous one, as `checkpoint.old/` at worst,
    which `checkpoint_folder` finds), then `train_state.json` is replaced by `state`."""
    final = out_dir / CHECKPOINT_DIR
    partial, old = final.with_name(f"{CHECKPOINT_DIR}.partial"), final.with_name(f"{CHECKPOINT_DIR}.old")
    shutil.rmtree(partial, ignore_errors=True)
    write(partial)
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(partial, final)
    shutil.rmtree(old, ignore_errors=True)
    tmp = out_dir / f"{STATE_FILE}.partial"
    tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
    os.replace(tmp, out_dir / STATE_FILE)


def checkpoint_folder(out_dir: Path) -> Path | None:
    """The run's checkpoint folder (`checkpoint/`, or `checkpoint.old/` after a crash mid-swap)."""
    for name in (CHECKPOINT_DIR, f"{CHECKPOINT_DIR}.old"):
        if (out_dir / name / "sae_weights.safetensors").is_file():
            return out_dir / name
    return None


def resume_state(out_dir: Path) -> tuple[TrainOptions, list[Corpus], dict[str, object]]:
    """What an interrupted run in `out_dir` was: its options, its corpora (re-opened and checked
    against the fingerprints it trained on) and its metadata. Raises SAEError when there is no
    checkpoint to resume or the training text has changed since."""
    state_path = out_dir / STATE_FILE
    if not state_path.is_file() or checkpoint_folder(out_dir) is None:
        raise SAEError(f"{out_dir} holds no training checkpoint to resume (no {STATE_FILE} and {CHECKPOINT_DIR}/)")
    state = json.loads(state_path.read_text(encoding="utf-8"))
    known = {f.name for f in fields(TrainOptions)}
    options = TrainOptions(**{k: v for k, v in state["options"].items() if k in known})
    corpora = []
    for entry in state["corpora"]:
        corpus = open_corpus(Path(entry["path"]), entry.get("exclude", []))
        if corpus.fingerprint() != entry["fingerprint"]:
            raise SAEError(
                f"the text in {entry['path']} changed since training started; resuming would not repeat the run"
            )
        corpora.append(corpus)
    return options, corpora, state["metadata"]


def training_sequences(corpora: Sequence[Corpus], lm: LoadedModel, seq_len: int) -> tuple[list[list[int]], list[int]]:
    """The training side of `corpora` as BOS-prefixed sequences of `seq_len` tokens, corpus after
    corpus, and each corpus's number of training tokens (BOS excluded)."""
    parts = [token_sequences(c.chunks("train"), lm.tokenizer, seq_len) for c in corpora]
    counts = [sum(len(s) - 1 for s in part) for part in parts]
    return [s for part in parts for s in part], counts


def heldout_for(corpora: Sequence[Corpus], lm: LoadedModel, options: TrainOptions) -> dict[str, list[list[int]]]:
    """`eval_tokens` held-out tokens of each corpus, by folder name; a corpus too small to hold
    a sequence out (a writer's few pages) is left out of the checkpoint metrics."""
    heldout = {}
    for corpus in corpora:
        try:
            heldout[corpus.root.name] = heldout_sequences(corpus, lm.tokenizer, options.seq_len, options.eval_tokens)
        except SAEError:
            continue
    return heldout


def evaluate_checkpoint(
    lm: LoadedModel, out_dir: Path, options: TrainOptions, heldout: dict[str, list[list[int]]], model_name: str
) -> dict[str, EvalMetrics]:
    """Held-out metrics (no baselines) of the SAE saved in `out_dir`, per corpus in `heldout`."""
    if not heldout:
        return {}
    sae = SAE.load_from_disk(out_dir, device="cpu", dtype="float32")
    sae.eval()
    loaded = LoadedSAE(sae, options.layer, out_dir.name, model_name, out_dir)
    return {name: evaluate_sae(lm, loaded, seqs, baselines=False) for name, seqs in heldout.items()}


def run_state(
    out_dir: Path,
    corpora: Sequence[Corpus],
    counts: list[int],
    options: TrainOptions,
    *,
    resume: bool,
    model_name: str,
    command: str,
    start_from: Path | None,
) -> dict[str, object]:
    """What `train_state.json` holds for this run: read back when resuming; else new (options,
    corpora with their fingerprints, metadata), and the previous run's checkpoint history is
    removed. `counts`: training tokens per corpus."""
    if resume:
        return dict(json.loads((out_dir / STATE_FILE).read_text(encoding="utf-8")))
    metadata = {
        "model": model_name,
        "hook_layer": options.layer,
        "hook_name": hook_name_for_layer(options.layer),
        "architecture": "topk",
        "corpora": [str(c.root) for c in corpora],
        "corpus_train_tokens": dict(zip((c.root.name for c in corpora), counts, strict=True)),
        "corpus_fingerprints": {c.root.name: c.fingerprint() for c in corpora},
        "options": asdict(options),
        "started_from": str(start_from) if start_from else None,
        "command": command,
        "tinymorph_version": __version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (out_dir / HISTORY_FILE).unlink(missing_ok=True)
    return {
        "options": asdict(options),
        "corpora": [
            {"path": str((c.root if len(c.files) > 1 else c.files[0]).resolve()), "exclude": list(c.exclude),
             "fingerprint": c.fingerprint()}
            for c in corpora
        ],
        "metadata": metadata,
    }


def record_checkpoint(out_dir: Path, tokens: int, seconds: float, metrics: dict[str, EvalMetrics]) -> CheckpointReport:
    """Append one checkpoint's held-out metrics (NaN ones left out) to `checkpoints.jsonl`."""
    entry = CheckpointReport(tokens, round(seconds, 1), metrics)
    with (out_dir / HISTORY_FILE).open("a", encoding="utf-8") as f:
        measured = {k: {m: v for m, v in r.as_dict().items() if v == v} for k, r in metrics.items()}  # no NaN
        f.write(json.dumps({"tokens": entry.tokens, "seconds": entry.seconds, "metrics": measured}) + "\n")
    return entry


@contextlib.contextmanager
def stop_requests() -> Iterator[Callable[[], bool]]:
    """Ctrl+C (SIGINT) and SIGTERM ask training to stop after the current step, so the
    checkpoint written then is consistent (a step cut in half would not be). Outside the main
    thread signals cannot be caught; training then runs to the end."""
    asked = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield asked.is_set
        return
    previous = {sig: signal.signal(sig, lambda _s, _f: asked.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield asked.is_set
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
