"""`tinymorph sae train --objective kl` on the tiny model: fine-tuning on the model's own next-token
distribution lowers KL(clean || spliced) on held-out text, writes the same folder layout as
reconstruction training, and a stopped run resumes to the weights of an unbroken one."""

import copy
import json
import os
import signal

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.sae.test_train import OPTIONS, train
from tinymorph.errors import SAEError
from tinymorph.sae import kl_finetune
from tinymorph.sae.corpus import heldout_sequences, open_corpus
from tinymorph.sae.evaluate import evaluate_sae
from tinymorph.sae.kl_finetune import KL_BATCH_SEQUENCES, aux_loss, finetune_kl
from tinymorph.sae.loading import load_sae
from tinymorph.sae.runs import TrainOptions, resume_state

STEP = KL_BATCH_SEQUENCES * (OPTIONS.seq_len - 1)  # tokens a step
KL = TrainOptions(**{**OPTIONS.__dict__, "objective": "kl", "tokens": STEP * 20, "checkpoint_tokens": STEP * 5,
                     "lr": 3e-3, "lr_end": None})


def tune(tiny_lm, corpora, out, options=KL, **kw):
    """`finetune_kl` on the tiny model with the test's options."""
    return finetune_kl(tiny_lm, corpora, out, options, model_name="tiny-gemma3", command="tinymorph sae train ...",
                       **kw)


@pytest.fixture
def sharp_lm(tiny_lm):
    """The tiny model with logits x10: a random model's next-token distribution is nearly flat, so
    any reconstruction has a KL near 0; a trained model's is peaked, as this one's."""
    sharp = copy.deepcopy(tiny_lm)
    with torch.no_grad():
        sharp.model.model.norm.weight.add_(1.0).mul_(10.0).sub_(1.0)  # Gemma's RMSNorm scales by (1 + weight)
    return sharp


@pytest.fixture
def base(tiny_lm, tiny_books, tmp_path):
    """An SAE trained on reconstruction: what the KL fine-tune starts from."""
    train(tiny_lm, [open_corpus(tiny_books)], tmp_path / "base")
    return tmp_path / "base"


def test_kl_fine_tuning_lowers_the_kl_of_the_spliced_model_on_held_out_text(sharp_lm, tiny_manifest, tiny_books,
                                                                           base, tmp_path):
    tiny_lm = sharp_lm
    corpus = open_corpus(tiny_books)
    heldout = heldout_sequences(corpus, tiny_lm.tokenizer, 32, 31 * 16)
    before = evaluate_sae(tiny_lm, load_sae(str(base), tiny_manifest, 64, 4), heldout, baselines=False)
    reports, checkpoints = [], []
    result = tune(tiny_lm, [corpus], tmp_path / "kl", start_from=base, report=reports.append,
                  on_checkpoint=checkpoints.append)
    assert result.completed and result.tokens == KL.tokens
    assert all(r.kl is not None and r.kl >= 0 for r in reports) and len(reports) == 20
    assert [c.tokens for c in checkpoints] == [STEP * 5, STEP * 10, STEP * 15, STEP * 20]
    tuned = load_sae(str(tmp_path / "kl"), tiny_manifest, 64, 4)
    after = evaluate_sae(tiny_lm, tuned, heldout, baselines=False)
    assert after.kl_sae < 0.9 * before.kl_sae
    assert after.variance_explained > before.variance_explained - 0.1  # still a reconstruction
    meta = json.loads((tmp_path / "kl" / "tinymorph.json").read_text())
    assert meta["objective"] == "kl" and meta["started_from"] == str(base) and meta["completed"] is True
    cfg = json.loads((tmp_path / "kl" / "cfg.json").read_text())
    assert cfg["d_sae"] == 32 and cfg["metadata"]["hook_name"] == "blocks.2.hook_resid_post"


def test_a_stopped_kl_run_resumes_to_the_same_sae(tiny_lm, tiny_books, base, tmp_path, monkeypatch):
    monkeypatch.setattr(kl_finetune, "KL_DEAD_WINDOW_TOKENS", STEP * 3)  # AuxK on, its firing record resumed
    _silence(base, 7)
    corpus = open_corpus(tiny_books)
    tune(tiny_lm, [corpus], tmp_path / "unbroken", start_from=base)

    def ctrl_c(progress):
        if progress.tokens == STEP * 7:  # between checkpoints
            os.kill(os.getpid(), signal.SIGINT)

    stopped = tune(tiny_lm, [corpus], tmp_path / "parts", start_from=base, report=ctrl_c)
    assert not stopped.completed and stopped.tokens == STEP * 7
    options, corpora, _meta = resume_state(tmp_path / "parts")
    assert options == KL
    resumed = tune(tiny_lm, corpora, tmp_path / "parts", options, resume=True)
    assert resumed.completed and resumed.tokens == KL.tokens
    a = load_file(tmp_path / "unbroken" / "sae_weights.safetensors")
    b = load_file(tmp_path / "parts" / "sae_weights.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)


def test_kl_fine_tuning_needs_an_sae_to_start_from(tiny_lm, tiny_books, tmp_path):
    with pytest.raises(SAEError, match="give --from"):
        tune(tiny_lm, [open_corpus(tiny_books)], tmp_path / "kl")


def _silence(folder, latent):
    """Give `latent` of the SAE in `folder` a bias that keeps it out of the top k on any input."""
    path = folder / "sae_weights.safetensors"
    weights = load_file(path)
    weights["b_enc"][latent] = -1e4
    save_file(weights, path)


@pytest.mark.parametrize("aux_coefficient", [0.0, 1.0])
def test_latents_that_stop_firing_get_the_auxk_gradient_and_only_with_it(tiny_lm, tiny_books, base, tmp_path,
                                                                      monkeypatch, aux_coefficient):
    monkeypatch.setattr(kl_finetune, "KL_DEAD_WINDOW_TOKENS", STEP * 3)
    _silence(base, 7)
    before = load_file(base / "sae_weights.safetensors")
    reports = []
    options = TrainOptions(**{**KL.__dict__, "aux_coefficient": aux_coefficient})
    tune(tiny_lm, [open_corpus(tiny_books)], tmp_path / "kl", options, start_from=base, report=reports.append)
    after = load_file(tmp_path / "kl" / "sae_weights.safetensors")
    assert reports[0].dead_fraction == 0.0 and max(r.dead_fraction for r in reports) >= 1 / 32
    moved = (after["W_enc"][:, 7] - before["W_enc"][:, 7]).abs().max()
    if aux_coefficient:
        assert moved > 1e-4  # AuxK pulls its encoder towards the live latents' error
    else:
        assert moved == 0.0  # a latent outside the top k gets no gradient from KL or MSE


def test_auxk_is_zero_without_dead_latents_and_when_they_reconstruct_the_error():
    from types import SimpleNamespace

    from tinymorph.sae.loading import NativeTopKSAE

    torch.manual_seed(0)
    cfg = SimpleNamespace(d_in=4, d_sae=6, k=2, apply_b_dec_to_input=True, rescale_acts_by_decoder_norm=False)
    w_dec = torch.eye(6, 4)
    sae = NativeTopKSAE(cfg, {"W_enc": torch.randn(4, 6), "b_enc": torch.zeros(6), "W_dec": w_dec,
                              "b_dec": torch.randn(4)})
    error = torch.tensor([[0.0, 0.0, 1.5, -0.5]])  # what latents 2 and 3 write, at 1.5 and -0.5
    hidden_pre = torch.tensor([[9.0, 9.0, 1.5, -0.5, -3.0, -4.0]])
    one = torch.tensor(1.0)
    none_dead = torch.zeros(6, dtype=torch.bool)
    assert aux_loss(sae, hidden_pre, error, none_dead, one) == 0.0
    dead = torch.tensor([False, False, True, True, False, False])
    assert aux_loss(sae, hidden_pre, error, dead, one) == pytest.approx(0.0, abs=1e-6)
    wrong = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
    assert aux_loss(sae, hidden_pre, wrong, dead, one) == pytest.approx(1.5**2 + 0.5**2)  # k_aux = 2 = d_in / 2
