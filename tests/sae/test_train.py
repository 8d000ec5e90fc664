"""`tinymorph sae train` on the tiny model: sae-lens format out, our metadata beside it, it learns;
a stopped run leaves a usable SAE and, resumed, ends where an unbroken run ends; fine-tuning
starts from a trained SAE."""

import copy
import json
import os
import shutil
import signal

import pytest
import torch
from safetensors.torch import load_file

from tinymorph.errors import SAEError
from tinymorph.lm.hooks import run_to_layer
from tinymorph.sae.corpus import open_corpus, token_sequences
from tinymorph.sae.loading import load_sae
from tinymorph.sae.runs import TrainOptions, resume_state
from tinymorph.sae.train import train_sae

OPTIONS = TrainOptions(
    layer=2,
    d_sae=32,
    k=4,
    tokens=256 * 24,
    batch_tokens=256,
    seq_len=32,
    checkpoint_tokens=256 * 5,
    eval_tokens=64,
    autocast=False,
    save_dtype="float32",
    dead_window_steps=5,
    lr=1e-2,
    lr_end=1e-3,
)


def variance_explained(sae, x):
    x_hat = sae.decode(sae.encode(x))
    return float(1 - (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum())


def train(tiny_lm, corpora, out, options=OPTIONS, **kw):
    """`train_sae` on the tiny model with the test's options."""
    return train_sae(tiny_lm, corpora, out, options, model_name="tiny-gemma3", command="tinymorph sae train ...", **kw)


def test_training_writes_sae_lens_format_checkpoints_and_learns(tiny_lm, tiny_manifest, tiny_books, tmp_path):
    reports, checkpoints = [], []
    result = train(tiny_lm, [open_corpus(tiny_books)], tmp_path / "out", report=reports.append,
                   on_checkpoint=checkpoints.append)
    assert result.completed and result.tokens == OPTIONS.tokens
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "cfg.json",
        "checkpoint",
        "checkpoints.jsonl",
        "sae_weights.safetensors",
        "tinymorph.json",
        "train_state.json",
    ]
    meta = json.loads((tmp_path / "out" / "tinymorph.json").read_text())
    assert meta["model"] == "tiny-gemma3" and meta["hook_name"] == "blocks.2.hook_resid_post"
    assert meta["training_tokens"] == OPTIONS.tokens and meta["corpus_train_tokens"]["corpus"] > 0
    assert len(meta["corpus_fingerprints"]["corpus"]) == 64
    assert meta["architecture"] == "topk" and meta["completed"] is True and meta["command"]
    assert [r.tokens for r in reports] == list(range(256, OPTIONS.tokens + 1, 256))
    # A checkpoint every 5 steps and one at the end, each with held-out metrics, also on disk.
    assert [c.tokens for c in checkpoints] == [1280, 2560, 3840, 5120, 6144]
    history = [json.loads(line) for line in (tmp_path / "out" / "checkpoints.jsonl").read_text().splitlines()]
    assert [h["tokens"] for h in history] == [c.tokens for c in checkpoints]
    last = checkpoints[-1].metrics["corpus"]
    assert history[-1]["metrics"]["corpus"]["variance_explained"] == last.variance_explained
    sae = load_sae(str(tmp_path / "out"), tiny_manifest, 64, 4)
    seqs = token_sequences(open_corpus(tiny_books).chunks("train"), tiny_lm.tokenizer, 32)[:8]
    x = run_to_layer(tiny_lm.model, tiny_lm.model.model.layers, 2, torch.tensor(seqs))[:, 1:].reshape(-1, 64).float()
    assert variance_explained(sae, x) > 0.3  # an untrained TopK-4 of 32 random directions explains ~0
    assert reports[-1].variance_explained > reports[0].variance_explained


def test_a_stopped_run_resumes_to_the_same_sae(tiny_lm, tiny_manifest, tiny_books, tmp_path):
    corpus = open_corpus(tiny_books)
    unbroken = train(tiny_lm, [corpus], tmp_path / "unbroken")

    def ctrl_c(progress):
        if progress.tokens == 256 * 7:  # between checkpoints
            os.kill(os.getpid(), signal.SIGINT)

    stopped = train(tiny_lm, [corpus], tmp_path / "parts", report=ctrl_c)
    assert not stopped.completed and stopped.tokens == 256 * 7
    assert json.loads((tmp_path / "parts" / "tinymorph.json").read_text())["completed"] is False
    assert load_sae(str(tmp_path / "parts"), tiny_manifest, 64, 4).d_sae == 32
    assert not (tmp_path / "parts" / ".partial").exists()

    options, corpora, _meta = resume_state(tmp_path / "parts")
    assert options == OPTIONS and corpora[0].files == corpus.files
    resumed = train(tiny_lm, corpora, tmp_path / "parts", options, resume=True)
    assert resumed.completed and resumed.tokens == unbroken.tokens
    a = load_file(tmp_path / "unbroken" / "sae_weights.safetensors")
    b = load_file(tmp_path / "parts" / "sae_weights.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)
    history = (tmp_path / "parts" / "checkpoints.jsonl").read_text().splitlines()
    assert [json.loads(h)["tokens"] for h in history] == [1280, 1792, 2560, 3840, 5120, 6144]


def test_resume_refuses_changed_text_and_a_folder_without_checkpoint(tiny_lm, tiny_books, tmp_path):
    with pytest.raises(SAEError, match="no training checkpoint"):
        resume_state(tmp_path)
    short = TrainOptions(**{**OPTIONS.__dict__, "tokens": 256 * 2})
    train(tiny_lm, [open_corpus(tiny_books)], tmp_path / "out", short)
    (tiny_books / "book0.txt").write_text("changed", encoding="utf-8")
    with pytest.raises(SAEError, match="changed since training started"):
        resume_state(tmp_path / "out")


def test_two_corpora_are_mixed_and_both_evaluated(tiny_lm, tiny_books, tmp_path):
    other = tmp_path / "modern"
    shutil.copytree(tiny_books, other)
    short = TrainOptions(**{**OPTIONS.__dict__, "tokens": 256 * 2})
    checkpoints = []
    train(tiny_lm, [open_corpus(tiny_books), open_corpus(other)], tmp_path / "out", short,
          on_checkpoint=checkpoints.append)
    meta = json.loads((tmp_path / "out" / "tinymorph.json").read_text())
    assert set(meta["corpus_train_tokens"]) == {"corpus", "modern"}
    assert set(checkpoints[-1].metrics) == {"corpus", "modern"}


def test_fine_tuning_starts_from_the_given_sae(tiny_lm, tiny_books, tmp_path):
    corpus = open_corpus(tiny_books)
    train(tiny_lm, [corpus], tmp_path / "base")
    one_step = TrainOptions(**{**OPTIONS.__dict__, "tokens": 256, "lr": 1e-6, "eval_tokens": 0})
    scratch, tuned = [], []
    train(tiny_lm, [corpus], tmp_path / "scratch", one_step, report=scratch.append)
    train(tiny_lm, [corpus], tmp_path / "tuned", one_step, report=tuned.append, start_from=tmp_path / "base")
    assert tuned[0].variance_explained > scratch[0].variance_explained + 0.2
    with pytest.raises(SAEError, match="pass --width 32"):
        train(tiny_lm, [corpus], tmp_path / "wide", TrainOptions(**{**one_step.__dict__, "d_sae": 64}),
              start_from=tmp_path / "base")


def test_fine_tuning_a_model_with_large_activations_keeps_what_the_sae_knew(tiny_lm, tiny_books, tmp_path):
    """Gemma 3's residual stream at layer 12 has norms ~10^4, so the inference SAE's folded
    decoder rows sit far from the scale training uses; fine-tuning must not take Adam steps in
    that scale (it once took a 16k SAE from FVE 0.88 to 0.81 on a new book in 36 steps)."""
    loud = copy.deepcopy(tiny_lm)
    with torch.no_grad():
        loud.model.get_input_embeddings().weight.mul_(1000.0)  # residual norms x~1000, as in Gemma 3
    corpus = open_corpus(tiny_books)
    train(loud, [corpus], tmp_path / "base")
    base = [json.loads(line) for line in (tmp_path / "base" / "checkpoints.jsonl").read_text().splitlines()]
    few = TrainOptions(**{**OPTIONS.__dict__, "tokens": 256 * 5, "checkpoint_tokens": 256 * 5, "lr_end": None})
    checkpoints = []
    train(loud, [corpus], tmp_path / "tuned", few, start_from=tmp_path / "base", on_checkpoint=checkpoints.append)
    before = base[-1]["metrics"]["corpus"]["variance_explained"]
    assert checkpoints[-1].metrics["corpus"].variance_explained > before - 0.05


def test_a_layer_outside_the_model_is_refused(tiny_lm, tiny_books, tmp_path):
    with pytest.raises(SAEError, match="layer 9 does not exist"):
        train(tiny_lm, [open_corpus(tiny_books)], tmp_path, TrainOptions(layer=9))
