"""Model manifests and the `model` / `sae` settings resolved against them: which model, where it
comes from, which hook layer, which SAE.

Owns: reading `models/*.toml`, describing a local model directory the same way, and turning the
`sae` setting into an `SaeSource` (the one place that does). Imports no torch (the editor's
process resolves settings too). Errors: ModelError for a missing or malformed manifest, SAEError
for an `sae` setting that names nothing.
"""

import tomllib
from pathlib import Path

from tinymorph.domain import ModelManifest, SaeSource
from tinymorph.errors import ModelError, SAEError
from tinymorph.paths import package_data_dir


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


def resolve_sae(choice: str, manifest: ModelManifest, cache_dir: str | Path) -> SaeSource:
    """Turn the `sae` setting into an SaeSource.

    `choice`: "none"; "default" (the SAE shipped for `manifest`, in `models/`); a folder in
    sae-lens format; or RELEASE:ID from the sae-lens registry, whose feature data lives under
    `cache_dir/sae-features/`. Raises SAEError when "default" is asked of a model that ships no
    SAE, or `choice` is none of these. Reads no weights: loading is `tinymorph.sae.loading`'s.
    """
    if choice == "none":
        return SaeSource("none", "")
    if choice == "default":
        if not manifest.default_sae:
            raise SAEError(f"no SAE is shipped for {manifest.name}; pass --sae FOLDER or --sae RELEASE:ID")
        folder = package_data_dir("models") / manifest.default_sae
        return SaeSource("shipped", folder.name, folder=folder, feature_folder=folder)
    path = Path(choice).expanduser()
    if path.is_dir():
        folder = path.resolve()
        return SaeSource("folder", str(folder), folder=folder, feature_folder=folder)
    release, sep, registry_id = choice.partition(":")
    if not sep or not release or not registry_id:
        raise SAEError(
            f"--sae {choice!r} is neither a folder, 'default', 'none', nor RELEASE:ID from the sae-lens registry"
        )
    features = Path(cache_dir) / "sae-features" / release.replace("/", "__") / registry_id.replace("/", "__")
    return SaeSource("registry", f"{release}/{registry_id}", release=release, registry_id=registry_id,
                     feature_folder=features)
