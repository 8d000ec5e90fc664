"""Shared fixtures: a tiny random Gemma 3 built in code, a temp TINYMORPH_HOME, a store.

Nothing here downloads: the tiny model and its character-level tokenizer are made from configs.
"""

import string
from pathlib import Path

import pytest

from tinymorph.engine.manifest import ModelManifest
from tinymorph.store import Store

TINY_VOCAB = ["<pad>", "<eos>", "<bos>", "<unk>", *(string.printable)]


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    """Save a 4-layer, d_model-64 Gemma 3 text model with random weights and a character
    tokenizer in `folder`. Sliding window 32, so the context limit (31 tokens) is exercised."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(TINY_VOCAB))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    config = Gemma3TextConfig(
        vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=2, num_key_value_heads=1, head_dim=32, sliding_window=32,
        layer_types=["sliding_attention", "sliding_attention", "sliding_attention", "full_attention"],
        max_position_embeddings=512, bos_token_id=2, eos_token_id=1, pad_token_id=0,
    )
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-gemma3"))


@pytest.fixture(scope="session")
def tiny_manifest(tiny_model_dir: Path) -> ModelManifest:
    return ModelManifest(name="tiny-gemma3", kind="local", location=str(tiny_model_dir), hook_layer=2, dtype="float32")


@pytest.fixture(scope="session")
def tiny_lm(tiny_manifest: ModelManifest):
    """The tiny model loaded as the worker loads a model (hook layer 2, float32)."""
    from tinymorph.engine.model import load_model

    return load_model(tiny_manifest, Path("/nonexistent"), lambda _s, _f: None)


@pytest.fixture(autouse=True)
def tinymorph_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own TINYMORPH_HOME: no test reads or writes the user's files."""
    home = tmp_path / "home"
    monkeypatch.setenv("TINYMORPH_HOME", str(home))
    return home


@pytest.fixture
def store() -> Store:
    s = Store(None)
    yield s
    s.close()
