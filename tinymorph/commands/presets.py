"""`tinymorph presets list|export|import`: manage saved steering presets from the shell.

Owns: argument parsing and output. Presets are checked against the model and SAE that the
current settings choose (read from their config files; no model is loaded). Errors reach
`cli.main`.
"""

import argparse
import json
import sys
from pathlib import Path

from tinymorph.cli_common import add_model_options, add_sae_option, settings_from_args
from tinymorph.domain import ModelManifest
from tinymorph.errors import PresetError, SAEError
from tinymorph.lm.manifest import resolve_model, resolve_sae
from tinymorph.paths import app_paths
from tinymorph.presets import SteeringTarget, read_preset_file
from tinymorph.store import Store


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except (OSError, ValueError) as exc:
        raise PresetError(f"cannot read the {what} ({path}): {exc}") from None


def _model_config(manifest: ModelManifest) -> Path:
    if manifest.kind == "local":
        return Path(manifest.location) / "config.json"
    return app_paths().models_cache / manifest.name / "config.json"


def steering_target(args: argparse.Namespace) -> SteeringTarget:
    """The model and SAE the settings choose, described from their config files (no torch).
    Raises PresetError when they cannot be read (model not prepared yet, registry SAE)."""
    settings = settings_from_args(args, app_paths())
    manifest = resolve_model(settings.model, settings.hub_model)
    try:
        source = resolve_sae(settings.sae, manifest, app_paths().cache_dir)
    except SAEError as exc:
        raise PresetError(str(exc)) from None
    if source.folder is None:
        raise PresetError("presets for a registry SAE (or none) are imported and exported from inside the editor")
    folder, sae_id = source.folder, source.sae_id
    config = _model_config(manifest)
    if not config.exists():
        raise PresetError(f"the model is not prepared yet ({config} is missing); run `tinymorph model prepare`")
    d_model = int(_read_json(config, "model config").get("hidden_size", 0))
    d_sae = int(_read_json(folder / "cfg.json", "SAE config")["d_sae"])
    return SteeringTarget(manifest.hub_id or manifest.name, sae_id, d_sae, d_model)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tinymorph presets", description="Saved steering presets.")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="list saved presets")
    export = sub.add_parser("export", help="write a preset as JSON (to FILE or standard output)")
    export.add_argument("name")
    export.add_argument("file", type=Path, nargs="?")
    imp = sub.add_parser("import", help="check a preset file against the model and SAE, then save it")
    imp.add_argument("file", type=Path)
    for p in (imp,):
        add_sae_option(p)
        add_model_options(p)
    args = parser.parse_args(argv)
    store = Store(app_paths().database)
    try:
        if args.action == "list":
            for name in store.preset_names():
                data = store.preset_json(name)
                n = len(data.get("features", [])) + len(data.get("directions", []))
                sys.stdout.write(f"{name}\t{n} slider{'s' if n != 1 else ''}\t{data.get('model')}\t{data.get('sae')}\n")
        elif args.action == "export":
            text = json.dumps(store.preset_json(args.name), indent=2)
            if args.file:
                args.file.write_text(text + "\n", encoding="utf-8")
            else:
                sys.stdout.write(text + "\n")
        else:
            preset = read_preset_file(args.file, steering_target(args))
            store.save_preset(preset)
            sys.stdout.write(f"imported {preset.name!r}: {len(preset.terms)} sliders\n")
    finally:
        store.close()
    return 0
