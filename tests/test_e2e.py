"""End to end with the real embedded model (Gemma 3 270M from its PyPI package).

Slow (the first run dequantises the GGUF, ~1 min; later runs load the bf16 copy, ~5 s).
The model copy is cached in TINYMORPH_E2E_CACHE (default: a pytest temp dir), so CI can keep
it between test files. Nothing is downloaded: the GGUF comes from the installed package.
"""

import queue
import re

import pytest

from tinymorph.engine.client import EngineClient
from tinymorph.engine.protocol import (
    FeaturesLit,
    SuggestionReady,
    SuggestRequest,
    WorkerConfig,
    WorkerFailed,
    WorkerReady,
)
from tinymorph.lm.manifest import resolve_model

pytestmark = pytest.mark.e2e


def test_the_real_model_continues_english_prose(model_cache, tmp_path):
    events: queue.Queue = queue.Queue()
    config = WorkerConfig(resolve_model("gemma3-270m"), str(model_cache), 511, str(tmp_path / "worker.log"))
    engine = EngineClient(config)
    engine.start(events.put)
    try:
        ready = None
        while ready is None:
            event = events.get(timeout=300)
            assert not isinstance(event, WorkerFailed), event.message
            if isinstance(event, WorkerReady):
                ready = event
        assert (ready.hook_layer, ready.d_model) == (12, 640)
        assert (ready.sae_id, ready.d_sae, ready.sae_message) == ("gemma3-270m-res12-topk-16k", 16384, "")
        text = "The ship sailed out of the harbour and the sailors"  # a topic the shipped lens names
        engine.request(SuggestRequest(1, text, alternatives=3, max_new_tokens=24, temperature=0.7, seed=1))
        answer, lit = None, None
        while answer is None:
            event = events.get(timeout=120)
            if isinstance(event, SuggestionReady):
                answer = event
            elif isinstance(event, FeaturesLit):
                lit = event
        assert lit is not None and 1 <= len(lit.features) <= 3  # the lens, from the same prefill
        assert answer.alternatives, "no continuation"
        best = answer.alternatives[0]
        words = re.findall(r"[A-Za-z']+", best)
        assert len(words) >= 2, best
        assert best.startswith(" "), best  # continues after "sailors" with a new word
    finally:
        engine.stop()


SEA_WORDS = {
    "sea",
    "ocean",
    "waves",
    "wave",
    "ship",
    "ships",
    "shore",
    "boat",
    "boats",
    "sail",
    "sailed",
    "sailors",
    "water",
    "waters",
    "coast",
    "harbour",
    "harbor",
    "voyage",
    "tide",
    "beach",
    "bay",
    "island",
    "whale",
    "deep",
}


def test_searching_ocean_finds_features_about_the_sea(real):
    from tinymorph.sae.search import search_features

    lm, sae, data = real
    hits = search_features(lm, sae, data, "ocean", limit=5)
    about_sea = [
        h
        for h in hits
        if SEA_WORDS
        & set(
            re.findall(
                r"[a-z]+",
                (
                    data.features[h.index].label + " " + " ".join(c.text for c in data.features[h.index].contexts)
                ).lower(),
            )
        )
    ]
    assert len(about_sea) >= 3, [data.features[h.index].label for h in hits]


def test_a_concept_slider_brings_its_concept_into_the_suggestions(real):
    """The writer types "rain and storms": on ordinary prompts the editor's suggestions (its own
    decoding and ranking) speak of the weather far more often than without the slider. Judged by
    words the slider never saw."""
    from tinymorph.config import Settings
    from tinymorph.engine.generate import Generator
    from tinymorph.engine.lens import lens_weights, max_act_tensor
    from tinymorph.evals.concepts import ConceptCase, concept_eval
    from tinymorph.evals.steer import Decoding

    lm, sae, data = real
    gen = Generator(lm, 511, sae, max_act_tensor(data), lens_weights=lens_weights(data))
    case = ConceptCase("rain and storms", "rain and storms",
                       ("rain", "rained", "raining", "rainy", "storm", "storms", "thunder", "wind", "winds", "clouds",
                        "wet", "downpour", "lightning", "drizzle", "umbrella", "weather"))
    prompts = [
        "After breakfast we walked down through the town, and at the corner by the bakery my sister said that",
        "The meeting had gone on for two hours when the chairman finally stood up and",
        "He put the letter back in the drawer and went to the window, where",
        "On the first day of the new job she arrived early and found that",
        "The old house at the end of the lane had been empty for years, and",
        "When the train stopped at the little station, the passengers",
    ]
    editor = Decoding(Settings().temperature, Settings().alternatives, seed=0)
    (result,) = concept_eval(gen, [case], prompts, editor, strength=0.25)
    unsteered, steered = result.arms["unsteered"], result.arms["steered"]
    assert steered.concept_rate >= unsteered.concept_rate + 0.5, (steered.samples, unsteered.samples)



@pytest.mark.parametrize(("typed", "rest"), [
    ("After two hours of debate, the committee will reconv", "ene"),  # "▁recon" + "vene": no boundary
    ("I was deeply disapp", "ointed"),  # "▁disappointed": one token covers it
    ("The sailor'", "s"),  # an apostrophe: "▁sailor" "'" "s"
    ("It was late.\nTomorr", "ow"),  # after a line break: no "▁"; "Tom" alone would go on as a name
])
def test_the_word_being_typed_is_finished_across_token_boundaries(real, typed, rest):
    from tinymorph.engine.generate import Generator

    lm, _sae, _features = real
    answer = Generator(lm, 511).suggest(
        SuggestRequest(1, typed, alternatives=3, max_new_tokens=12, temperature=0.7, seed=1),
        lambda: False, lambda *_: None)
    assert answer is not None and answer.alternatives
    first = answer.alternatives[0]  # greedy: the likeliest
    assert first.startswith(rest) and not first[len(rest) : len(rest) + 1].isalpha(), first


def test_the_real_vocabulary_offers_the_tokens_that_spell_a_typed_word(real):
    from tinymorph.engine.healing import TokenStrings

    lm, _sae, _features = real
    strings = TokenStrings.of(lm.tokenizer)
    covering, partial = strings.allowed(" reconv")
    pieces = set(lm.tokenizer.convert_ids_to_tokens(list(partial)))
    assert "▁recon" in pieces and "▁re" in pieces
    assert all(lm.tokenizer.convert_ids_to_tokens(i).replace("▁", " ").startswith(" reconv") for i in covering)
