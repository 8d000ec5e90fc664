"""Private by default: with the usual umask 022, every folder tinymorph makes is 0700 and every
file 0600; an older version's loose files are tightened; a 0600 document stays 0600 through a
save; `tinymorph forget` leaves no row of the document and the file untouched."""

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ui.fakes import ScriptedEngine
from tinymorph.cli import main
from tinymorph.config import Settings
from tinymorph.document import load_document, save_document
from tinymorph.lock import FileLock
from tinymorph.paths import app_paths, package_data_dir
from tinymorph.private import secure, tighten
from tinymorph.store import Store
from tinymorph.ui import safety
from tinymorph.ui.app import make_app


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def loose(root: Path) -> list[str]:
    """Everything under `root` that group or others may read, write or enter."""
    found = []
    for folder, _dirs, files in os.walk(root):
        for entry in (folder, *(os.path.join(folder, f) for f in files)):
            if stat.S_IMODE(os.lstat(entry).st_mode) & 0o077:
                found.append(f"{entry} {oct(stat.S_IMODE(os.lstat(entry).st_mode))}")
    return found


async def test_a_session_leaves_nothing_readable_by_others(umask_022, tinymorph_home, tmp_path, monkeypatch):
    monkeypatch.setattr(safety, "JOURNAL_IDLE_S", 0.05)
    doc = tmp_path / "diary.md"
    doc.write_text("Dear diary,\n", encoding="utf-8")
    doc.chmod(0o600)
    paths = app_paths()
    secure(paths.roots())  # what `tinymorph FILE` does first
    store = Store(paths.database)
    app = make_app(doc, Settings(suggestions=False), store, ScriptedEngine(), package_data_dir("themes"),
                   FileLock(doc, paths.locks_dir))
    async with app.run_test() as pilot:
        app.editor.move_cursor(app.editor.document.end)
        await pilot.press(*"today I told no one")
        await pilot.pause(0.3)
        assert store.journal(str(doc)) is not None  # the journal holds the unsaved text
        assert {p.name for p in paths.data_dir.iterdir()} >= {"tinymorph.db", "tinymorph.db-wal"}
        assert loose(tinymorph_home) == []  # while open: store, -wal, -shm, lock
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        await pilot.press("ctrl+q")
    store.close()
    assert loose(tinymorph_home) == []
    assert stat.S_IMODE(doc.stat().st_mode) == 0o600 and "told no one" in doc.read_text()


def test_an_older_versions_loose_files_are_tightened_once(umask_022, tinymorph_home):
    paths = app_paths()
    (paths.data_dir / "locks").mkdir(parents=True)
    (paths.data_dir / "tinymorph.db").write_text("")
    (paths.cache_dir / "models").mkdir(parents=True)
    (paths.cache_dir / "models" / "model.safetensors").write_text("")
    assert loose(tinymorph_home)
    secure(paths.roots())
    # The folders below TINYMORPH_HOME are tinymorph's; the home itself may be the writer's.
    assert [entry for root in paths.roots() for entry in loose(root)] == []
    assert tighten(paths.roots()) == []  # nothing left to do the second time


def test_a_save_keeps_the_files_mode(umask_022, tmp_path):
    doc = tmp_path / "secret.md"
    doc.write_text("one\n")
    doc.chmod(0o600)
    text, fmt = load_document(doc)
    save_document(doc, text + "two\n", fmt)
    assert stat.S_IMODE(doc.stat().st_mode) == 0o600 and doc.read_text() == "one\ntwo\n"
    doc.chmod(0o640)
    save_document(doc, "three\n", fmt)
    assert stat.S_IMODE(doc.stat().st_mode) == 0o640


def test_forget_leaves_no_row_of_the_document_and_the_file_untouched(tinymorph_home, tmp_path, capsys):
    paths = app_paths()
    secure(paths.roots())
    kept, gone = tmp_path / "kept.md", tmp_path / "gone.md"
    for doc in (kept, gone):
        doc.write_text(f"text of {doc.name}\n")
    store = Store(paths.database)
    for doc in (kept, gone):
        store.remember_document(str(doc), 1, 2)
        store.write_journal(str(doc), f"unsaved words of {doc.name}", "0" * 64)
        store.add_version(str(doc), f"saved words of {doc.name}", "save")
    store.close()
    assert main(["forget", str(gone)]) == 0
    assert "forgot" in capsys.readouterr().out
    db = sqlite3.connect(paths.database)
    for table in Store.DOCUMENT_TABLES:
        if table in {r[0] for r in db.execute("select name from sqlite_master where type='table'")}:
            assert db.execute(f"select count(*) from [{table}] where path = ?", [str(gone)]).fetchone()[0] == 0
    assert db.execute("select count(*) from versions where path = ?", [str(kept)]).fetchone()[0] == 1
    db.close()
    assert gone.read_text() == "text of gone.md\n"
    raw = b"".join(p.read_bytes() for p in paths.data_dir.glob("tinymorph.db*"))
    assert b"unsaved words of gone.md" not in raw  # not left in free pages either
    assert main(["forget", "--all"]) == 0
    db = sqlite3.connect(paths.database)
    assert db.execute("select count(*) from versions").fetchone()[0] == 0
    db.close()


def test_a_home_folder_of_the_writers_own_is_left_as_it_is(umask_022, tmp_path, monkeypatch):
    home = tmp_path / "writing"
    home.mkdir()
    (home / "chapter1.md").write_text("shared with my editor")
    home.chmod(0o755)
    (home / "chapter1.md").chmod(0o644)
    monkeypatch.setenv("TINYMORPH_HOME", str(home))
    secure(app_paths().roots())
    assert stat.S_IMODE(home.stat().st_mode) == 0o755  # not tinymorph's: untouched
    assert stat.S_IMODE((home / "chapter1.md").stat().st_mode) == 0o644
    assert loose(home / "data") == [] and loose(home / "cache") == []


def test_the_log_makes_a_new_home_private_too(tmp_path):
    """The log is routed before anything else at start; the folders it creates on the way to
    worker.log (a TINYMORPH_HOME that did not exist) are 0700 too, not left to the umask. Run in a
    child: routing adds a handler to the root logger for the rest of the process."""
    home = tmp_path / "new" / "home"
    code = ("import sys; from pathlib import Path; from tinymorph.logs import route_library_output; "
            "route_library_output(Path(sys.argv[1]) / 'cache' / 'worker.log')")
    subprocess.run(["sh", "-c", f'umask 022; exec "{sys.executable}" -c "{code}" "{home}"'], check=True)
    assert (home / "cache" / "worker.log").exists()
    assert loose(tmp_path / "new") == []
