"""The sparse training step gives sae-lens's dense results: the reconstruction, the losses, the
firing activations the trainer counts, and every gradient (float32, no autocast)."""

import pytest
import torch
from sae_lens.saes.sae import TrainStepInput
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

from tinymorph.sae.sparse_topk import SparseTopKTrainingSAE


def pair(rescale: bool):
    cfg = TopKTrainingSAEConfig(d_in=32, d_sae=256, k=6, rescale_acts_by_decoder_norm=rescale, dtype="float32")
    torch.manual_seed(0)
    dense = TopKTrainingSAE(cfg)
    sparse = SparseTopKTrainingSAE(cfg)
    sparse.load_state_dict(dense.state_dict())
    with torch.no_grad():  # decoder rows of unequal norm, so the rescaling matters
        for sae in (dense, sparse):
            sae.W_dec.mul_(torch.linspace(0.5, 2.0, 256)[:, None])
    return dense, sparse


@pytest.mark.parametrize("rescale", [True, False])
def test_sparse_training_step_matches_the_dense_one(rescale):
    dense, sparse = pair(rescale)
    x = torch.randn(64, 32, generator=torch.Generator().manual_seed(2))
    dead = torch.zeros(256, dtype=torch.bool)
    dead[::3] = True  # some latents dead: the AuxK loss is on
    results = []
    for sae in (dense, sparse):
        out = sae.training_forward_pass(TrainStepInput(sae_in=x, coefficients={}, dead_neuron_mask=dead,
                                                       n_training_steps=0, is_logging_step=False))
        out.loss.backward()
        acts = out.feature_acts.detach()
        results.append((out.sae_out.detach(), {k: float(v.detach()) for k, v in out.losses.items()},
                        acts.to_dense() if acts.is_sparse else acts,
                        sae.W_dec.grad.clone(), sae.W_enc.grad.clone(), sae.b_dec.grad.clone(), sae.b_enc.grad.clone()))
    (out_d, loss_d, acts_d, *grads_d), (out_s, loss_s, acts_s, *grads_s) = results
    torch.testing.assert_close(out_s, out_d, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(acts_s, acts_d, rtol=1e-5, atol=1e-6)
    assert loss_d["auxiliary_reconstruction_loss"] > 0
    for key in loss_d:
        assert loss_s[key] == pytest.approx(loss_d[key], rel=1e-5)
    for gs, gd in zip(grads_s, grads_d, strict=True):
        torch.testing.assert_close(gs, gd, rtol=1e-4, atol=1e-6)
