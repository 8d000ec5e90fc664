"""Output scores (Arad et al. 2025): each feature steered in a batch equals steering it alone."""

import re

import pytest
import torch

from tests.builders import save_topk_sae
from tinymorph.domain import SteeringSpec, SteeringTerm
from tinymorph.labels import writes_words
from tinymorph.lm.model import decoder_layers
from tinymorph.lm.steering import resolve_steering, steered
from tinymorph.sae.feature_data import logit_effects
from tinymorph.sae.loading import load_sae
from tinymorph.sae.output_score import CANDIDATES, output_scores, probe_word_rates, promoted_words, word_tokens


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


def test_the_probe_rate_is_the_share_of_prompts_whose_steered_text_has_the_words(tiny_lm, sae):
    prompts = _prompts(tiny_lm)
    features = [0, 3, 7, 11]

    def greedy(ids, feature):
        steering = None if feature is None else resolve_steering(
            SteeringSpec((SteeringTerm(2.0, feature=feature),)), 64, tiny_lm.median_norm, sae)
        return tiny_lm.tokenizer.decode(_greedy(tiny_lm, ids, steering, 5))

    base = [greedy(ids, None) for ids in prompts]
    steered_texts = {f: [greedy(ids, f) for ids in prompts] for f in features}
    # Each feature is judged by the words its own steered text wrote on the first prompt (so the
    # probe has something to find), the last by a word nobody writes.
    words = [re.findall(r"[a-z]+", steered_texts[f][0].lower())[:2] for f in features[:-1]] + [["zzzzzz"]]
    rates = probe_word_rates(tiny_lm, sae, prompts, features, words, strength=2.0, tokens=5, batch=3)
    for k, (feature, rate) in enumerate(zip(features, rates.tolist(), strict=True)):
        has = [writes_words(text, words[k]) for text in steered_texts[feature]]
        not_base = [not writes_words(text, words[k]) for text in base]
        assert rate == pytest.approx(sum(h and n for h, n in zip(has, not_base, strict=True)) / len(prompts)), feature
    assert float(rates[-1]) == 0
    assert float(rates.max()) > 0


def test_no_push_no_score_and_prompts_must_match(tiny_lm, sae):
    prompts = _prompts(tiny_lm)
    assert float(output_scores(tiny_lm, sae, prompts, strength=0.0).abs().max()) < 1e-6
    base_words = re.findall(r"[a-z]+", tiny_lm.tokenizer.decode(_greedy(tiny_lm, prompts[0], None, 3)).lower())
    # No push: the steered text is the unsteered text, so it never has a word the unsteered one lacks.
    rates = probe_word_rates(tiny_lm, sae, prompts, [0, 1], [base_words, ["a"]], strength=0.0, tokens=3)
    assert float(rates.max()) == 0
    with pytest.raises(ValueError, match="one word list per feature"):
        probe_word_rates(tiny_lm, sae, prompts, [0, 1], [["a"]])
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
