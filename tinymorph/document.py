"""Reading and writing the writer's file: strict UTF-8, kept line endings and BOM, atomic saves.

Owns: the file on disk, which is the source of truth for the text. Imports only `errors`.
The editor works on text with "\n" line endings; `DocumentFormat` remembers what the file used
so that a save writes it back the same way.
"""

import contextlib
import difflib
import glob
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from tinymorph.errors import DocumentError

BOM = "\ufeff"


@dataclass(frozen=True)
class DocumentFormat:
    """How the file was encoded, kept so that a save does not rewrite what the writer did not
    change. A new file gets "\n" and no BOM.

    A file that mixes CRLF and LF keeps, line by line, the ending each line had: `mixed` holds
    the text as loaded (with "\n") and the ending after each of its lines, and a save gives
    every line that was not changed its old ending and the others `newline`, the file's more
    common ending."""

    newline: str = "\n"
    bom: bool = False
    mixed: "MixedEndings | None" = None


@dataclass(frozen=True)
class MixedEndings:
    """The text of a file with mixed line endings, as loaded, and each line's ending."""

    text: str
    """The text with "\n" line endings."""
    endings: tuple[str, ...]
    """The ending ("\r\n" or "\n") after line i, for every line but the last."""

    def apply(self, text: str, default: str) -> str:
        """`text` (with "\n") with the endings of the lines it shares with the loaded text, matched
        by `difflib.SequenceMatcher` (a line edited in place keeps its ending too), and
        `default` for new lines."""
        old, new = self.text.split("\n"), text.split("\n")
        endings = [default] * (len(new) - 1)
        matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag in ("equal", "replace"):
                for i, j in zip(range(i1, i2), range(j1, j2), strict=False):
                    if i < len(self.endings) and j < len(endings):
                        endings[j] = self.endings[i]
        return "".join(line + ending for line, ending in zip(new, [*endings, ""], strict=True))


@dataclass(frozen=True)
class DiskStamp:
    """What the file looked like on disk (to notice that another program changed it)."""

    mtime_ns: int
    size: int
    """In bytes."""


def document_path(typed: Path) -> Path:
    """The one path that names a document however it was typed: user-expanded, absolute, with
    symbolic links followed (`os.path.realpath`; the file need not exist yet). The store, the
    journal, the history and the lock are keyed by it."""
    return Path(os.path.realpath(typed.expanduser()))


def disk_stamp(path: Path) -> DiskStamp | None:
    """The file's modification time and size now, or None if it does not exist."""
    try:
        st = path.stat()
    except OSError:
        return None
    return DiskStamp(st.st_mtime_ns, st.st_size)


def load_document(path: Path) -> tuple[str, DocumentFormat]:
    """Return (text with "\n" line endings, format). A missing file is an empty new document.

    Raises DocumentError (with a message for the writer) if `path` is a directory, cannot be
    read, or is not UTF-8 text (a binary file is never opened: saving it would destroy it).
    """
    if path.is_dir():
        raise DocumentError(f"{path} is a directory; give a file to edit")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "", DocumentFormat()
    except PermissionError:
        raise DocumentError(f"no permission to read {path}") from None
    except OSError as exc:
        raise DocumentError(f"cannot read {path}: {exc.strerror}") from None
    if b"\x00" in data:
        raise DocumentError(f"{path} looks like a binary file (it has NUL bytes); not opening it")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"{path} is not UTF-8 text (bad byte at offset {exc.start}); tinymorph will not "
            "rewrite it with replacement characters"
        ) from None
    bom = text.startswith(BOM)
    if bom:
        text = text[1:]
    crlf = text.count("\r\n")
    lf = text.count("\n") - crlf
    newline = "\r\n" if crlf > lf else "\n"
    clean = text.replace("\r\n", "\n")
    mixed = None
    if crlf and lf:
        endings = tuple("\r\n" if line.endswith("\r") else "\n" for line in text.split("\n")[:-1])
        mixed = MixedEndings(clean, endings)
    return clean, DocumentFormat(newline=newline, bom=bom, mixed=mixed)


def save_document(path: Path, text: str, fmt: DocumentFormat) -> DocumentFormat:
    """Write `text` to `path` atomically: a temp file in the same folder, fsync, rename over
    the old file, fsync the folder. The file on disk is always the old or the new content,
    never a mix. Keeps the file's permissions (a 0600 file stays 0600), owner and group where
the system allows, line endings (line by line in a file that mixes
    them) and BOM. A symbolic link is followed: the file it points to is replaced, the link
    stays. A new file gets the permissions the process's umask gives (the kernel applies it;
    the umask is never changed). Returns the format of what was written (for the next save).

    Raises DocumentError if the folder is not writable, the file is read-only, or the disk is
    full; the old file is then untouched.
    """
    body = fmt.mixed.apply(text, fmt.newline) if fmt.mixed is not None else text.replace("\n", fmt.newline)
    data = (BOM if fmt.bom else "") + body
    target = Path(os.path.realpath(path))  # through symbolic links: replace the file, keep the link
    folder = target.parent
    owner: tuple[int, int] | None = None
    try:
        st = target.stat()
        mode: int | None = stat.S_IMODE(st.st_mode)
        owner = (st.st_uid, st.st_gid)
        if not os.access(target, os.W_OK) or not st.st_mode & 0o222:  # no write bit: read-only even for root
            raise DocumentError(f"{path} is read-only; save it under another name")
    except FileNotFoundError:
        mode = None
    fd, tmp = -1, ""
    try:
        fd, tmp = _create_temp(folder, target.name, mode)
        if owner is not None and owner != (os.getuid(), os.getgid()):
            # Keep the file's owner and group through the rename (root editing another's file,
            # a file of a shared group); a change the system refuses leaves ours.
            with contextlib.suppress(PermissionError):
                os.fchown(fd, *owner)
            if mode is not None:
                os.fchmod(fd, mode)  # chown may clear set-id bits
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            fd = -1
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        tmp = ""
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise DocumentError(f"could not save {path}: {exc.strerror or exc}") from None
    finally:
        if fd != -1:
            os.close(fd)
        if tmp:
            Path(tmp).unlink(missing_ok=True)
    if fmt.mixed is not None:
        return DocumentFormat(fmt.newline, fmt.bom, _mixed_of(body))
    return fmt


def _mixed_of(body: str) -> MixedEndings | None:
    lines = body.split("\n")
    endings = tuple("\r\n" if line.endswith("\r") else "\n" for line in lines[:-1])
    return MixedEndings(body.replace("\r\n", "\n"), endings) if len(set(endings)) > 1 else None


def _create_temp(folder: Path, name: str, mode: int | None) -> tuple[int, str]:
    """A new hidden temp file `.NAME.XXXXXXXX.tinymorph-tmp` in `folder`, opened for writing.
    `mode`: the permissions to give it (an existing file's); None: 0o666 less the umask, as the
    kernel applies it to any new file."""
    while True:
        tmp = str(folder / f".{name}.{secrets.token_hex(4)}.tinymorph-tmp")
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(tmp, flags, 0o666 if mode is None else 0o600)
        except FileExistsError:
            continue
        if mode is not None:
            os.fchmod(fd, mode)
        return fd, tmp


STALE_TEMP_S = 60.0
"""A save's temp file older than this (seconds) is left over from a save that was killed."""


def remove_stale_temps(path: Path, older_than_s: float = STALE_TEMP_S) -> list[Path]:
    """Delete the temp files (`.NAME.*.tinymorph-tmp` beside `path`) that killed saves left
    behind, if older than `older_than_s` seconds; a save in progress is never that old. Call
    only while holding the file's lock. The document itself is never touched: a killed save
    leaves it old or new (see `save_document`), and the unsaved text is in the journal.
    Returns the files removed; files that cannot be removed are skipped silently.
    """
    folder = path.parent if str(path.parent) else Path(".")
    removed = []
    now = time.time()
    for tmp in folder.glob(f".{glob.escape(path.name)}.*.tinymorph-tmp"):
        try:
            info = tmp.lstat()
            if stat.S_ISREG(info.st_mode) and now - info.st_mtime > older_than_s:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue
    return removed
