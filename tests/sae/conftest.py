"""Fixtures for the SAE tests."""

from pathlib import Path

import pytest

from tests.builders import TINY_TEXT


@pytest.fixture
def tiny_books(tmp_path: Path) -> Path:
    """Six books long enough (4 chunks each) that some chunks are held out for the metrics."""
    root = tmp_path / "corpus"
    root.mkdir()
    for i in range(6):
        (root / f"book{i}.txt").write_text((TINY_TEXT * 60).replace("sea", f"sea{i}"), encoding="utf-8")
    return root
