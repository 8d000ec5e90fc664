"""Settings: file < environment < CLI, and clear errors for bad values."""

from pathlib import Path

import pytest

from tinymorph.config import Settings, load_settings
from tinymorph.errors import ConfigError


def test_defaults_without_a_file():
    assert load_settings(None, env={}) == Settings()


def test_file_then_environment_then_cli(tmp_path: Path):
    config = tmp_path / "config.toml"
    config.write_text('theme = "tinymorph-light"\nidle_delay_ms = 300\ncontext_tokens = 256\n'
                      '[keybindings]\naccept_suggestion = "ctrl+l"\n')
    settings = load_settings(
        config, env={"TINYMORPH_IDLE_DELAY_MS": "200", "TINYMORPH_SUGGESTIONS": "off"},
        overrides={"context_tokens": 128, "theme": None},
    )
    assert settings.theme == "tinymorph-light"
    assert settings.idle_delay_ms == 200
    assert settings.suggestions is False
    assert settings.context_tokens == 128
    assert settings.keybindings == {"accept_suggestion": "ctrl+l"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 'red'", "unknown setting 'colour'"),
        ("idle_delay_ms = 'soon'", "'idle_delay_ms' must be int"),
        ("context_tokens = 4096", "sliding window"),
        ("temperature = -1", "temperature"),
        ("theme = ", "cannot read"),
        ("worker_nice = 25", "worker_nice must be between 0 and 19"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, message: str):
    config = tmp_path / "config.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(config, env={})


def test_the_worker_takes_one_core_fewer_and_a_lower_priority_unless_told(tmp_path: Path, monkeypatch):
    import os

    from tinymorph.cli_common import worker_config
    from tinymorph.lm.manifest import resolve_model
    from tinymorph.paths import app_paths

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3}, raising=False)
    manifest = resolve_model("gemma3-270m")
    default = worker_config(load_settings(None, env={}), app_paths(), manifest)
    assert (default.threads, default.burst_threads, default.nice) == (3, 4, 10)
    told = worker_config(load_settings(None, env={"TINYMORPH_WORKER_THREADS": "4", "TINYMORPH_WORKER_NICE": "0"}),
                         app_paths(), manifest)
    assert (told.threads, told.burst_threads, told.nice) == (4, 4, 0)
