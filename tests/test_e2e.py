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
        assert (ready.sae_id, ready.d_sae, ready.sae_message) == ("gemma3-270m-res12-topk-4k", 4096, "")
        text = "The harbour was quiet that morning, and the fishermen"
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
        assert best.startswith(" "), best  # continues after "fishermen" with a new word
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


@pytest.mark.xfail(reason="steering now starts at the cursor; the concept-slider test replaces this one", strict=False)
def test_steering_with_a_sea_output_feature_brings_the_sea_in(real):
    """Output features (those whose decoder direction promotes sea words) steer toward the sea at
    the default strength, in the suggestion the editor would show first; see docs/steering.md
    for why detector features do not."""
    from tinymorph.config import Settings
    from tinymorph.domain import DEFAULT_STRENGTH, SteeringSpec, SteeringTerm
    from tinymorph.engine.generate import Generator, max_act_tensor
    from tinymorph.evals.steer import Decoding, first, shown_suggestion
    from tinymorph.sae.search import search_features

    lm, sae, data = real
    hits = search_features(lm, sae, data, "ocean", limit=10)
    says_sea = [
        h.index for h in hits if any(t.strip().lower() in SEA_WORDS for t, _ in data.features[h.index].promoted)
    ]
    assert says_sea, [data.features[h.index].label for h in hits]
    gen = Generator(lm, 511, sae, max_act_tensor(data))
    prompt = "After breakfast we walked into town, and"
    editor = Decoding(Settings().temperature, Settings().alternatives, seed=0)
    plain = first(shown_suggestion(gen, prompt, SteeringSpec(), editor))
    sea = SteeringSpec((SteeringTerm(DEFAULT_STRENGTH, feature=says_sea[0]),))
    steered = first(shown_suggestion(gen, prompt, sea, editor))
    assert steered != plain
    text = steered.lower()
    assert SEA_WORDS & set(re.findall(r"[a-z]+", text)), text
