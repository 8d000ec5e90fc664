"""One tinymorph per file: a kernel lock (`fcntl.flock`) on a lock file that names its holder.

Owns: lock files under the data folder (`locks/<sha256 of the document path>.lock`, so the
writer's folders stay clean and a read-only folder can still be edited). The lock is the kernel's
exclusive `flock` on that file, taken without blocking: two editors started at the same moment
cannot both get it, and the kernel releases it when its process ends, however it ends. The file's
content (pid, host, start time) only names the holder for the writer. Lock files are emptied on
release, never deleted: deleting a locked file lets a third process lock a new file of the same
name while the second still holds the old one. Imports nothing heavy.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from tinymorph.private import private_dir


@dataclass(frozen=True)
class LockOwner:
    """Who holds a file's lock (as the holder wrote it; "" where unknown)."""

    pid: int
    host: str
    started: str
    """UTC ISO time the lock was taken."""
    path: str

    def describe(self) -> str:
        if not self.pid:
            return "another process"
        return f"process {self.pid} on {self.host}, since {self.started[:16].replace('T', ' ')} UTC"


def _read_owner(fd: int, path: Path) -> LockOwner:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 65536).decode("utf-8"))
        return LockOwner(int(data["pid"]), str(data["host"]), str(data["started"]), str(data["path"]))
    except (OSError, ValueError, KeyError, TypeError):
        return LockOwner(0, "", "", str(path))  # locked, but not (yet) saying by whom


class FileLock:
    """The lock of the document at `path`, kept in `locks_dir`. `acquire()` takes it unless another
    process holds it; `release()` gives it back."""

    def __init__(self, path: Path, locks_dir: Path) -> None:
        self.path = path
        digest = hashlib.sha256(str(path).encode("utf-8")).hexdigest()[:32]
        self.lock_file = locks_dir / f"{digest}.lock"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the kernel lock."""
        return self._fd is not None

    def owner(self) -> LockOwner | None:
        """The other process holding the lock now, or None if nobody (else) does."""
        if self.held:
            return None
        try:
            fd = os.open(self.lock_file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_owner(fd, self.path)
        finally:
            os.close(fd)  # closing drops a shared lock taken just to look
        return None

    def acquire(self, force: bool = False) -> LockOwner | None:
        """Take the lock. Returns None when taken, or the owner when another process holds it
        (then nothing changes). `force` (the writer chose to edit anyway): returns None without
        the lock; the other process keeps it. Raises OSError only if the locks folder cannot be
        written."""
        if self.held:
            return None
        private_dir(self.lock_file.parent)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd, self.path)
            os.close(fd)
            return None if force else owner
        me = LockOwner(os.getpid(), socket.gethostname(), datetime.now(UTC).isoformat(timespec="seconds"),
                       str(self.path))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(me)).encode("utf-8"), 0)
        self._fd = fd
        return None

    def release(self) -> None:
        """Give the lock back, if this object holds it (emptying the file first)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor releases the flock
