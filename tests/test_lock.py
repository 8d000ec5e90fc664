"""One tinymorph per file: the kernel's lock, taken without blocking, named for the writer, and
released by the kernel when its holder dies."""

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

from tinymorph.lock import FileLock


def test_a_free_file_is_locked_named_and_released(tmp_path: Path):
    lock = FileLock(tmp_path / "a.md", tmp_path / "locks")
    assert lock.acquire() is None and lock.held
    data = json.loads(lock.lock_file.read_text())
    assert data["pid"] == os.getpid() and data["path"] == str(tmp_path / "a.md")
    assert FileLock(tmp_path / "a.md", tmp_path / "locks").acquire() is not None  # a second open is refused
    lock.release()
    assert not lock.held and lock.lock_file.read_text() == ""  # emptied, never deleted
    assert FileLock(tmp_path / "a.md", tmp_path / "locks").acquire() is None


def _hold(path: str, locks: str, ready, stop) -> None:  # type: ignore[no-untyped-def]
    lock = FileLock(Path(path), Path(locks))
    assert lock.acquire() is None
    ready.set()
    stop.wait(30)


def _race(path: str, locks: str, start, results) -> None:  # type: ignore[no-untyped-def]
    lock = FileLock(Path(path), Path(locks))
    start.wait()
    results.put(lock.acquire() is None)
    time.sleep(1.0)  # hold it while the others try


def test_a_live_owner_is_named_and_keeps_it(tmp_path: Path):
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold, args=(str(tmp_path / "a.md"), str(tmp_path / "locks"), ready, stop))
    other.start()
    try:
        assert ready.wait(30)
        lock = FileLock(tmp_path / "a.md", tmp_path / "locks")
        owner = lock.acquire()
        assert owner is not None and owner.pid == other.pid and f"process {other.pid}" in owner.describe()
        assert lock.owner() == owner and not lock.held
        assert lock.acquire(force=True) is None and not lock.held  # edit anyway: the other keeps its lock
    finally:
        stop.set()
        other.join(10)


def test_a_killed_owner_releases_the_lock_by_itself(tmp_path: Path):
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold, args=(str(tmp_path / "a.md"), str(tmp_path / "locks"), ready, stop))
    other.start()
    assert ready.wait(30)
    os.kill(other.pid, signal.SIGKILL)
    other.join(10)
    lock = FileLock(tmp_path / "a.md", tmp_path / "locks")
    assert lock.owner() is None  # the kernel dropped it with the process; its name is still in the file
    assert lock.acquire() is None


def test_editors_started_at_the_same_moment_never_both_own_the_file(tmp_path: Path):
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    racers = [ctx.Process(target=_race, args=(str(tmp_path / "a.md"), str(tmp_path / "locks"), start, results))
              for _ in range(6)]
    for p in racers:
        p.start()
    time.sleep(1.0)  # all six are waiting at the start line
    start.set()
    won = [results.get(timeout=30) for _ in racers]
    for p in racers:
        p.join(10)
    assert won.count(True) == 1


def test_a_damaged_lock_file_is_taken_over(tmp_path: Path):
    lock = FileLock(tmp_path / "a.md", tmp_path / "locks")
    lock.lock_file.parent.mkdir(parents=True)
    lock.lock_file.write_text("{not json")
    assert lock.owner() is None
    assert lock.acquire() is None
