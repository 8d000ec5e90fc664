"""Steering presets: named sets of sliders, and their JSON exchange format.

Owns: the `Preset` value, turning it into JSON that names the model and SAE with
Neuronpedia-style feature references (modelId, source, index, strength), and checking an
imported file completely before anything is applied. Imports nothing heavy (no torch): the
editor's process and the `presets` command use it. Errors: PresetError with a message that says
what is wrong and where.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinymorph.domain import STEER_MODES, STRENGTH_LIMIT, SteeringTerm
from tinymorph.errors import PresetError

FORMAT = "tinymorph-preset/1"


@dataclass(frozen=True)
class SteeringTarget:
    """What a preset must fit: the model, the SAE, and their widths."""

    model: str
    """The model's Hugging Face id (or manifest name when it has none)."""
    sae_id: str
    d_sae: int
    d_model: int


@dataclass(frozen=True)
class Preset:
    """A named set of steering terms for one model and SAE."""

    name: str
    model: str
    sae_id: str
    terms: tuple[SteeringTerm, ...]

    def to_json(self) -> dict[str, Any]:
        """The export format. SAE features are Neuronpedia-style references; writer-made
        directions carry their vector, and a concept slider the words it was made from."""
        features, directions = [], []
        for t in self.terms:
            if t.feature is not None:
                features.append({"modelId": self.model, "source": self.sae_id, "index": t.feature,
                                 "strength": t.strength, "mode": t.mode, "label": t.label})
            else:
                directions.append({"name": t.label, "strength": t.strength, "vector": list(t.direction),
                                   **({"concept": t.concept} if t.concept else {})})
        return {"format": FORMAT, "name": self.name, "model": self.model, "sae": self.sae_id,
                "features": features, "directions": directions}


def _need(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise PresetError(f"{where}: {what}")


def _number(value: Any, where: str) -> float:
    _need(isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value), where,
          "strength must be a finite number")
    _need(abs(value) <= STRENGTH_LIMIT, where, f"strength {value} is outside ±{STRENGTH_LIMIT}")
    return float(value)


def preset_from_json(data: Any, target: SteeringTarget, source: str = "preset") -> Preset:
    """Check `data` (parsed JSON) against the schema and against `target`, and build the Preset.
    Raises PresetError naming the first problem (another model or SAE, an index out of range,
    a vector of the wrong width, a malformed field); nothing is returned half-checked."""
    _need(isinstance(data, dict), source, "a preset is a JSON object")
    _need(data.get("format") == FORMAT, source, f"format must be {FORMAT!r}, got {data.get('format')!r}")
    name = data.get("name")
    _need(isinstance(name, str) and bool(name.strip()), source, "name must be a non-empty string")
    _need(data.get("model") == target.model, source,
          f"made for the model {data.get('model')!r}; this is {target.model!r}")
    _need(data.get("sae") == target.sae_id, source,
          f"made for the SAE {data.get('sae')!r}; the loaded SAE is {target.sae_id!r}")
    features, directions = data.get("features", []), data.get("directions", [])
    _need(isinstance(features, list) and isinstance(directions, list), source, "features and directions are lists")
    terms: list[SteeringTerm] = []
    for n, f in enumerate(features):
        where = f"{source}: features[{n}]"
        _need(isinstance(f, dict), where, "must be an object")
        _need(f.get("modelId", target.model) == target.model and f.get("source", target.sae_id) == target.sae_id,
              where, "refers to another model or SAE")
        index = f.get("index")
        _need(isinstance(index, int) and not isinstance(index, bool), where, "index must be an integer")
        _need(0 <= index < target.d_sae, where, f"index {index} is out of range (the SAE has {target.d_sae} features)")
        mode = f.get("mode", "add")
        _need(mode in STEER_MODES, where, f"mode must be one of {', '.join(STEER_MODES)}")
        label = f.get("label", "")
        _need(isinstance(label, str), where, "label must be a string")
        terms.append(SteeringTerm(_number(f.get("strength"), where), feature=index, mode=mode, label=label))
    for n, d in enumerate(directions):
        where = f"{source}: directions[{n}]"
        _need(isinstance(d, dict), where, "must be an object")
        vector = d.get("vector")
        _need(isinstance(vector, list) and len(vector) == target.d_model, where,
              f"vector must have {target.d_model} numbers")
        _need(all(isinstance(x, int | float) and math.isfinite(x) for x in vector) and any(vector), where,
              "vector must be finite and non-zero")
        _need(isinstance(d.get("name", ""), str), where, "name must be a string")
        _need(isinstance(d.get("concept", ""), str), where, "concept must be the words the slider was made from")
        terms.append(SteeringTerm(_number(d.get("strength"), where), direction=tuple(map(float, vector)),
                                  label=d.get("name", ""), concept=d.get("concept", "")))
    return Preset(name.strip(), target.model, target.sae_id, tuple(terms))


def read_preset_file(path: Path, target: SteeringTarget) -> Preset:
    """Read and check an exported preset. Raises PresetError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise PresetError(f"{path} is not valid JSON: {exc}") from None
    return preset_from_json(data, target, str(path))


@dataclass(frozen=True)
class DirectionFile:
    """A direction shipped in `models/directions/` (or made by the writer): JSON, no pickle."""

    name: str
    model: str
    layer: int
    vector: tuple[float, ...]
    source: str


def read_direction(path: Path) -> DirectionFile:
    """Read one direction file. Raises PresetError if it is malformed."""
    data = _read_json_file(path)
    try:
        vector = tuple(float(x) for x in data["direction"])
        result = DirectionFile(str(data["name"]), str(data["model"]), int(data["layer"]), vector,
                               str(data.get("source", "")))
    except (KeyError, TypeError, ValueError) as exc:
        raise PresetError(f"bad direction file {path}: {exc}") from None
    if not vector or not all(math.isfinite(x) for x in vector) or not any(vector):
        raise PresetError(f"bad direction file {path}: the vector must be finite and non-zero")
    return result


def shipped_directions(folder: Path, model: str, d_model: int) -> list[DirectionFile]:
    """The direction files in `folder` made for `model` with `d_model` components, by name.
    Files for other models are skipped; malformed ones raise PresetError."""
    found = [read_direction(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return [d for d in found if d.model == model and len(d.vector) == d_model]


def _read_json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PresetError(f"cannot read {path}: {exc}") from None
