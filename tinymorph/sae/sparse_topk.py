"""A TopK training SAE that touches only the chosen latents after the encoder's one dense product.

Owns: `SparseTopKTrainingSAE`, sae-lens's `TopKTrainingSAE` (same parameters, same losses, same
disk format, architecture "topk") computed sparsely. Gao et al. 2024 ("Scaling and evaluating
sparse autoencoders", sec. 5.3 / app. D) do the same with sparse kernels. With k = 48 of 16,384
latents the dense (N, d_sae) tensors of the plain code are ~99.7% zeros:
- the decoder products (the reconstruction, and the AuxK reconstruction of the residual from
  dead latents) are sums of the chosen rows of `W_dec` (`torch.nn.functional.embedding_bag`);
- the encoder's pre-activations (N, d_sae) are computed once without autograd, the top k (and the
  AuxK candidates) chosen from them, and only the chosen entries carry gradients (`_Chosen`):
  the gradient of `W_enc` is a sparse (d_sae, N) @ (N, d_in) product instead of a dense one;
- the activations handed to sae-lens's trainer (for its firing statistics) are a sparse COO
  tensor.
On a 2-core CPU the dense code's step was mostly those tensors (`docs/sae.md` gives the
measurements). sae-lens's own sparse path (`use_sparse_activations`) fails in backward on CPU.
No Textual, no store.
"""

import torch
import torch.nn.functional as F
from sae_lens.saes.sae import TrainStepInput, TrainStepOutput
from sae_lens.saes.topk_sae import TopKTrainingSAE


def rows_times_W_dec(idx: torch.Tensor, vals: torch.Tensor, W_dec: torch.Tensor, rescale: bool) -> torch.Tensor:
    """sum_j vals[n, j] * W_dec[idx[n, j]] -> (N, d_in), for idx and vals (N, k), W_dec (d_sae,
    d_in). `rescale`: divide each value by its row's norm first, as sae-lens's
    `act_times_W_dec(..., rescale_acts_by_decoder_norm=True)` does. Gradients flow to `vals` and
    `W_dec` (its norms included)."""
    if rescale:
        vals = vals / W_dec.norm(dim=-1)[idx]  # (N, k)
    return F.embedding_bag(idx, W_dec, per_sample_weights=vals.to(W_dec.dtype), mode="sum")


class _Chosen(torch.autograd.Function):
    """vals[n, j] = sae_in[n] . W_enc[:, idx[n, j]] + b_enc[idx[n, j]] for the chosen latents
    idx (N, k), read from the pre-activations `pre` (N, d_sae) computed without autograd (any
    dtype: under bf16 autocast they are bf16). Backward touches only the chosen entries:
    grad W_enc (d_in, d_sae) = (sparse G (d_sae, N) @ sae_in (N, d_in)).T, grad b_enc by index_add,
    grad sae_in (N, d_in) = sum_j g[n, j] W_enc[:, idx[n, j]] (embedding_bag over W_enc.T). Equal
    to autograd through `(sae_in @ W_enc + b_enc).gather(1, idx)` when a row's indices are distinct
    (top-k indices are)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, sae_in: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, idx: torch.Tensor, pre: torch.Tensor
    ) -> torch.Tensor:
        ctx.save_for_backward(sae_in, W_enc, idx)
        ctx.b_shape = b_enc.shape
        return pre.gather(1, idx)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[no-untyped-def, override]
        sae_in, W_enc, idx = ctx.saved_tensors
        g = grad.to(W_enc.dtype)  # (N, k)
        n, k = idx.shape
        d_sae = W_enc.shape[1]
        grad_in = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_in = F.embedding_bag(idx, W_enc.t().contiguous(), per_sample_weights=g, mode="sum").to(sae_in.dtype)
        if ctx.needs_input_grad[1]:
            rows = torch.arange(n, device=idx.device).repeat_interleave(k)
            chosen = torch.sparse_coo_tensor(
                torch.stack([idx.reshape(-1), rows]), g.reshape(-1), (d_sae, n), check_invariants=False
            )
            grad_w = torch.sparse.mm(chosen, sae_in.to(W_enc.dtype)).t().contiguous()  # (d_in, d_sae)
        if ctx.needs_input_grad[2]:
            grad_b = torch.zeros(ctx.b_shape, dtype=W_enc.dtype, device=W_enc.device)
            grad_b.index_add_(0, idx.reshape(-1), g.reshape(-1))
        return grad_in, grad_w, grad_b, None, None


class SparseTopKTrainingSAE(TopKTrainingSAE):
    """sae-lens's TopKTrainingSAE with sparse decoder products (see the module docstring).
    Falls back to sae-lens's dense code for inputs that are not (N, d_sae)."""

    def _sparse(self, acts: torch.Tensor) -> bool:
        return acts.dim() == 2 and not acts.is_sparse

    def decode(self, feature_acts: torch.Tensor) -> torch.Tensor:
        if not self._sparse(feature_acts):
            return super().decode(feature_acts)
        vals, idx = feature_acts.topk(self.cfg.k, dim=-1, sorted=False)  # (N, k) each
        return self._decode_chosen(idx, vals)

    def _decode_chosen(self, idx: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
        """The reconstruction (N, d_in) from the chosen latents idx (N, k) and their values."""
        sae_out_pre = rows_times_W_dec(idx, vals, self.W_dec, self.cfg.rescale_acts_by_decoder_norm)
        sae_out_pre = sae_out_pre + self.b_dec  # (N, d_in)
        sae_out_pre = self.hook_sae_recons(sae_out_pre)
        sae_out_pre = self.run_time_activation_norm_fn_out(sae_out_pre)
        return self.reshape_fn_out(sae_out_pre, self.d_head)

    def training_forward_pass(self, step_input: TrainStepInput) -> TrainStepOutput:
        """sae-lens's training step (MSE + AuxK), computed sparsely (module docstring): the same
        losses and gradients, `rescale_acts_by_decoder_norm` included. Falls back to sae-lens's
        code for inputs that are not (N, d_in)."""
        x = step_input.sae_in
        if x.dim() != 2:
            return super().training_forward_pass(step_input)
        sae_in = self.process_sae_in(x)  # (N, d_in); b_dec's gradient flows through it
        scale = self.W_dec.norm(dim=-1) if self.cfg.rescale_acts_by_decoder_norm else None  # (d_sae,)
        with torch.no_grad():
            pre = sae_in @ self.W_enc + self.b_enc  # (N, d_sae): only the chosen entries get gradients
            hidden_pre = pre * scale if scale is not None else pre  # what TopK chooses from
            idx = hidden_pre.topk(self.cfg.k, dim=-1, sorted=False).indices  # (N, k)
        vals = self._chosen(sae_in, idx, pre, scale).relu()  # (N, k), TopK's ReLU
        sae_out = self._decode_chosen(idx, vals)
        mse_loss = self.mse_loss_fn(sae_out, x).sum(dim=-1).mean()
        aux = self._aux_loss(x, sae_out, sae_in, pre, hidden_pre, scale, step_input.dead_neuron_mask)
        n = x.shape[0]
        rows = torch.arange(n, device=x.device).repeat_interleave(self.cfg.k)
        feature_acts = torch.sparse_coo_tensor(  # (N, d_sae), for the trainer's firing statistics
            torch.stack([rows, idx.reshape(-1)]), vals.detach().reshape(-1), (n, self.cfg.d_sae), check_invariants=False
        )
        return TrainStepOutput(
            sae_in=x,
            sae_out=sae_out,
            feature_acts=feature_acts,
            hidden_pre=hidden_pre,
            loss=mse_loss + aux,
            losses={"mse_loss": mse_loss, "auxiliary_reconstruction_loss": aux},
        )

    def _chosen(
        self, sae_in: torch.Tensor, idx: torch.Tensor, pre: torch.Tensor, scale: torch.Tensor | None
    ) -> torch.Tensor:
        """The hidden pre-activations (N, k) of the chosen latents idx (N, k), with gradients: the
        encoder's (`_Chosen`) times their decoder rows' norms when rescaling (gradient to W_dec)."""
        vals = _Chosen.apply(sae_in, self.W_enc, self.b_enc, idx, pre)
        return vals * scale[idx] if scale is not None else vals

    def _aux_loss(
        self, x: torch.Tensor, sae_out: torch.Tensor, sae_in: torch.Tensor, pre: torch.Tensor,
        hidden_pre: torch.Tensor, scale: torch.Tensor | None, dead_neuron_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """sae-lens's AuxK loss (Gao et al. 2024, app. A.2: the top k_aux = d_in / 2 dead latents
        reconstruct the residual the live ones leave, scaled down when few are dead), choosing
        from `hidden_pre` (no autograd) and giving gradients to the chosen entries only."""
        if dead_neuron_mask is None or (num_dead := int(dead_neuron_mask.sum())) == 0:
            return sae_out.new_tensor(0.0)
        residual = (x - sae_out).detach()  # (N, d_in)
        k_aux = x.shape[-1] // 2
        weight = min(num_dead / k_aux, 1.0)
        k_aux = min(k_aux, num_dead)
        with torch.no_grad():
            idx = torch.where(dead_neuron_mask[None], hidden_pre, -torch.inf).topk(k_aux, sorted=False).indices
        vals = self._chosen(sae_in, idx, pre, scale)  # (N, k_aux)
        recons = rows_times_W_dec(idx, vals, self.W_dec, self.cfg.rescale_acts_by_decoder_norm)  # no b_dec
        auxk_loss = (recons - residual).pow(2).sum(dim=-1).mean()
        return self.cfg.aux_loss_coefficient * weight * auxk_loss
