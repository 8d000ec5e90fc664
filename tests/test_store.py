"""The store: migrations on a blank database and on every older shape; WAL; events."""

from pathlib import Path

from sqlite_utils import Database

from tinymorph.store import Store
from tinymorph.store.migrations import migrations

ALL = ["m001_documents", "m002_suggestion_events", "m003_ui_state", "m004_presets", "m005_document_preset"]


def test_a_blank_database_gets_every_migration_in_order(tmp_path: Path):
    store = Store(tmp_path / "t.db")
    assert [m.name for m in migrations.applied(store.db)] == ALL
    assert store.db.journal_mode == "wal"


def test_every_older_shape_is_migrated_forward_keeping_its_rows(tmp_path: Path):
    for stop in ALL[1:]:
        path = tmp_path / f"{stop}.db"
        db = Database(path)
        migrations.apply(db, stop_before=stop)
        db["documents"].insert({"path": "/a.md", "cursor_row": 3, "cursor_column": 1, "last_opened": "x"})
        db.close()
        store = Store(path)
        assert [m.name for m in migrations.applied(store.db)] == ALL
        state = store.document("/a.md")
        assert state is not None and state.cursor_row == 3
        store.close()


def test_two_stores_can_use_one_file_at_once(tmp_path: Path):
    a, b = Store(tmp_path / "t.db"), Store(tmp_path / "t.db")
    a.remember_document("/x.md", 1, 2)
    state = b.document("/x.md")
    assert state is not None and state.cursor_column == 2


def test_suggestion_events_are_recorded_per_path(store):
    store.record_suggestion("/a.md", "accepted", 120.0, 1, 3, 14, "[]", "gemma3-270m")
    store.record_suggestion("/b.md", "rejected", 90.0, 0, 3, 0, "[]", "gemma3-270m")
    events = store.suggestion_events("/a.md")
    assert [(e["outcome"], e["alternative_index"], e["accepted_chars"]) for e in events] == [("accepted", 1, 14)]


def test_a_corrupt_store_is_moved_aside_and_a_fresh_one_made(tmp_path: Path):
    path = tmp_path / "store.db"
    path.write_bytes(b"this is not a database" * 100)
    store = Store(path)
    assert store.recovered_from is not None and store.recovered_from.name.startswith("store.db.corrupt-")
    assert store.recovered_from.read_bytes().startswith(b"this is not a database")
    store.remember_document("/a.md", 1, 1)  # the fresh store works
    assert [m.name for m in migrations.applied(store.db)] == ALL
    store.close()
    assert Store(path).recovered_from is None
