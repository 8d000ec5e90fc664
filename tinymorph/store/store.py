"""The Store class: opens (and migrates) the database, reads and writes in transactions.

Owns: all SQL access. Imports sqlite-utils only (no torch, no Textual). Errors: every SQLite error
of a public method becomes a StoreError saying what could not be done (`_sql`); callers catch
StoreError only.
"""

import functools
import hashlib
import json
import os
import sqlite3
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar

from sqlite_utils import Database

from tinymorph.errors import PresetError, StoreError
from tinymorph.presets import Preset, SteeringTarget, preset_from_json
from tinymorph.private import private_file
from tinymorph.store.migrations import migrations

Outcome = Literal["accepted", "partially_accepted", "rejected", "dropped"]


BUSY_TIMEOUT_MS = 500
"""How long a write waits for another tinymorph's transaction before it gives up (a StoreError the
editor shows; it never blocks the writer for long)."""

P = ParamSpec("P")
R = TypeVar("R")


def _sql(doing: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Turn any SQLite error raised by the decorated Store method into a StoreError that says what
    could not be done ("could not journal the unsaved text: the store is busy ...")."""

    def wrap(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(*args, **kwargs)
            except sqlite3.Error as exc:
                why = str(exc)
                if "locked" in why or "busy" in why:
                    why = "the store is busy (another tinymorph is writing to it); try again"
                raise StoreError(f"could not {doing}: {why}") from exc

        return run

    return wrap


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _upsert(db: Database, table: str, row: dict[str, object], pk: str | tuple[str, ...]) -> None:
    """Insert `row`, or update the row with the same primary key: SQLite's own upsert (3.24+).
    Not sqlite-utils' `upsert`: that probes once per connection whether SQLite has upserts, and
    when the probe meets a busy database it decides not, for good, and falls back to INSERT OR
    IGNORE + UPDATE, which writes nothing into a table with NOT NULL columns (the journal lost
    every later write that way: tests/test_store.py)."""
    keys = (pk,) if isinstance(pk, str) else pk
    columns = ", ".join(f'"{c}"' for c in row)
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in row if c not in keys)
    conflict = ", ".join(f'"{k}"' for k in keys)
    db.execute(
        f'insert into "{table}" ({columns}) values ({", ".join("?" * len(row))}) '
        f"on conflict ({conflict}) do " + (f"update set {updates}" if updates else "nothing"),
        list(row.values()),
    )


@dataclass(frozen=True)
class DocumentState:
    """What the store remembers about one file (keyed by its absolute path)."""

    path: str
    cursor_row: int
    cursor_column: int
    last_opened: str
    preset: str | None = None
    """The name of the last steering preset used on this document."""


def text_sha256(text: str) -> str:
    """Hex SHA-256 of `text` as UTF-8 (how journal and versions recognise a text)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class JournalEntry:
    """Unsaved text of one document, as last journaled."""

    path: str
    text: str
    base_sha256: str
    """SHA-256 of the file's text that the journaled text started from (see `text_sha256`)."""
    updated: str
    """UTC ISO time of the journal write."""


@dataclass(frozen=True)
class Version:
    """One kept version of a document (without its text; `Store.version_text` reads it)."""

    id: int
    path: str
    saved_at: str
    sha256: str
    size: int
    """Length in characters."""
    reason: str


KEEP_NEWEST_VERSIONS = 20
"""Pruning: the newest this many versions of a document are always kept."""
KEEP_DAILY_DAYS = 90
"""Pruning: of older versions, the last of each UTC day is kept for this many days."""


class Store:
    """The writer's store at `path` (or in memory for `path=None`). Migrates on open.

    WAL mode lets two tinymorph processes use it at once. A file that is not a readable SQLite
    database is moved aside (`store.db.corrupt-<UTC timestamp>`, with its -wal and -shm) and a
    fresh store is made; `recovered_from` then names the moved file, so the writer can be told.
    Raises StoreError if no store can be opened at all (no permission on the folder, disk full).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.recovered_from: Path | None = None
        try:
            self.db = self._open(path)
        except sqlite3.DatabaseError:
            assert path is not None  # an in-memory database is never corrupt
            self.recovered_from = self._move_aside(path)
            try:
                self.db = self._open(path)
            except (sqlite3.DatabaseError, OSError) as exc:
                raise StoreError(f"cannot open the store at {path}: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"cannot open the store at {path}: {exc}") from exc

    @staticmethod
    def _open(path: Path | None) -> Database:
        if path is None:
            db = Database(memory=True)
        else:
            # Created 0600 before SQLite opens it: SQLite gives the -wal and -shm files the
            # database file's permissions (docs/data.md: the store holds the writer's text).
            private_file(path)
            db = Database(path)
            db.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_MS}")
            db.enable_wal()
        migrations.apply(db)
        return db

    @staticmethod
    def _move_aside(path: Path) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        moved = path.with_name(f"{path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            part = path.with_name(path.name + suffix)
            if part.exists():
                os.replace(part, moved.with_name(moved.name + suffix))
        return moved

    def close(self) -> None:
        self.db.close()

    # --- forgetting --------------------------------------------------------------------------

    DOCUMENT_TABLES = ("documents", "journal", "versions", "suggestion_events")
    """Every table with rows about one document (keyed by its `path`)."""

    @_sql("forget the document")
    def forget(self, path: str | None) -> int:
        """Delete every row about the document at `path` (None: about every document): its
        state and last preset, its journal, its saved versions and its suggestion log. The deleted
        rows are overwritten (`secure_delete`), the file rewritten (`VACUUM`) and the WAL emptied
        (a truncating checkpoint), so the text does not stay in the store's files. Saved presets
        and settings are not about a document and stay. Returns the rows deleted."""
        deleted = 0
        self.db.execute("pragma secure_delete = on")  # deleted rows are overwritten, not only unlinked
        with self.db.conn:
            for table in self.DOCUMENT_TABLES:
                if table in self.db.table_names():
                    where, args = ("path = ?", [path]) if path is not None else ("1", [])
                    deleted += self.db.execute(f"delete from [{table}] where {where}", args).rowcount
        self.db.execute("vacuum")
        self.db.execute("pragma wal_checkpoint(truncate)")
        return deleted

    # --- documents -------------------------------------------------------------------------

    @_sql("read the document's state")
    def document(self, path: str) -> DocumentState | None:
        """The remembered state of `path`, or None the first time it is opened."""
        rows = list(self.db["documents"].rows_where("path = ?", [path]))
        return DocumentState(**rows[0]) if rows else None

    @_sql("remember the cursor")
    def remember_document(self, path: str, cursor_row: int, cursor_column: int) -> None:
        """Record that `path` is open with the cursor at (row, column)."""
        with self.db.conn:
            _upsert(
                self.db, "documents",
                {"path": path, "cursor_row": cursor_row, "cursor_column": cursor_column, "last_opened": _now()},
                pk="path",
            )

    @_sql("remember the document's preset")
    def remember_preset(self, path: str, preset: str | None) -> None:
        """Record `preset` as the last one used on `path` (None: no preset)."""
        with self.db.conn:
            if self.document(path) is None:
                self.db["documents"].insert(
                    {"path": path, "cursor_row": 0, "cursor_column": 0, "last_opened": _now(), "preset": preset}
                )
            else:
                self.db["documents"].update(path, {"preset": preset})

    # --- presets ---------------------------------------------------------------------------

    @_sql("save the preset")
    def save_preset(self, preset: Preset) -> None:
        """Save (or replace) a preset under its name."""
        with self.db.conn:
            _upsert(
                self.db, "presets",
                {"name": preset.name, "model": preset.model, "sae": preset.sae_id,
                 "preset": json.dumps(preset.to_json()), "updated": _now()},
                pk="name",
            )

    @_sql("list the presets")
    def preset_names(self) -> list[str]:
        """Every saved preset's name, alphabetically."""
        return [r["name"] for r in self.db["presets"].rows_where(order_by="name")]

    @_sql("read the preset")
    def preset(self, name: str, target: SteeringTarget) -> Preset:
        """The preset called `name`, checked against `target`. Raises PresetError if there is
        none, or it was made for another model or SAE."""
        rows = list(self.db["presets"].rows_where("name = ?", [name]))
        if not rows:
            raise PresetError(f"there is no preset called {name!r}")
        return preset_from_json(json.loads(rows[0]["preset"]), target, f"preset {name!r}")

    @_sql("read the preset")
    def preset_json(self, name: str) -> dict:
        """The stored export JSON of `name`. Raises PresetError if there is none."""
        rows = list(self.db["presets"].rows_where("name = ?", [name]))
        if not rows:
            raise PresetError(f"there is no preset called {name!r}")
        return json.loads(rows[0]["preset"])  # type: ignore[no-any-return]

    @_sql("rename the preset")
    def rename_preset(self, old: str, new: str) -> None:
        """Rename a preset (documents that used it follow). Raises PresetError if `old` does not
        exist, `new` is empty or taken."""
        new = new.strip()
        if not new:
            raise PresetError("a preset needs a name")
        data = self.preset_json(old)
        if new != old and new in self.preset_names():
            raise PresetError(f"a preset called {new!r} exists already")
        data["name"] = new
        with self.db.conn:
            self.db["presets"].delete(old)
            self.db["presets"].insert({"name": new, "model": data["model"], "sae": data["sae"],
                                       "preset": json.dumps(data), "updated": _now()})
            self.db.execute("update documents set preset = ? where preset = ?", [new, old])

    @_sql("delete the preset")
    def delete_preset(self, name: str) -> None:
        """Delete a preset; documents that used it forget it. Raises PresetError if none."""
        self.preset_json(name)
        with self.db.conn:
            self.db["presets"].delete(name)
            self.db.execute("update documents set preset = null where preset = ?", [name])

    # --- journal: unsaved text ------------------------------------------------------------

    @_sql("journal the unsaved text")
    def write_journal(self, path: str, text: str, base_sha256: str) -> None:
        """Keep `text` as the unsaved version of `path` (replacing the previous one), in one
        transaction: after a crash the store has the old entry or the new one, whole."""
        with self.db.conn:
            _upsert(
                self.db, "journal",
                {"path": path, "text": text, "base_sha256": base_sha256, "updated": _now()}, pk="path"
            )

    @_sql("read the journal")
    def journal(self, path: str) -> JournalEntry | None:
        """The journaled unsaved text of `path`, or None."""
        rows = list(self.db["journal"].rows_where("path = ?", [path]))
        return JournalEntry(**rows[0]) if rows else None

    @_sql("clear the journal")
    def clear_journal(self, path: str) -> None:
        """Forget the unsaved text of `path` (after a save, or when the writer discards it)."""
        with self.db.conn:
            self.db.execute("delete from journal where path = ?", [path])

    # --- versions --------------------------------------------------------------------------

    @_sql("keep a version")
    def add_version(self, path: str, text: str, reason: str, now: datetime | None = None) -> int:
        """Keep `text` as a version of `path` and prune old ones (see `prune_versions`).
        If the newest version already has this text, nothing is added and its id is returned."""
        digest = text_sha256(text)
        newest = self.versions(path)[:1]
        if newest and newest[0].sha256 == digest:
            return newest[0].id
        stamp = (now or datetime.now(UTC)).isoformat(timespec="milliseconds")
        with self.db.conn:
            row = self.db["versions"].insert(
                {"path": path, "saved_at": stamp, "sha256": digest, "size": len(text), "reason": reason,
                 "data": zlib.compress(text.encode("utf-8"))}
            )
            version_id = int(row.last_pk)  # type: ignore[arg-type]
        self.prune_versions(path, now)
        return version_id

    @_sql("list the versions")
    def versions(self, path: str) -> list[Version]:
        """The kept versions of `path`, newest first."""
        rows = self.db["versions"].rows_where(
            "path = ?", [path], order_by="id desc", select="id, path, saved_at, sha256, size, reason"
        )
        return [Version(**r) for r in rows]

    @_sql("read the version")
    def version_text(self, version_id: int) -> str:
        """The text of a version. Raises StoreError if there is no such version or its data is damaged."""
        rows = list(self.db["versions"].rows_where("id = ?", [version_id], select="data, sha256"))
        if not rows:
            raise StoreError(f"there is no version {version_id}")
        try:
            text = zlib.decompress(rows[0]["data"]).decode("utf-8")
        except (zlib.error, UnicodeDecodeError) as exc:
            raise StoreError(f"version {version_id} is damaged: {exc}") from None
        if text_sha256(text) != rows[0]["sha256"]:
            raise StoreError(f"version {version_id} is damaged: its text does not match its checksum")
        return text

    @_sql("prune old versions")
    def prune_versions(self, path: str, now: datetime | None = None) -> int:
        """Drop old versions of `path`; returns how many. Policy: the newest
        `KEEP_NEWEST_VERSIONS` are kept; of the rest, the newest version of each UTC day is
        kept for `KEEP_DAILY_DAYS` days; everything else goes. The newest is never dropped."""
        now = now or datetime.now(UTC)
        cutoff = now - timedelta(days=KEEP_DAILY_DAYS)
        seen_days: set[str] = set()
        drop = []
        for i, v in enumerate(self.versions(path)):
            day = v.saved_at[:10]
            keep = i < KEEP_NEWEST_VERSIONS or (day not in seen_days and datetime.fromisoformat(v.saved_at) >= cutoff)
            seen_days.add(day)
            if not keep:
                drop.append(v.id)
        if drop:
            with self.db.conn:
                self.db.execute(f"delete from versions where id in ({','.join('?' * len(drop))})", drop)
        return len(drop)

    # --- suggestion events -----------------------------------------------------------------

    @_sql("record the suggestion")
    def record_suggestion(
        self,
        path: str,
        outcome: Outcome,
        latency_ms: float | None,
        alternative_index: int,
        alternatives: int,
        accepted_chars: int,
        steering: str,
        model: str,
    ) -> None:
        """Record what happened to a suggestion that was shown."""
        with self.db.conn:
            self.db["suggestion_events"].insert(
                {
                    "path": path,
                    "at": _now(),
                    "outcome": outcome,
                    "latency_ms": latency_ms,
                    "alternative_index": alternative_index,
                    "alternatives": alternatives,
                    "accepted_chars": accepted_chars,
                    "steering": steering,
                    "model": model,
                }
            )

    @_sql("read the suggestion log")
    def suggestion_events(self, path: str | None = None) -> list[dict]:
        """All recorded events, oldest first, optionally for one path."""
        table = self.db["suggestion_events"]
        if path is None:
            return list(table.rows_where(order_by="id"))
        return list(table.rows_where("path = ?", [path], order_by="id"))

    # --- the writer's names for features -------------------------------------------------------

    @_sql("read the feature names")
    def feature_names(self, sae_id: str) -> dict[int, str]:
        """The names the writer gave features of `sae_id`: index -> name."""
        return {int(r["feature"]): str(r["name"]) for r in self.db["feature_names"].rows_where("sae = ?", [sae_id])}

    @_sql("rename the feature")
    def rename_feature(self, sae_id: str, feature: int, name: str) -> None:
        """Call feature `feature` of `sae_id` `name` from now on; an empty name goes back to the
        generated label."""
        name = " ".join(name.split())
        with self.db.conn:
            if name:
                _upsert(self.db, "feature_names", {"sae": sae_id, "feature": feature, "name": name, "updated": _now()},
                                                pk=("sae", "feature"))
            else:
                self.db.execute("delete from feature_names where sae = ? and feature = ?", [sae_id, feature])

    # --- UI state --------------------------------------------------------------------------

    @_sql("read the UI state")
    def get_state(self, key: str) -> str | None:
        rows = list(self.db["ui_state"].rows_where("key = ?", [key]))
        return rows[0]["value"] if rows else None

    @_sql("save the UI state")
    def set_state(self, key: str, value: str) -> None:
        with self.db.conn:
            _upsert(self.db, "ui_state", {"key": key, "value": value}, pk="key")
