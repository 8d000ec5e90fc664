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


def test_the_concept_is_the_mean_change_that_naming_it_rather_than_no_topic_makes_to_neutral_text(lm, monkeypatch):
    monkeypatch.setattr(concepts, "TEMPLATES", ("About {}.", "Topic: {}."))
    monkeypatch.setattr(concepts, "NEUTRAL_SENTENCES", ("The cat sat on the mat.", "We walked home."))
    got = build_concept(lm, "  the   sea ")
    assert torch.equal(build_concept(lm, "the sea", baseline=concepts.concept_baseline(lm)).direction, got.direction)
    diffs = []
    for template in concepts.TEMPLATES:
        for sentence in concepts.NEUTRAL_SENTENCES:
            generic = resid(lm, template.format(concepts.GENERIC_TOPIC) + " " + sentence)
            named = resid(lm, template.format("the sea") + " " + sentence)
            n = resid(lm, sentence).shape[0] - 2  # the sentence's tokens but BOS and its first
            diffs.append(named[-n:] - generic[-n:])
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


def test_row_scale_scales_the_push_per_row_only_in_passes_of_that_many_rows():
    from tinymorph.lm.steering import Steering, steered

    layer = torch.nn.Identity()
    vector = torch.tensor([1.0, 2.0])
    push = Steering(vector, None, None, row_scale=torch.tensor([1.0, 0.25]).reshape(2, 1, 1))
    with steered(layer, push):
        two = layer(torch.zeros(2, 3, 2))  # (B=2, T=3, d=2)
        one = layer(torch.zeros(1, 3, 2))
    assert torch.equal(two[0], vector.expand(3, 2)) and torch.equal(two[1], 0.25 * vector.expand(3, 2))
    assert torch.equal(one[0], vector.expand(3, 2))  # another batch size: the whole push


def far_from_sea(lm, words: ConceptWords) -> int:
    """A letter token of the tiny model that does not say "sea" (closeness < 0.3)."""
    return next(t for t in range(lm.tokenizer.vocab_size)
                if lm.tokenizer.decode([t]).isalpha() and words.token_closeness(words.query_ids("sea"), t) < 0.3)


def concept_pushes(lm, gen, alternatives: int) -> list[torch.Tensor]:
    """Suggest with a "sea" concept slider at +0.5 and `alternatives` rows; per decode step of all
    rows, the push (alternatives,) each row got at the hook layer (the next layer's input minus the
    hook layer's output, at the last position)."""
    from tinymorph.domain import SteeringSpec, SteeringTerm
    from tinymorph.engine.protocol import SuggestRequest

    layers = decoder_layers(lm.model)
    before, after = [], []
    pre = layers[lm.hook_layer].register_forward_hook(
        lambda _m, _a, out: before.append(out[0] if isinstance(out, tuple) else out))
    post = layers[lm.hook_layer + 1].register_forward_pre_hook(lambda _m, args: after.append(args[0]))
    term = SteeringTerm(0.5, direction=tuple(torch.ones(lm.d_model).tolist()), label="sea", concept="sea")
    req = SuggestRequest(1, "We walked down to the", steering=SteeringSpec((term,)), alternatives=alternatives,
                         max_new_tokens=4, temperature=0.7)
    try:
        gen.suggest(req, lambda: False, lambda *_: None)
    finally:
        pre.remove()
        post.remove()
    return [(a - b)[:, -1].float().norm(dim=-1) for b, a in zip(before, after, strict=True)
            if b.shape[0] == alternatives]


def test_a_row_that_says_the_concept_gets_the_eased_push_from_then_on(lm):
    from tinymorph.engine.generate import Generator

    words = ConceptWords(lm)
    said = words.query_ids("sea")[1]  # the tiny tokenizer spells " sea" by characters: "s"
    other = far_from_sea(lm, words)
    # Row 0 says the concept at its first token; row 1 never does.
    sampler = lambda logits, _t, _g: torch.tensor([said, other][: logits.shape[0]])  # noqa: E731
    gen = Generator(lm, 31, sampler=sampler, greedy_first=False, heal_words=False, concept_ease=0.25)
    pushes = concept_pushes(lm, gen, 2)
    assert len(pushes) >= 2  # decode steps of both rows
    full = lm.median_norm * 0.5
    for push in pushes:  # every decode step comes after row 0's first token said "sea"
        assert push[0] == pytest.approx(0.25 * full, rel=0.02) and push[1] == pytest.approx(full, rel=0.02)


def test_the_baseline_is_kept_in_the_cache_private_and_made_again_when_damaged(lm, tmp_path, monkeypatch):
    monkeypatch.setattr(concepts, "TEMPLATES", ("About {}.",))
    monkeypatch.setattr(concepts, "NEUTRAL_SENTENCES", ("The cat sat on the mat.",))
    first = concepts.ConceptMaker(lm, tmp_path)
    made = first.make("the sea")
    (path,) = (tmp_path / "concepts").glob("baseline-*.safetensors")
    assert path.stat().st_mode & 0o777 == 0o600 and (tmp_path / "concepts").stat().st_mode & 0o777 == 0o700

    computed: list[int] = []
    real = concepts.concept_baseline
    monkeypatch.setattr(concepts, "concept_baseline", lambda m: computed.append(1) or real(m))
    again = concepts.ConceptMaker(lm, tmp_path).make("the sea")  # a new worker: read, not computed
    assert computed == [] and torch.equal(again.direction, made.direction)

    path.write_bytes(b"not a tensor file")
    damaged = concepts.ConceptMaker(lm, tmp_path).make("the sea")
    assert computed == [1] and torch.equal(damaged.direction, made.direction)

    monkeypatch.setattr(concepts, "NEUTRAL_SENTENCES", ("We walked home.",))  # other text: another key
    concepts.ConceptMaker(lm, tmp_path).baseline()
    assert computed == [1, 1] and len(list((tmp_path / "concepts").glob("baseline-*.safetensors"))) == 2


def test_a_concept_slider_pushes_each_alternative_at_its_own_multiple_of_its_strength(lm):
    from tinymorph.engine.generate import Generator, push_multiples

    other = far_from_sea(lm, ConceptWords(lm))
    sampler = lambda logits, _t, _g: torch.full((logits.shape[0],), other)  # noqa: E731  (no row says it)
    gen = Generator(lm, 31, sampler=sampler, greedy_first=False, heal_words=False, concept_spread=0.4)
    pushes = concept_pushes(lm, gen, 3)
    assert len(pushes) >= 2
    full = lm.median_norm * 0.5
    for push in pushes:
        torch.testing.assert_close(push, torch.tensor([1.0, 0.6, 1.4]) * full, rtol=0.02, atol=0.0)
    assert push_multiples(3, 0.4) == pytest.approx([1.0, 0.6, 1.4])
    assert push_multiples(5, 0.4) == pytest.approx([1.0, 0.6, 0.6 + 0.8 / 3, 0.6 + 1.6 / 3, 1.4], rel=1e-5)
    assert push_multiples(2, 0.4) == [1.0, 1.0] and push_multiples(3, 0.0) == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="spread"):
        Generator(lm, 31, concept_spread=1.5)
