"""Model copies in the cache: a damaged one is detected (and so rebuilt), manifests resolve."""

import json
import shutil
from pathlib import Path

import pytest

from tinymorph.errors import ModelError
from tinymorph.lm.manifest import resolve_model
from tinymorph.lm.model import META_FILE, WEIGHTS_FILE, _sha256, copy_is_intact


@pytest.fixture
def copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, folder)
    weights = folder / WEIGHTS_FILE
    meta = {"weights_bytes": weights.stat().st_size, "weights_sha256": _sha256(weights)}
    (folder / META_FILE).write_text(json.dumps(meta))
    return folder


def test_an_intact_copy_is_recognised(copy: Path):
    assert copy_is_intact(copy)


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_meta"])
def test_a_damaged_copy_is_detected(copy: Path, damage: str):
    weights = copy / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    if damage == "truncate":
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        data[-10] ^= 0xFF
        weights.write_bytes(bytes(data))
    else:
        (copy / META_FILE).unlink()
    assert not copy_is_intact(copy)


def test_the_shipped_manifest_and_local_directories_resolve(tiny_model_dir: Path):
    shipped = resolve_model("gemma3-270m")
    assert (shipped.kind, shipped.hook_layer, shipped.gguf_file) == ("pypi-gguf", 12, "gemma-3-270m-q4_k_m.gguf")
    local = resolve_model(str(tiny_model_dir))
    assert local.kind == "local" and local.layer_for(4) == 2  # two thirds deep by default
    assert resolve_model("gemma3-270m", hub_model="google/gemma-3-270m").kind == "hub"


def test_an_unknown_model_names_the_choices(tmp_path: Path):
    with pytest.raises(ModelError, match="gemma3-270m"):
        resolve_model("no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"no config\.json"):
        resolve_model(str(tmp_path / "empty"))
