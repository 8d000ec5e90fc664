"""One tinymorph per file: a lock that names the process holding it.

Owns: lock files under the data folder (`locks/<sha256 of the path>.json`, so the writer's
folders stay clean and a read-only folder can still be edited). A lock holds the owner's pid,
host, the process's start time (Linux: from /proc, to tell a reused pid apart) and when it was
taken. A lock whose process is gone is stale and taken over silently. Imports nothing heavy.
"""

import hashlib
import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class LockOwner:
    """Who holds a file's lock."""

    pid: int
    host: str
    started: str
    """UTC ISO time the lock was taken."""
    path: str
    proc_start: str = ""
    """The process's start time in clock ticks since boot (Linux /proc/PID/stat), or ""."""

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}, since {self.started[:16].replace('T', ' ')} UTC"


def _proc_start(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, starttime (fields after the comm)


def _alive(owner: LockOwner) -> bool:
    if owner.host != socket.gethostname():
        return True  # cannot tell; a lock from another machine (shared folder) is respected
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return not owner.proc_start or _proc_start(owner.pid) in ("", owner.proc_start)


class FileLock:
    """The lock of `path`, kept in `locks_dir`. `acquire()` takes it unless a live process
    holds it; `release()` gives it back (only if it is ours)."""

    def __init__(self, path: Path, locks_dir: Path) -> None:
        self.path = path
        digest = hashlib.sha256(str(path).encode("utf-8")).hexdigest()[:32]
        self.lock_file = locks_dir / f"{digest}.json"
        self.held = False

    def owner(self) -> LockOwner | None:
        """The process holding the lock now, if it is alive (a stale or damaged lock is None)."""
        try:
            owner = LockOwner(**json.loads(self.lock_file.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError):
            return None  # damaged: treated as stale
        return owner if _alive(owner) and owner.pid != os.getpid() else None

    def acquire(self, force: bool = False) -> LockOwner | None:
        """Take the lock. Returns None when taken, or the live owner when another process holds
        it (then nothing changes, unless `force`, which takes it over). Raises OSError only if
        the locks folder cannot be written."""
        other = self.owner()
        if other is not None and not force:
            return other
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        me = LockOwner(os.getpid(), socket.gethostname(), datetime.now(UTC).isoformat(timespec="seconds"),
                       str(self.path), _proc_start(os.getpid()))
        tmp = self.lock_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(me)), encoding="utf-8")
        os.replace(tmp, self.lock_file)
        self.held = True
        return None

    def release(self) -> None:
        """Remove the lock if this process holds it."""
        if not self.held:
            return
        try:
            current = json.loads(self.lock_file.read_text(encoding="utf-8"))
            if current.get("pid") == os.getpid():
                self.lock_file.unlink()
        except (OSError, ValueError):
            pass
        self.held = False
