"""The steering evaluation's mechanics on the tiny model (the real numbers are in docs/steering.md)."""

import dataclasses
from pathlib import Path

import pytest
import torch

from tests.builders import save_topk_sae
from tests.ui.fakes import tiny_feature_data
from tinymorph.domain import SteeringSpec, SteeringTerm
from tinymorph.engine.generate import Generator
from tinymorph.engine.protocol import SuggestionReady, SuggestRequest
from tinymorph.evals.steer import (
    Decoding,
    decode_throughput,
    first,
    pick_features,
    score_text,
    shown_suggestion,
    steer_eval,
)
from tinymorph.sae.corpus import token_sequences
from tinymorph.sae.feature_data import build_feature_data
from tinymorph.sae.loading import load_sae

SAMPLED = Decoding(temperature=1.5, alternatives=4, seed=7, tokens=6)


@pytest.fixture
def sae(tiny_manifest, tmp_path):
    return load_sae(str(save_topk_sae(tmp_path / "s")), tiny_manifest, 64, 4)


def test_the_evaluation_shows_exactly_what_the_editor_shows(tiny_lm, sae):
    """shown_suggestion is Generator.suggest with the editor's request: same text, same cut."""
    spec = SteeringSpec((SteeringTerm(0.3, feature=22),))
    ours = shown_suggestion(Generator(tiny_lm, 31, sae), "The sea was calm", spec, SAMPLED, seed=2)
    req = SuggestRequest(5, "The sea was calm", steering=spec, alternatives=4, max_new_tokens=6, temperature=1.5,
                         seed=9)
    editors = Generator(tiny_lm, 31, sae).suggest(req, lambda: False, lambda *_: None)
    assert editors is not None and ours.alternatives == editors.alternatives


def test_steer_eval_fills_the_table_with_a_control_row_per_feature(tiny_lm, sae):
    data = build_feature_data(tiny_lm, sae, token_sequences(iter(["the boats came home. " * 8]), tiny_lm.tokenizer, 32))
    results = steer_eval(tiny_lm, sae, data, ["The sea was", "Boats came"], [3, 5], [0.5, 2.0], decoding=SAMPLED)
    assert [(r.feature, r.strength) for r in results] == [(3, 0.0), (3, 0.5), (3, 2.0), (5, 0.0), (5, 0.5), (5, 2.0)]
    assert all(0 <= r.rises_rate <= 1 and r.perplexity_unsteered > 0 for r in results)


def test_writes_its_words_counts_suggestions_with_the_label_words_the_unsteered_one_lacks(tiny_lm, sae, monkeypatch):
    """The judge reads the shown text: feature 3 writes "year"; on the first prompt the unsteered
    suggestion already says "year" (no credit), on the second only the pushed one does."""
    data = build_feature_data(tiny_lm, sae, token_sequences(iter(["the boats came home. " * 8]), tiny_lm.tokenizer, 32))
    features = list(data.features)
    features[3] = dataclasses.replace(features[3], promoted=((" year", 5.0), ("年", 4.0)))
    data = dataclasses.replace(data, features=tuple(features))
    texts = {(): ["a year ago", "the sea"], (0.0,): ["a year ago", "the sea"], (2.0,): ["three years", "many Years"]}

    def fake(_gen, text, spec, _decoding, seed=0, rank_by=None):
        k = ["The sea was", "Boats came"].index(text)
        return SuggestionReady(0, (texts[tuple(t.strength for t in spec.terms)][k],), 0.0, 0.0, 0, 0)

    monkeypatch.setattr("tinymorph.evals.steer.shown_suggestion", fake)
    results = steer_eval(tiny_lm, sae, data, ["The sea was", "Boats came"], [3], [2.0], decoding=SAMPLED)
    assert [(r.strength, r.words_rate) for r in results] == [(0.0, 0.0), (2.0, 0.5)]


def test_the_control_row_ranks_like_the_steered_rows_and_pushes_nothing(tiny_lm, sae, monkeypatch):
    """Strength 0 under the feature's ranking: the same alternatives as no slider at all, shown
    in the order the feature's ranking gives (the selection effect alone)."""
    gen = Generator(tiny_lm, 31, sae)
    seen = []
    real = gen.suggest

    def spy(req, *args, rank_by=None, **kwargs):
        seen.append((req.steering, rank_by))
        return real(req, *args, rank_by=rank_by, **kwargs)

    monkeypatch.setattr(gen, "suggest", spy)
    data = tiny_feature_data(Path("unused"), save=False)
    data = dataclasses.replace(data, features=data.features * 8)  # 32 labels for the 32 features
    steer_eval(tiny_lm, sae, data, ["The sea was"], [22], [0.5], decoding=SAMPLED, gen=gen)
    (unsteered, none), (control, rank0), (pushed, rank1) = seen
    assert unsteered.is_empty and none is None
    assert control.is_empty and rank0 == rank1 == SteeringSpec((SteeringTerm(1.0, feature=22),))
    assert pushed == SteeringSpec((SteeringTerm(0.5, feature=22),))
    plain = shown_suggestion(Generator(tiny_lm, 31, sae), "The sea was", SteeringSpec(), SAMPLED)
    ranked = shown_suggestion(Generator(tiny_lm, 31, sae), "The sea was", control, SAMPLED, rank_by=rank0)
    assert sorted(ranked.alternatives) == sorted(plain.alternatives)  # the same samples, maybe reordered


def test_the_score_is_what_the_unsteered_model_reads_after_the_prompt(tiny_lm, sae):
    from tests.engine.test_sae_steering import layer_output

    gen = Generator(tiny_lm, 31, sae)
    ids = gen.context_ids("The sea was calm")
    text = first(shown_suggestion(gen, "The sea was calm", SteeringSpec((SteeringTerm(0.3, feature=22),)), SAMPLED))
    assert text
    score = score_text(tiny_lm, ids, text, sae)
    cont = tiny_lm.tokenizer(text, add_special_tokens=False).input_ids
    with torch.no_grad():
        acts = sae.encode(layer_output(tiny_lm, ids + cont)[len(ids):])
        logp = torch.log_softmax(tiny_lm.model(torch.tensor([ids + cont])).logits[0, len(ids) - 1 : -1].float(), -1)
    torch.testing.assert_close(score.acts, acts.mean(0), atol=1e-5, rtol=1e-4)
    expected = float((-logp.gather(-1, torch.tensor(cont)[:, None])).mean().exp())
    assert score.perplexity == pytest.approx(expected, rel=1e-4)
    assert score_text(tiny_lm, ids, "", sae).tokens == 0


def test_decode_throughput_counts_steps_per_second(tiny_lm, sae):
    speed = decode_throughput(Generator(tiny_lm, 31, sae), ["The sea", "Boats"], [1, 16], SAMPLED, repeats=1)
    assert set(speed) == {0, 1, 16} and all(v > 0 for v in speed.values())


def test_the_steers_sample_keeps_only_features_that_steer():
    data = tiny_feature_data(Path("unused"), save=False)
    data = dataclasses.replace(data, features=tuple(
        dataclasses.replace(f, output_score=0.5 if f.index in (1, 2, 3) else 0.0,
                            concept_rate=0.1 if f.index == 3 else 1.0)  # 3 moves probability, its text lacks the words
        for f in data.features
    ))
    assert sorted(pick_features(data, 10, steers_only=True)) == [1, 2]
    assert sorted(pick_features(data, 10)) == [0, 1, 2, 3]
