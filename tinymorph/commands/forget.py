"""`tinymorph forget FILE | --all`: delete what tinymorph keeps about a document.

Owns: argument parsing and the message. The deleting is `Store.forget` (journal, versions,
state and the suggestion log of the document; the store's free pages overwritten). The file
itself is never touched. Refuses while another live tinymorph has the file open. Errors reach
`cli.main`.
"""

import argparse
import sys
from pathlib import Path

from tinymorph.document import document_path
from tinymorph.errors import DocumentError
from tinymorph.lock import FileLock
from tinymorph.paths import app_paths
from tinymorph.store import Store


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tinymorph forget",
        description="Delete what tinymorph keeps about a document: its unsaved-text journal, every saved "
        "version, its cursor and last preset, and its suggestion log. The file itself is left alone. "
        "Saved presets and settings stay. docs/data.md lists everything tinymorph keeps.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("path", type=Path, nargs="?", help="the document to forget")
    which.add_argument("--all", action="store_true", help="forget every document")
    args = parser.parse_args(argv)
    paths = app_paths()
    path = document_path(args.path) if args.path is not None else None
    if path is not None:
        owner = FileLock(path, paths.locks_dir).owner()
        if owner is not None:
            raise DocumentError(f"{path} is open in {owner.describe()}; close it there first")
    if not paths.database.exists():
        sys.stdout.write("tinymorph keeps nothing yet\n")
        return 0
    store = Store(paths.database)
    try:
        rows = store.forget(str(path) if path is not None else None)
    finally:
        store.close()
    what = str(path) if path is not None else "every document"
    sys.stdout.write(f"forgot {what}: {rows} record{'s' if rows != 1 else ''} deleted\n")
    return 0
