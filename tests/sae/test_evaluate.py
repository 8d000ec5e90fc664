"""`sae eval` on the tiny model: an exact SAE recovers everything, a random one does not."""

import math

import pytest

from tests.builders import save_topk_sae
from tinymorph.sae.corpus import open_corpus, token_sequences
from tinymorph.sae.evaluate import evaluate_sae
from tinymorph.sae.loading import load_sae


@pytest.fixture
def sequences(tiny_lm, tiny_corpus):
    return token_sequences(open_corpus(tiny_corpus).chunks("train"), tiny_lm.tokenizer, 32)[:6]


def test_an_exact_sae_recovers_all_of_the_loss(tiny_lm, tiny_manifest, sequences, tmp_path):
    sae = load_sae(str(save_topk_sae(tmp_path / "s", exact=True)), tiny_manifest, 64, 4)
    m = evaluate_sae(tiny_lm, sae, sequences)
    assert m.tokens == 6 * 31
    assert m.variance_explained == pytest.approx(1.0, abs=1e-5)
    assert m.ce_sae == pytest.approx(m.ce_clean, abs=1e-4)
    assert m.ce_recovered == pytest.approx(1.0, abs=1e-3) and m.ce_recovered_vs_mean == pytest.approx(1.0, abs=1e-3)
    assert m.kl_sae == pytest.approx(0.0, abs=1e-5) and m.kl_random_error == pytest.approx(0.0, abs=1e-5)
    assert 60 <= m.l0 <= 64  # one of +e_i / -e_i per nonzero coordinate
    assert m.dead_fraction == 0.0  # every coordinate takes both signs somewhere


def test_a_random_sae_loses_information(tiny_lm, tiny_manifest, sequences, tmp_path):
    sae = load_sae(str(save_topk_sae(tmp_path / "s")), tiny_manifest, 64, 4)
    m = evaluate_sae(tiny_lm, sae, sequences)
    assert m.variance_explained < 0.5 and m.kl_sae > 0  # (a random model may even gain loss)
    assert m.l0 <= 4
    assert all(math.isfinite(v) for v in m.as_dict().values() if isinstance(v, float))
    assert 0 <= m.dead_fraction <= 1 and 0 <= m.dense_fraction <= 1
