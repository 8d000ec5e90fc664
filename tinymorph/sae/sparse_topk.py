"""A TopK training SAE whose decoder reads only the active latents.

Owns: `SparseTopKTrainingSAE`, sae-lens's `TopKTrainingSAE` (same parameters, same losses, same
disk format, architecture "topk") with its two decoder products, the reconstruction and the AuxK
reconstruction of the residual from dead latents, computed as sums of the k chosen rows of `W_dec`
(`torch.nn.functional.embedding_bag`) instead of a dense (N, d_sae) @ (d_sae, d_in) product. Gao
et al. 2024 ("Scaling and evaluating sparse autoencoders", sec. 5.3 / app. D) do the same with a
sparse kernel. With k = 48 of 16,384 latents the dense products are ~99.7% multiplications by
zero: on a 2-core CPU they were most of a training step (`docs/sae.md` gives the measurement).
sae-lens's own sparse path (`use_sparse_activations`) fails in backward on CPU. No Textual, no
store.
"""

import torch
import torch.nn.functional as F
from sae_lens.saes.topk_sae import TopKTrainingSAE


def rows_times_W_dec(idx: torch.Tensor, vals: torch.Tensor, W_dec: torch.Tensor, rescale: bool) -> torch.Tensor:
    """sum_j vals[n, j] * W_dec[idx[n, j]] -> (N, d_in), for idx and vals (N, k), W_dec (d_sae,
    d_in). `rescale`: divide each value by its row's norm first, as sae-lens's
    `act_times_W_dec(..., rescale_acts_by_decoder_norm=True)` does. Gradients flow to `vals` and
    `W_dec` (its norms included)."""
    if rescale:
        vals = vals / W_dec.norm(dim=-1)[idx]  # (N, k)
    return F.embedding_bag(idx, W_dec, per_sample_weights=vals.to(W_dec.dtype), mode="sum")


def sparse_decode(acts: torch.Tensor, W_dec: torch.Tensor, k: int, rescale: bool = False) -> torch.Tensor:
    """acts (N, d_sae) with at most `k` nonzeros per row, W_dec (d_sae, d_in) -> acts @ W_dec,
    (N, d_in) (with `rescale`, as `rows_times_W_dec`), summing only the `k` largest entries' rows:
    exact when a row has at most k nonzeros. Gradients flow to both, as through the dense product."""
    vals, idx = acts.topk(k, dim=-1, sorted=False)  # (N, k) each
    return rows_times_W_dec(idx, vals, W_dec, rescale)


class SparseTopKTrainingSAE(TopKTrainingSAE):
    """sae-lens's TopKTrainingSAE with sparse decoder products (see the module docstring).
    Falls back to sae-lens's dense code for inputs that are not (N, d_sae)."""

    def _sparse(self, acts: torch.Tensor) -> bool:
        return acts.dim() == 2 and not acts.is_sparse

    def decode(self, feature_acts: torch.Tensor) -> torch.Tensor:
        if not self._sparse(feature_acts):
            return super().decode(feature_acts)
        sae_out_pre = sparse_decode(feature_acts, self.W_dec, self.cfg.k, self.cfg.rescale_acts_by_decoder_norm)
        sae_out_pre = sae_out_pre + self.b_dec  # (N, d_in)
        sae_out_pre = self.hook_sae_recons(sae_out_pre)
        sae_out_pre = self.run_time_activation_norm_fn_out(sae_out_pre)
        return self.reshape_fn_out(sae_out_pre, self.d_head)

    def calculate_topk_aux_loss(
        self,
        sae_in: torch.Tensor,
        sae_out: torch.Tensor,
        hidden_pre: torch.Tensor,
        dead_neuron_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """sae-lens's AuxK loss (Gao et al. 2024, app. A.2: the top k_aux = d_in / 2 dead latents
        reconstruct the residual the live ones leave, scaled down when few are dead), with the
        reconstruction summed over the chosen rows only."""
        if not self._sparse(hidden_pre):
            return super().calculate_topk_aux_loss(sae_in, sae_out, hidden_pre, dead_neuron_mask)
        if dead_neuron_mask is None or (num_dead := int(dead_neuron_mask.sum())) == 0:
            return sae_out.new_tensor(0.0)
        residual = (sae_in - sae_out).detach()  # (N, d_in)
        k_aux = sae_in.shape[-1] // 2
        scale = min(num_dead / k_aux, 1.0)
        k_aux = min(k_aux, num_dead)
        dead_pre = torch.where(dead_neuron_mask[None], hidden_pre, -torch.inf)  # (N, d_sae)
        top = dead_pre.topk(k_aux, sorted=False)  # (N, k_aux)
        # (N, d_in); no b_dec: it is in the residual already
        recons = rows_times_W_dec(top.indices, top.values, self.W_dec, self.cfg.rescale_acts_by_decoder_norm)
        auxk_loss = (recons - residual).pow(2).sum(dim=-1).mean()
        return self.cfg.aux_loss_coefficient * scale * auxk_loss
