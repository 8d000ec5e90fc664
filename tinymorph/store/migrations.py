"""Forward-only, named migrations of the store (sqlite-utils `Migrations`).

Owns: the schema. Each migration says why it exists. Never edit one that has shipped; add a new
one. Applied in order by `Store.open`; sqlite-utils records them in `_sqlite_migrations`.
"""

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("tinymorph")


@migrations()
def m001_documents(db: Database) -> None:
    """Reopening a file puts the cursor back where the writer left it."""
    db["documents"].create(
        {"path": str, "cursor_row": int, "cursor_column": int, "last_opened": str},
        pk="path",
    )


@migrations()
def m002_suggestion_events(db: Database) -> None:
    """What happened to each suggestion shown (accepted, rejected, ignored), with its latency,
    so that the writer (and we) can see whether suggestions help, and at which settings."""
    db["suggestion_events"].create(
        {
            "id": int,
            "path": str,
            "at": str,
            "outcome": str,
            "latency_ms": float,
            "alternative_index": int,
            "alternatives": int,
            "accepted_chars": int,
            "steering": str,
            "model": str,
        },
        pk="id",
        not_null={"path", "at", "outcome"},
    )
    db["suggestion_events"].create_index(["path", "at"])


@migrations()
def m003_ui_state(db: Database) -> None:
    """Choices made inside the editor (the theme picked in the palette) are remembered across
    runs without rewriting the writer's hand-edited config file."""
    db["ui_state"].create({"key": str, "value": str}, pk="key")


@migrations()
def m004_presets(db: Database) -> None:
    """Saved steering presets: a name, the model and SAE they were made for, and their terms
    (JSON in the export format's shape, so an old preset stays readable)."""
    db["presets"].create(
        {"name": str, "model": str, "sae": str, "preset": str, "updated": str},
        pk="name",
        not_null={"model", "sae", "preset"},
    )


@migrations()
def m005_document_preset(db: Database) -> None:
    """Reopening a document restores the last preset used on it."""
    db["documents"].add_column("preset", str)


@migrations()
def m006_journal(db: Database) -> None:
    """Unsaved text survives a crash: the editor journals the buffer here while the writer works
    and clears it on save; reopening a file with a journal entry offers to restore it.
    `base_sha256` is the hash of the file as it was when the journaled text was based on it."""
    db["journal"].create(
        {"path": str, "text": str, "base_sha256": str, "updated": str},
        pk="path",
        not_null={"text", "updated"},
    )


@migrations()
def m007_versions(db: Database) -> None:
    """Every save keeps a version, so the writer can look back and restore (`tinymorph history`).
    `reason` says how it came: "opened" (the file as first found), "save", "restore of N".
    `data` is the text, UTF-8 and zlib-compressed (prose shrinks about 3x); `size` is in characters."""
    db["versions"].create(
        {"id": int, "path": str, "saved_at": str, "sha256": str, "size": int, "reason": str, "data": bytes},
        pk="id",
        not_null={"path", "saved_at", "sha256", "data"},
    )
    db["versions"].create_index(["path", "id"])


@migrations()
def m008_feature_names(db: Database) -> None:
    """The writer's own names for SAE features, shown instead of the generated labels everywhere.
    Keyed by the SAE and the feature's index, not kept in the feature file, so a rebuilt feature
    file keeps them."""
    db["feature_names"].create(
        {"sae": str, "feature": int, "name": str, "updated": str},
        pk=("sae", "feature"),
        not_null={"name"},
    )
