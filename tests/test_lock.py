"""One tinymorph per file: the lock names its owner; locks of dead processes are ignored."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinymorph.lock import FileLock


def _write(lock: FileLock, **fields) -> None:
    lock.lock_file.parent.mkdir(parents=True, exist_ok=True)
    base = {"pid": os.getppid(), "host": os.uname().nodename, "started": "2026-11-22T09:00:00+00:00",
            "path": str(lock.path)}
    lock.lock_file.write_text(json.dumps({**base, **fields}))


def test_a_free_file_is_locked_and_released(tmp_path: Path):
    lock = FileLock(tmp_path / "a.md", tmp_path / "locks")
    assert lock.acquire() is None
    data = json.loads(lock.lock_file.read_text())
    assert data["pid"] == os.getpid() and data["path"] == str(tmp_path / "a.md")
    lock.release()
    assert not lock.lock_file.exists()


def test_a_live_owner_is_named_and_kept(tmp_path: Path):
    lock = FileLock(tmp_path / "a.md", tmp_path / "locks")
    _write(lock)
    owner = lock.acquire()
    assert owner is not None and owner.pid == os.getppid()
    assert f"process {os.getppid()}" in owner.describe()
    assert json.loads(lock.lock_file.read_text())["pid"] == os.getppid()
    lock.release()  # not ours: left alone
    assert lock.lock_file.exists()


def test_a_dead_owner_is_ignored(tmp_path: Path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = FileLock(tmp_path / "a.md", tmp_path / "locks")
    _write(lock, pid=int(dead.stdout))
    assert lock.owner() is None
    assert lock.acquire() is None
    assert json.loads(lock.lock_file.read_text())["pid"] == os.getpid()


def test_a_reused_pid_is_not_mistaken_for_the_owner(tmp_path: Path):
    lock = FileLock(tmp_path / "a.md", tmp_path / "locks")
    _write(lock, proc_start="1")  # the live parent started at another time than the lock says
    if not Path(f"/proc/{os.getppid()}/stat").exists():
        pytest.skip("process start times come from /proc (Linux)")
    assert lock.owner() is None


def test_a_damaged_lock_is_ignored(tmp_path: Path):
    lock = FileLock(tmp_path / "a.md", tmp_path / "locks")
    lock.lock_file.parent.mkdir(parents=True)
    lock.lock_file.write_text("{not json")
    assert lock.acquire() is None


def test_force_takes_over_a_live_lock(tmp_path: Path):
    lock = FileLock(tmp_path / "a.md", tmp_path / "locks")
    _write(lock)
    assert lock.acquire(force=True) is None
    assert json.loads(lock.lock_file.read_text())["pid"] == os.getpid()
