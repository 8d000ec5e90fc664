"""The layers point one way (STYLE.md), checked by walking the imports with ast."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tinymorph"
HEAVY = ("torch", "transformers", "sae_lens")


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def modules(sub: str) -> list[Path]:
    return sorted((PACKAGE / sub).rglob("*.py")) if sub else sorted(PACKAGE.glob("*.py"))


@pytest.mark.parametrize("path", [p for p in PACKAGE.rglob("*.py") if "ui" not in p.relative_to(PACKAGE).parts])
def test_only_ui_imports_textual(path: Path):
    assert not any(m == "textual" or m.startswith("textual.") for m in imports(path))


CORE = ("domain.py", "errors.py", "paths.py", "config.py", "document.py", "features.py", "lock.py", "history.py")


@pytest.mark.parametrize("path", modules("store") + [PACKAGE / n for n in CORE])
def test_store_and_core_never_import_heavy_libraries(path: Path):
    assert not any(m.split(".")[0] in HEAVY for m in imports(path))


@pytest.mark.parametrize("path", modules("engine") + modules("sae"))
def test_engine_never_imports_ui_or_store(path: Path):
    assert not any(m.startswith(("tinymorph.ui", "tinymorph.store")) for m in imports(path))


@pytest.mark.parametrize("path", [PACKAGE / n for n in ("domain.py", "errors.py", "paths.py")])
def test_base_modules_import_nothing_of_ours(path: Path):
    assert not any(m.startswith("tinymorph") for m in imports(path))


def test_the_ui_process_never_loads_torch():
    code = (
        "import sys, tinymorph.cli, tinymorph.ui.app; "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
