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

The output folder (`sae.runs`) holds sae-lens's training checkpoint (weights, Adam state,
scheduler, sparsity) in `checkpoint/`.
"""

import copy
import math
import time
from collections.abc import Callable, Sequence
from itertools import chain
from pathlib import Path

import torch
from sae_lens import SAE
from sae_lens.config import LoggingConfig, SAETrainerConfig
from sae_lens.saes.topk_sae import TopKTrainingSAEConfig
from sae_lens.training.sae_trainer import SAETrainer

from tinymorph.errors import SAEError
from tinymorph.lm.hooks import hook_name_for_layer, layer_for_hook
from tinymorph.lm.model import LoadedModel
from tinymorph.sae.activations import ActivationStream
from tinymorph.sae.corpus import Corpus
from tinymorph.sae.runs import (
    CheckpointReport,
    TrainOptions,
    TrainProgress,
    TrainResult,
    checkpoint_folder,
    evaluate_checkpoint,
    heldout_for,
    publish_sae,
    record_checkpoint,
    run_state,
    stop_requests,
    training_sequences,
    write_checkpoint,
)
from tinymorph.sae.sparse_topk import SparseTopKTrainingSAE


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


def _save_checkpoint(trainer: SAETrainer, out_dir: Path, state: dict[str, object]) -> None:
    """sae-lens's checkpoint into `checkpoint/`, then `train_state.json` (`write_checkpoint`)."""
    write_checkpoint(out_dir, lambda partial: trainer.save_checkpoint(partial.name, base_path=out_dir), state)


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
