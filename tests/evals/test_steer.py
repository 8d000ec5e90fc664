"""The steering evaluation's mechanics on the tiny model (the real numbers are in docs/steering.md)."""

from pathlib import Path

from tests.builders import save_topk_sae
from tinymorph.domain import SteeringSpec, SteeringTerm
from tinymorph.engine.generate import Generator
from tinymorph.evals.steer import Decoding, continue_tokens, decode_throughput, steer_eval
from tinymorph.sae.corpus import token_sequences
from tinymorph.sae.feature_data import build_feature_data
from tinymorph.sae.loading import load_sae


def test_steer_eval_fills_the_table_and_measures_speed(tiny_lm, tiny_manifest, tmp_path):
    sae = load_sae(str(save_topk_sae(tmp_path / "s")), tiny_manifest, 64, 4)
    data = build_feature_data(tiny_lm, sae, token_sequences(iter(["the boats came home. " * 8]), tiny_lm.tokenizer, 32))
    gen = Generator(tiny_lm, 31, sae)
    out, seconds = continue_tokens(gen, "The sea", SteeringSpec((SteeringTerm(1.0, feature=3),)), 6)
    assert 1 <= len(out) <= 6 and seconds > 0
    results = steer_eval(tiny_lm, sae, data, ["The sea was", "Boats came"], [3, 5], [0.5, 2.0], tokens=5)
    assert [(r.feature, r.strength) for r in results] == [(3, 0.5), (3, 2.0), (5, 0.5), (5, 2.0)]
    assert all(0 <= r.concept_rate <= 1 and r.perplexity_unsteered > 0 for r in results)
    speed = decode_throughput(tiny_lm, sae, "The sea", [1, 16], tokens=4, repeats=1)
    assert set(speed) == {0, 1, 16} and all(v > 0 for v in speed.values())


def test_the_steers_sample_keeps_only_features_that_steer():
    import dataclasses

    from tests.ui.fakes import tiny_feature_data
    from tinymorph.evals.steer import pick_features

    data = tiny_feature_data(Path("unused"), save=False)
    data = dataclasses.replace(data, features=tuple(
        dataclasses.replace(f, output_score=0.5 if f.index in (1, 2, 3) else 0.0,
                            concept_rate=0.1 if f.index == 3 else 1.0)  # 3 writes its words, they don't show
        for f in data.features
    ))
    assert sorted(pick_features(data, 10, steers_only=True)) == [1, 2]
    assert sorted(pick_features(data, 10)) == [0, 1, 2, 3]


def test_sampled_evaluation_shows_the_alternative_the_editor_would_show(tiny_lm, tiny_manifest, tmp_path, monkeypatch):
    """As the editor decodes: sampled alternatives; the one shown is the one in which the
    turned-up feature fires most, which is its activation re-encoded by the unsteered model."""
    import pytest
    import torch

    from tests.engine.test_sae_steering import layer_output
    from tinymorph.engine.generate import ConceptMeter
    from tinymorph.evals import steer as module

    seen: list[list[float]] = []

    class Spy(ConceptMeter):
        def order(self) -> list[int]:
            seen.append(self.scores().tolist())
            return super().order()

    monkeypatch.setattr(module, "ConceptMeter", Spy)
    sae = load_sae(str(save_topk_sae(tmp_path / "s")), tiny_manifest, 64, 4)
    gen = Generator(tiny_lm, 31, sae)
    spec = SteeringSpec((SteeringTerm(0.3, feature=22),))
    sampled = Decoding(temperature=1.5, alternatives=4, seed=7)
    shown, _ = continue_tokens(gen, "The sea was calm", spec, 6, sampled)
    assert continue_tokens(gen, "The sea was calm", spec, 6, sampled)[0] == shown  # seeded
    scores = seen[-1]
    assert len(set(scores)) > 1  # the alternatives differ, so the choice matters
    ids = gen.context_ids("The sea was calm")
    with torch.no_grad():  # the last token is never fed back, so it is not read
        acts = sae.encode(layer_output(tiny_lm, ids + shown)[len(ids) : len(ids) + len(shown) - 1])
    assert float(acts[:, 22].mean()) == pytest.approx(max(scores), rel=1e-4, abs=1e-5)

    data = build_feature_data(tiny_lm, sae, token_sequences(iter(["the boats came home. " * 8]), tiny_lm.tokenizer, 32))
    results = steer_eval(tiny_lm, sae, data, ["The sea was", "Boats came"], [22], [0.5], tokens=5, decoding=sampled)
    assert len(results) == 1 and 0 <= results[0].concept_rate <= 1
