"""The UI side of the inference worker: start it, send requests, receive events, restart it.

Owns: the worker process's life. Must not import torch (the UI process never runs torch):
the worker module is imported only inside the child process, in `_child_entry`.
Events reach the caller through `on_event`, called from a background thread; the UI turns
them into Textual messages. If the worker dies, a WorkerDied event is sent and the spare worker
(`config.spare`: a second process that loaded the model after the first was ready, while memory
allows) takes over at once, or a new worker starts at once; only when it dies again before it is
ready does a backoff grow (1, 2, 4, ... 30 s); a worker that reported WorkerFailed (the model
cannot load) is not restarted, since it would fail again. Nor is one that died
`CRASHES_PER_REQUEST` times while the same request was unanswered (the editor would send it
again after every restart): the client then reports WorkerFailed itself, saying why.
"""

import contextlib
import dataclasses
import itertools
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable
from multiprocessing import resource_tracker
from multiprocessing.context import SpawnProcess
from pathlib import Path

from tinymorph.engine.protocol import (
    ComparisonReady,
    ConceptMade,
    DirectionMade,
    Event,
    FeatureSearchReady,
    Request,
    RequestFailed,
    Shutdown,
    SuggestionReady,
    SuggestRequest,
    WorkerConfig,
    WorkerDied,
    WorkerFailed,
    WorkerReady,
)
from tinymorph.logs import route_library_output

BACKOFF_S = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
SPARE_DELAY_S = 10.0
"""Seconds after the worker is ready before the spare worker starts loading."""
SPARE_MIN_FREE_GB = 4.0
"""Free memory (GB, MemAvailable) below which no spare worker is started."""
_Worker = tuple[SpawnProcess, "multiprocessing.Queue[Request]", "multiprocessing.Queue[Event]"]


def free_memory_gb() -> float:
    """MemAvailable from /proc/meminfo in GB; 0 where it cannot be read (no spare then)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0
CRASHES_PER_REQUEST = 3
"""Worker deaths with the same request unanswered after which the client stops restarting it."""
_ANSWERS = (SuggestionReady, RequestFailed, ComparisonReady, FeatureSearchReady, DirectionMade, ConceptMade)
_WHAT = {
    "SuggestRequest": "a suggestion at the cursor",
    "CompareRequest": "a comparison",
    "SearchFeatures": "a feature search",
    "MakeDirection": "a 'more like this' slider",
    "MakeConcept": "a concept slider",
}


def fingerprint(request: Request) -> str:
    """What makes two requests the same request, whatever their id and seed."""
    if isinstance(request, Shutdown):
        return "Shutdown()"
    changes = {"request_id": 0, **({"seed": 0} if hasattr(request, "seed") else {})}
    return repr(dataclasses.replace(request, **changes))


def _child_entry(config: WorkerConfig, requests: "queue.Queue[Request]", events: "queue.Queue[Event]") -> None:
    """The worker process: prepare it, then import the worker (torch, transformers) and serve."""
    prepare_worker_process(config)
    # Imported here, in the child process only, and only now: huggingface_hub reads HF_HUB_OFFLINE
    # once, when it is imported, and import-time warnings must already go to the log.
    from tinymorph.engine.worker import serve

    serve(config, requests, events.put)


PARENT_CHECK_S = 1.0
"""How often the worker checks that the editor that started it is still alive."""


def exit_with_parent(check_s: float = PARENT_CHECK_S) -> threading.Thread:
    """Start a daemon thread that ends this process (`os._exit`) once its parent is gone. An
    editor killed with SIGKILL (or crashed) cannot stop its worker, and the worker never sees
    the request queue close: it holds that pipe's write end itself (multiprocessing.Queue
    carries both ends), so without this it would wait forever with the model in memory
    (~1.7 GB). Polling `os.getppid()` rather than Linux's PR_SET_PDEATHSIG, which fires when the
    parent *thread* that spawned the worker ends, and the client restarts workers from its
    event thread."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(check_s)
        os._exit(0)

    thread = threading.Thread(target=watch, name="tinymorph-parent-watch", daemon=True)
    thread.start()
    return thread


def prepare_worker_process(config: WorkerConfig) -> None:
    """Send stdout and stderr to the log file (they would draw over the editor's screen) with the
    libraries' warnings, keep the network off unless the writer allowed it, end with the editor
    (`exit_with_parent`), and lower the process's priority so that typing wins the CPU: a higher
    nice value and, on Linux, SCHED_BATCH (a batch task does not preempt others when it wakes
    up). torch's threads, started later, inherit the priority. Its umask is 077. Refusals (no permission, another
    OS) are ignored."""
    # The worker writes only tinymorph's own files (the model copy, its log): readable by the
    # writer alone, whatever the umask (docs/data.md).
    os.umask(0o077)
    log = os.open(config.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    route_library_output(Path(config.log_file))
    exit_with_parent()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not config.allow_hub:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
    if config.nice > 0:
        with contextlib.suppress(OSError):
            os.nice(config.nice)
        if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_BATCH"):
            with contextlib.suppress(OSError):
                os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


class EngineClient:
    """Owns one worker process at a time (spawned, never forked: the UI has threads)."""

    def __init__(self, config: WorkerConfig, target: Callable[..., None] = _child_entry) -> None:
        """Build the client; no process starts until `start`. Create it before a Textual app
        runs: multiprocessing's resource tracker is started here, because under Textual
        `sys.stderr` has no file descriptor and the tracker cannot start. `target(config,
        requests, events)` is what the process runs (tests pass a scripted worker)."""
        self.config = config
        self.target = target
        self.on_event: Callable[[Event], None] = lambda _event: None
        self._ctx = multiprocessing.get_context("spawn")
        resource_tracker.ensure_running()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._process: SpawnProcess | None = None
        self._requests: multiprocessing.Queue[Request] | None = None
        self._events: multiprocessing.Queue[Event] | None = None
        self._thread: threading.Thread | None = None
        self._failed = False
        self._restarts = 0
        self._pending: dict[int, Request] = {}
        """Requests sent and not answered yet, by id (only the newest suggestion is kept)."""
        self._crashes: dict[str, int] = {}
        """Worker deaths per unanswered request (by fingerprint)."""
        self._spare: _Worker | None = None
        """A second worker, loaded and waiting to take over (`config.spare`)."""
        self._ready_at: float | None = None
        """When the worker last said it was ready (monotonic s); None while it is not."""

    @property
    def pid(self) -> int | None:
        """The worker's process id, or None when none is running."""
        return self._process.pid if self._process is not None else None

    def next_request_id(self) -> int:
        return next(self._ids)

    def start(self, on_event: Callable[[Event], None]) -> None:
        """Start the worker process and the thread that reads its events, which calls
        `on_event` for each. Returns at once."""
        self.on_event = on_event
        self._spawn()
        self._thread = threading.Thread(target=self._pump, name="tinymorph-engine-events", daemon=True)
        self._thread.start()

    def _new_worker(self, name: str) -> "_Worker":
        requests, events = self._ctx.Queue(), self._ctx.Queue()
        process = self._ctx.Process(target=self.target, args=(self.config, requests, events), name=name, daemon=True)
        process.start()
        return process, requests, events

    def _spawn(self) -> None:
        with self._lock:
            self._process, self._requests, self._events = self._new_worker("tinymorph-worker")

    def _take_spare(self) -> bool:
        """Make the spare worker (loaded, or loading) the worker. False when there is none alive."""
        with self._lock:
            spare, self._spare = self._spare, None
            if spare is None or not spare[0].is_alive():
                return False
            self._process, self._requests, self._events = spare
            return True

    def _maybe_start_spare(self) -> None:
        """Start the spare worker once the worker has been ready SPARE_DELAY_S (its load must not
        compete with the first suggestions) and if the memory for it is free."""
        if (
            not self.config.spare
            or self._spare is not None
            or self._ready_at is None
            or time.monotonic() - self._ready_at < SPARE_DELAY_S
            or self._stopping.is_set()
        ):
            return
        if free_memory_gb() < SPARE_MIN_FREE_GB:
            self._ready_at = None  # not again until the next ready
            return
        with self._lock:
            self._spare = self._new_worker("tinymorph-spare-worker")

    def request(self, req: Request) -> None:
        """Send a request; a newer SuggestRequest makes the worker abandon an older one; other
        requests are all served in order. Dropped if no worker runs."""
        with self._lock:
            if self._requests is not None and self._process is not None and self._process.is_alive():
                if isinstance(req, SuggestRequest):  # the worker abandons older suggestions
                    self._pending = {i: r for i, r in self._pending.items() if not isinstance(r, SuggestRequest)}
                if not isinstance(req, Shutdown):
                    self._pending[req.request_id] = req
                self._requests.put(req)

    def _pump(self) -> None:
        while not self._stopping.is_set():
            events, process = self._events, self._process
            assert events is not None and process is not None
            try:
                event = events.get(timeout=0.1)
            except queue.Empty:
                self._maybe_start_spare()
                if process.is_alive() or self._stopping.is_set():
                    continue
                if self._failed:
                    return
                if (culprit := self._blame()) is not None:
                    self._failed = True
                    self.on_event(WorkerFailed(
                        f"the model process stopped {CRASHES_PER_REQUEST} times while answering the same request "
                        f"({culprit}); suggestions are off until tinymorph restarts (details: {self.config.log_file})"
                    ))
                    return
                self._ready_at = None
                if self._restarts == 0 and self._take_spare():
                    # The spare has loaded (or is loading) the model: its WorkerReady is already
                    # waiting in its queue, or soon will be.
                    self._restarts += 1
                    self.on_event(WorkerDied(process.exitcode, 0.0))
                    continue
                delay = BACKOFF_S[min(self._restarts, len(BACKOFF_S) - 1)]
                self._restarts += 1
                self.on_event(WorkerDied(process.exitcode, delay))
                if self._stopping.wait(delay):
                    return
                self._spawn()
                continue
            if isinstance(event, WorkerFailed):
                self._failed = True
            elif isinstance(event, WorkerReady):
                self._restarts = 0
                self._ready_at = time.monotonic()
            elif isinstance(event, _ANSWERS):
                with self._lock:
                    self._pending.pop(event.request_id, None)
            self.on_event(event)

    def _blame(self) -> str | None:
        """Count a death against every unanswered request; the description of one that has now
        killed the worker CRASHES_PER_REQUEST times, or None."""
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        culprit = None
        for request in pending:
            key = fingerprint(request)
            self._crashes[key] = self._crashes.get(key, 0) + 1
            if self._crashes[key] >= CRASHES_PER_REQUEST:
                culprit = _WHAT.get(type(request).__name__, type(request).__name__)
        return culprit

    def stop(self, timeout: float = 3.0) -> None:
        """Ask the worker (and the spare) to exit, then kill them if they have not after `timeout`
        seconds."""
        self._stopping.set()
        with self._lock:
            workers = [(self._process, self._requests), *([self._spare[:2]] if self._spare else [])]
            self._spare = None
        for process, requests in workers:
            if process is not None and process.is_alive() and requests is not None:
                requests.put(Shutdown())
        for process, _requests in workers:
            if process is None:
                continue
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(1.0)
        if self._thread is not None:
            self._thread.join(1.0)
