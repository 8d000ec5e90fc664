"""What every `tinymorph` command shares: the model options, settings from arguments, and loading
the model in this process with a rich progress bar (for `model`, `sae`, `features`, `bench`).

Imports no Textual. `load_cli_model` imports torch lazily: the editor's process never calls it.
"""

import argparse
import os
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import Progress

from tinymorph.config import MAX_CONTEXT_TOKENS, Settings, load_settings
from tinymorph.domain import ModelManifest
from tinymorph.engine.protocol import WorkerConfig
from tinymorph.lm.manifest import resolve_model
from tinymorph.logs import LOG_NAME
from tinymorph.paths import AppPaths, app_paths
from tinymorph.private import private_dir

if TYPE_CHECKING:
    from tinymorph.lm.model import LoadedModel


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The options that choose the model, shared by the editor and every model-using command."""
    parser.add_argument(
        "--model",
        help="a model manifest name from models/ (default gemma3-270m) or a local transformers model directory",
    )
    parser.add_argument(
        "--hub-model",
        metavar="ID",
        help="download this Hugging Face Hub model id; the only option that lets tinymorph use the network for a model",
    )
    parser.add_argument(
        "--int8-decode", action=argparse.BooleanOptionalAction, default=None,
        help="decode with int8 copies of the weights (default on; --no-int8-decode runs the bf16 weights)",
    )
    parser.add_argument(
        "--context-tokens",
        type=int,
        help=f"tokens before the cursor the model sees, BOS included (default and max {MAX_CONTEXT_TOKENS})",
    )


def add_sae_option(parser: argparse.ArgumentParser) -> None:
    """--sae and --allow-downloads, shared by the `sae` and `features` commands."""
    parser.add_argument(
        "--sae",
        help="'default' (the shipped SAE), a folder in sae-lens format, or RELEASE:ID "
        "from the sae-lens registry (needs --allow-downloads)",
    )
    parser.add_argument(
        "--allow-downloads",
        action="store_const",
        const=True,
        help="allow downloading an SAE from the Hugging Face Hub (off by default)",
    )


def add_split_option(parser: argparse.ArgumentParser) -> None:
    """--split, shared by `sae eval` and `features build`: which chunks of a corpus are read."""
    parser.add_argument(
        "--split", choices=["heldout", "all"], default="heldout",
        help="heldout (default): the 5%% of chunks `sae train` holds out; all: every chunk, for a writer's own "
        "text (an SAE fine-tuned on it: its labels may come from all of it; to evaluate, use text it did not train on)",
    )


def settings_from_args(args: argparse.Namespace, paths: AppPaths) -> Settings:
    """Settings from the config file, the environment and the flags present in `args`."""
    overrides = {
        key: getattr(args, key, None)
        for key in (
            "model",
            "hub_model",
            "sae",
            "allow_downloads",
            "context_tokens",
            "theme",
            "idle_delay_ms",
            "max_new_tokens",
            "alternatives",
            "temperature",
            "suggestions",
            "int8_decode",
            "worker_threads",
            "keymap",
        )
    }
    config_file = getattr(args, "config", None) or paths.config_file
    return load_settings(config_file, overrides=overrides)


def load_cli_model(args: argparse.Namespace, console: Console) -> "tuple[LoadedModel, ModelManifest]":
    """Prepare (first run: convert) and load the model chosen by `args`, drawing progress, as the
    worker loads it (int8 decode weights when the settings say so). Hub downloads happen only
    with --hub-model; otherwise the Hub is switched off for this process.
    Raises ModelError / NetworkDisabledError as `load_model` does."""
    from tinymorph.lm.model import load_model

    settings = settings_from_args(args, app_paths())
    if not settings.hub_model and not settings.allow_downloads:
        os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers / huggingface_hub are imported
    manifest = resolve_model(settings.model, settings.hub_model)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"{manifest.name}: starting", total=1.0)

        def report(stage: str, fraction: float | None) -> None:
            progress.update(task, description=f"{manifest.name}: {stage}", completed=fraction or 0)

        lm = load_model(manifest, app_paths().models_cache, report, int8_decode=settings.int8_decode)
    return lm, manifest


def worker_config(settings: Settings, paths: AppPaths, manifest: ModelManifest) -> WorkerConfig:
    """The worker's start-up configuration for these settings."""
    private_dir(paths.cache_dir)
    return WorkerConfig(
        manifest=manifest,
        cache_dir=str(paths.models_cache),
        context_tokens=settings.context_tokens,
        log_file=str(paths.cache_dir / LOG_NAME),
        allow_hub=bool(settings.hub_model) or settings.allow_downloads,
        sae=settings.sae,
        allow_downloads=settings.allow_downloads,
        threads=worker_threads(settings),
        burst_threads=settings.worker_threads or _cores(),
        int8_decode=settings.int8_decode,
        nice=settings.worker_nice,
        spare=settings.spare_worker,
    )


def worker_threads(settings: Settings) -> int:
    """The model process's CPU threads: the `worker_threads` setting, or one fewer than the cores
    this process may run on (at least 1)."""
    if settings.worker_threads:
        return settings.worker_threads
    return max(1, _cores() - 1)


def _cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
