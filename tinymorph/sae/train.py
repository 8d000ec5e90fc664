"""Training an SAE on residual-stream activations with sae-lens's `SAETrainer`.

Owns: `tinymorph sae train`'s work: corpus -> activations at the hook layer -> a TopK SAE
(Gao et al. 2024, "Scaling and evaluating sparse autoencoders": TopK activation, AuxK loss against
dead latents, decoder rows of unit norm) trained by sae-lens, saved in sae-lens's disk format
(`cfg.json` + `sae_weights.safetensors`) plus `tinymorph.json` (our metadata).

The loop is sae-lens's `SAETrainer.fit()` written out through its public seams (`step`,
`maybe_reset_sparsity`, `set_final_sae_metadata`, as `MultiSAETrainer` does) so that we can report
progress with rich, checkpoint into the output folder and stop cleanly on Ctrl+C. Nothing is
written outside the output folder; no wandb, no hub. No Textual, no store.
"""

import copy
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from sae_lens.config import LoggingConfig, SAETrainerConfig
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
from sae_lens.training.sae_trainer import SAETrainer

from tinymorph import __version__
from tinymorph.errors import SAEError
from tinymorph.lm.hooks import hook_name_for_layer
from tinymorph.lm.model import LoadedModel
from tinymorph.sae.activations import ActivationSource
from tinymorph.sae.corpus import Corpus, shuffled, token_sequences

META_FILE = "tinymorph.json"


@dataclass(frozen=True)
class TrainOptions:
    """What to train. Defaults are those of the SAE tinymorph ships (docs/sae.md says why)."""

    layer: int = 12
    """Decoder layer whose output (residual stream, `blocks.L.hook_resid_post`) is encoded."""
    d_sae: int = 4096
    """Number of latents (features)."""
    k: int = 32
    """Active latents per token (TopK); this is the SAE's L0."""
    tokens: int = 5_000_000
    """Training tokens (activation rows, BOS excluded). Beyond the corpus, it is read again."""
    batch_tokens: int = 4096
    """Activation rows per optimiser step."""
    seq_len: int = 256
    """Tokens per sequence fed to the model, BOS included."""
    lr: float = 1e-3
    lr_end: float = 1e-4
    """Learning rate at the end of the linear decay over the last 20% of steps."""
    aux_coefficient: float = 1.0
    """Weight of the AuxK loss that makes dead latents reconstruct the residual error."""
    dead_window_steps: int = 50
    """Steps without firing after which a latent counts as dead (and joins the AuxK loss)."""
    autocast: bool = True
    """bf16 autocast for the SAE step on CPU (~1.5x faster; same quality in our runs)."""
    save_dtype: str = "bfloat16"
    """dtype of the saved weights."""
    checkpoints: int = 4
    """Checkpoints written into the output folder during training (the last is overwritten)."""
    seed: int = 0


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
    """Latents that have not fired for `dead_window_steps` steps."""


@dataclass
class TrainResult:
    """What `train_sae` did: where the SAE is, how many tokens it saw, how long it took (s)."""

    out_dir: Path
    tokens: int
    seconds: float
    completed: bool
    """False when training was interrupted (Ctrl+C): the folder holds the SAE at that point."""
    metadata: dict[str, object] = field(default_factory=dict)


def _cycle(make: Callable[[int], ActivationSource]) -> Iterator[torch.Tensor]:
    epoch = 0
    while True:
        source = make(epoch)
        yield from source
        epoch += 1


def _build_sae(options: TrainOptions, lm: LoadedModel, model_name: str) -> TopKTrainingSAE:
    cfg = TopKTrainingSAEConfig(
        d_in=lm.d_model,
        d_sae=options.d_sae,
        k=options.k,
        aux_loss_coefficient=options.aux_coefficient,
        apply_b_dec_to_input=True,
        normalize_activations="expected_average_only_in",
        dtype="float32",
        device="cpu",
    )
    cfg.metadata.model_name = model_name
    cfg.metadata.hook_name = hook_name_for_layer(options.layer)
    cfg.metadata.context_size = options.seq_len
    cfg.metadata.prepend_bos = True
    torch.manual_seed(options.seed)
    return TopKTrainingSAE(cfg)


@torch.no_grad()
def _calibrate(trainer: SAETrainer, batches: list[torch.Tensor], d_in: int) -> None:
    """sae-lens's `expected_average_only_in`: scale inputs so their mean norm is sqrt(d_in); and
    start `b_dec` at the (scaled) data mean, which is ~85% of ||x||^2 at layer 12 of Gemma 3."""
    data = torch.cat(batches)  # (N, d)
    scale = math.sqrt(d_in) / float(data.norm(dim=-1).mean())
    trainer.activation_scaler.scaling_factor = scale
    trainer.sae.b_dec.data[:] = (data * scale).mean(0)


def save_sae(trainer: SAETrainer, out_dir: Path, options: TrainOptions, metadata: dict[str, object]) -> None:
    """Write the SAE as it is now into `out_dir` in sae-lens's inference format, in
    `options.save_dtype`, with the activation scale folded in, plus `tinymorph.json`. Each file is
    written beside and renamed into place, so a reader never sees a half-written SAE."""
    sae = copy.deepcopy(trainer.sae)
    if trainer.activation_scaler.scaling_factor is not None:
        sae.fold_activation_norm_scaling_factor(trainer.activation_scaler.scaling_factor)
    sae.cfg.metadata.l0 = float(trainer.feature_sparsity.sum()) if trainer.n_frac_active_samples else None
    sae = sae.to(getattr(torch, options.save_dtype))
    sae.cfg.dtype = options.save_dtype
    work = out_dir / ".partial"
    shutil.rmtree(work, ignore_errors=True)
    sae.save_inference_model(work)
    (work / META_FILE).write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    for item in work.iterdir():
        os.replace(item, out_dir / item.name)
    work.rmdir()


def train_sae(
    lm: LoadedModel,
    corpus: Corpus,
    out_dir: Path,
    options: TrainOptions,
    *,
    model_name: str,
    command: str,
    report: Callable[[TrainProgress], None] = lambda _p: None,
) -> TrainResult:
    """Train a TopK SAE on `lm`'s residual stream after decoder layer `options.layer` over the
    training side of `corpus`, and save it into `out_dir`.

    Ctrl+C (KeyboardInterrupt) stops training after the current step and saves the SAE as it is:
    the result has `completed=False`. Raises SAEError if the layer does not exist or the corpus
    gives no full sequence.
    """
    n_layers = int(lm.model.config.num_hidden_layers)
    if not 0 <= options.layer < n_layers:
        raise SAEError(f"layer {options.layer} does not exist; the model has {n_layers} decoder layers")
    out_dir.mkdir(parents=True, exist_ok=True)
    sequences = token_sequences(corpus.chunks("train"), lm.tokenizer, options.seq_len)
    if not sequences:
        raise SAEError(f"the corpus gives no sequence of {options.seq_len} tokens; add text or lower --seq-len")
    metadata: dict[str, object] = {
        "model": model_name,
        "hook_layer": options.layer,
        "hook_name": hook_name_for_layer(options.layer),
        "architecture": "topk",
        "corpus": str(corpus.root),
        "corpus_files": len(corpus.files),
        "corpus_fingerprint": corpus.fingerprint(),
        "corpus_train_tokens": sum(len(s) - 1 for s in sequences),
        "options": asdict(options),
        "command": command,
        "tinymorph_version": __version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    batches = _cycle(
        lambda epoch: ActivationSource(
            lm,
            options.layer,
            shuffled(sequences, options.seed + epoch),
            options.batch_tokens,
            seed=options.seed + epoch,
        )
    )
    steps = options.tokens // options.batch_tokens
    trainer = SAETrainer(
        cfg=SAETrainerConfig(
            total_training_samples=steps * options.batch_tokens,
            train_batch_size_samples=options.batch_tokens,
            lr=options.lr,
            lr_end=options.lr_end,
            lr_warm_up_steps=min(50, steps // 10),
            lr_decay_steps=steps // 5,
            autocast=options.autocast,
            dead_feature_window=options.dead_window_steps,
            feature_sampling_window=max(1, steps),
            n_batches_for_norm_estimate=1,
            logger=LoggingConfig(log_to_wandb=False),
        ),
        sae=_build_sae(options, lm, model_name),
        data_provider=batches,
    )
    first = [next(batches) for _ in range(4)]
    _calibrate(trainer, first, lm.d_model)
    pending = iter(first)  # the calibration batches are trained on too
    checkpoint_every = max(1, steps // (options.checkpoints + 1)) if options.checkpoints else 0
    started, completed = time.monotonic(), False
    try:
        while trainer.n_training_steps < steps:
            trainer.maybe_reset_sparsity()
            batch = next(pending, None)
            output = trainer.step(batch if batch is not None else next(batches))
            trainer.n_training_steps += 1
            report(_progress(trainer, output, steps * options.batch_tokens))
            if checkpoint_every and trainer.n_training_steps % checkpoint_every == 0:
                save_sae(
                    trainer,
                    out_dir,
                    options,
                    {**metadata, "training_tokens": trainer.n_training_samples, "completed": False},
                )
        completed = True
    except KeyboardInterrupt:
        pass
    trainer.set_final_sae_metadata()
    seconds = time.monotonic() - started
    metadata |= {
        "training_tokens": trainer.n_training_samples,
        "completed": completed,
        "training_seconds": round(seconds, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    save_sae(trainer, out_dir, options, metadata)
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
        l0=float((output.feature_acts > 0).float().sum(-1).mean()),  # type: ignore[attr-defined]
        variance_explained=float(1 - resid / var),
        dead_fraction=float(trainer.dead_neurons.float().mean()),
    )
