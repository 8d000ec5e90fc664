"""Concept sliders on the tiny model: the in-context vector is the mean difference it says it is,
the closest SAE features come from the decoder directions, and ranking reads words."""

from pathlib import Path

import pytest
import torch

from tests.builders import save_topk_sae
from tinymorph.engine import concepts
from tinymorph.engine.concepts import ConceptWords, build_concept
from tinymorph.errors import SteeringError
from tinymorph.lm.hooks import run_to_layer
from tinymorph.lm.model import decoder_layers, load_model
from tinymorph.sae.loading import load_sae


@pytest.fixture(scope="module")
def lm(tiny_manifest):
    return load_model(tiny_manifest, Path("/nonexistent"), lambda *_: None)


def resid(lm, text: str) -> torch.Tensor:
    ids = torch.tensor([[lm.tokenizer.bos_token_id, *lm.tokenizer(text, add_special_tokens=False).input_ids]])
    return run_to_layer(lm.model, decoder_layers(lm.model), lm.hook_layer, ids)[0].float()  # (T, d)


def test_the_concept_is_the_mean_change_that_naming_it_makes_to_neutral_text(lm, monkeypatch):
    monkeypatch.setattr(concepts, "TEMPLATES", ("About {}.", "Topic: {}."))
    monkeypatch.setattr(concepts, "NEUTRAL_SENTENCES", ("The cat sat on the mat.", "We walked home."))
    got = build_concept(lm, "  the   sea ")
    diffs = []
    for template in concepts.TEMPLATES:
        for sentence in concepts.NEUTRAL_SENTENCES:
            alone, named = resid(lm, sentence), resid(lm, template.format("the sea") + " " + sentence)
            n = alone.shape[0] - 2  # the sentence's tokens but BOS and its first
            diffs.append(named[-n:] - alone[-n:])
    expected = torch.cat(diffs).mean(0)
    assert got.name == "the sea" and got.tokens == sum(d.shape[0] for d in diffs)
    torch.testing.assert_close(got.direction, expected, atol=1e-4, rtol=1e-4)  # batched = one by one
    assert got.shift == pytest.approx(float(expected.norm()), rel=1e-4) and got.features == ()


def test_its_closest_sae_features_are_the_decoder_rows_most_aligned_with_it(lm, tiny_manifest, tmp_path):
    sae = load_sae(str(save_topk_sae(tmp_path / "s")), tiny_manifest, 64, 4)
    got = build_concept(lm, "sea", sae)
    w = sae.directions()
    cos = (w @ got.direction) / (w.norm(dim=-1) * got.direction.norm())
    assert [i for i, _ in got.features] == cos.topk(concepts.CONCEPT_FEATURES).indices.tolist()


def test_a_query_without_a_word_is_refused(lm):
    with pytest.raises(SteeringError, match="type a word"):
        build_concept(lm, " ?! ")


def test_closeness_reads_the_words_of_a_suggestion_against_the_query(lm):
    words = ConceptWords(lm)
    sea = words.query_ids("sea and the")  # "and", "the": function words, left out
    assert sea == lm.tokenizer(" sea", add_special_tokens=False).input_ids
    assert words.closeness(sea, "we went to the sea") == pytest.approx(1.0, abs=1e-5)  # the word itself
    assert words.closeness(sea, "") == 0.0
    # (The tiny model's tokens are characters: a text sharing none with " sea" is not close.)
    assert words.closeness(sea, "xyz") < 0.9
