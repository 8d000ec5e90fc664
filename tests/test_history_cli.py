"""`tinymorph history PATH`: list, diff and restore the versions kept at each save."""

from pathlib import Path

import pytest

from tinymorph.cli import main
from tinymorph.errors import DocumentError, StoreError
from tinymorph.lock import FileLock
from tinymorph.paths import app_paths
from tinymorph.store import Store


@pytest.fixture
def kept(tmp_path: Path) -> tuple[Path, list[int]]:
    path = tmp_path / "notes.md"
    path.write_bytes(b"line one\r\nline two\r\n")
    store = Store(app_paths().database)
    ids = [store.add_version(str(path), "line one\n", "opened"), store.add_version(str(path), "line one\nline two\n",
                                                                                   "save")]
    store.close()
    return path, ids


def test_list_shows_every_version_against_the_file(kept, capsys):
    path, ids = kept
    assert main(["history", str(path)]) == 0
    out = capsys.readouterr().out
    assert all(str(i) in out for i in ids) and "opened" in out and "+0 lines, -1 line" in out


def test_diff_shows_the_lines(kept, capsys):
    path, ids = kept
    assert main(["history", str(path), "--diff", str(ids[0])]) == 0
    assert "-line two" in capsys.readouterr().out


def test_restore_writes_the_version_keeping_line_endings_and_is_a_new_version(kept):
    path, ids = kept
    path.write_bytes(b"line one\r\nline two\r\nline three, written elsewhere\r\n")
    assert main(["history", str(path), "--restore", str(ids[0])]) == 0
    assert path.read_bytes() == b"line one\r\n"
    store = Store(app_paths().database)
    reasons = [v.reason for v in store.versions(str(path))]
    assert reasons[:2] == [f"restore of #{ids[0]}", "before restore"]
    assert store.version_text(store.versions(str(path))[1].id).endswith("written elsewhere\n")


def test_restore_refuses_while_a_tinymorph_has_the_file_open(kept):
    path, ids = kept
    lock = FileLock(path, app_paths().locks_dir)  # an editor holding the file (its own open lock)
    assert lock.acquire() is None
    try:
        with pytest.raises(DocumentError, match="is open in tinymorph"):
            from tinymorph.commands.history import main as history

            history([str(path), "--restore", str(ids[0])])
    finally:
        lock.release()
    assert path.read_bytes() == b"line one\r\nline two\r\n"


def test_an_unknown_version_or_file_says_so(kept, tmp_path, capsys):
    path, _ids = kept
    from tinymorph.commands.history import main as history

    with pytest.raises(StoreError, match="no version 999"):
        history([str(path), "--diff", "999"])
    assert history([str(tmp_path / "never.md")]) == 1
    assert "no versions" in capsys.readouterr().out
