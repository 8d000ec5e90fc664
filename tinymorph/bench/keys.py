"""Keystroke latency of the real editor in a pseudo-terminal: from the key written to the terminal
to the edited line painted on the screen, at a writer's pace, with and without the model working.

Owns: `Terminal` (a tinymorph process in a pty, its output fed to the `pyte` terminal emulator
on a reader thread, so a line counts as painted when the emulated screen shows it), `type_keys`
and `ghost_latency`. Linux only (pty). Imports no torch. Used by `tinymorph bench` and its test.
"""

import contextlib
import os
import pty
import select
import signal
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

COLUMNS, ROWS = 200, 30
CTRL_S, CTRL_Q, CTRL_END = "\x13", "\x11", "\x1b[1;5F"


class Terminal:
    """`python -m tinymorph ARGS` (or `program` ARGS) in a pseudo-terminal of COLUMNS x ROWS.
    Raises ImportError without the `pyte` package (the bench extra)."""

    def __init__(self, args: list[str], env: dict[str, str], program: list[str] | None = None) -> None:
        import fcntl
        import termios

        import pyte

        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.lock = threading.Lock()
        self.watch: Callable[[], bool] | None = None
        """Checked on the reader thread after every chunk of output; when it first holds, the time
        goes into `seen_at` and the watch is cleared."""
        self.seen_at: float | None = None
        self.feed_errors: list[str] = []
        """pyte errors on chunks of output (each such chunk was not drawn on the screen)."""
        argv = [*(program or [sys.executable, "-m", "tinymorph"]), *args]
        # The reader waits on this pipe as well as on the terminal, so that `close` can end it
        # before the terminal's descriptor is closed and its number given to the next one.
        self._stop_r, self._stop_w = os.pipe()
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become tinymorph
            os.execve(argv[0], argv, env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                readable, _, _ = select.select([self.fd, self._stop_r], [], [])
                if self._stop_r in readable:
                    return
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            now = time.perf_counter()
            with self.lock:
                try:
                    self.stream.feed(chunk)
                except Exception as exc:
                    # Seen: pyte raising TypeError on a cursor-position sequence when the bench
                    # runs without a terminal; the reader then died and the bench hung. The
                    # chunk is lost to the screen (counted), the reading goes on.
                    self.feed_errors.append(f"{type(exc).__name__}: {exc}")
                if self.watch is not None and self.watch():
                    self.seen_at, self.watch = now, None

    def lines(self) -> list[str]:
        with self.lock:
            return list(self.screen.display)

    def shows(self, text: str) -> bool:
        """True if some row of the screen shows `text` (caller holds the lock or does not care)."""
        return any(text in row for row in self.screen.display)

    def wait_for(self, texts: tuple[str, ...], timeout: float = 120.0, repaint_s: float = 15.0) -> None:
        """Wait until the screen shows one of `texts`; every `repaint_s` without it, make the app
        repaint everything (`repaint`). Raises TimeoutError."""
        start = time.monotonic()
        end, nudge = start + timeout, start + repaint_s
        while time.monotonic() < end:
            with self.lock:
                if any(self.shows(text) for text in texts):
                    return
            if time.monotonic() > nudge:
                self.repaint()
                nudge = time.monotonic() + repaint_s
            time.sleep(0.02)
        status = next((row.strip() for row in reversed(self.lines()) if " · " in row), "")
        raise TimeoutError(f"none of {texts!r} appeared in {timeout:.0f} s; the status bar: {status!r}")

    def repaint(self) -> None:
        """Resize the terminal by a row and back: the app redraws the whole screen. pyte now and
        then leaves a region stale (an update it did not parse: the status bar stayed at
        'loading' after the app had shown 'ready', in 2 of ~15 starts), and an app that is idle
        repaints nothing by itself."""
        import fcntl
        import termios

        for rows in (ROWS - 1, ROWS):
            fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, COLUMNS, 0, 0))
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGWINCH)
            time.sleep(0.3)

    def send(self, keys: str, watch: Callable[[], bool] | None = None) -> float:
        """Write `keys`; with `watch`, arm it first and return the time they were written."""
        with self.lock:
            self.seen_at, self.watch = None, watch
        sent = time.perf_counter()
        os.write(self.fd, keys.encode())
        return sent

    def close(self) -> None:
        """End the process (SIGKILL if Ctrl+Q did not), the reader thread, then the terminal.

        The reader must be gone before the descriptor is closed. A process the program started (the
        editor starts model processes; which one held it was not checked) can keep the terminal open
        after the program has died, so the reader would never see its end. Blocked in `os.read` on a
        closed descriptor, it then read from whatever terminal the next `Terminal` opened under the
        same number, taking its output away from that one's screen. In `bench --only sae` the second
        editor's keys then showed up to 2 s late (seen when the bench ran in the background)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.write(self._stop_w, b"x")
        self.reader.join()
        for fd in (self.fd, self._stop_r, self._stop_w):
            os.close(fd)


@dataclass
class KeyRun:
    """One run of typing: per-key latencies (ms) and what reached the file."""

    latencies_ms: list[float] = field(default_factory=list)
    missed: int = 0
    """Keys whose edit never showed within the timeout."""
    typed: str = ""
    saved: str = ""
    expected: str = ""

    @property
    def lost_or_reordered(self) -> int:
        """Characters of the typed text missing from, or out of place in, the saved file."""
        if self.saved == self.expected:
            return 0
        import difflib

        return sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in
                   difflib.SequenceMatcher(None, self.expected, self.saved, autojunk=False).get_opcodes()
                   if tag != "equal")

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        k = (len(ordered) - 1) * q / 100
        lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


TYPED = "and then the boats came back into the harbour one by one while the gulls cried over the water "
"""What the benchmark types (a writer's sentence; every key a printable character)."""
START = "The morning was grey and still. We walked down to the quay early"
"""The file's text before typing: the cursor goes to its end."""
READY = (": ready", ": generating")
"""The status bar once the model is loaded: "ready" can last less than a frame when the first
suggestion is asked at once (idle delay 0)."""


def type_keys(
    folder: Path, env: dict[str, str], args: list[str], keys: int, rate_hz: float = 8.0,
    ready: tuple[str, ...] = READY,
    timeout_s: float = 2.0,
    insert: str = "",
) -> KeyRun:
    """Start tinymorph on a new file in `folder` with `args`, wait for `ready` in the status bar,
    type `keys` characters of TYPED at `rate_hz`, timing each from the write to the moment the
    screen shows the line with it, then save and quit. `insert`: keys sent after Ctrl+End and
    before typing ("A" for the vim keymap's insert mode). Returns the run (latencies, the file)."""
    path = folder / "bench.md"
    path.write_text(START, encoding="utf-8")
    term = Terminal([str(path), *args], env)
    run = KeyRun(expected=START + (TYPED * (keys // len(TYPED) + 1))[:keys])
    try:
        term.wait_for(ready)
        term.send(CTRL_END)
        if insert:
            time.sleep(0.3)
            term.send(insert)
        time.sleep(1.0)
        text = (TYPED * (keys // len(TYPED) + 1))[:keys]
        interval = 1.0 / rate_hz
        for k, ch in enumerate(text):
            typed = START + text[: k + 1]
            tail = typed[-24:]  # long enough to be unique on the screen, short enough for one row
            begin = time.perf_counter()
            sent = term.send(ch, watch=lambda tail=tail: term.shows(tail))
            deadline = sent + timeout_s
            while term.seen_at is None and time.perf_counter() < deadline:
                time.sleep(0.0005)
            if term.seen_at is None:
                run.missed += 1
            else:
                run.latencies_ms.append((term.seen_at - sent) * 1000)
            time.sleep(max(0.0, interval - (time.perf_counter() - begin)))
        run.typed = text
        time.sleep(0.5)
        term.send("\x1b")  # drop any ghost text, so saving writes only what was typed
        time.sleep(0.3)
        term.send(CTRL_S)
        end = time.monotonic() + 10
        while path.read_text(encoding="utf-8") == START and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(0.3)
        run.saved = path.read_text(encoding="utf-8")
        term.send(CTRL_Q)
        time.sleep(0.5)
    finally:
        term.close()
    return run


def shows_ghost(after_cursor: str) -> bool:
    """True if the rest of the cursor's row, `after_cursor`, holds ghost text: anything before the
    feature lens's inlay (drawn at the row's right end after "◂")."""
    return bool(after_cursor.split("◂", 1)[0].strip())


def ghost_latency(
    folder: Path, env: dict[str, str], args: list[str], trials: int, ready: tuple[str, ...] = READY,
    letters: int = 0,
) -> tuple[list[float], int]:
    """ms from the last key of a word to ghost text on the screen, `trials` times: type a word
    at a writer's pace (8 keys/s), then wait. With `letters`, the timed key is the word's
    `letters`-th letter instead (ghost text that finishes the word): before it, Esc drops the
    ghost text the earlier keys brought, and after it the rest of the word is typed untimed. A
    trial where ghost text already shows before the timed key (asked at an earlier pause, and
    still true of the text) is dropped and counted. Returns (the times, the trials dropped)."""
    path = folder / f"ghost-{letters}.md"  # a file of its own: an earlier run's journal would ask to be restored
    path.write_text(START, encoding="utf-8")
    term = Terminal([str(path), *args], env)
    times: list[float] = []
    skipped = 0
    words = TYPED.split()
    try:
        term.wait_for(ready)
        term.send(CTRL_END)
        time.sleep(1.0)
        typed = START
        for trial in range(trials):
            full = " " + words[trial % len(words)]
            if letters and len(full) <= letters + 1:  # too short to time inside: typed, not counted
                for ch in full:
                    term.send(ch)
                    typed += ch
                    time.sleep(0.125)
                time.sleep(0.3)
                term.send("\x1b")
                time.sleep(0.3)
                continue
            word = full[: letters + 1] if letters else full
            rest = full[len(word) :]
            for ch in word[:-1]:
                term.send(ch)
                typed += ch
                time.sleep(0.125)
            if rest:
                # Ghost text asked after the earlier keys (the space, the first letter) may still
                # be true of the word: let it arrive, then drop it, so the timed key is the one
                # that brings ghost text (asked anew, or recalled from an earlier answer).
                shown_tail = typed[-24:]
                deadline = time.perf_counter() + 3.0
                while time.perf_counter() < deadline:
                    with term.lock:
                        if any(shown_tail in row and shows_ghost(row.split(shown_tail, 1)[1])
                               for row in term.screen.display):
                            break
                    time.sleep(0.01)
                time.sleep(0.2)
                term.send("\x1b")
                time.sleep(0.4)
            typed += word[-1]
            tail = typed[-24:]

            def ghost(tail: str = tail) -> bool:
                return any(tail in row and shows_ghost(row.split(tail, 1)[1]) for row in term.screen.display)

            with term.lock:
                earlier = ghost(typed[-25:-1])  # a suggestion asked mid-word, still true of the word
            if earlier:  # typed, not timed
                term.send(word[-1])
                skipped += 1
            else:
                sent = term.send(word[-1], watch=ghost)
                end = sent + 5.0
                while term.seen_at is None and time.perf_counter() < end:
                    time.sleep(0.001)
                if term.seen_at is not None:
                    times.append((term.seen_at - sent) * 1000)
            time.sleep(0.6)
            term.send("\x1b")  # reject it; the next word starts clean
            time.sleep(0.6)
            for ch in rest:  # the rest of a word timed inside
                term.send(ch)
                typed += ch
                time.sleep(0.125)
            if rest:
                time.sleep(0.3)
                term.send("\x1b")
                time.sleep(0.3)
    finally:
        term.close()
    return times, skipped


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def terminal_home() -> tuple[Path, dict[str, str]]:
    """A fresh TINYMORPH_HOME that shares the model copy, and a folder for the typed files:
    (folder, environment for the editor)."""
    from tinymorph.paths import app_paths

    home = Path(tempfile.mkdtemp(prefix="tinymorph-bench-"))
    (home / "cache").mkdir()
    (home / "cache" / "models").symlink_to(app_paths().models_cache)  # the model copy, not rebuilt
    env = {**os.environ, "TERM": "xterm-256color", "TINYMORPH_HOME": str(home)}
    return Path(tempfile.mkdtemp(prefix="tinymorph-bench-files-")), env
