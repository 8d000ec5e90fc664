"""The file on disk: strict UTF-8, kept line endings and BOM, atomic saves, clear refusals."""

import os
import time
from pathlib import Path

import pytest

from tinymorph.document import DocumentFormat, load_document, remove_stale_temps, save_document
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


def test_an_empty_file_opens_empty_and_stays_empty(tmp_path: Path):
    path = tmp_path / "empty.md"
    path.write_bytes(b"")
    text, fmt = load_document(path)
    assert text == "" and fmt == DocumentFormat()
    save_document(path, text, fmt)
    assert path.read_bytes() == b""


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


def test_no_permission_is_a_clear_error(tmp_path: Path, monkeypatch):
    path = tmp_path / "secret.md"
    path.write_text("x")
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: make the read fail as it would for others
        monkeypatch.setattr(Path, "read_bytes", lambda _p: (_ for _ in ()).throw(PermissionError(13, "denied")))
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
    path.chmod(0o444)  # refused even for root, who could write it
    with pytest.raises(DocumentError, match="read-only"):
        save_document(path, "new", DocumentFormat())
    assert path.read_text() == "old"


def test_save_keeps_the_file_mode(tmp_path: Path):
    path = tmp_path / "f.md"
    path.write_text("old")
    path.chmod(0o640)
    save_document(path, "new", DocumentFormat())
    assert (path.stat().st_mode & 0o777) == 0o640


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), "binary"),
        (lambda p: p.write_bytes("café".encode("latin-1")), "not UTF-8"),
    ],
)
def test_the_editor_refuses_with_a_message_and_leaves_the_file_alone(tmp_path: Path, capsys, setup, message):
    from tinymorph.cli import main

    path = tmp_path / "f"
    setup(path)
    before = path.read_bytes() if path.is_file() else None
    assert main([str(path), "--no-suggestions"]) != 0
    assert message in capsys.readouterr().err
    assert (path.read_bytes() if path.is_file() else None) == before


def test_only_old_temp_files_of_killed_saves_are_removed(tmp_path: Path):
    doc = tmp_path / "notes.md"
    doc.write_text("kept\n")
    old, fresh, other = (tmp_path / f".notes.md.{n}.tinymorph-tmp" for n in ("a", "b", "c"))
    for tmp in (old, fresh):
        tmp.write_text("part of a save")
    other.symlink_to(doc)  # never followed, never removed
    unrelated = tmp_path / ".other.md.a.tinymorph-tmp"
    unrelated.write_text("another file's save")
    then = time.time() - 3600
    for tmp in (old, unrelated):
        os.utime(tmp, (then, then))
    os.utime(other, (then, then), follow_symlinks=False)
    assert remove_stale_temps(doc) == [old]
    assert fresh.exists() and other.is_symlink() and unrelated.exists()
    assert doc.read_text() == "kept\n"


def test_mixed_line_endings_are_kept_line_by_line(tmp_path: Path):
    path = tmp_path / "mixed.md"
    path.write_bytes(b"one\r\ntwo\nthree\r\nfour\r\n")
    text, fmt = load_document(path)
    assert text == "one\ntwo\nthree\nfour\n" and fmt.newline == "\r\n"  # the more common ending
    save_document(path, text, fmt)
    assert path.read_bytes() == b"one\r\ntwo\nthree\r\nfour\r\n"  # nothing changed, nothing rewritten
    edited = text.replace("two", "TWO!").replace("three\n", "three\nnew line\n")
    fmt = save_document(path, edited, fmt)
    # The edited line keeps its LF, the new line gets the file's more common ending, the rest theirs.
    assert path.read_bytes() == b"one\r\nTWO!\nthree\r\nnew line\r\nfour\r\n"
    fmt = save_document(path, "zero\n" + edited, fmt)  # the next save starts from what was written
    assert path.read_bytes() == b"zero\r\none\r\nTWO!\nthree\r\nnew line\r\nfour\r\n"


def test_saving_through_a_symbolic_link_writes_the_file_it_points_to(tmp_path: Path):
    real = tmp_path / "real.md"
    real.write_text("old")
    link = tmp_path / "link.md"
    link.symlink_to(real)
    text, fmt = load_document(link)
    save_document(link, text + " and new", fmt)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "old and new"


def test_a_new_file_gets_the_umask_and_an_old_one_keeps_its_mode(tmp_path: Path):
    old = os.umask(0o027)
    try:
        save_document(tmp_path / "new.md", "x", DocumentFormat())
    finally:
        os.umask(old)
    assert (tmp_path / "new.md").stat().st_mode & 0o777 == 0o640
    kept = tmp_path / "kept.md"
    kept.write_text("y")
    kept.chmod(0o604)
    save_document(kept, "z", DocumentFormat())
    assert kept.stat().st_mode & 0o777 == 0o604


def test_the_umask_is_never_changed_while_saving(tmp_path: Path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "umask", lambda mask: calls.append(mask) or 0o022)
    save_document(tmp_path / "new.md", "x", DocumentFormat())
    assert calls == []  # no process-wide flip that other threads could see


def test_one_file_is_one_document_however_its_path_is_typed(tmp_path: Path, monkeypatch):
    from tinymorph.document import document_path

    real = tmp_path / "dir" / "notes.md"
    real.parent.mkdir()
    real.write_text("x")
    (tmp_path / "link.md").symlink_to(real)
    monkeypatch.chdir(tmp_path)
    assert document_path(Path("dir/../dir/notes.md")) == document_path(Path("link.md")) == document_path(real)
