"""Output scores (Arad et al. 2025): each feature steered in a batch equals steering it alone."""

import pytest
import torch

from tests.builders import save_topk_sae
from tinymorph.domain import SteeringSpec, SteeringTerm
from tinymorph.lm.model import decoder_layers
from tinymorph.lm.steering import resolve_steering, steered
from tinymorph.sae.feature_data import logit_effects
from tinymorph.sae.loading import load_sae
from tinymorph.sae.output_score import CANDIDATES, output_scores, probe_concept_rates, promoted_words, word_tokens
from tinymorph.sae.search import feature_activations


@pytest.fixture
def sae(tiny_manifest, tmp_path):
    return load_sae(str(save_topk_sae(tmp_path / "s", d_sae=12)), tiny_manifest, 64, 4)


def _prompts(tiny_lm):
    texts = ["The sea was", "Boats came ", "She wrote a"]
    return [[tiny_lm.tokenizer.bos_token_id, *tiny_lm.tokenizer(t, add_special_tokens=False).input_ids] for t in texts]


@torch.no_grad()
def _alone(tiny_lm, sae, prompts, feature: int, strength: float) -> float:
    """The output score of one feature, the slow way: the sliders' own steering, one prompt at a time."""
    top = logit_effects(tiny_lm, sae.directions(), CANDIDATES)[0][feature]  # (C,)
    promoted = top[[i for i, t in enumerate(top.tolist()) if tiny_lm.tokenizer.convert_ids_to_tokens(t).isalpha()][:8]]
    spec = SteeringSpec((SteeringTerm(strength, feature=feature),))
    steering = resolve_steering(spec, tiny_lm.d_model, tiny_lm.median_norm, sae)
    rises = []
    for ids in prompts:
        x = torch.tensor([ids])
        base = torch.softmax(tiny_lm.model(input_ids=x).logits[0, -1].float(), -1)[promoted].sum()
        with steered(decoder_layers(tiny_lm.model)[sae.layer], steering):
            moved = torch.softmax(tiny_lm.model(input_ids=x).logits[0, -1].float(), -1)[promoted].sum()
        rises.append(float(moved - base))
    return sum(rises) / len(rises)


@torch.no_grad()
def _greedy(tiny_lm, ids: list[int], steering, tokens: int) -> list[int]:
    """`tokens` greedy tokens after `ids`, steered at every position but BOS (the probe's decoding)."""
    out = list(ids)
    with steered(decoder_layers(tiny_lm.model)[tiny_lm.hook_layer], steering):  # the SAE's layer too
        for _ in range(tokens):
            out.append(int(tiny_lm.model(input_ids=torch.tensor([out])).logits[0, -1].argmax()))
    return out[len(ids):]


def test_batched_scores_equal_steering_each_feature_alone(tiny_lm, sae):
    prompts = _prompts(tiny_lm)
    scores = output_scores(tiny_lm, sae, prompts, strength=0.5, batch=5)  # batches cut across features
    assert scores.shape == (12,)
    for feature in (0, 4, 5, 11):
        assert float(scores[feature]) == pytest.approx(_alone(tiny_lm, sae, prompts, feature, 0.5), abs=1e-5)
    assert float(scores.abs().max()) > 1e-3  # steering moved something


def test_the_probe_concept_rate_is_steer_evals_measure_batched(tiny_lm, sae):
    prompts = _prompts(tiny_lm)
    features = [0, 3, 7, 11]
    rates = probe_concept_rates(tiny_lm, sae, prompts, features, strength=2.0, tokens=5, batch=3)
    for feature, rate in zip(features, rates.tolist(), strict=True):
        shows = 0
        for ids in prompts:
            text = tiny_lm.tokenizer.decode(ids[1:])
            base = _greedy(tiny_lm, ids, None, 5)
            mine = _greedy(tiny_lm, ids, resolve_steering(
                SteeringSpec((SteeringTerm(2.0, feature=feature),)), 64, tiny_lm.median_norm, sae), 5)
            acts = [feature_activations(tiny_lm, sae, text + tiny_lm.tokenizer.decode(c))[-5:, feature].mean()
                    for c in (mine, base)]
            shows += float(acts[0]) > float(acts[1])
        assert rate == pytest.approx(shows / len(prompts)), feature
    assert float(rates.max()) > 0


def test_no_push_no_score_and_prompts_must_match(tiny_lm, sae):
    prompts = _prompts(tiny_lm)
    assert float(output_scores(tiny_lm, sae, prompts, strength=0.0).abs().max()) < 1e-6
    assert float(probe_concept_rates(tiny_lm, sae, prompts, [0, 1], strength=0.0, tokens=3).max()) == 0
    with pytest.raises(ValueError, match="equal length"):
        output_scores(tiny_lm, sae, [prompts[0], prompts[1][:-1]])


def test_promoted_words_are_the_first_word_tokens_of_each_row():
    is_word = torch.tensor([True, False, True, True, False, True])
    top = torch.tensor([[1, 0, 2, 3, 5], [4, 1, 4, 1, 4]])
    kept = promoted_words(top, is_word, n=2)
    assert kept.tolist() == [[False, True, True, False, False], [False] * 5]


def test_word_tokens_are_letters_only(tiny_lm):
    is_word = word_tokens(tiny_lm.tokenizer)
    vocab = tiny_lm.tokenizer.convert_ids_to_tokens(list(range(len(tiny_lm.tokenizer))))
    letters = {t for t in vocab if t.isalpha() and len(t) == 1}
    assert {t for t, w in zip(vocab, is_word.tolist(), strict=True) if w} == letters
