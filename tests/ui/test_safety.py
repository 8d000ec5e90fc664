"""Never lose a word, in the editor: journal and restore, versions and history, the lock,
changes on disk, failed saves (Pilot, scripted engine)."""

import errno
import os
import time
from pathlib import Path

import pytest

from tests.ui.fakes import ScriptedEngine
from tinymorph.config import Settings
from tinymorph.lock import FileLock
from tinymorph.paths import package_data_dir
from tinymorph.store import Store, text_sha256
from tinymorph.ui import safety
from tinymorph.ui.app import TinymorphApp, make_app
from tinymorph.ui.dialogs import ChoiceScreen, DiffScreen


def build(path: Path, store: Store, lock: FileLock | None = None) -> TinymorphApp:
    return make_app(path, Settings(suggestions=False), store, ScriptedEngine(), package_data_dir("themes"), lock)


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    path = tmp_path / "notes.md"
    path.write_text("Out at the harbour\n", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def quick_journal(monkeypatch):
    monkeypatch.setattr(safety, "JOURNAL_IDLE_S", 0.05)


async def choose(pilot, app: TinymorphApp, choice: str) -> None:
    screen = app.screen
    assert isinstance(screen, ChoiceScreen), screen
    screen.dismiss(choice)
    await pilot.pause()


async def test_unsaved_text_is_journaled_after_a_pause_and_cleared_by_saving(notes, store):
    app = build(notes, store)
    async with app.run_test() as pilot:
        await pilot.press("N", "e", "w", "space")
        await pilot.pause(0.2)
        entry = store.journal(str(notes))
        assert entry is not None and entry.text == "New Out at the harbour\n"
        assert entry.base_sha256 == text_sha256("Out at the harbour\n")
        await pilot.press("ctrl+s")
        assert store.journal(str(notes)) is None


async def test_with_a_store_on_disk_the_journal_is_written_off_the_editors_thread(notes, tmp_path, journal_writers):
    store = Store(tmp_path / "store.db")
    app = build(notes, store)
    async with app.run_test() as pilot:
        await pilot.press("N", "e", "w", "space")
        await pilot.pause(0.2)
        app.journal.flush()
        entry = store.journal(str(notes))
        assert entry is not None and entry.text == "New Out at the harbour\n"
        await pilot.press("x", "ctrl+s")  # the write asked before the save lands first, then the clear
        app.journal.flush()
        assert store.journal(str(notes)) is None
        await pilot.press("y")
    entry = store.journal(str(notes))  # quitting waits for the last write
    assert entry is not None and entry.text == "New xyOut at the harbour\n"
    assert journal_writers and set(journal_writers) == {"tinymorph-journal"}
    store.close()


async def test_a_journal_write_that_the_busy_store_refused_is_tried_again(notes, tmp_path):
    store = LockedStore(tmp_path / "store.db")
    app = build(notes, store)
    async with app.run_test() as pilot:
        store.lock()
        await pilot.press("x")
        await pilot.pause(0.2)
        app.journal.flush()  # the journal thread waited 500 ms, failed, and said so
        await pilot.pause()
        assert any("store is busy" in str(n.message) for n in app._notifications)
        assert store.journal(str(notes)) is None
        store.unlock()
        await pilot.pause(0.3)  # nothing typed since: tried again after the pause
        app.journal.flush()
        entry = store.journal(str(notes))
        assert entry is not None and entry.text == "xOut at the harbour\n"
    store.blocker.close()
    store.close()


async def test_typing_without_a_pause_is_still_journaled(notes, store, monkeypatch):
    monkeypatch.setattr(safety, "JOURNAL_IDLE_S", 30.0)  # the idle pause never comes
    monkeypatch.setattr(safety, "JOURNAL_MAX_S", 0.3)
    app = build(notes, store)
    async with app.run_test() as pilot:
        for key in "steady":
            await pilot.press(key)
            await pilot.pause(0.1)
        entry = store.journal(str(notes))
        assert entry is not None and entry.text.startswith("stead")


async def test_after_a_crash_reopening_offers_the_unsaved_text_and_restores_it(notes, store):
    store.write_journal(str(notes), "Out at the harbour\nthe words that were never saved\n",
                        text_sha256("Out at the harbour\n"))
    app = build(notes, store)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ChoiceScreen)
        assert "+1 line, -0 lines" in app.screen.prompt
        await choose(pilot, app, safety.RESTORE)
        assert app.editor.text.endswith("the words that were never saved\n")
        assert app.modified
        await pilot.press("ctrl+s")
    assert notes.read_text().endswith("never saved\n")


async def test_discarding_the_unsaved_text_keeps_it_in_history(notes, store):
    store.write_journal(str(notes), "a draft the writer did not want", "x")
    app = build(notes, store)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert "changed since" in app.screen.prompt  # the base hash is not the file's
        await choose(pilot, app, safety.DISCARD)
        assert app.editor.text == "Out at the harbour\n"
    assert store.journal(str(notes)) is None
    texts = [store.version_text(v.id) for v in store.versions(str(notes))]
    assert "a draft the writer did not want" in texts


async def test_quitting_with_unsaved_text_by_any_other_way_journals_it(notes, store):
    app = build(notes, store)
    async with app.run_test() as pilot:
        await pilot.press("x")
        app.exit()  # not through the quit dialog: as when the terminal closes
    entry = store.journal(str(notes))
    assert entry is not None and entry.text.startswith("xOut")


async def test_quit_without_saving_forgets_the_journal(notes, store):
    app = build(notes, store)
    async with app.run_test() as pilot:
        await pilot.press("x")
        await pilot.pause(0.2)
        await pilot.press("ctrl+q")
        await pilot.click("#discard")
    assert store.journal(str(notes)) is None


async def test_every_save_keeps_a_version_and_history_restores_one(notes, store):
    app = build(notes, store)
    async with app.run_test() as pilot:
        await pilot.press("end", "!", "ctrl+s")
        await pilot.press("?", "ctrl+s")
        reasons = [v.reason for v in store.versions(str(notes))]
        assert reasons == ["save", "save", "opened"]
        app.action_history()
        await pilot.pause()
        oldest = app.screen.choices[-1]
        await choose(pilot, app, oldest)
        assert isinstance(app.screen, DiffScreen)
        assert "-Out at the harbour!?" in app.screen.lines
        await pilot.press("enter")
        assert app.editor.text == "Out at the harbour\n"
        await pilot.press("ctrl+z")  # restoring is one undoable edit
        assert app.editor.text == "Out at the harbour!?\n"
    assert notes.read_text() == "Out at the harbour\n"
    assert store.versions(str(notes))[0].reason.startswith("restore of #")


async def test_a_file_changed_on_disk_is_not_overwritten_without_asking(notes, store):
    app = build(notes, store)
    async with app.run_test() as pilot:
        await pilot.press("M", "i", "n", "e", "space")
        notes.write_text("Theirs\n", encoding="utf-8")
        os.utime(notes, ns=(1, 1))  # a different stamp even on a coarse clock
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, ChoiceScreen)
        assert notes.read_text() == "Theirs\n"
        await choose(pilot, app, safety.RELOAD)
        assert app.editor.text == "Theirs\n" and not app.modified
    assert any(store.version_text(v.id).startswith("Mine ") for v in store.versions(str(notes)))


async def test_overwrite_after_asking(notes, store):
    app = build(notes, store)
    async with app.run_test() as pilot:
        await pilot.press("M", "ctrl+s")
        notes.write_text("Theirs\n", encoding="utf-8")
        os.utime(notes, ns=(1, 1))
        await pilot.press("ctrl+s")
        await choose(pilot, app, safety.OVERWRITE)
        await pilot.press("ctrl+s")  # and the next save does not ask again
        assert not isinstance(app.screen, ChoiceScreen)
    assert notes.read_text() == "MOut at the harbour\n"


async def test_keep_both_saves_a_copy_locks_it_and_lets_the_other_version_go(notes, store, tmp_path):
    lock = FileLock(notes, tmp_path / "locks")
    app = build(notes, store, lock)
    async with app.run_test() as pilot:
        await pilot.press("M")
        notes.write_text("Theirs\n", encoding="utf-8")
        os.utime(notes, ns=(1, 1))
        await pilot.press("ctrl+s")
        await choose(pilot, app, safety.KEEP_BOTH)
        assert app.path != notes and app.path.read_text() == "MOut at the harbour\n"
        assert FileLock(app.path, tmp_path / "locks").acquire() is not None  # the copy is ours now
        original = FileLock(notes, tmp_path / "locks")
        assert original.acquire() is None  # the original is free
        original.release()
        assert not lock.held
    assert notes.read_text() == "Theirs\n"


async def test_a_touched_but_unchanged_file_saves_without_asking(notes, store):
    app = build(notes, store)
    async with app.run_test() as pilot:
        await pilot.press("M")
        os.utime(notes, ns=(1, 1))
        await pilot.press("ctrl+s")
        assert not isinstance(app.screen, ChoiceScreen)
    assert notes.read_text() == "MOut at the harbour\n"


async def test_a_full_disk_at_save_keeps_the_text_and_the_old_file(notes, store, monkeypatch):
    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    app = build(notes, store)
    async with app.run_test() as pilot:
        await pilot.press("x")
        monkeypatch.setattr(os, "fsync", full)
        await pilot.press("ctrl+s")
        monkeypatch.undo()
        assert app.modified and app.editor.text == "xOut at the harbour\n"
        entry = store.journal(str(notes))
        assert entry is not None and entry.text == "xOut at the harbour\n"
    assert notes.read_text() == "Out at the harbour\n"
    assert not [p for p in notes.parent.iterdir() if "tinymorph-tmp" in p.name]


async def test_a_read_only_file_keeps_the_text_and_says_why(notes, store):
    notes.chmod(0o444)
    app = build(notes, store)
    async with app.run_test() as pilot:
        await pilot.press("x", "ctrl+s")
        assert app.modified and app.editor.text.startswith("xOut")
    assert notes.read_text() == "Out at the harbour\n"


@pytest.fixture
def other_tinymorph(notes: Path, tmp_path: Path):
    """Another editor holding `notes`'s lock (its own open lock file: to the kernel, another owner)."""
    holder = FileLock(notes, tmp_path / "locks")
    assert holder.acquire() is None
    yield holder
    holder.release()


async def test_a_second_tinymorph_on_the_file_is_warned_and_can_leave(notes, store, other_tinymorph):
    app = build(notes, store, FileLock(notes, other_tinymorph.lock_file.parent))
    async with app.run_test() as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ChoiceScreen)
        assert f"process {os.getpid()}" in app.screen.prompt
        await choose(pilot, app, safety.QUIT)
    assert other_tinymorph.held  # the other one's lock is untouched


def _leftover_temp(notes: Path, age_s: float) -> Path:
    tmp = notes.parent / f".{notes.name}.k1ll3d.tinymorph-tmp"
    tmp.write_text("half a save")
    then = time.time() - age_s
    os.utime(tmp, (then, then))
    return tmp


async def test_temp_files_of_a_killed_save_are_cleared_once_the_lock_is_ours(notes, store, tmp_path):
    stale = _leftover_temp(notes, age_s=3600)
    app = build(notes, store, FileLock(notes, tmp_path / "locks"))
    async with app.run_test() as pilot:
        await pilot.pause()
        assert not stale.exists()
    assert notes.read_text() == "Out at the harbour\n"


async def test_temp_files_are_left_alone_when_the_lock_cannot_be_taken(notes, store, tmp_path, monkeypatch):
    stale = _leftover_temp(notes, age_s=3600)
    lock = FileLock(notes, tmp_path / "locks")

    def refuse(force: bool = False):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(lock, "acquire", refuse)
    app = build(notes, store, lock)
    async with app.run_test() as pilot:
        await pilot.pause()
    assert stale.exists()


async def test_temp_files_are_left_alone_while_another_tinymorph_holds_the_file(notes, store, other_tinymorph):
    stale = _leftover_temp(notes, age_s=3600)
    app = build(notes, store, FileLock(notes, other_tinymorph.lock_file.parent))
    async with app.run_test() as pilot:
        await pilot.pause()
        await choose(pilot, app, safety.QUIT)
    assert stale.exists()


async def test_the_lock_is_taken_while_editing_and_given_back_on_quit(notes, store, tmp_path):
    lock = FileLock(notes, tmp_path / "locks")
    app = build(notes, store, lock)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert not isinstance(app.screen, ChoiceScreen)
        assert lock.held and FileLock(notes, tmp_path / "locks").acquire() is not None
        await pilot.press("ctrl+q")
    again = FileLock(notes, tmp_path / "locks")
    assert not lock.held and again.acquire() is None
    again.release()


async def test_a_dead_worker_is_shown_and_editing_goes_on(notes, store):
    from tinymorph.engine.protocol import WorkerDied, WorkerReady

    engine = ScriptedEngine()
    app = make_app(notes, Settings(idle_delay_ms=10), store, engine, package_data_dir("themes"))
    async with app.run_test() as pilot:
        await pilot.pause()
        engine.on_event(WorkerDied(-9, 2.0))
        await pilot.pause()
        assert "model: stopped (exit -9); restarting in 2 s" in str(app.status.render())
        engine.on_event(WorkerDied(-9, 0.0))
        await pilot.pause()
        assert "model: stopped (exit -9); restarting now" in str(app.status.render())
        assert not app.editor.suggestions_enabled
        await pilot.press("end", "!")
        assert app.editor.text == "Out at the harbour!\n"
        engine.on_event(WorkerReady("scripted", 0.0, 0, 8, 511))  # the restarted worker
        await pilot.pause()
        assert app.editor.suggestions_enabled and "scripted: ready" in str(app.status.render())


async def test_a_model_that_cannot_load_leaves_an_editor_without_suggestions(notes, store):
    from tinymorph.engine.protocol import WorkerFailed

    class Failing(ScriptedEngine):
        def start(self, on_event):
            self.on_event = on_event
            on_event(WorkerFailed("not enough memory to load gemma3-270m"))

    app = make_app(notes, Settings(idle_delay_ms=10), store, Failing(), package_data_dir("themes"))
    async with app.run_test() as pilot:
        await pilot.pause()
        assert "not enough memory" in str(app.status.render())
        await pilot.press("x", "ctrl+s")
    assert notes.read_text() == "xOut at the harbour\n"


class LockedStore(Store):
    """A store whose database another tinymorph holds locked (a write transaction of its own)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.blocker = Store(path)

    def lock(self) -> None:
        self.blocker.db.execute("begin immediate")  # held until unlock: every write here waits, then fails

    def unlock(self) -> None:
        self.blocker.db.execute("rollback")


async def test_a_locked_store_never_stops_a_save_or_the_editor(notes, tmp_path):
    store = LockedStore(tmp_path / "store.db")
    app = build(notes, store)
    async with app.run_test() as pilot:
        await pilot.press("x")
        store.lock()
        await pilot.press("ctrl+s")  # saved; clearing the journal and keeping a version fail
        await pilot.pause()
        assert not app.modified
        assert any("store is busy" in str(n.message) for n in app._notifications)
        await pilot.press("y")
        store.unlock()
        await pilot.press("ctrl+s")
    assert notes.read_text() == "xyOut at the harbour\n"
    store.blocker.close()
    store.close()


def test_every_sqlite_error_of_the_store_is_a_store_error(tmp_path):
    from tinymorph.errors import StoreError

    store = LockedStore(tmp_path / "store.db")
    store.lock()
    with pytest.raises(StoreError, match="could not journal the unsaved text: the store is busy"):
        store.write_journal("/a.md", "text", "0" * 64)
    store.unlock()
    store.blocker.close()
    store.db.conn.close()  # any other SQLite failure too
    with pytest.raises(StoreError, match="could not read the journal: Cannot operate on a closed database"):
        store.journal("/a.md")


async def test_a_document_opened_through_a_link_is_the_same_document(notes, store, tmp_path):
    link = tmp_path / "link.md"
    link.symlink_to(notes)
    app = build(link, store)
    async with app.run_test() as pilot:
        await pilot.press("x")
        await pilot.pause(0.2)  # journaled
        assert app.path == notes and app.status.file_name == "link.md"
    assert store.journal(str(notes)) is not None  # journal (and lock, history) keyed by the file itself
    again = build(notes, store)
    async with again.run_test() as pilot:
        await pilot.pause()
        assert isinstance(again.screen, ChoiceScreen)  # the unsaved text typed through the link is offered
