"""Fine-tuning a trained SAE end to end: on the KL divergence between the model's next-token
distribution and the same model's with the SAE's reconstruction spliced in, plus the
reconstruction error.

Owns: `tinymorph sae train --objective kl`. Reconstruction training (MSE) leaves errors that the
rest of the model is sensitive to: our 16k SAE explains 0.91 of the variance at layer 12 yet costs
+0.28 nats of next-token loss. A short fine-tune on KL(clean || spliced) + MSE (normalised by the
batch's variance) moves the reconstruction towards what the later layers need while keeping it
a reconstruction. Method: Braun et al. 2024, "Identifying Functionally Important Features with
End-to-End Sparse Dictionary Learning" (e2e + downstream SAEs); Karvonen et al. 2025, "Revisiting
End-To-End Sparse Autoencoder Training: A Short Finetune Is All You Need" (a short KL + MSE fine-
tune of a TopK SAE at the end of training).

The SAE's four tensors are trained as they are shipped (sae-lens inference TopK,
`rescale_acts_by_decoder_norm`, activation scale folded in): the model's weights are frozen; a
step runs the model twice on `KL_BATCH_SEQUENCES` sequences (clean without gradients, spliced
with them) and back-propagates from the logits through layers L+1.. to the SAE. The run lives in
an output folder with the same layout as `sae.train`'s (`sae.runs`: `train_state.json`, `checkpoint/`,
`checkpoints.jsonl`, the SAE itself) and stops, checkpoints and resumes the same way. The
checkpoint is safetensors only (weights, Adam moments, step, steps since each latent fired): no
pickle. No Textual, no store.

Features must not die on the way: a KL + MSE fine-tune of the 16k SAE without it took the dead
fraction on held-out modern text from 4.7% to 5.7% (docs/sae.md). Latents that have not fired for
`KL_DEAD_WINDOW_TOKENS` training tokens join an AuxK term (Gao et al. 2024, "Scaling and
evaluating sparse autoencoders", app. A.2; sae-lens's TopK trainer): the top d_in / 2 of them
reconstruct the error the live latents leave, normalised as the MSE term is.
"""

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tinymorph.errors import SAEError
from tinymorph.lm.hooks import layer_for_hook
from tinymorph.lm.model import LoadedModel, decoder_layers
from tinymorph.sae.corpus import Corpus, shuffled
from tinymorph.sae.evaluate import log_probs
from tinymorph.sae.loading import NativeTopKSAE, native_topk
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

KL_BATCH_SEQUENCES = 4
"""Sequences per step. The logits of 4 x 256 tokens over Gemma 3's 262k vocabulary are ~1 GB in
float32, and a step holds about five such tensors."""
KL_LR = 1e-4
"""Default learning rate: 30 steps at 1e-5 took the 16k SAE's loss increase on 4,080 held-out
modern tokens from +0.251 to +0.240, at 1e-4 to +0.224 (FVE 0.904 -> 0.903)."""
KL_CHECKPOINT_TOKENS = 102_000
"""Default tokens between checkpoints (~100 steps, ~15 min on 2 CPU cores)."""
KL_DEAD_WINDOW_TOKENS = 32_640
"""Training tokens a latent may go without firing before it joins the AuxK term: the token count
on which `sae eval` counts a feature dead (32 steps of 4 x 255 tokens)."""
MSE_COEFFICIENT = 1.0
"""Weight of the reconstruction term, ||x - x_hat||^2 / ||x - mean(x)||^2 over the batch (that
is 1 - FVE), beside the KL term in nats per token."""
WEIGHTS = ("W_enc", "b_enc", "W_dec", "b_dec")


def load_trainable(folder: Path, layer: int) -> tuple[NativeTopKSAE, dict[str, object]]:
    """The TopK SAE in `folder` in float32 with gradients on, and its cfg.json. Raises SAEError
    when it is not a plain TopK SAE in sae-lens format or reads another layer than `layer`."""
    try:
        sae = native_topk(folder)
        cfg = json.loads((folder / "cfg.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError) as exc:
        raise SAEError(f"cannot load the SAE to fine-tune, {folder}: {exc}") from exc
    if sae is None:
        raise SAEError(f"{folder} is not a plain TopK SAE; --objective kl fine-tunes those only")
    hook = sae.cfg.metadata.hook_name
    if hook and layer_for_hook(hook) != layer:
        raise SAEError(f"{folder} reads {hook}; training asks for layer {layer}")
    for p in sae.parameters():
        p.requires_grad_(True)
    return sae, cfg


def _lr_factor(step: int, steps: int, lr: float, lr_end: float) -> float:
    """Linear warm-up over the first 5% of steps, constant, then linear decay to lr_end over the
    last 20% (the shape of `sae.train`'s schedule); a factor of `lr`."""
    warm = max(1, steps // 20)
    if step < warm:
        return (step + 1) / warm
    decay_from = steps - steps // 5
    if step < decay_from or steps // 5 == 0:
        return 1.0
    done = (step - decay_from) / (steps // 5)
    return 1.0 + done * (lr_end / lr - 1.0)


def _save_sae(sae: NativeTopKSAE, cfg: dict[str, object], out_dir: Path, dtype: str, meta: dict[str, object]) -> None:
    """The SAE in sae-lens's disk format in `dtype` plus tinymorph.json, into `out_dir`."""

    def write(work: Path) -> None:
        work.mkdir(parents=True)
        weights = {n: getattr(sae, n).detach().to(getattr(torch, dtype)).contiguous() for n in WEIGHTS}
        save_file(weights, work / "sae_weights.safetensors")
        (work / "cfg.json").write_text(json.dumps({**cfg, "dtype": dtype, "device": "cpu"}), encoding="utf-8")

    publish_sae(out_dir, write, meta)


def _save_checkpoint(sae: NativeTopKSAE, opt: torch.optim.Adam, step: int, since_fired: torch.Tensor,
                     out_dir: Path, state: dict[str, object]) -> None:
    """float32 weights, Adam's moments, the steps since each latent fired (d_sae,) and the step
    into `checkpoint/`, then `train_state.json` (`sae.runs.write_checkpoint`)."""
    tensors = {n: getattr(sae, n).detach().clone() for n in WEIGHTS}
    tensors["since_fired"] = since_fired.clone()
    for name in WEIGHTS:
        moments = opt.state.get(getattr(sae, name), {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in moments:
                tensors[f"adam.{key}.{name}"] = moments[key]

    def write(partial: Path) -> None:
        partial.mkdir()
        save_file(tensors, partial / "sae_weights.safetensors", metadata={"step": str(step)})

    write_checkpoint(out_dir, write, state)


def _load_checkpoint(sae: NativeTopKSAE, opt: torch.optim.Adam, since_fired: torch.Tensor, out_dir: Path) -> int:
    """Restore what `_save_checkpoint` wrote (into `sae`, `opt` and `since_fired`); returns the
    step to go on from."""
    folder = checkpoint_folder(out_dir)
    if folder is None:
        raise SAEError(f"{out_dir} holds no checkpoint to resume")
    path = folder / "sae_weights.safetensors"
    tensors = load_file(path)
    with torch.no_grad():
        for name in WEIGHTS:
            getattr(sae, name).copy_(tensors[name])
        if "since_fired" in tensors:
            since_fired.copy_(tensors["since_fired"])
    step = int(_metadata(path)["step"])
    for name in WEIGHTS:
        param = getattr(sae, name)
        if f"adam.exp_avg.{name}" in tensors:
            opt.state[param] = {
                "step": torch.tensor(float(step)),
                "exp_avg": tensors[f"adam.exp_avg.{name}"],
                "exp_avg_sq": tensors[f"adam.exp_avg_sq.{name}"],
            }
    return step


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def aux_loss(sae: NativeTopKSAE, hidden_pre: torch.Tensor, error: torch.Tensor, dead: torch.Tensor,
             denominator: torch.Tensor) -> torch.Tensor:
    """AuxK (Gao et al. 2024, app. A.2, as sae-lens's TopK trainer): the top k_aux = d_in / 2 of
    the dead latents' pre-activations hidden_pre (N, d_sae), without ReLU, decoded without b_dec,
    against the live latents' reconstruction error `error` (N, d_in, no gradient), as a sum of
    squares over `denominator`; scaled by min(dead / k_aux, 1). `dead` is (d_sae,) bool. 0 when
    no latent is dead."""
    num_dead = int(dead.sum())
    if num_dead == 0:
        return hidden_pre.new_tensor(0.0)
    k_aux = min(sae.cfg.d_in // 2, num_dead)
    weight = min(num_dead / (sae.cfg.d_in // 2), 1.0)
    top = hidden_pre.masked_fill(~dead, -torch.inf).topk(k_aux, dim=-1, sorted=False)
    acts = torch.zeros_like(hidden_pre).scatter(-1, top.indices, top.values)
    recons = sae.decode(acts) - sae.b_dec
    return weight * (recons - error).pow(2).sum() / denominator


def _batches(sequences: list[list[int]], seed: int) -> Callable[[int], torch.Tensor]:
    """Step -> (KL_BATCH_SEQUENCES, seq_len) token ids; each pass over the sequences in its own
    seeded order, so a resumed run reads what an unbroken one would."""
    per_epoch = max(1, len(sequences) // KL_BATCH_SEQUENCES)
    orders: dict[int, list[list[int]]] = {}

    def batch(step: int) -> torch.Tensor:
        epoch, index = divmod(step, per_epoch)
        if epoch not in orders:
            orders.clear()
            orders[epoch] = shuffled(sequences, seed + epoch)
        rows = orders[epoch][index * KL_BATCH_SEQUENCES : (index + 1) * KL_BATCH_SEQUENCES]
        return torch.tensor(rows)

    return batch


def finetune_kl(
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
    """Fine-tune the SAE in `start_from` (or, with `resume`, go on from the checkpoint in
    `out_dir`) on KL(clean || spliced) + `MSE_COEFFICIENT` x (1 - FVE) over the training side of
    `corpora` (plus `options.aux_coefficient` x AuxK for latents that have not fired for
    `KL_DEAD_WINDOW_TOKENS`), for `options.tokens` tokens (sequences of `options.seq_len`, `KL_BATCH_SEQUENCES`
    a step) at `options.lr` with the schedule of `_lr_factor`. Saves into `out_dir` as
    `sae.train.train_sae` does, reports `TrainProgress` per step (with `kl`). Ctrl+C or
    SIGTERM stops after the current step with a checkpoint.
    Raises SAEError when there is no SAE to start from, the corpora give no full batch, or the
    SAE does not fit the options."""
    if options.device != "cpu":
        raise SAEError("--objective kl runs on the CPU only (not yet run on a GPU)")
    out_dir.mkdir(parents=True, exist_ok=True)
    sequences, counts = training_sequences(corpora, lm, options.seq_len)
    if len(sequences) < KL_BATCH_SEQUENCES:
        raise SAEError(f"the corpora give {len(sequences)} sequences of {options.seq_len} tokens; "
                       f"a step needs {KL_BATCH_SEQUENCES}")
    state = run_state(out_dir, corpora, counts, options, resume=resume, model_name=model_name, command=command,
                      start_from=start_from)
    metadata: dict[str, object] = {**state["metadata"], "objective": "kl"}  # type: ignore[dict-item]
    origin = Path(str(metadata["started_from"])) if resume else start_from
    if origin is None:
        raise SAEError("--objective kl fine-tunes a trained SAE: give --from SAE")
    sae, cfg = load_trainable(origin, options.layer)
    opt = torch.optim.Adam(list(sae.parameters()), lr=options.lr, betas=(0.9, 0.999))
    since_fired = torch.zeros(sae.cfg.d_sae)  # (d_sae,) steps since each latent last fired in training
    step = _load_checkpoint(sae, opt, since_fired, out_dir) if resume else 0
    lr_end = options.lr / 10 if options.lr_end is None else options.lr_end
    steps = options.tokens // (KL_BATCH_SEQUENCES * (options.seq_len - 1))
    if steps == 0:
        raise SAEError(f"--tokens {options.tokens:,} is less than one step of "
                       f"{KL_BATCH_SEQUENCES * (options.seq_len - 1):,} tokens")
    per_step = KL_BATCH_SEQUENCES * (options.seq_len - 1)
    batch = _batches(sequences, options.seed)
    heldout = heldout_for(corpora, lm, options) if options.eval_tokens else {}
    layer = decoder_layers(lm.model)[options.layer]
    for p in lm.model.parameters():
        p.requires_grad_(False)
    checkpoint_every = max(1, options.checkpoint_tokens // per_step)
    started, checkpointed_at = time.monotonic(), [-1]
    dead_steps = max(1, KL_DEAD_WINDOW_TOKENS // per_step)
    terms: dict[str, torch.Tensor] = {}

    def reconstruct(x: torch.Tensor) -> torch.Tensor:  # (B, T, d) float32
        hidden_pre = sae.hidden_pre(x)  # (B, T, d_sae)
        acts = sae.topk(hidden_pre)
        x_hat = sae.decode(acts)
        error = x - x_hat
        denominator = (x - x.mean((0, 1))).pow(2).sum()
        terms["mse"] = error.pow(2).sum() / denominator
        terms["aux"] = aux_loss(sae, hidden_pre, error.detach(), since_fired >= dead_steps, denominator)
        fired = (acts.detach() > 0).flatten(0, -2).any(0)
        since_fired.add_(1).masked_fill_(fired, 0)
        return x_hat

    def checkpoint() -> None:
        if checkpointed_at[0] == step:
            return
        checkpointed_at[0] = step
        elapsed = float(state.get("seconds", 0.0)) + (time.monotonic() - started)  # type: ignore[arg-type]
        info = {**metadata, "training_tokens": step * per_step, "training_seconds": round(elapsed, 1),
                "completed": step >= steps}
        _save_sae(sae, cfg, out_dir, options.save_dtype, info)
        _save_checkpoint(sae, opt, step, since_fired, out_dir, {**state, "seconds": elapsed})
        metrics = evaluate_checkpoint(lm, out_dir, options, heldout, model_name)
        on_checkpoint(record_checkpoint(out_dir, step * per_step, elapsed, metrics))

    with stop_requests() as stop_requested:
        while step < steps and not stop_requested():
            for group in opt.param_groups:
                group["lr"] = options.lr * _lr_factor(step, steps, options.lr, lr_end)
            ids = batch(step)
            with torch.no_grad():
                clean = log_probs(lm, ids, layer, None)  # (B, T-2, V)
            terms.clear()
            spliced = log_probs(lm, ids, layer, reconstruct)
            kl = (clean.exp() * (clean - spliced)).sum(-1).mean()
            loss = kl + MSE_COEFFICIENT * terms["mse"] + options.aux_coefficient * terms["aux"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            fve = 1.0 - float(terms["mse"].detach())
            report(TrainProgress(step * per_step, steps * per_step, math.nan, float(sae.cfg.k), fve,
                                 float((since_fired >= dead_steps).float().mean()), kl=float(kl.detach())))
            del clean, spliced, loss
            if step % checkpoint_every == 0 and step < steps:
                checkpoint()
        completed = step >= steps
    seconds = time.monotonic() - started
    if completed:
        metadata["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    checkpoint()
    return TrainResult(out_dir, step * per_step, seconds, completed,
                       {**metadata, "training_tokens": step * per_step, "completed": completed})
