"""The Store class: opens (and migrates) the database, reads and writes in transactions.

Owns: all SQL access. Imports sqlite-utils only (no torch, no Textual). Errors: StoreError.
"""

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from sqlite_utils import Database

from tinymorph.errors import StoreError
from tinymorph.store.migrations import migrations

Outcome = Literal["accepted", "partially_accepted", "rejected", "dropped"]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class DocumentState:
    """What the store remembers about one file (keyed by its absolute path)."""

    path: str
    cursor_row: int
    cursor_column: int
    last_opened: str


class Store:
    """The writer's store at `path` (or in memory for `path=None`). Migrates on open.

    WAL mode lets two tinymorph processes use it at once. Raises StoreError if the file
    cannot be opened or migrated.
    """

    def __init__(self, path: Path | None) -> None:
        try:
            if path is None:
                self.db = Database(memory=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self.db = Database(path)
                self.db.enable_wal()
            migrations.apply(self.db)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise StoreError(f"cannot open the store at {path}: {exc}") from exc

    def close(self) -> None:
        self.db.close()

    # --- documents -------------------------------------------------------------------------

    def document(self, path: str) -> DocumentState | None:
        """The remembered state of `path`, or None the first time it is opened."""
        rows = list(self.db["documents"].rows_where("path = ?", [path]))
        return DocumentState(**rows[0]) if rows else None

    def remember_document(self, path: str, cursor_row: int, cursor_column: int) -> None:
        """Record that `path` is open with the cursor at (row, column)."""
        with self.db.conn:
            self.db["documents"].upsert(
                {"path": path, "cursor_row": cursor_row, "cursor_column": cursor_column, "last_opened": _now()},
                pk="path",
            )

    # --- suggestion events -----------------------------------------------------------------

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

    def suggestion_events(self, path: str | None = None) -> list[dict]:
        """All recorded events, oldest first, optionally for one path."""
        table = self.db["suggestion_events"]
        if path is None:
            return list(table.rows_where(order_by="id"))
        return list(table.rows_where("path = ?", [path], order_by="id"))

    # --- UI state --------------------------------------------------------------------------

    def get_state(self, key: str) -> str | None:
        rows = list(self.db["ui_state"].rows_where("key = ?", [key]))
        return rows[0]["value"] if rows else None

    def set_state(self, key: str, value: str) -> None:
        with self.db.conn:
            self.db["ui_state"].upsert({"key": key, "value": value}, pk="key")
