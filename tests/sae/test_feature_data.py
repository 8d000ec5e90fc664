"""Feature data built from scanned text: contexts, densities, logit effects, labels; saved compactly."""

import math

import pytest
import torch

from tests.builders import save_topk_sae
from tinymorph.features import load_feature_data
from tinymorph.lm.hooks import run_to_layer
from tinymorph.sae.corpus import open_corpus, token_sequences
from tinymorph.sae.feature_data import build_feature_data, logit_effects
from tinymorph.sae.loading import load_sae
from tinymorph.sae.search import activation_scores, feature_activations, search_features


@pytest.fixture
def built(tiny_lm, tiny_manifest, tiny_corpus, tmp_path):
    sae = load_sae(str(save_topk_sae(tmp_path / "s")), tiny_manifest, 64, 4)
    seqs = token_sequences(open_corpus(tiny_corpus).chunks("train"), tiny_lm.tokenizer, 32)[:10]
    return sae, seqs, build_feature_data(tiny_lm, sae, seqs, batch=4)


def test_contexts_are_the_strongest_and_densities_count_tokens(tiny_lm, built):
    sae, seqs, data = built
    assert len(data) == 32 and data.tokens_scanned == 10 * 31
    resid = run_to_layer(tiny_lm.model, tiny_lm.model.model.layers, 2, torch.tensor(seqs))
    acts = sae.encode(resid[:, 1:])  # (S, T, F)
    for f in data.features:
        col = acts[..., f.index]
        assert f.density == pytest.approx(float((col > 0).float().mean()))
        assert f.max_act == pytest.approx(float(col.max()), rel=1e-5)
        peaks = [c.act for c in f.contexts]
        assert peaks == sorted(peaks, reverse=True) and len(peaks) <= min(8, 10)
        if f.contexts:
            top = f.contexts[0]
            assert top.acts[top.peak] == 100 and len(top.tokens) == len(top.acts)
            assert f.label and f.label != "dead"


def test_logit_effects_are_the_unembedded_direction(tiny_lm, built):
    sae, _seqs, _data = built
    top_ids, top_vals, bottom_ids, _ = logit_effects(tiny_lm, sae.directions(), n=3)
    with torch.no_grad():
        logits = tiny_lm.model.lm_head(tiny_lm.model.model.norm(sae.directions()[5]))
    assert top_ids[5].tolist() == logits.topk(3).indices.tolist()
    assert bottom_ids[5].tolist() == (-logits).topk(3).indices.tolist()
    assert top_vals[5, 0] == pytest.approx(float(logits.max()), rel=1e-5)


def test_saved_data_reads_back(built, tmp_path):
    _sae, _seqs, data = built
    data.save(tmp_path)
    back = load_feature_data(tmp_path, d_sae=32)
    i = next(f.index for f in data.features if f.contexts)
    assert (
        back.features[i] == data.features[i]
        or back.features[i].contexts[0].tokens == data.features[i].contexts[0].tokens
    )
    assert [f.label for f in back.features] == [f.label for f in data.features]


def test_search_by_activation_finds_what_fires_on_the_text(tiny_lm, built):
    sae, _seqs, data = built
    text = "Waves broke on the shore"
    acts = feature_activations(tiny_lm, sae, text)
    relative = (acts.max(0).values / torch.tensor([max(f.max_act, 1e-6) for f in data.features])).clamp(max=1)
    idf = torch.tensor([math.log(1 / max(f.density, 1e-6)) / math.log(1e4) for f in data.features])
    expected = torch.where(torch.tensor([f.dense for f in data.features]), 0.0, relative * idf)
    scores = activation_scores(tiny_lm, sae, data, text)
    assert max(scores, key=scores.get) == int(expected.argmax())
    assert scores[int(expected.argmax())] == pytest.approx(float(expected.max()), rel=1e-5)
    hits = search_features(tiny_lm, sae, data, text, limit=5)
    assert hits and all(h.activation > 0 or h.text_score > 0 for h in hits)


def test_only_quotable_text_is_quoted_but_all_text_makes_the_labels(tiny_lm, built):
    sae, seqs, data = built
    quotable = [i % 2 == 0 for i in range(len(seqs))]
    limited = build_feature_data(tiny_lm, sae, seqs, quotable=quotable, batch=4)
    texts = {i: "".join(tiny_lm.tokenizer.decode(s[1:])) for i, s in enumerate(seqs)}
    for full, part in zip(data.features, limited.features, strict=True):
        assert part.context_words == full.context_words and part.label == full.label
        for c in part.contexts:  # each quoted context comes from an even (quotable) sequence
            assert any(c.text.strip() in texts[i] for i in texts if quotable[i])
    assert sum(len(f.contexts) for f in limited.features) < sum(len(f.contexts) for f in data.features)
