"""Presets: saved by name, exported as JSON with Neuronpedia-style references, imported only
when everything in the file fits the loaded model and SAE."""

import json

import pytest

from tinymorph.domain import SteeringTerm
from tinymorph.errors import PresetError
from tinymorph.presets import Preset, SteeringTarget, preset_from_json, read_preset_file

TARGET = SteeringTarget(model="google/gemma-3-270m", sae_id="res12-4k", d_sae=4096, d_model=4)
PRESET = Preset("sea voice", TARGET.model, TARGET.sae_id, (
    SteeringTerm(0.6, feature=1234, label="sea / ocean"),
    SteeringTerm(1.0, feature=77, mode="ablate", label="dialogue"),
    SteeringTerm(-0.3, direction=(1.0, 0.0, 0.5, 0.0), label="formal - casual"),
    SteeringTerm(0.25, direction=(0.0, 2.0, 0.0, 1.0), label="rainy days", concept="rain and storms"),
))


def test_export_names_model_sae_and_features_neuronpedia_style():
    data = PRESET.to_json()
    assert data["model"] == "google/gemma-3-270m" and data["sae"] == "res12-4k"
    assert data["features"][0] == {"modelId": "google/gemma-3-270m", "source": "res12-4k", "index": 1234,
                                   "strength": 0.6, "mode": "add", "label": "sea / ocean"}
    assert data["directions"][1] == {"name": "rainy days", "strength": 0.25, "vector": [0.0, 2.0, 0.0, 1.0],
                                     "concept": "rain and storms"}  # a concept slider keeps its words
    assert preset_from_json(json.loads(json.dumps(data)), TARGET) == PRESET


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(model="gpt2"), "made for the model 'gpt2'"),
    (lambda d: d.update(sae="other"), "made for the SAE 'other'"),
    (lambda d: d["features"][1].update(index=4096), r"features\[1\]: index 4096 is out of range"),
    (lambda d: d["features"][0].update(strength="lots"), "strength must be a finite number"),
    (lambda d: d["features"][0].update(strength=50), "outside"),
    (lambda d: d["features"][0].update(strength=1.5), "outside"),
    (lambda d: d["features"][0].update(mode="boost"), "mode must be one of"),
    (lambda d: d["directions"][0].update(vector=[1.0, 2.0]), "vector must have 4 numbers"),
    (lambda d: d.update(format="v0"), "format must be"),
    (lambda d: d.update(name=" "), "name must be a non-empty string"),
])
def test_a_bad_or_foreign_preset_is_refused_whole(change, message):
    data = PRESET.to_json()
    change(data)
    with pytest.raises(PresetError, match=message):
        preset_from_json(data, TARGET)


def test_files_that_are_not_json_get_a_clear_message(tmp_path):
    (tmp_path / "p.json").write_text("{not json")
    with pytest.raises(PresetError, match="not valid JSON"):
        read_preset_file(tmp_path / "p.json", TARGET)


def test_the_store_saves_lists_renames_deletes_and_remembers_per_document(store):
    store.save_preset(PRESET)
    store.remember_preset("/notes.md", "sea voice")
    assert store.preset_names() == ["sea voice"]
    assert store.preset("sea voice", TARGET) == PRESET
    store.rename_preset("sea voice", "harbour")
    assert store.preset_names() == ["harbour"] and store.document("/notes.md").preset == "harbour"
    assert store.preset("harbour", TARGET).terms == PRESET.terms
    with pytest.raises(PresetError, match="exists already"):
        store.save_preset(Preset("other", TARGET.model, TARGET.sae_id, ()))
        store.rename_preset("other", "harbour")
    store.delete_preset("harbour")
    assert store.document("/notes.md").preset is None
    with pytest.raises(PresetError, match="no preset called"):
        store.preset("harbour", TARGET)
    with pytest.raises(PresetError, match="made for the model"):
        store.save_preset(PRESET)
        store.preset("sea voice", SteeringTarget("gpt2", "x", 10, 4))


def test_the_presets_command_exports_lists_and_imports_checked(tmp_path, tiny_model_dir, capsys):
    from tests.builders import save_topk_sae
    from tinymorph.cli import main
    from tinymorph.paths import app_paths
    from tinymorph.store import Store

    sae = save_topk_sae(tmp_path / "sae", model_name="")
    common = ["--model", str(tiny_model_dir), "--sae", str(sae)]
    preset = {"format": "tinymorph-preset/1", "name": "calm", "model": tiny_model_dir.name, "sae": str(sae.resolve()),
              "features": [{"index": 3, "strength": 0.5}], "directions": []}
    (tmp_path / "calm.json").write_text(json.dumps(preset))
    assert main(["presets", "import", str(tmp_path / "calm.json"), *common]) == 0
    assert "imported 'calm': 1 sliders" in capsys.readouterr().out
    assert main(["presets", "list"]) == 0
    assert capsys.readouterr().out.startswith("calm\t1 slider\t")
    assert main(["presets", "export", "calm", str(tmp_path / "out.json")]) == 0
    assert json.loads((tmp_path / "out.json").read_text())["features"][0]["index"] == 3
    preset["features"][0]["index"] = 32  # the tiny SAE has 32 features
    preset["name"] = "broken"
    (tmp_path / "broken.json").write_text(json.dumps(preset))
    assert main(["presets", "import", str(tmp_path / "broken.json"), *common]) == 8
    assert "index 32 is out of range" in capsys.readouterr().err
    store = Store(app_paths().database)
    assert store.preset_names() == ["calm"]  # nothing half-applied
    store.close()
