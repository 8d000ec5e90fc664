"""Journalling off the editor's thread: one background thread hashes the unsaved text and writes
it to the store, in the order the editor asked, on a connection of its own.

Owns: `JournalWriter`. At 10 MB the hash costs ~10 ms, the join ~10 ms and the SQLite write
~50 ms here (measured on 2026-12-03); on the editor's thread that was a hitch every 10 s of
typing. The editor now only copies the list of lines (~1 ms at 10 MB: the strings are shared).
Imports no Textual.
"""

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tinymorph.errors import StoreError
from tinymorph.store.store import Store, text_sha256


@dataclass(frozen=True)
class _Write:
    path: str
    lines: list[str]
    newline: str
    base_sha256: str


@dataclass(frozen=True)
class _Clear:
    path: str
    base_sha256: str


class JournalWriter:
    """Writes and clears journal entries of `store`'s database on one daemon thread, in the
    order asked, through a connection of its own (`store`'s stays on the caller's thread). A
    write whose text hashes to the last one written for that path does nothing; one whose text
    is the file's (`base_sha256`) clears the entry instead. An in-memory store (tests; no second
    connection can see it) is written on the caller's thread, and its StoreError is raised there.

    `on_error(StoreError)` is called on the writer's thread: pass something thread-safe
    (Textual's `post_message` is). Call `flush` before reading the journal back and `close` on
    the way out: both wait for every write asked before them.
    """

    def __init__(self, store: Store, on_error: Callable[[StoreError], None]) -> None:
        self.store = store
        self.on_error = on_error
        self._written: dict[str, str] = {}  # path -> sha256 of the text last journaled (or the file's)
        self._queue: queue.Queue[_Write | _Clear | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        if store.path is not None:
            self._thread = threading.Thread(target=self._run, name="tinymorph-journal", daemon=True)
            self._thread.start()

    def write(self, path: str, lines: list[str], newline: str, base_sha256: str) -> None:
        """Journal the text `newline.join(lines)` of `path` (pass a copy of the lines: they are
        read later, on another thread)."""
        self._ask(_Write(path, lines, newline, base_sha256))

    def clear(self, path: str, base_sha256: str) -> None:
        """Forget the unsaved text of `path`, whose file now hashes to `base_sha256`."""
        self._ask(_Clear(path, base_sha256))

    def flush(self) -> None:
        """Wait until everything asked so far is done."""
        if self._thread is not None:
            self._queue.join()

    def close(self) -> None:
        """Finish what was asked, then stop the thread; anything asked later is done on the
        caller's thread."""
        thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join()

    def _ask(self, op: _Write | _Clear) -> None:
        if self._thread is None:
            self._do(self.store, op)
        else:
            self._queue.put(op)

    def _run(self) -> None:
        store: Store | None = None
        while True:
            op = self._queue.get()
            try:
                if op is None:
                    return
                if store is None:
                    store = Store(self.store.path)
                self._do(store, op)
            except StoreError as exc:
                self.on_error(exc)
            except Exception as exc:  # a dead journal thread would lose every later write, silently
                self.on_error(StoreError(f"could not journal the unsaved text: {type(exc).__name__}: {exc}"))
            finally:
                self._queue.task_done()
                if op is None and store is not None:
                    store.close()

    def _do(self, store: Store, op: _Write | _Clear) -> None:
        if isinstance(op, _Clear):
            store.clear_journal(op.path)
            self._written[op.path] = op.base_sha256
            return
        text = op.newline.join(op.lines)
        digest = text_sha256(text)
        if digest == self._written.get(op.path):
            return
        if digest == op.base_sha256:
            store.clear_journal(op.path)
        else:
            store.write_journal(op.path, text, op.base_sha256)
        self._written[op.path] = digest
