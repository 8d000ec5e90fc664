"""`tinymorph history PATH [--diff N | --restore N]`: the versions the store keeps of a file.

Owns: argument parsing and output. Listing and diffing only read; restoring writes the file
atomically (keeping its line endings and BOM), first keeping the current file as a version, and
records the restored text as a new version. It refuses while another live tinymorph has the
file open. Errors reach `cli.main`.
"""

import argparse
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tinymorph.document import document_path, load_document, save_document
from tinymorph.errors import DocumentError, StoreError
from tinymorph.history import diff_lines, diff_summary
from tinymorph.lock import FileLock
from tinymorph.paths import app_paths
from tinymorph.store import Store


def _local(stamp: str) -> str:
    return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tinymorph history",
        description="Versions of a file kept by tinymorph (one per save). Lists them by default.",
    )
    parser.add_argument("path", type=Path)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--diff", type=int, metavar="N", help="show version N against the file on disk")
    action.add_argument("--restore", type=int, metavar="N", help="write version N to the file (a new version)")
    args = parser.parse_args(argv)
    path = document_path(args.path)
    paths = app_paths()
    store = Store(paths.database)
    out = Console()
    try:
        versions = store.versions(str(path))
        if not versions:
            out.print(f"no versions kept for {path}")
            return 1
        current, fmt = load_document(path)  # a missing file reads as empty
        if args.diff is None and args.restore is None:
            table = Table(title=f"versions of {path} (newest first)")
            for col in ("#", "saved", "how", "chars", "against the file now"):
                table.add_column(col)
            for v in versions:
                try:
                    against = diff_summary(current, store.version_text(v.id))
                except StoreError as exc:
                    against = f"[red]{exc}[/red]"
                table.add_row(str(v.id), _local(v.saved_at), v.reason, f"{v.size:,}", against)
            out.print(table)
            return 0
        wanted = args.diff if args.diff is not None else args.restore
        if wanted not in {v.id for v in versions}:
            raise StoreError(f"{path} has no version {wanted}; `tinymorph history {args.path}` lists them")
        old = store.version_text(wanted)
        if args.diff is not None:
            lines = diff_lines(current, old, f"{path.name} (on disk)", f"version {wanted}")
            for line in lines or ["no difference"]:
                style = "green" if line.startswith("+") else "red" if line.startswith("-") else "cyan" if (
                    line.startswith("@@")) else ""
                out.print(Text(line, style=style))
            return 0
        owner = FileLock(path, paths.locks_dir).owner()
        if owner is not None:
            raise DocumentError(f"{path.name} is open in tinymorph ({owner.describe()}); restore it from there "
                                "(palette: History) or close it first")
        if current == old:
            out.print(f"{path.name} already has the text of version {wanted}")
            return 0
        if path.exists():
            store.add_version(str(path), current, "before restore")
        save_document(path, old, fmt)
        new_id = store.add_version(str(path), old, f"restore of #{wanted}")
        out.print(f"restored version {wanted} to {path} (kept as version {new_id})")
        return 0
    finally:
        store.close()
