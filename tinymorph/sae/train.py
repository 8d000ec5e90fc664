"""Training an SAE on residual-stream activations with sae-lens's `SAETrainer`, in parts.

Owns: `tinymorph sae train`'s work: corpora -> activations at the hook layer -> a TopK SAE
(Gao et al. 2024, "Scaling and evaluating sparse autoencoders": TopK activation, AuxK loss against
dead latents) trained by sae-lens (its TopK training SAE with sparse decoder products,
`sae.sparse_topk`), saved in sae-lens's disk format (`cfg.json` +
`sae_weights.safetensors`) plus `tinymorph.json` (our metadata).

The loop is sae-lens's `SAETrainer.fit()` written out through its public seams (`step`,
`maybe_reset_sparsity`, `save_checkpoint`, `load_trainer_state`, as `MultiSAETrainer` does) so
that we can report progress, checkpoint into the output folder, evaluate each checkpoint on
held-out text, stop cleanly on Ctrl+C and resume. A run is reproducible from any checkpoint:
the data order is fixed by the seed (`activations.ActivationStream`), the schedule by the
options saved in `train_state.json`, the optimiser and sparsity counters by sae-lens's
checkpoint. Nothing is written outside the output folder; no wandb, no hub. No Textual, no store.

Output folder:
- `cfg.json`, `sae_weights.safetensors`, `tinymorph.json`: the SAE as of the last checkpoint
  (inference format, `save_dtype`), usable at any time with `--sae FOLDER`;
- `checkpoint/`: sae-lens's training checkpoint (weights, Adam state, scheduler, sparsity);
- `train_state.json`: options, corpora and their fingerprints, the command: what `--resume` reads;
- `checkpoints.jsonl`: held-out metrics at every checkpoint (`sae.evaluate.EvalMetrics`).
"""

import contextlib
import copy
import json
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from itertools import chain
from pathlib import Path

import torch
from sae_lens import SAE
from sae_lens.config import LoggingConfig, SAETrainerConfig
from sae_lens.saes.topk_sae import TopKTrainingSAEConfig
from sae_lens.training.sae_trainer import SAETrainer

from tinymorph import __version__
from tinymorph.errors import SAEError
from tinymorph.lm.hooks import hook_name_for_layer, layer_for_hook
from tinymorph.lm.model import LoadedModel
from tinymorph.sae.activations import ActivationStream
from tinymorph.sae.corpus import Corpus, heldout_sequences, open_corpus, token_sequences
from tinymorph.sae.evaluate import EvalMetrics, evaluate_sae
from tinymorph.sae.loading import LoadedSAE
from tinymorph.sae.sparse_topk import SparseTopKTrainingSAE

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


def _build_sae(options: TrainOptions, d_model: int, model_name: str) -> SparseTopKTrainingSAE:
    cfg = TopKTrainingSAEConfig(
        d_in=d_model,
        d_sae=options.d_sae,
        k=options.k,
        aux_loss_coefficient=options.aux_coefficient,
        apply_b_dec_to_input=True,
        normalize_activations="expected_average_only_in",
        dtype="float32",
        device=options.device,
    )
    cfg.metadata.model_name = model_name
    cfg.metadata.hook_name = hook_name_for_layer(options.layer)
    cfg.metadata.context_size = options.seq_len
    cfg.metadata.prepend_bos = True
    torch.manual_seed(options.seed)
    return SparseTopKTrainingSAE(cfg)


@torch.no_grad()
def _calibrate(trainer: SAETrainer, batches: list[torch.Tensor], d_in: int) -> None:
    """sae-lens's `expected_average_only_in`: scale inputs so their mean norm is sqrt(d_in); and
    start `b_dec` at the (scaled) data mean, which is ~85% of ||x||^2 at layer 12 of Gemma 3."""
    data = torch.cat(batches)  # (N, d)
    scale = math.sqrt(d_in) / float(data.norm(dim=-1).mean())
    trainer.activation_scaler.scaling_factor = scale
    trainer.sae.b_dec.data[:] = (data * scale).mean(0)


@torch.no_grad()
def _start_from(trainer: SAETrainer, folder: Path, layer: int) -> None:
    """Start from the weights of the inference SAE in `folder` (fine-tuning): its activation
    scale is folded in, so it is unfolded by the trainer's scale; then the decoder rows are put
    back at unit norm (their norm moved into the encoder, exact with `rescale_acts_by_decoder_norm`),
    the parameterisation training uses. Without that step the rows sit at the activation scale
    (~0.002 for Gemma 3's layer 12), where Adam's per-element steps of size lr are hundreds of
    times too large relative to the weights: 36 steps at lr 5e-5 took a 16k SAE's FVE on a new
    book from 0.877 to 0.810 and its loss increase from +0.32 to +1.57 nats. Raises SAEError when
    the SAE does not match the options (width, input size, `layer`)."""
    try:
        base = SAE.load_from_disk(folder, device="cpu", dtype="float32")
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise SAEError(f"cannot load the SAE to start from, {folder}: {exc}") from exc
    sae = trainer.sae
    hook = base.cfg.metadata.hook_name
    if hook and layer_for_hook(hook) != layer:
        raise SAEError(f"{folder} reads {hook}; training asks for layer {layer} (pass --layer {layer_for_hook(hook)})")
    if base.W_enc.shape != sae.W_enc.shape:
        raise SAEError(
            f"{folder} has {base.cfg.d_sae} features of width {base.cfg.d_in}; "
            f"training asks for {sae.cfg.d_sae} of width {sae.cfg.d_in} (pass --width {base.cfg.d_sae})"
        )
    scale = trainer.activation_scaler.scaling_factor or 1.0
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        getattr(sae, name).data[:] = getattr(base, name).data.to(sae.device)
    sae.fold_activation_norm_scaling_factor(1 / scale)  # back to the scaled space training works in
    sae.cfg.normalize_activations = "expected_average_only_in"
    if sae.cfg.rescale_acts_by_decoder_norm:
        sae.fold_W_dec_norm()  # unit decoder rows; the same function of the input


def save_sae(trainer: SAETrainer, out_dir: Path, options: TrainOptions, metadata: dict[str, object]) -> None:
    """Write the SAE as it is now into `out_dir` in sae-lens's inference format, in
    `options.save_dtype`, with the activation scale folded in, plus `tinymorph.json`. Each file is
    written beside and renamed into place, so a reader never sees a half-written SAE."""
    sae = copy.deepcopy(trainer.sae).to("cpu")
    if trainer.activation_scaler.scaling_factor is not None:
        sae.fold_activation_norm_scaling_factor(trainer.activation_scaler.scaling_factor)
    sae.cfg.metadata.l0 = float(trainer.feature_sparsity.sum()) if trainer.n_frac_active_samples else None
    sae = sae.to(getattr(torch, options.save_dtype))
    sae.cfg.dtype = options.save_dtype
    sae.cfg.device = "cpu"
    publish_sae(out_dir, lambda work: sae.save_inference_model(work), metadata)


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


def _save_checkpoint(trainer: SAETrainer, out_dir: Path, state: dict[str, object]) -> None:
    """sae-lens's checkpoint into `checkpoint/`, then `train_state.json` (`write_checkpoint`)."""
    write_checkpoint(out_dir, lambda partial: trainer.save_checkpoint(partial.name, base_path=out_dir), state)


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


def train_sae(
    lm: LoadedModel,
    corpora: Sequence[Corpus],
    out_dir: Path,
    options: TrainOptions,
    *,
    model_name: str,
    command: str,
    resume: bool = False,
    start_from: Path | None = None,
    report: Callable[[TrainProgress], None] = lambda _p: None,
    on_checkpoint: Callable[[CheckpointReport], None] = lambda _c: None,
) -> TrainResult:
    """Train a TopK SAE on `lm`'s residual stream after decoder layer `options.layer` over the
    training side of `corpora` (their sequences mixed in one seeded order), and save it into
    `out_dir`, with a checkpoint every `options.checkpoint_tokens` tokens.

    `resume`: go on from the checkpoint in `out_dir` (the caller passes what `resume_state`
    read); same data order and schedule as if never stopped. `start_from`: a folder with an
    inference SAE of the same shape to fine-tune instead of starting from random weights.
    Ctrl+C or SIGTERM stops training after the current step, writes a checkpoint and returns
    `completed=False`. Raises SAEError if the layer does not exist, the corpora give too
    little text, or there is nothing to resume.
    """
    n_layers = int(lm.model.config.num_hidden_layers)
    if not 0 <= options.layer < n_layers:
        raise SAEError(f"layer {options.layer} does not exist; the model has {n_layers} decoder layers")
    if options.device != "cpu" and options.eval_tokens:
        # `sae.evaluate` builds its tensors on the CPU; rather than fail at the first checkpoint,
        # say so before any work (not yet run on a GPU).
        raise SAEError(f"checkpoint metrics run on the CPU only; with --device {options.device} pass "
                       "--eval-tokens 0 and evaluate the result with `tinymorph sae eval`")
    out_dir.mkdir(parents=True, exist_ok=True)
    if options.device != "cpu":
        lm.model.to(torch.device(options.device))  # type: ignore[arg-type]  # transformers types .to narrowly
    sequences, counts = training_sequences(corpora, lm, options.seq_len)
    try:
        stream = ActivationStream(lm, options.layer, sequences, options.batch_tokens, seed=options.seed)
    except ValueError as exc:
        raise SAEError(f"the corpora give too little text to train on: {exc}; add text or lower --seq-len") from None
    heldout = heldout_for(corpora, lm, options) if options.eval_tokens else {}
    state = run_state(out_dir, corpora, counts, options, resume=resume, model_name=model_name, command=command,
                      start_from=start_from)
    metadata: dict[str, object] = state["metadata"]  # type: ignore[assignment]
    steps = options.tokens // options.batch_tokens
    if steps == 0:
        raise SAEError(f"--tokens {options.tokens:,} is less than one batch of {options.batch_tokens:,} tokens")
    trainer = SAETrainer(
        cfg=SAETrainerConfig(
            total_training_samples=steps * options.batch_tokens,
            train_batch_size_samples=options.batch_tokens,
            lr=options.lr,
            lr_end=options.lr / 10 if options.lr_end is None else options.lr_end,
            lr_warm_up_steps=min(50, steps // 10),
            lr_decay_steps=steps // 5,
            autocast=options.autocast,
            dead_feature_window=options.dead_window_steps,
            feature_sampling_window=max(1, steps),
            n_batches_for_norm_estimate=1,
            device=options.device,
            logger=LoggingConfig(log_to_wandb=False),
        ),
        sae=_build_sae(options, lm.d_model, model_name),
        data_provider=iter(()),
    )
    if resume:
        folder = checkpoint_folder(out_dir)
        assert folder is not None  # resume_state checked it
        trainer.sae.load_weights_from_checkpoint(folder)
        trainer.load_trainer_state(folder)
        batches = stream.batches(trainer.n_training_steps)
    else:
        batches = stream.batches(0)
        first = [next(batches) for _ in range(4)]
        _calibrate(trainer, first, lm.d_model)
        if start_from is not None:
            _start_from(trainer, start_from, options.layer)
        batches = chain(first, batches)  # the calibration batches are trained on too
    checkpoint_every = max(1, options.checkpoint_tokens // options.batch_tokens)
    started, completed = time.monotonic(), False

    checkpointed_at = [-1]  # the step of the last checkpoint written

    def checkpoint() -> None:
        if checkpointed_at[0] == trainer.n_training_steps:
            return  # stopped right after one: it is on disk, with its metrics
        checkpointed_at[0] = trainer.n_training_steps
        elapsed = float(state.get("seconds", 0.0)) + (time.monotonic() - started)  # type: ignore[arg-type]
        info = {**metadata, "training_tokens": trainer.n_training_samples, "training_seconds": round(elapsed, 1)}
        save_sae(trainer, out_dir, options, {**info, "completed": trainer.n_training_steps >= steps})
        _save_checkpoint(trainer, out_dir, {**state, "seconds": elapsed})
        metrics = evaluate_checkpoint(lm, out_dir, options, heldout, model_name)
        on_checkpoint(record_checkpoint(out_dir, trainer.n_training_samples, elapsed, metrics))

    with stop_requests() as stop_requested:
        while trainer.n_training_steps < steps and not stop_requested():
            trainer.maybe_reset_sparsity()
            output = trainer.step(next(batches))
            trainer.n_training_steps += 1
            report(_progress(trainer, output, steps * options.batch_tokens))
            if trainer.n_training_steps % checkpoint_every == 0 and trainer.n_training_steps < steps:
                checkpoint()
        completed = trainer.n_training_steps >= steps
    trainer.set_final_sae_metadata()
    seconds = time.monotonic() - started
    if completed:
        metadata = {**metadata, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    checkpoint()
    metadata = {**metadata, "training_tokens": trainer.n_training_samples, "completed": completed}
    return TrainResult(out_dir, trainer.n_training_samples, seconds, completed, metadata)


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


@torch.no_grad()
def _progress(trainer: SAETrainer, output: object, total: int) -> TrainProgress:
    x, x_hat = output.sae_in.float(), output.sae_out.float()  # type: ignore[attr-defined]  # (N, d)
    resid = (x - x_hat).pow(2).sum()
    var = (x - x.mean(0)).pow(2).sum()
    return TrainProgress(
        tokens=trainer.n_training_samples,
        total_tokens=total,
        mse_loss=float(output.losses["mse_loss"]),  # type: ignore[attr-defined]
        l0=float(output.feature_acts.bool().float().sum(-1).to_dense().mean()),  # type: ignore[attr-defined]  # sparse COO
        variance_explained=float(1 - resid / var),
        dead_fraction=float(trainer.dead_neurons.float().mean()),
    )
