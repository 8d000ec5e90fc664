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
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, message: str):
    config = tmp_path / "config.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(config, env={})
