"""kill -9 a real tinymorph, many times, while it edits and while it saves: the file on disk is
always the old or the new content, never a mix, and the journal brings back the rest.

Each round starts `python -m tinymorph notes.md --no-suggestions` in a pseudo-terminal (the
real CLI, Textual's real driver, the store and lock on disk), types at the top of the document,
and kills it: in "edit" rounds after the journal's idle pause, in "save" rounds after Ctrl+S,
either the moment the save's temp file appears (so mid-save, checked: its temp file is left
behind) or a random few milliseconds later. The next round restores the journal through the
restore dialog (Enter).
"""

import contextlib
import fcntl
import os
import pty
import random
import signal
import struct
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from tinymorph.paths import app_paths
from tinymorph.store import Store

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="uses a Linux pseudo-terminal")

CTRL_S = "\x13"


class Terminal:
    """tinymorph running in a pseudo-terminal; its output is drained so it never blocks."""

    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become tinymorph
            os.execve(sys.executable, [sys.executable, "-m", "tinymorph", str(path), "--no-suggestions"], env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        self.output = bytearray()
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while text.encode() not in self.output:
            if time.monotonic() > end:
                raise AssertionError(f"{text!r} never appeared; last output: {bytes(self.output[-400:])!r}")
            time.sleep(0.05)

    def send(self, keys: str, gap: float = 0.01) -> None:
        for key in keys:
            os.write(self.fd, key.encode())
            time.sleep(gap)

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)


def test_kill_9_during_editing_and_saving_never_leaves_a_partial_file(tmp_path: Path, tinymorph_home: Path):
    folder = tmp_path / "docs"
    folder.mkdir()
    path = folder / "notes.md"
    base = "".join(f"paragraph {i}: the tide came in over the flats and went out again.\n" for i in range(15000))
    path.write_text(base, encoding="utf-8")  # ~1 MB: a save takes long enough to be interrupted
    env = {**os.environ, "TERM": "xterm-256color", "TINYMORPH_HOME": str(tinymorph_home)}
    rng = random.Random(5)
    mid_save: list[int] = []  # the rounds whose kill landed while the save was being written
    buffer = base  # what the editor holds at the start of a round (file or restored journal)
    db = app_paths().database
    for round_ in range(10):
        on_disk = path.read_text(encoding="utf-8")
        store = Store(db)
        journal = store.journal(str(path))
        store.close()
        term = Terminal(path, env)
        try:
            term.wait_for("suggestions off")  # the status bar after mount
            if journal is not None and journal.text != on_disk:
                term.wait_for("Restore the unsaved version")
                term.send("\r")  # the first choice: restore
                buffer = journal.text
            else:
                buffer = on_disk
            time.sleep(0.5)
            typed = f"round {round_} "
            saved = {on_disk}
            if round_ % 2 == 0:  # edit: type, pause for the journal, kill
                term.send(typed)
                time.sleep(3.5)  # the journal is written 2 s after the last key
                term.kill()
                store = Store(db)
                entry = store.journal(str(path))
                store.close()
                assert entry is not None, f"round {round_}: nothing journaled"
                assert entry.text == typed + buffer, f"round {round_}: the journal lost text"
            else:  # save: type, save, kill while the save runs
                term.send(typed)
                saved.add(typed + buffer)
                before = set(folder.iterdir())
                term.send(CTRL_S, gap=0)
                if round_ % 4 == 1:  # the moment the save's temp file appears: mid-save
                    deadline = time.monotonic() + 10
                    while not set(folder.iterdir()) - before and time.monotonic() < deadline:
                        time.sleep(0.0002)
                else:  # or whenever: before, during or after the save
                    time.sleep(rng.uniform(0.0, 0.08))
                term.kill()
                if set(folder.iterdir()) - before:  # a temp file of this save is left: it was cut short
                    mid_save.append(round_)
        except BaseException:
            with contextlib.suppress(ProcessLookupError, ChildProcessError, OSError):
                term.kill()
            raise
        text = path.read_text(encoding="utf-8")
        assert text in saved, f"round {round_}: the file is neither the old nor the new content"
        print(f"round {round_}: file is {'old' if text == on_disk else 'new'}")
    leftovers = [p.name for p in folder.iterdir() if p.name != "notes.md"]  # temp files of killed saves
    assert all(name.endswith(".tinymorph-tmp") for name in leftovers), leftovers
    print(f"kills during a save: rounds {mid_save}")
    assert mid_save, "no kill landed during a save: the save rounds tested nothing"
