"""`tinymorph sae train` on the tiny model: sae-lens format out, our metadata beside it, it learns,
and Ctrl+C leaves a usable SAE."""

import json

import pytest
import torch

from tinymorph.errors import SAEError
from tinymorph.lm.hooks import run_to_layer
from tinymorph.sae.corpus import open_corpus, token_sequences
from tinymorph.sae.loading import load_sae
from tinymorph.sae.train import TrainOptions, train_sae

OPTIONS = TrainOptions(
    layer=2,
    d_sae=32,
    k=4,
    tokens=256 * 24,
    batch_tokens=256,
    seq_len=32,
    checkpoints=1,
    autocast=False,
    save_dtype="float32",
    dead_window_steps=5,
    lr=1e-2,
    lr_end=1e-3,
)


def variance_explained(sae, x):
    x_hat = sae.decode(sae.encode(x))
    return float(1 - (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum())


def test_training_writes_sae_lens_format_and_learns(tiny_lm, tiny_manifest, tiny_corpus, tmp_path):
    reports = []
    result = train_sae(
        tiny_lm,
        open_corpus(tiny_corpus),
        tmp_path / "out",
        OPTIONS,
        model_name="tiny-gemma3",
        command="tinymorph sae train ...",
        report=reports.append,
    )
    assert result.completed and result.tokens == OPTIONS.tokens
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "cfg.json",
        "sae_weights.safetensors",
        "tinymorph.json",
    ]
    meta = json.loads((tmp_path / "out" / "tinymorph.json").read_text())
    assert meta["model"] == "tiny-gemma3" and meta["hook_name"] == "blocks.2.hook_resid_post"
    assert meta["training_tokens"] == OPTIONS.tokens and len(meta["corpus_fingerprint"]) == 64
    assert meta["architecture"] == "topk" and meta["completed"] is True and meta["command"]
    assert [r.tokens for r in reports] == list(range(256, OPTIONS.tokens + 1, 256))
    sae = load_sae(str(tmp_path / "out"), tiny_manifest, 64, 4)
    seqs = token_sequences(open_corpus(tiny_corpus).chunks("train"), tiny_lm.tokenizer, 32)[:8]
    x = run_to_layer(tiny_lm.model, tiny_lm.model.model.layers, 2, torch.tensor(seqs))[:, 1:].reshape(-1, 64).float()
    assert variance_explained(sae, x) > 0.3  # an untrained TopK-4 of 32 random directions explains ~0
    assert reports[-1].variance_explained > reports[0].variance_explained


def test_ctrl_c_leaves_a_loadable_sae(tiny_lm, tiny_manifest, tiny_corpus, tmp_path):
    def interrupt(progress):
        if progress.tokens >= 256 * 3:
            raise KeyboardInterrupt

    result = train_sae(
        tiny_lm,
        open_corpus(tiny_corpus),
        tmp_path / "out",
        OPTIONS,
        model_name="tiny-gemma3",
        command="",
        report=interrupt,
    )
    assert not result.completed and result.tokens == 256 * 3
    assert json.loads((tmp_path / "out" / "tinymorph.json").read_text())["completed"] is False
    assert load_sae(str(tmp_path / "out"), tiny_manifest, 64, 4).d_sae == 32
    assert not (tmp_path / "out" / ".partial").exists()


def test_a_layer_outside_the_model_is_refused(tiny_lm, tiny_corpus, tmp_path):
    with pytest.raises(SAEError, match="layer 9 does not exist"):
        train_sae(tiny_lm, open_corpus(tiny_corpus), tmp_path, TrainOptions(layer=9), model_name="x", command="")
