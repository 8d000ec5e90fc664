"""Model, SAE, direction, preset and feature files are read as safetensors / JSON only: no
unpickling. Checked twice: in the source (no pickle, no `torch.load` without
`weights_only=True`, no `allow_pickle`), and at run time with an audit hook (PEP 578) that
refuses any pickled global while everything a session reads is loaded."""

import re
import sys
from pathlib import Path

import pytest

from tests.builders import save_topk_sae
from tests.ui.fakes import tiny_feature_data
from tinymorph.features import load_feature_data
from tinymorph.paths import package_data_dir
from tinymorph.presets import read_direction

PACKAGE = Path(__file__).resolve().parents[1] / "tinymorph"
UNPICKLERS = r"\bimport pickle\b|\bfrom pickle\b|\bcPickle\b|\bdill\b|\bjoblib\b|allow_pickle\s*=\s*True"
REFUSING = {"on": False}
SEEN: list[str] = []


def _hook(event: str, args: tuple) -> None:
    if REFUSING["on"] and event == "pickle.find_class":
        SEEN.append(f"{event} {args[:2]}")
        raise RuntimeError(f"unpickling refused by the tinymorph no-pickle test: {event} {args[:2]}")


sys.addaudithook(_hook)  # audit hooks cannot be removed; it is inert unless REFUSING["on"]


def test_the_source_never_unpickles():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#")[0]
            if re.search(UNPICKLERS, code):
                offenders.append(f"{path.name}:{n}: {line.strip()}")
            if "torch.load(" in code and "weights_only=True" not in code:
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert offenders == []


@pytest.fixture
def refusing():
    SEEN.clear()
    REFUSING["on"] = True
    yield
    REFUSING["on"] = False


def test_loading_the_model_sae_directions_presets_and_features_unpickles_nothing(
    refusing, tiny_manifest, tmp_path: Path
):
    from tinymorph.lm.model import load_model
    from tinymorph.presets import SteeringTarget, read_preset_file
    from tinymorph.sae.loading import load_sae

    lm = load_model(tiny_manifest, tmp_path, lambda _s, _f: None)
    sae = load_sae(str(save_topk_sae(tmp_path / "sae")), tiny_manifest, lm.d_model, 4)
    for file in sorted((package_data_dir("models") / "directions").glob("*.json")):
        assert len(read_direction(file).vector) == 640
    tiny_feature_data(tmp_path / "features")
    assert len(load_feature_data(tmp_path / "features")) == 4
    preset = tmp_path / "p.json"
    preset.write_text(
        '{"format": "tinymorph-preset/1", "name": "p", "model": "m", "sae": "s", '
        '"features": [{"modelId": "m", "source": "s", "index": 1, "strength": 0.2}], "directions": []}'
    )
    assert read_preset_file(preset, SteeringTarget("m", "s", sae.d_sae, lm.d_model)).name == "p"
    assert SEEN == []


def test_the_hook_does_refuse_a_pickle(refusing):
    import io
    import pickle  # the one place: proving the check would catch it

    data = pickle.dumps(Path("x"))
    with pytest.raises(RuntimeError, match="unpickling refused"):
        pickle.load(io.BytesIO(data))
