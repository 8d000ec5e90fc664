"""The file on disk: strict UTF-8, kept line endings and BOM, atomic saves, clear refusals."""

import os
from pathlib import Path

import pytest

from tinymorph.document import DocumentFormat, load_document, save_document
from tinymorph.errors import DocumentError


@pytest.mark.parametrize(
    "raw",
    [b"a\r\nb\r\n", b"a\nb", b"\xef\xbb\xbfbom\n", b"", b"no final newline", "caf\u00e9 \u2014 \u6f22\n".encode()],
)
def test_load_then_save_writes_back_the_same_bytes(tmp_path: Path, raw: bytes):
    path = tmp_path / "f.md"
    path.write_bytes(raw)
    text, fmt = load_document(path)
    assert "\r" not in text
    save_document(path, text, fmt)
    assert path.read_bytes() == raw


def test_a_missing_file_is_a_new_empty_document(tmp_path: Path):
    assert load_document(tmp_path / "new.md") == ("", DocumentFormat())


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b"\x89PNG\x00\x00"), "binary"),
        (lambda p: p.write_bytes(b"caf\xe9"), "not UTF-8"),
    ],
)
def test_files_that_cannot_be_edited_safely_are_refused(tmp_path: Path, setup, message):
    path = tmp_path / "f"
    setup(path)
    with pytest.raises(DocumentError, match=message):
        load_document(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes anything")
def test_no_permission_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "secret.md"
    path.write_text("x")
    path.chmod(0)
    with pytest.raises(DocumentError, match="no permission"):
        load_document(path)


def test_a_failed_save_leaves_the_old_file_and_no_temp_file(tmp_path: Path, monkeypatch):
    path = tmp_path / "f.md"
    path.write_text("old")

    def full_disk(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(DocumentError, match="No space left"):
        save_document(path, "new", DocumentFormat())
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.md"]


def test_a_read_only_file_is_not_overwritten(tmp_path: Path):
    path = tmp_path / "ro.md"
    path.write_text("old")
    path.chmod(0o444)
    if os.access(path, os.W_OK):
        pytest.skip("this user can write read-only files")
    with pytest.raises(DocumentError, match="read-only"):
        save_document(path, "new", DocumentFormat())
    assert path.read_text() == "old"


def test_save_keeps_the_file_mode(tmp_path: Path):
    path = tmp_path / "f.md"
    path.write_text("old")
    path.chmod(0o640)
    save_document(path, "new", DocumentFormat())
    assert (path.stat().st_mode & 0o777) == 0o640
