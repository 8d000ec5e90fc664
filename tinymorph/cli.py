"""Command line: parse arguments, wire settings + store + engine + app, map errors to exit codes.

Owns: the `tinymorph` command. `tinymorph PATH` edits a file; the other commands (model, sae,
features, directions, steer, presets, bench) live in `commands/` and `bench/`.
Errors from the TinymorphError hierarchy become one message on stderr and the class's exit code.
"""

import argparse
import sys
from pathlib import Path

from tinymorph import __version__
from tinymorph.cli_common import add_model_options, add_sae_option, load_cli_model, settings_from_args, worker_config
from tinymorph.config import KEYMAPS, Settings
from tinymorph.document import document_path
from tinymorph.engine.client import EngineClient
from tinymorph.errors import TinymorphError
from tinymorph.lm.manifest import resolve_model
from tinymorph.lock import FileLock
from tinymorph.logs import LOG_NAME, route_library_output
from tinymorph.paths import app_paths, package_data_dir
from tinymorph.private import secure
from tinymorph.store import Store

SUBCOMMANDS = ("model", "sae", "features", "directions", "steer", "presets", "forget", "bench")


def _editor_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinymorph",
        description="A terminal writing editor with inline suggestions from a local model, steered "
        "with SAE features. Other commands (each has --help): 'tinymorph model prepare', "
        "'tinymorph sae train|eval', 'tinymorph features build|show|search', "
        "'tinymorph directions build', 'tinymorph steer eval', 'tinymorph presets list|export|import', "
        "'tinymorph history PATH', 'tinymorph forget PATH|--all', "
        "'tinymorph bench'.",
        epilog="Settings come from config.toml in the config directory, then TINYMORPH_* "
        "environment variables, then these flags. TINYMORPH_HOME moves all of tinymorph's "
        "files (config, store, model cache) below one folder.",
    )
    parser.add_argument("path", type=Path, help="the file to edit (created on first save)")
    parser.add_argument("--version", action="version", version=f"tinymorph {__version__}")
    add_model_options(parser)
    add_sae_option(parser)
    parser.add_argument("--config", type=Path, help="config file (default: config.toml in the config dir)")
    parser.add_argument("--theme", help="theme name (tinymorph-dark, tinymorph-light, tinymorph-high-contrast, ...)")
    defaults = Settings()  # --help quotes the settings' own defaults, never a copy of them
    parser.add_argument(
        "--idle-delay-ms", type=int, help=f"pause before a suggestion is requested (default {defaults.idle_delay_ms})"
    )
    parser.add_argument(
        "--max-new-tokens", type=int, help=f"longest continuation in tokens (default {defaults.max_new_tokens})"
    )
    parser.add_argument(
        "--alternatives", type=int, help=f"continuations sampled per request (default {defaults.alternatives})"
    )
    parser.add_argument("--temperature", type=float, help=f"sampling temperature (default {defaults.temperature})")
    parser.add_argument(
        "--keymap", choices=KEYMAPS, help=f"keys: tinymorph's own or vim's modal editing (default {defaults.keymap})"
    )
    parser.add_argument(
        "--no-suggestions", dest="suggestions", action="store_const", const=False,
        help="edit without starting the model",
    )
    return parser


def run_editor(argv: list[str]) -> int:
    from tinymorph.ui.app import make_app  # the subcommands never need Textual

    args = _editor_parser().parse_args(argv)
    paths = app_paths()
    settings = settings_from_args(args, paths)
    path = document_path(args.path)
    store = Store(paths.database)
    engine = None
    if settings.suggestions:
        engine = EngineClient(worker_config(settings, paths, resolve_model(settings.model, settings.hub_model)))
    app = make_app(args.path, settings, store, engine, package_data_dir("themes"), FileLock(path, paths.locks_dir))
    try:
        app.run()
    finally:
        store.close()
    return app.return_code or 0


def run_model_command(argv: list[str]) -> int:
    from rich.console import Console

    parser = argparse.ArgumentParser(prog="tinymorph model", description="Manage the local model.")
    parser.add_argument("action", choices=["prepare"], help="prepare: build (or check) the local model copy now")
    add_model_options(parser)
    args = parser.parse_args(argv)
    lm, _manifest = load_cli_model(args, Console(stderr=True))
    print(f"{lm.name}: hook layer {lm.hook_layer}, d_model {lm.d_model}, "
          f"median residual norm {lm.median_norm:.1f}; cache in {app_paths().models_cache}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `tinymorph` command. Returns the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    paths = app_paths()
    route_library_output(paths.cache_dir / LOG_NAME)  # warnings never print over the editor or a table
    secure(paths.roots())  # tinymorph's folders 0700 and its files 0600 (an older version's tightened once)
    try:
        if argv and argv[0] == "model":
            return run_model_command(argv[1:])
        if argv and argv[0] == "sae":
            from tinymorph.commands.sae import main as sae_main

            return sae_main(argv[1:])
        if argv and argv[0] == "features":
            from tinymorph.commands.features import main as features_main

            return features_main(argv[1:])
        if argv and argv[0] == "directions":
            from tinymorph.commands.directions import main as directions_main

            return directions_main(argv[1:])
        if argv and argv[0] == "steer":
            from tinymorph.commands.steer import main as steer_main

            return steer_main(argv[1:])
        if argv and argv[0] == "history":
            from tinymorph.commands.history import main as history_main

            return history_main(argv[1:])
        if argv and argv[0] == "forget":
            from tinymorph.commands.forget import main as forget_main

            return forget_main(argv[1:])
        if argv and argv[0] == "presets":
            from tinymorph.commands.presets import main as presets_main

            return presets_main(argv[1:])
        if argv[:2] == ["bench", "restart"]:
            from tinymorph.bench.restart import run_restart_bench

            return run_restart_bench(argv[2:])
        if argv[:2] == ["bench", "keymap"]:
            from tinymorph.bench.keymap import run_keymap_bench

            return run_keymap_bench(argv[2:])
        if argv[:2] == ["bench", "sae"]:
            from tinymorph.bench.sae import run_sae_bench

            return run_sae_bench(argv[2:])
        if argv and argv[0] == "bench":
            from tinymorph.bench import run_bench

            return run_bench(argv[1:])
        return run_editor(argv)
    except TinymorphError as exc:
        print(f"tinymorph: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130

