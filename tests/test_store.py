"""The store: migrations on a blank database and on every older shape; WAL; events."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlite_utils import Database

from tinymorph.errors import StoreError
from tinymorph.store import Store
from tinymorph.store.migrations import migrations
from tinymorph.store.store import KEEP_DAILY_DAYS, KEEP_NEWEST_VERSIONS

ALL = ["m001_documents", "m002_suggestion_events", "m003_ui_state", "m004_presets", "m005_document_preset",
       "m006_journal", "m007_versions", "m008_feature_names"]


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


def test_the_journal_keeps_the_latest_unsaved_text_per_file(store):
    assert store.journal("/a.md") is None
    store.write_journal("/a.md", "draft one", "base")
    store.write_journal("/a.md", "draft two", "base")
    entry = store.journal("/a.md")
    assert entry is not None and (entry.text, entry.base_sha256) == ("draft two", "base")
    store.clear_journal("/a.md")
    assert store.journal("/a.md") is None


def test_a_busy_store_fails_one_write_loudly_and_the_next_one_lands(tmp_path: Path):
    store, blocker = Store(tmp_path / "t.db"), Store(tmp_path / "t.db")
    blocker.db.execute("begin immediate")  # another tinymorph writing, for longer than the busy timeout
    with pytest.raises(StoreError, match="busy"):
        store.write_journal("/a.md", "first", "base")
    blocker.db.execute("rollback")
    store.write_journal("/a.md", "second", "base")  # sqlite-utils' upsert wrote nothing here
    store.set_state("theme", "dark")
    store.remember_document("/a.md", 3, 4)
    entry = Store(tmp_path / "t.db").journal("/a.md")
    assert entry is not None and entry.text == "second"
    assert store.get_state("theme") == "dark" and store.document("/a.md").cursor_row == 3  # type: ignore[union-attr]


def test_the_journal_survives_closing_and_reopening_the_store(tmp_path: Path):
    a = Store(tmp_path / "t.db")
    a.write_journal("/a.md", "unsaved words", "x")
    a.close()  # as after kill -9: the write was committed, nothing else ran
    entry = Store(tmp_path / "t.db").journal("/a.md")
    assert entry is not None and entry.text == "unsaved words"


def test_versions_are_kept_newest_first_and_an_unchanged_text_is_not_kept_twice(store):
    first = store.add_version("/a.md", "one", "opened")
    again = store.add_version("/a.md", "one", "save")
    second = store.add_version("/a.md", "one two ✓", "save")
    assert again == first
    assert [v.id for v in store.versions("/a.md")] == [second, first]
    assert store.version_text(second) == "one two ✓"
    assert store.versions("/a.md")[0].size == len("one two ✓")
    assert store.versions("/other.md") == []


def test_a_damaged_version_is_reported_not_returned(store):
    vid = store.add_version("/a.md", "text", "save")
    store.db.execute("update versions set data = ? where id = ?", [b"not zlib", vid])
    with pytest.raises(StoreError, match="damaged"):
        store.version_text(vid)
    with pytest.raises(StoreError, match="no version"):
        store.version_text(vid + 100)


def test_pruning_keeps_the_newest_twenty_then_one_per_day_for_ninety_days(store):
    start = datetime(2026, 1, 1, 9, tzinfo=UTC)
    # 3 saves a day for 120 days, oldest first
    for day in range(120):
        for hour in range(3):
            store.add_version("/a.md", f"day {day} save {hour}", "save", now=start + timedelta(days=day, hours=hour))
    now = start + timedelta(days=119, hours=3)
    kept = store.versions("/a.md")
    texts = [store.version_text(v.id) for v in kept]
    assert texts[0] == "day 119 save 2"  # the newest is never dropped
    assert len(texts[:KEEP_NEWEST_VERSIONS]) == KEEP_NEWEST_VERSIONS
    older = texts[KEEP_NEWEST_VERSIONS:]
    assert all(t.endswith("save 2") for t in older)  # one per day: that day's last
    days = [int(t.split()[1]) for t in older]
    assert days == sorted(set(days), reverse=True)
    assert min(days) >= (now - timedelta(days=KEEP_DAILY_DAYS) - start).days
    assert len(kept) < 120 * 3


def test_other_documents_are_not_pruned(store):
    store.add_version("/b.md", "keep me", "save", now=datetime(2020, 1, 1, tzinfo=UTC))
    for i in range(KEEP_NEWEST_VERSIONS + 5):
        store.add_version("/a.md", f"v{i}", "save")
    assert [store.version_text(v.id) for v in store.versions("/b.md")] == ["keep me"]


def test_feature_names_are_kept_per_sae_and_an_empty_name_forgets(store):
    store.rename_feature("sae-a", 12, "  the sea  and  ships ")
    store.rename_feature("sae-b", 12, "something else")
    assert store.feature_names("sae-a") == {12: "the sea and ships"}
    store.rename_feature("sae-a", 12, "")
    assert store.feature_names("sae-a") == {} and store.feature_names("sae-b") == {12: "something else"}


def test_the_journal_writer_writes_in_the_order_asked_on_its_own_thread(tmp_path: Path, journal_writers):
    from tinymorph.store import JournalWriter, text_sha256

    store = Store(tmp_path / "t.db")
    errors: list[StoreError] = []
    writer = JournalWriter(store, errors.append)
    writer.write("/a.md", ["draft", "one"], "\n", "base")
    writer.clear("/a.md", "base")  # saved: what was asked before is written first, then cleared
    writer.flush()
    assert store.journal("/a.md") is None
    writer.write("/a.md", ["draft", "two"], "\r\n", "base")
    writer.write("/a.md", ["draft", "two"], "\r\n", "base")  # the same text again: not rewritten
    writer.flush()
    entry = store.journal("/a.md")
    assert entry is not None and entry.text == "draft\r\ntwo"
    writer.write("/a.md", ["as", "saved"], "\n", text_sha256("as\nsaved"))  # undone back to the file
    writer.close()
    assert store.journal("/a.md") is None
    assert journal_writers == ["tinymorph-journal", "tinymorph-journal"] and errors == []


def test_the_journal_writer_reports_a_busy_store_and_goes_on(tmp_path: Path):
    from tinymorph.store import JournalWriter

    store = Store(tmp_path / "t.db")
    blocker = Store(tmp_path / "t.db")
    errors: list[StoreError] = []
    writer = JournalWriter(store, errors.append)
    blocker.db.execute("begin immediate")
    writer.write("/a.md", ["lost?"], "\n", "base")
    writer.flush()
    assert len(errors) == 1 and "store is busy" in str(errors[0])
    blocker.db.execute("rollback")
    writer.write("/a.md", ["lost?", "no"], "\n", "base")
    writer.close()
    entry = store.journal("/a.md")
    assert entry is not None and entry.text == "lost?\nno"


def test_the_journal_writer_of_an_in_memory_store_writes_at_once_and_raises():
    from tinymorph.store import JournalWriter

    store = Store(None)
    writer = JournalWriter(store, lambda exc: pytest.fail(f"reported, not raised: {exc}"))
    writer.write("/a.md", ["now"], "\n", "base")
    entry = store.journal("/a.md")
    assert entry is not None and entry.text == "now"
    store.db.conn.close()
    with pytest.raises(StoreError):
        writer.clear("/a.md", "base")


def test_the_journal_writer_survives_an_unexpected_error_and_writes_after_close(tmp_path: Path, monkeypatch):
    from tinymorph.store import JournalWriter

    store = Store(tmp_path / "t.db")
    errors: list[StoreError] = []
    writer = JournalWriter(store, errors.append)
    writer.write("/a.md", [1, 2], "\n", "base")  # type: ignore[list-item]  # join fails: not strings
    writer.write("/a.md", ["still", "here"], "\n", "base")
    writer.close()
    assert len(errors) == 1 and "TypeError" in str(errors[0])
    writer.write("/a.md", ["after", "close"], "\n", "base")  # on the caller's thread now
    writer.flush()
    entry = store.journal("/a.md")
    assert entry is not None and entry.text == "after\nclose"
