"""Themes as data: TOML files in `themes/`, validated and turned into Textual `Theme`s.

Owns: reading theme files. A bad file raises ConfigError naming the file and the key.
"""

import tomllib
from pathlib import Path

from textual.theme import Theme

from tinymorph.errors import ConfigError

_COLOURS = ("primary", "secondary", "warning", "error", "success", "accent", "foreground",
            "background", "surface", "panel", "boost")


def load_theme(path: Path) -> Theme:
    """Read one theme file. Keys: name, dark (bool), the colours above, and an optional
    [variables] table of Textual CSS variables. Raises ConfigError for a bad file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read theme {path}: {exc}") from exc
    unknown = set(data) - {"name", "dark", "variables", *_COLOURS}
    if unknown:
        raise ConfigError(f"theme {path}: unknown keys {', '.join(sorted(unknown))}")
    if "name" not in data or "primary" not in data:
        raise ConfigError(f"theme {path}: needs at least 'name' and 'primary'")
    try:
        return Theme(**data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"theme {path}: {exc}") from exc


def load_themes(folder: Path) -> list[Theme]:
    """All themes in `folder` (*.toml), sorted by file name."""
    return [load_theme(p) for p in sorted(folder.glob("*.toml"))]
