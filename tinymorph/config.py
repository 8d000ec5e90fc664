"""Typed settings: defaults < config file (TOML) < environment (TINYMORPH_*) < CLI flags.

Owns: the Settings dataclass and how it is read. Imports only `errors` and `paths`.
Unknown keys and bad values raise ConfigError naming the file and key, never a silent default.
"""

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tinymorph.errors import ConfigError

ENV_PREFIX = "TINYMORPH_"

# The model's sliding-window attention covers 512 positions, and its KV cache for those layers
# keeps 511; a context of at most 511 tokens (BOS included) is never truncated in the cache, so
# prefix reuse stays exact (transformers DynamicSlidingWindowLayer).
MAX_CONTEXT_TOKENS = 511
KEYMAPS = ("default", "vim")


@dataclass
class Settings:
    """Everything a writer can set. Each field is a key of `config.toml`, an environment
    variable `TINYMORPH_<FIELD>` (upper case), and most are a CLI flag."""

    theme: str = "tinymorph-dark"
    """Theme name, one of the files in `themes/` (or a Textual built-in theme). The theme picked
    in the command palette is remembered in the store and wins over this default."""

    idle_delay_ms: int = 80
    """Pause after the last keystroke before a suggestion is requested, in ms. The ghost text's
    first word takes ~100 ms more on a 2-core laptop: at 80 ms it showed a median of 185-198 ms
    after the last key of a word, at 100 ms 219-228 ms, alternating in one session
    (`docs/benchmarks.md`). Shorter than the gap between keys at a writer's pace (125 ms at 8
    keys/s), so a pause mid-word asks too (for a suggestion that completes the word; typing its
    letters keeps it); the next key supersedes it, and typing never waits on it (the keystroke
    benchmark asks at every key)."""

    model: str = "gemma3-270m"
    """A manifest name from `models/`, or a local directory with a transformers model."""

    hub_model: str = ""
    """A Hugging Face Hub model id. Setting it is the explicit choice to use the network;
    empty (the default) means tinymorph never touches the network."""

    sae: str = "default"
    """Which SAE gives the features: "default" (the one shipped for the model), "none", a local
    folder in sae-lens format (cfg.json + sae_weights.safetensors), or RELEASE:ID from the
    sae-lens registry (downloads, so it also needs `allow_downloads`)."""

    allow_downloads: bool = False
    """The explicit choice to let tinymorph download an SAE from the Hugging Face Hub
    (`--sae RELEASE:ID`). Off by default: tinymorph never touches the network."""

    context_tokens: int = MAX_CONTEXT_TOKENS
    """How many tokens before the cursor the model sees (BOS included), at most 511."""

    max_new_tokens: int = 24
    """The longest continuation, in tokens; it is cut earlier at a sentence or line end."""

    alternatives: int = 3
    """How many continuations are sampled per request (cycle with Alt+] / Alt+[)."""

    temperature: float = 0.7
    """Sampling temperature; 0 picks the most likely token (then every alternative is the same)."""

    suggestion_confidence: float = 0.3
    """Cut a suggestion, after its first whole word, before the first token the model gives less
    than this probability (0: run to a sentence end or `max_new_tokens`). Measured on held-out
    prose (docs/suggestions.md): the words cut were mostly wrong, and the writer reads less.
    Not applied while a slider is turned: it cut the steered words away."""

    suggestions: bool = True
    """Whether to start the model and show suggestions at all."""

    int8_decode: bool = True
    """Decode with int8 copies of the model's weights (CPU): ~2x faster suggestions, held-out
    perplexity +0.5% (docs/benchmarks.md). The prefill keeps the model's own weights."""

    worker_threads: int = 0
    """CPU threads of the model process; 0: one fewer than this machine's cores (at least 1), so
    that typing always has a core."""

    worker_nice: int = 10
    """How much lower than the editor's the model process's scheduling priority is (`nice`; on
    Linux it also runs as SCHED_BATCH); 0 leaves it as the editor's."""

    spare_worker: bool = True
    """Keep a second model process loaded and waiting, so that after a crash suggestions are back
    at once instead of after a full load (~9 s on 2 cores, `tinymorph bench restart`). It costs
    the memory of a second worker, and is started only when at least
    `engine.client.SPARE_MIN_FREE_GB` are free."""

    keymap: str = "default"
    """"default": tinymorph's keys (docs/keybindings.md); "vim": modal editing as in Vim, with
    normal, insert, visual and command-line modes (`--keymap vim`; the vim table in
    docs/keybindings.md). Ghost text shows in insert mode only."""

    keybindings: dict[str, str] = field(default_factory=dict)
    """Binding id -> keys (comma-separated), e.g. `accept_suggestion = "tab"`. Ids are listed
    in docs/keybindings.md."""

    def validate(self) -> "Settings":
        """Check ranges; raise ConfigError with a message that names the key."""
        if not 0 <= self.idle_delay_ms <= 10_000:
            raise ConfigError(f"idle_delay_ms must be between 0 and 10000, got {self.idle_delay_ms}")
        if not 16 <= self.context_tokens <= MAX_CONTEXT_TOKENS:
            raise ConfigError(
                f"context_tokens must be between 16 and {MAX_CONTEXT_TOKENS} (the model's "
                f"sliding window), got {self.context_tokens}"
            )
        if not 1 <= self.max_new_tokens <= 256:
            raise ConfigError(f"max_new_tokens must be between 1 and 256, got {self.max_new_tokens}")
        if not 1 <= self.alternatives <= 8:
            raise ConfigError(f"alternatives must be between 1 and 8, got {self.alternatives}")
        if not 0.0 <= self.suggestion_confidence < 1.0:
            raise ConfigError(f"suggestion_confidence must be at least 0 and below 1, got {self.suggestion_confidence}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ConfigError(f"temperature must be between 0 and 2, got {self.temperature}")
        if self.keymap not in KEYMAPS:
            raise ConfigError(f"keymap must be one of {', '.join(KEYMAPS)}, got {self.keymap!r}")
        if not 0 <= self.worker_nice <= 19:
            raise ConfigError(f"worker_nice must be between 0 and 19, got {self.worker_nice}")
        if not 0 <= self.worker_threads <= 256:
            raise ConfigError(f"worker_threads must be between 0 (automatic) and 256, got {self.worker_threads}")
        return self


def _coerce(name: str, kind: Any, value: Any, where: str) -> Any:
    """Turn a TOML or environment value into the field's type, or raise ConfigError."""
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on"}:
                return True
            if isinstance(value, str) and value.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if kind is int:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if kind is float:
            return float(value)
        if kind is str:
            if not isinstance(value, str):
                raise ValueError(value)
            return value
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: '{name}' must be {kind.__name__}, got {value!r}") from None
    raise AssertionError(f"unhandled settings type for {name}")


_FIELD_TYPES: dict[str, Any] = {
    "theme": str,
    "idle_delay_ms": int,
    "model": str,
    "hub_model": str,
    "sae": str,
    "allow_downloads": bool,
    "context_tokens": int,
    "max_new_tokens": int,
    "alternatives": int,
    "temperature": float,
    "suggestion_confidence": float,
    "suggestions": bool,
    "int8_decode": bool,
    "worker_threads": int,
    "worker_nice": int,
    "spare_worker": bool,
    "keymap": str,
}


def _apply(settings: Settings, values: dict[str, Any], where: str) -> Settings:
    known = {f.name for f in fields(Settings)}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown setting '{key}' (known: {', '.join(sorted(known))})")
        if key == "keybindings":
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise ConfigError(f"{where}: [keybindings] maps binding ids to key strings")
            changes[key] = {**settings.keybindings, **value}
        else:
            changes[key] = _coerce(key, _FIELD_TYPES[key], value, where)
    return dataclasses.replace(settings, **changes)


def load_settings(
    config_file: Path | None,
    env: Mapping[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Build Settings from defaults, then `config_file` (if it exists), then `TINYMORPH_*`
    variables in `env` (default `os.environ`), then `overrides` (CLI flags, None values
    skipped). Raises ConfigError on unknown keys, bad types or out-of-range values."""
    settings = Settings()
    if config_file is not None and config_file.exists():
        try:
            data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {config_file}: {exc}") from exc
        settings = _apply(settings, data, str(config_file))
    environ: Mapping[str, str] = os.environ if env is None else env
    from_env = {
        key: environ[ENV_PREFIX + key.upper()]
        for key in _FIELD_TYPES
        if ENV_PREFIX + key.upper() in environ
    }
    settings = _apply(settings, from_env, "environment")
    if overrides:
        settings = _apply(
            settings, {k: v for k, v in overrides.items() if v is not None}, "command line"
        )
    return settings.validate()
