"""The SAE tinymorph ships: in the package, small, in sae-lens format, meeting its targets, and
documented with the numbers its metrics file holds. Reads files only (no model)."""

import json
from pathlib import Path

import pytest

from tinymorph.features import STEERS_SCORE, load_feature_data
from tinymorph.lm.manifest import available_manifests
from tinymorph.paths import package_data_dir
from tinymorph.sae.feature_data import PROMOTED_TOKENS

FOLDER = package_data_dir("models") / available_manifests()["gemma3-270m"].default_sae
DOCS = Path(__file__).resolve().parents[1] / "docs" / "sae.md"


def test_it_is_installed_in_sae_lens_format_and_small():
    cfg = json.loads((FOLDER / "cfg.json").read_text())
    assert (cfg["d_in"], cfg["d_sae"], cfg["architecture"], cfg["dtype"]) == (640, 16384, "topk", "bfloat16")
    assert cfg["metadata"]["hook_name"] == "blocks.12.hook_resid_post"
    assert cfg["metadata"]["model_name"] == "google/gemma-3-270m"
    size = sum(p.stat().st_size for p in FOLDER.iterdir())
    assert size <= 60 * 2**20, f"{size / 2**20:.1f} MB"  # bf16 weights are 40 MB at 16,384 features
    meta = json.loads((FOLDER / "tinymorph.json").read_text())
    assert meta["completed"] and meta["training_tokens"] >= 19_990_000  # 20M in whole batches of 4,096
    # Modern prose is at least half of what it learned from.
    tokens = meta["corpus_train_tokens"]
    assert tokens["corpus-modern"] >= sum(tokens.values()) / 2
    assert len(meta["corpora"]) == 2  # their fingerprints: docs/evals/results/sae-16k-train_state.json
    assert meta["command"].startswith("tinymorph sae train")
    # Then fine-tuned end to end (KL + MSE, AuxK) on both corpora: docs/sae.md.
    tune = meta["fine_tune"]
    assert tune["objective"] == "kl" and tune["completed"] and tune["training_tokens"] >= 400_000
    assert tune["corpus_train_tokens"] == tokens  # the same training side as the base run


def test_it_meets_the_targets_on_held_out_prose():
    """Issue 19's targets on modern held-out prose, as `sae eval --save` measured them."""
    m = json.loads((FOLDER / "metrics.json").read_text())
    assert m["corpus"].endswith("corpus-modern") and m["split"] == "heldout" and m["tokens"] >= 32_000
    assert m["variance_explained"] >= 0.85
    assert 20 <= m["l0"] <= 80
    assert m["dead_fraction"] <= 0.05
    assert m["kl_sae"] < m["kl_random_error"]
    assert m["ce_recovered"] >= 0.95
    assert m["ce_increase"] <= 0.25


def test_the_docs_quote_the_metrics_file():
    m = json.loads((FOLDER / "metrics.json").read_text())
    docs = DOCS.read_text()
    for key in ("ce_recovered", "variance_explained", "l0", "kl_sae", "kl_random_error", "ce_increase"):
        assert f"{m[key]:.3f}" in docs, key
    assert f"{m['dead_fraction']:.1%}" in docs


def test_every_feature_has_a_label_and_dashboard_data():
    data = load_feature_data(FOLDER, d_sae=16384)
    alive = [f for f in data.features if not f.dead]
    assert len(alive) / len(data) >= 0.95
    # A feature seen only in text whose licence forbids quoting it keeps its words, not the text.
    assert all(f.label and (f.contexts or f.context_words) and len(f.promoted) == PROMOTED_TOKENS for f in alive)
    assert sum(bool(f.contexts) for f in alive) / len(alive) >= 0.99
    assert data.tokens_scanned >= 100_000


@pytest.mark.parametrize("name", ["formal-casual", "positive-negative", "concrete-abstract"])
def test_the_tonality_directions_are_shipped_beside_it(name):
    assert (package_data_dir("models") / "directions" / f"{name}.json").is_file()


def test_every_feature_is_scored_for_steering_and_the_docs_quote_the_count():
    data = load_feature_data(FOLDER)
    assert all(f.output_score is not None for f in data.features)
    for f in data.features:  # the probe ran exactly on the features that write words
        assert (f.concept_rate is not None) == (f.output_score >= STEERS_SCORE and not f.dense), f.index
    steers = sum(f.steers and not f.dense for f in data.features)
    assert steers >= 200
    assert f"{steers} steer" in (DOCS.parent / "steering.md").read_text(encoding="utf-8")


SHARED_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus-modern"  # metrics.json is measured there


@pytest.mark.e2e
def test_its_quality_recomputed_on_a_held_out_slice_matches_the_metrics_file(real):
    """Not only what metrics.json says: 8 held-out sequences of 128 tokens through the real model
    and the SAE give the same sparsity and about the same fit and CE-loss recovered."""
    from tinymorph.lm.model import CALIBRATION_TEXT
    from tinymorph.sae.corpus import heldout_sequences, open_corpus, token_sequences
    from tinymorph.sae.evaluate import evaluate_sae

    lm, sae, _data = real
    if SHARED_CORPUS.is_dir():
        sequences = heldout_sequences(open_corpus(SHARED_CORPUS, ["SOURCES.md"]), lm.tokenizer, 128, 8 * 127)
    else:  # prose written for tinymorph, which no SAE trained on
        sequences = token_sequences(iter([CALIBRATION_TEXT * 8]), lm.tokenizer, 128)[:8]
    got = evaluate_sae(lm, sae, sequences)
    recorded = json.loads((FOLDER / "metrics.json").read_text())
    assert got.tokens >= 500
    assert got.l0 == pytest.approx(recorded["l0"], abs=1.0)  # TopK k = 48
    assert got.variance_explained == pytest.approx(recorded["variance_explained"], abs=0.06)
    assert got.ce_recovered >= 0.9


def test_no_shipped_label_holds_a_slur_and_the_lens_table_matches_the_features():
    from tinymorph.labels import SLURS
    from tinymorph.lens_table import lens_table, load_lens_table

    data = load_feature_data(FOLDER, d_sae=16384)
    words = {w.strip(" →:").lower() for f in data.features for w in f.label.replace(",", " ").split()}
    assert not words & SLURS
    assert load_lens_table(FOLDER, 16384) == lens_table(data)  # the worker reads it instead of the features
