"""The layers point one way (STYLE.md, docs/architecture.md), checked by walking the imports with ast."""

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tinymorph"
HEAVY = ("torch", "transformers", "sae_lens")
BASE = ("domain", "errors", "paths", "private")
CORE = ("config", "document", "features", "lock", "history", "presets", "suggestions")
"""Modules of the editor's own process that may import only the base modules (and each other's
values through them: nothing of lm, sae, engine, store or ui)."""


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def ours(path: Path) -> set[str]:
    """The tinymorph modules `path` imports, without the `tinymorph.` prefix."""
    return {m.removeprefix("tinymorph.") for m in imports(path) if m.startswith("tinymorph.")}


def modules(sub: str) -> list[Path]:
    return sorted((PACKAGE / sub).rglob("*.py")) if sub else sorted(PACKAGE.glob("*.py"))


def unit(path: Path) -> str:
    """The package (engine, sae, lm, ...) or top-level module (config, cli, ...) `path` belongs to."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


@pytest.mark.parametrize("path", [p for p in PACKAGE.rglob("*.py") if "ui" not in p.relative_to(PACKAGE).parts])
def test_only_ui_imports_textual(path: Path):
    assert not any(m == "textual" or m.startswith("textual.") for m in imports(path))


@pytest.mark.parametrize("path", modules("store") + [PACKAGE / f"{n}.py" for n in (*BASE, *CORE)])
def test_store_and_core_never_import_heavy_libraries(path: Path):
    assert not any(m.split(".")[0] in HEAVY for m in imports(path))


@pytest.mark.parametrize("path", [PACKAGE / f"{n}.py" for n in CORE])
def test_core_imports_only_the_base_modules(path: Path):
    assert {m.split(".")[0] for m in ours(path)} <= set(BASE), ours(path)


@pytest.mark.parametrize("path", [PACKAGE / f"{n}.py" for n in BASE])
def test_base_modules_import_nothing_of_ours(path: Path):
    assert not ours(path)


@pytest.mark.parametrize("path", modules("engine") + modules("sae") + modules("lm") + modules("evals"))
def test_engine_sae_lm_and_evals_never_import_ui_or_store(path: Path):
    assert not any(m.startswith(("ui", "store")) for m in ours(path))


LAYERS = {"lm": set(), "sae": {"lm"}, "engine": {"lm", "sae"}, "evals": {"lm", "sae", "engine"}}


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_model_packages_import_only_the_layers_below(package: str):
    for path in modules(package):
        others = {m.split(".")[0] for m in ours(path)} & set(LAYERS)
        assert others <= LAYERS[package] | {package}, f"{path.relative_to(PACKAGE)} imports {others}"


def test_no_import_cycle_between_packages_and_modules():
    edges: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        for m in ours(path):
            target = m.split(".")[0]
            if target != unit(path):
                edges[unit(path)].add(target)
    seen: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        if seen.get(node) == 1:
            raise AssertionError(" -> ".join([*trail, node]))
        if seen.get(node) == 2:
            return
        seen[node] = 1
        for nxt in sorted(edges[node]):
            visit(nxt, [*trail, node])
        seen[node] = 2

    for node in sorted(edges):
        visit(node, [])


def test_the_ui_process_never_loads_torch():
    code = (
        "import sys, tinymorph.cli, tinymorph.ui.app; "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("path", modules("ui"))
def test_the_ui_uses_public_textual_only(path: Path):
    private = [m for m in imports(path) if m.startswith("textual") and any(p.startswith("_") for p in m.split("."))]
    assert not private, private
    source = path.read_text(encoding="utf-8")
    assert ".__class__ =" not in source and "replace_range =" not in source
