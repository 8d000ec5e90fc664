"""Evaluating an SAE on held-out text: sparsity, reconstruction, and what splicing it in does to
the model's predictions.

Owns: `tinymorph sae eval`'s numbers. Per batch of held-out sequences the full model runs five
times: clean; with the SAE's reconstruction spliced in at its layer; with the layer's output
zero-ablated; mean-ablated; and with a random vector of the same norm as the SAE's error added
instead of the error itself (Gurnee 2024, "SAE reconstruction errors are (empirically)
pathological"). BOS is left clean in every run (the SAE never encodes it). Sources: CE-loss
recovered and fraction of variance explained as in sae-lens's `evals.py`; dead / dense features
as in Anthropic's "Towards Monosemanticity" (2023). No Textual, no store.
"""

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from tinymorph.features import DENSE_FRACTION
from tinymorph.lm.hooks import run_to_layer
from tinymorph.lm.model import LoadedModel, decoder_layers
from tinymorph.sae.loading import LoadedSAE

Replace = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class EvalMetrics:
    """What `tinymorph sae eval` reports. Losses are mean next-token cross-entropy in nats over
    positions after a non-BOS token; KL is KL(clean || spliced) in nats per token."""

    sae_id: str
    tokens: int
    l0: float
    """Mean number of active features per token."""
    variance_explained: float
    """1 - sum ||x - x_hat||^2 / sum ||x - mean||^2 (mean over the held-out tokens)."""
    ce_clean: float
    ce_sae: float
    ce_zero_ablation: float
    ce_mean_ablation: float
    ce_recovered: float
    """(ce_zero - ce_sae) / (ce_zero - ce_clean): the usual CE-loss recovered."""
    ce_recovered_vs_mean: float
    """The same against mean ablation, a stricter baseline for this model."""
    ce_increase: float
    """ce_sae - ce_clean, in nats."""
    kl_sae: float
    kl_random_error: float
    """KL with x + (random vector of norm ||x - x_hat||) spliced in, for comparison with kl_sae."""
    dead_fraction: float
    """Features never active on these tokens."""
    dense_fraction: float
    """Features active on more than 10% of these tokens."""
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def splice(layer: torch.nn.Module, replace: Replace | None) -> Any:
    """Register a forward hook on `layer` (a decoder layer) that swaps the non-BOS part of its
    output, the residual stream (B, T, d_model), for `replace(x)` computed in float32; returns the
    hook's handle (None when `replace` is None). Differentiable: gradients reach whatever
    `replace` closes over (`sae.kl_finetune` trains through it)."""

    def hook(_m: torch.nn.Module, _a: Any, out: Any) -> Any:
        hidden = out[0] if isinstance(out, tuple) else out  # (B, T, d)
        new = hidden.clone()
        new[:, 1:] = replace(hidden[:, 1:].float()).to(hidden.dtype)  # type: ignore[misc]
        return (new, *out[1:]) if isinstance(out, tuple) else new

    return layer.register_forward_hook(hook) if replace is not None else None


def log_probs(lm: LoadedModel, ids: torch.Tensor, layer: torch.nn.Module, replace: Replace | None) -> torch.Tensor:
    """Next-token log-probabilities (B, T-2, V) float32 for `ids` (B, T) (BOS first), predicted
    after each non-BOS token but the last, with `replace` spliced in at `layer` (None: clean)."""
    handle = splice(layer, replace)
    try:
        logits = lm.model(input_ids=ids, use_cache=False).logits  # (B, T, V)
    finally:
        if handle is not None:
            handle.remove()
    return F.log_softmax(logits[:, 1:-1].float(), dim=-1)  # predictions after non-BOS tokens: (B, T-2, V)


def _ce(logp: torch.Tensor, target: torch.Tensor) -> float:
    """Summed next-token cross-entropy: logp (B, T, V), target (B, T)."""
    return float(-logp.gather(-1, target.unsqueeze(-1)).sum())


def _kl(p_clean: torch.Tensor, logp_clean: torch.Tensor, logp: torch.Tensor) -> float:
    """Summed KL(clean || other) over positions: each (B, T, V)."""
    return float((p_clean * (logp_clean - logp)).sum())


@torch.no_grad()
def evaluate_sae(
    lm: LoadedModel,
    sae: LoadedSAE,
    sequences: list[list[int]],
    *,
    batch: int = 2,
    seed: int = 0,
    baselines: bool = True,
    report: Callable[[int, int], None] = lambda _d, _t: None,
) -> EvalMetrics:
    """Evaluate `sae` on `sequences` (BOS-prefixed held-out token lists of equal length).
    `baselines` False skips the random-error, zero- and mean-ablation passes (2 full passes per
    batch instead of 5; their metrics are then NaN): what training records at each checkpoint."""
    started = time.monotonic()
    generator = torch.Generator().manual_seed(seed)
    layers = decoder_layers(lm.model)
    layer = layers[sae.layer]
    # The mean activation (for mean ablation and the variance baseline), from a layer-only pass.
    total, count = torch.zeros(sae.d_in), 0
    for start in range(0, len(sequences), 8):
        resid = run_to_layer(lm.model, layers, sae.layer, torch.tensor(sequences[start : start + 8]))[:, 1:].float()
        total += resid.sum((0, 1))
        count += resid.shape[0] * resid.shape[1]
    mean = total / count  # (d,)

    sums = dict.fromkeys(
        ("ce_clean", "ce_sae", "ce_zero", "ce_mean", "kl_sae", "kl_rand", "l0", "sq_err", "sq_var"), 0.0
    )
    active = torch.zeros(sae.d_sae, dtype=torch.long)
    n_tok = n_pred = 0

    def reconstruct(x: torch.Tensor) -> torch.Tensor:
        acts = sae.encode(x)  # (B, T, F)
        nonlocal active
        active += (acts > 0).sum((0, 1))
        sums["l0"] += float((acts > 0).sum())
        x_hat = sae.decode(acts)
        sums["sq_err"] += float((x - x_hat).pow(2).sum())
        sums["sq_var"] += float((x - mean).pow(2).sum())
        return x_hat

    def random_error(x: torch.Tensor) -> torch.Tensor:
        err_norm = (x - sae.decode(sae.encode(x))).norm(dim=-1, keepdim=True)  # (B, T, 1)
        noise = torch.randn(x.shape, generator=generator)
        return x + noise / noise.norm(dim=-1, keepdim=True) * err_norm

    for start in range(0, len(sequences), batch):
        ids = torch.tensor(sequences[start : start + batch])  # (B, T)
        target = ids[:, 2:]  # (B, T-2)
        clean = log_probs(lm, ids, layer, None)
        p_clean = clean.exp()

        sums["ce_clean"] += _ce(clean, target)
        spliced = log_probs(lm, ids, layer, reconstruct)
        sums["ce_sae"] += _ce(spliced, target)
        sums["kl_sae"] += _kl(p_clean, clean, spliced)
        del spliced
        if baselines:
            sums["kl_rand"] += _kl(p_clean, clean, log_probs(lm, ids, layer, random_error))
            sums["ce_zero"] += _ce(log_probs(lm, ids, layer, torch.zeros_like), target)
            sums["ce_mean"] += _ce(log_probs(lm, ids, layer, lambda x: mean.expand_as(x)), target)
        else:
            sums["kl_rand"] = sums["ce_zero"] = sums["ce_mean"] = math.nan
        n_tok += ids.shape[0] * (ids.shape[1] - 1)
        n_pred += target.numel()
        report(min(start + batch, len(sequences)), len(sequences))

    ce_clean, ce_sae = sums["ce_clean"] / n_pred, sums["ce_sae"] / n_pred
    ce_zero, ce_mean = sums["ce_zero"] / n_pred, sums["ce_mean"] / n_pred
    density = active.float() / n_tok
    return EvalMetrics(
        sae_id=sae.sae_id,
        tokens=n_tok,
        l0=sums["l0"] / n_tok,
        variance_explained=1 - sums["sq_err"] / sums["sq_var"],
        ce_clean=ce_clean,
        ce_sae=ce_sae,
        ce_zero_ablation=ce_zero,
        ce_mean_ablation=ce_mean,
        ce_recovered=(ce_zero - ce_sae) / (ce_zero - ce_clean),
        ce_recovered_vs_mean=(ce_mean - ce_sae) / (ce_mean - ce_clean),
        ce_increase=ce_sae - ce_clean,
        kl_sae=sums["kl_sae"] / n_pred,
        kl_random_error=sums["kl_rand"] / n_pred,
        dead_fraction=float((density == 0).float().mean()),
        dense_fraction=float((density > DENSE_FRACTION).float().mean()),
        seconds=time.monotonic() - started,
    )
