"""Where tinymorph keeps its files: config, data (the store) and cache (model copies).

Owns: the directory layout. Imports nothing of ours. `TINYMORPH_HOME`, when set, overrides all
three (config/, data/ and cache/ below it); tests and CI use it to stay in a temp folder.
Directories follow the platform's conventions through platformdirs.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from platformdirs import PlatformDirs

HOME_ENV = "TINYMORPH_HOME"
APP_NAME = "tinymorph"


@dataclass(frozen=True)
class AppPaths:
    """The three directories tinymorph writes to. None of them is created until needed."""

    config_dir: Path
    """Holds `config.toml`, the user's settings."""
    data_dir: Path
    """Holds `tinymorph.db`, the SQLite store (documents, suggestion events, presets)."""
    cache_dir: Path
    """Holds rebuildable files: the assembled GGUF and the bf16 model copy."""

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def database(self) -> Path:
        return self.data_dir / "tinymorph.db"

    @property
    def locks_dir(self) -> Path:
        """Holds one lock per open file (see `tinymorph.lock`)."""
        return self.data_dir / "locks"

    @property
    def models_cache(self) -> Path:
        return self.cache_dir / "models"

    def roots(self) -> list[Path]:
        """tinymorph's own top folders: the config, data and cache folders. Their parents are not
        tinymorph's (a `TINYMORPH_HOME` may be a folder of the writer's own), so nothing above
        them is ever changed, except folders tinymorph itself creates to hold them."""
        return [self.config_dir, self.data_dir, self.cache_dir]


def app_paths(env: Mapping[str, str] | None = None) -> AppPaths:
    """Return the directories for this user, honouring `TINYMORPH_HOME` if set in `env`
    (default: `os.environ`)."""
    environ: Mapping[str, str] = os.environ if env is None else env
    home = environ.get(HOME_ENV)
    if home:
        root = Path(home).expanduser()
        return AppPaths(root / "config", root / "data", root / "cache")
    dirs = PlatformDirs(APP_NAME, appauthor=False)
    return AppPaths(
        Path(dirs.user_config_dir), Path(dirs.user_data_dir), Path(dirs.user_cache_dir)
    )


def package_data_dir(name: str) -> Path:
    """Return the folder `name` ("models" or "themes") that ships with tinymorph.

    In a wheel it is copied to `tinymorph/_data/<name>` (see pyproject.toml); in a source
    checkout or an editable install it is the folder at the top of the repository.
    Raises FileNotFoundError if neither exists (a broken install).
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "_data" / name, here.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"tinymorph's '{name}' folder is missing from this install")
