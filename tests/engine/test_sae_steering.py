"""Steering by SAE feature (add and ablate) and the feature lens, on the tiny model."""

import dataclasses
import queue
from pathlib import Path

import pytest
import torch
from transformers import DynamicCache

from tests.builders import save_topk_sae
from tinymorph.domain import SteeringSpec, SteeringTerm
from tinymorph.engine.generate import Generator
from tinymorph.engine.lens import LENS_TOKENS
from tinymorph.engine.protocol import (
    CompareRequest,
    ComparisonReady,
    DirectionMade,
    FeatureSearchReady,
    FeaturesLit,
    MakeDirection,
    SearchFeatures,
    Shutdown,
    SuggestionReady,
    SuggestRequest,
    WorkerConfig,
    WorkerReady,
)
from tinymorph.engine.worker import serve
from tinymorph.errors import SteeringError
from tinymorph.lm.model import decoder_layers, load_model
from tinymorph.lm.steering import resolve_steering, steered
from tinymorph.sae.corpus import token_sequences
from tinymorph.sae.feature_data import build_feature_data
from tinymorph.sae.loading import load_sae


@pytest.fixture(scope="module")
def lm(tiny_manifest):
    return load_model(tiny_manifest, Path("/nonexistent"), lambda *_: None)


@pytest.fixture
def sae(tiny_manifest, tmp_path):
    return load_sae(str(save_topk_sae(tmp_path / "sae")), tiny_manifest, 64, 4)


@pytest.fixture
def exact(tiny_manifest, tmp_path):
    return load_sae(str(save_topk_sae(tmp_path / "exact", exact=True)), tiny_manifest, 64, 4)


def layer_output(lm, ids, steering=None):
    layer = decoder_layers(lm.model)[lm.hook_layer]
    seen = []
    with torch.no_grad(), steered(layer, steering):
        # Registered after the steering hook, so the probe sees the steered output.
        probe = layer.register_forward_hook(lambda _m, _a, out: seen.append(out))
        lm.model(torch.tensor([ids]))
    probe.remove()
    return seen[-1][0]  # (T, d)


def test_a_feature_term_adds_its_unit_decoder_direction(lm, sae):
    spec = SteeringSpec((SteeringTerm(0.5, feature=7, label="f7"),))
    steering = resolve_steering(spec, 64, lm.median_norm, sae)
    direction = sae.directions()[7]
    torch.testing.assert_close(steering.vector, 0.5 * lm.median_norm * direction / direction.norm())
    assert steering.ablate is None


def test_feature_terms_need_an_sae_and_a_real_index(lm, sae):
    with pytest.raises(SteeringError, match="needs an SAE"):
        resolve_steering(SteeringSpec((SteeringTerm(0.5, feature=1),)), 64, lm.median_norm, None)
    with pytest.raises(SteeringError, match="feature 99 does not exist"):
        resolve_steering(SteeringSpec((SteeringTerm(0.5, feature=99),)), 64, lm.median_norm, sae)


def test_ablation_removes_only_the_features_decoded_contribution(lm, exact):
    """With the exact SAE, feature j is +e_j: ablating it zeroes coordinate j where it is
    positive, and leaves every other coordinate (and BOS) alone."""
    ids = lm.tokenizer("The sea was calm").input_ids
    plain = layer_output(lm, ids)
    spec = SteeringSpec((SteeringTerm(1.0, feature=5, mode="ablate"),))
    ablated = layer_output(lm, ids, resolve_steering(spec, 64, lm.median_norm, exact))
    expected = plain.clone()
    expected[1:, 5] = plain[1:, 5].clamp(max=0)
    torch.testing.assert_close(ablated, expected, atol=1e-5, rtol=1e-5)


def test_mode_and_strength_zero_switch_terms_off():
    assert SteeringSpec((SteeringTerm(0.0, feature=3),)).is_empty
    with pytest.raises(ValueError, match="only SAE features"):
        SteeringTerm(1.0, direction=(1.0,), mode="ablate")
    assert SteeringTerm(5.0, feature=1).with_strength(5.0).strength == 1.0


def lens_of(gen: Generator, text: str, steering: SteeringSpec | None = None) -> tuple:
    """The lens `gen.suggest` reports for `text` (through its on_lens callback)."""
    seen = []
    req = SuggestRequest(1, text, alternatives=1, max_new_tokens=1, steering=steering or SteeringSpec())
    gen.suggest(req, lambda: False, lambda *_: None, seen.append)
    return seen[0]


def test_the_lens_reports_the_features_that_stay_lit_over_the_last_tokens(lm, sae):
    text = "The sea was calm and the boats came home to the harbour"
    gen = Generator(lm, 31, sae, heal_words=False)  # the lens of the whole text, its last word too
    got = lens_of(gen, text)
    ids = gen.context_ids(text)
    with torch.no_grad():
        acts = sae.encode(layer_output(lm, ids)[2:][-LENS_TOKENS:])  # (n, F): not BOS nor the first token
    kept = acts * (acts >= acts.topk(16, dim=-1).values[:, -1:])  # each position keeps its 16 strongest
    best = kept.mean(0).topk(3)
    assert [i for i, _ in got] == best.indices.tolist()
    assert [v for _, v in got] == pytest.approx(best.values.tolist(), rel=1e-4)


def test_the_lens_leaves_out_what_says_nothing_and_weighs_rare_features_up(lm, sae):
    text = "The sea was calm and the boats came home to the harbour"
    top = [i for i, _ in lens_of(Generator(lm, 31, sae), text)]
    weights = torch.ones(32)
    weights[top[0]] = 0.0  # dense, or a feature of function words
    weights[top[2]] = 4.0  # rare
    got = [i for i, _ in lens_of(Generator(lm, 31, sae, lens_weights=weights), text)]
    assert top[0] not in got and got[0] == top[2]


@pytest.mark.parametrize("steer_prompt", [False, True])
def test_the_lens_is_the_same_after_kv_reuse_and_under_steering(lm, sae, steer_prompt):
    gen = Generator(lm, 31, sae, steer_prompt=steer_prompt)
    lens_of(gen, "The sea was cal")
    steered_lens = lens_of(gen, "The sea was calm", SteeringSpec((SteeringTerm(1.5, feature=2),)))
    fresh = lens_of(Generator(lm, 31, sae), "The sea was calm")
    assert [i for i, _ in steered_lens] == [i for i, _ in fresh]
    assert [v for _, v in steered_lens] == pytest.approx([v for _, v in fresh], rel=1e-4)


@pytest.mark.parametrize("lens_file", [True, False])
def test_the_worker_serves_lens_search_compare_and_directions(lm, tiny_manifest, tmp_path, monkeypatch, lens_file):
    from tinymorph.engine import worker
    from tinymorph.lens_table import save_feature_files

    folder = save_topk_sae(tmp_path / "sae")
    sae = load_sae(str(folder), tiny_manifest, 64, 4)
    seqs = token_sequences(iter(["The sea was calm and the boats came home. " * 6]), lm.tokenizer, 32)
    data = build_feature_data(lm, sae, seqs)
    # The worker's plumbing, not the lens's rule (tests/engine/test_lens.py): a random SAE has no
    # topics, so every live feature is made a rare one, as a trained SAE's topic features are.
    data = dataclasses.replace(data, features=tuple(
        f if f.dead else dataclasses.replace(f, topical=True, density=1e-4) for f in data.features))
    save_feature_files(data, folder) if lens_file else data.save(folder)  # older feature data: no lens.json
    parsed_at: list[bool] = []  # whether WorkerReady had been sent when the feature file was parsed
    real_load = worker.load_feature_data

    def load(*args):  # type: ignore[no-untyped-def]
        parsed_at.append(any(isinstance(e, WorkerReady) for e in events))
        return real_load(*args)

    monkeypatch.setattr(worker, "load_feature_data", load)
    requests: queue.Queue = queue.Queue()
    for r in (
        SuggestRequest(1, "The sea was", max_new_tokens=4),
        SearchFeatures(2, "boats"),
        MakeDirection(3, "boaty", "the boats came home"),
        CompareRequest(4, "The sea", SteeringSpec((SteeringTerm(1.0, feature=3),)), max_new_tokens=6, temperature=0),
    ):
        requests.put(r)
    events = []

    def emit(event):
        events.append(event)
        if isinstance(event, SuggestionReady):  # every other request is served before it
            requests.put(Shutdown())

    config = WorkerConfig(tiny_manifest, str(tmp_path / "cache"), 511, str(tmp_path / "log"), sae=str(folder))
    serve(config, requests, emit)
    kinds = {type(e): e for e in events}
    assert [type(e) for e in events if hasattr(e, "request_id")][-1] is SuggestionReady
    ready = kinds[WorkerReady]
    assert ready.sae_id == str(folder) and ready.d_sae == 32 and ready.feature_folder == str(folder)
    assert kinds[FeaturesLit].request_id == 1 and kinds[FeaturesLit].features
    assert kinds[SuggestionReady].request_id == 1
    assert kinds[FeatureSearchReady].text == "boats"
    made = kinds[DirectionMade]
    assert made.name == "boaty" and len(made.direction) == 64 and made.tokens == len("the boats came home")
    compared = kinds[ComparisonReady]
    plain = Generator(lm, 31).suggest(SuggestRequest(9, "The sea", alternatives=1, max_new_tokens=6, temperature=0),
                                      lambda: False, lambda *_: None)
    assert compared.unsteered == (plain.alternatives[0] if plain.alternatives else "")
    # With lens.json the feature file is parsed only when search needs it, after 'ready'.
    assert parsed_at == ([True] if lens_file else [False])


def test_a_worker_whose_sae_cannot_load_still_suggests(tiny_manifest, tmp_path):
    requests: queue.Queue = queue.Queue()
    requests.put(SuggestRequest(1, "The sea", max_new_tokens=2))
    events = []

    def emit(event):
        events.append(event)
        if isinstance(event, SuggestionReady):
            requests.put(Shutdown())

    config = WorkerConfig(tiny_manifest, str(tmp_path / "c"), 511, str(tmp_path / "log"), sae="default")
    serve(config, requests, emit)
    ready = next(e for e in events if isinstance(e, WorkerReady))
    assert ready.sae_id == "" and "no SAE is shipped" in ready.sae_message
    assert any(isinstance(e, SuggestionReady) for e in events)


def test_min_p_never_samples_a_token_far_below_the_most_likely():
    from tinymorph.engine.sampling import sample

    probs = torch.tensor([[0.6, 0.3, 0.02, 0.08]])  # bar 0.03: token 2 is out, token 3 in
    logits = probs.log().expand(4000, -1)
    got = sample(logits, 1.0, torch.Generator().manual_seed(0), min_p=0.05)
    counts = torch.bincount(got, minlength=4)
    assert counts[2] == 0 and counts[3] > 0
    plain = torch.bincount(sample(logits, 1.0, torch.Generator().manual_seed(0), min_p=0.0), minlength=4)
    assert plain[2] > 0  # the control: without min-p the tail is drawn
    assert sample(logits[:1], 0.0, torch.Generator()).tolist() == [0]


def test_the_concept_meter_reads_what_the_unsteered_model_reads_on_the_generated_text(lm, sae):
    """The meter's score of each alternative equals re-encoding its tokens with the unsteered
    model (what `steer eval` does), although those tokens were written under steering."""
    from tinymorph.engine.ranking import ConceptMeter, reading

    spec = SteeringSpec((SteeringTerm(2.0, feature=22), SteeringTerm(-1.0, feature=9)))  # both fire here
    steering = resolve_steering(spec, 64, lm.median_norm, sae)
    layer = decoder_layers(lm.model)[lm.hook_layer]
    ids = lm.tokenizer("The sea was calm and").input_ids
    rows = [[5, 17, 23, 8], [40, 41, 42, 43]]  # (2, T) written tokens, fed one at a time
    meter = ConceptMeter(sae, spec, 2)
    readings, live = [], []
    with torch.no_grad(), steered(layer, steering):
        cache = DynamicCache(config=lm.model.config)
        lm.run(torch.tensor([ids, ids]), cache)
        with reading(layer, readings):
            for t in range(4):
                lm.run(torch.tensor([[rows[0][t]], [rows[1][t]]]), cache)
                live.append([True, t < 2])  # row 1 ended after two tokens
    for r, n in ((0, 4), (1, 2)):
        acts = sae.encode(layer_output(lm, ids + rows[r])[len(ids) : len(ids) + n])  # unsteered re-encoding
        expected = (acts[:, 22] - acts[:, 9]).mean()
        assert float(meter.scores(readings, live)[r]) == pytest.approx(float(expected), rel=1e-4, abs=1e-5)
        assert float(expected) != 0


def test_suggest_returns_the_alternatives_best_shown_first_when_features_are_turned_up(lm, sae, monkeypatch):
    import tinymorph.engine.generate as generate
    from tinymorph.engine.ranking import ConceptMeter

    text = "The sea was calm and the boats"
    up = SteeringSpec((SteeringTerm(0.3, feature=2),))
    # Seed 0: four rows, all shown, all scored differently, the best not sampled first.
    req = SuggestRequest(1, text, steering=up, alternatives=4, max_new_tokens=6, temperature=1.5, seed=0)
    seen = []

    class Sampled(ConceptMeter):
        """The same meter, but keeping the sampled order: what suggest would return unranked."""

        def order(self, readings, live, texts=None, surprise=None):
            seen.append(self.scores(readings, live, texts).tolist())
            return list(range(self.rows))

    monkeypatch.setattr(generate, "ConceptMeter", Sampled)
    unranked = Generator(lm, 31, sae, heal_words=False).suggest(req, lambda: False, lambda *_: None)
    monkeypatch.undo()
    ranked = Generator(lm, 31, sae, heal_words=False).suggest(req, lambda: False, lambda *_: None)
    assert unranked is not None and ranked is not None
    scores = seen[0]
    assert len(unranked.alternatives) == 4 and len(set(scores)) == 4  # four different rows, four scores
    best_first = sorted(range(4), key=lambda r: -scores[r])
    assert ranked.alternatives == tuple(unranked.alternatives[r] for r in best_first)
    assert ranked.alternatives != unranked.alternatives  # the ranking moved something
    # No SAE feature turned: the sampled order is kept.
    assert ConceptMeter(sae, SteeringSpec(), 3).order([], []) == [0, 1, 2]
    assert not ConceptMeter(sae, SteeringSpec((SteeringTerm(0.3, feature=3, mode="ablate"),)), 3).active


def test_with_a_concept_slider_the_alternatives_that_show_it_come_first_the_most_fluent_first(sae):
    from tinymorph.engine.ranking import CONCEPT_CLOSE, ConceptMeter

    class Words:
        """Closeness of each text to the query, as `ConceptWords` would give it."""

        near = {"the ocean roared": 0.8, "a boat drifted": CONCEPT_CLOSE, "the table was set": 0.3,
                "and then he went": 0.1}

        def query_ids(self, query):
            return [1]

        def closeness(self, _ids, text):
            return self.near[text]

    texts = ["the table was set", "the ocean roared", "and then he went", "a boat drifted"]
    surprise = [0.1, 2.0, 0.2, 0.5]  # mean logit gap: the boat reads better than the ocean
    up = SteeringSpec((SteeringTerm(0.25, direction=(1.0, 0.0), concept="the sea"),))
    meter = ConceptMeter(sae, up, 4, words=Words())  # type: ignore[arg-type]
    # The two that show the concept, most fluent first; then the others by closeness.
    assert meter.order([], [], texts, surprise) == [3, 1, 0, 2]
    down = SteeringSpec((SteeringTerm(-0.25, direction=(1.0, 0.0), concept="the sea"),))
    # Turned down: nothing is preferred for showing the concept; the least close come first.
    assert ConceptMeter(sae, down, 4, words=Words()).order([], [], texts, surprise) == [2, 0, 3, 1]  # type: ignore[arg-type]


def test_a_steered_suggestion_differs_from_the_unsteered_one(lm, sae):
    text = "The sea was calm and the boats"
    # Greedy: the tiny random model's next-token distribution is nearly flat, so a sampled draw
    # would often land on the same token however the logits move.
    plain = SuggestRequest(1, text, alternatives=1, max_new_tokens=8, temperature=0)
    steered_req = SuggestRequest(1, text, alternatives=1, max_new_tokens=8, temperature=0,
                                 steering=SteeringSpec((SteeringTerm(1.0, feature=22),)))
    a = Generator(lm, 31, sae).suggest(plain, lambda: False, lambda *_: None)
    b = Generator(lm, 31, sae).suggest(steered_req, lambda: False, lambda *_: None)
    again = Generator(lm, 31, sae).suggest(plain, lambda: False, lambda *_: None)
    assert a is not None and b is not None and again is not None
    assert a.alternatives == again.alternatives  # the control: same seed, same text
    assert b.alternatives != a.alternatives


def test_lens_of_shows_what_the_editor_shows_after_the_same_text(lm, sae):
    """`features lens` and `eval-lens` call `Generator.lens_of`; the editor gets the lens from
    `suggest`. Both must cover the same last LENS_TOKENS tokens (lens_of once left out the last)."""
    text = "The sea was calm and the boats came home to the harbour before the storm reached the town"
    editor = lens_of(Generator(lm, 63, sae, heal_words=False), text)
    cli = Generator(lm, 63, sae, heal_words=False).lens_of(text)
    assert [i for i, _ in cli] == [i for i, _ in editor]
    assert [v for _, v in cli] == pytest.approx([v for _, v in editor], rel=1e-4)
