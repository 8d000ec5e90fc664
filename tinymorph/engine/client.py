"""The UI side of the inference worker: start it, send requests, receive events, restart it.

Owns: the worker process's life. Must not import torch (the UI process never runs torch):
the worker module is imported only inside the child process, in `_child_entry`.
Events reach the caller through `on_event`, called from a background thread; the UI turns
them into Textual messages. If the worker dies, a WorkerDied event is sent and a new worker
starts after a backoff (1, 2, 4, 8, ... 30 s); a worker that reported WorkerFailed (the model
cannot load) is not restarted, since it would fail again.
"""

import itertools
import multiprocessing
import queue
import threading
from collections.abc import Callable
from multiprocessing import resource_tracker
from multiprocessing.context import SpawnProcess

from tinymorph.engine.protocol import (
    Event,
    Request,
    Shutdown,
    WorkerConfig,
    WorkerDied,
    WorkerFailed,
    WorkerReady,
)

BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)


def _child_entry(config: WorkerConfig, requests: "queue.Queue[Request]", events: "queue.Queue[Event]") -> None:
    # Imported here, in the child process only: importing it pulls in torch.
    from tinymorph.engine.worker import worker_main

    worker_main(config, requests, events)


class EngineClient:
    """Owns one worker process at a time (spawned, never forked: the UI has threads)."""

    def __init__(self, config: WorkerConfig) -> None:
        """Build the client; no process starts until `start`. Create it before a Textual app
        runs: multiprocessing's resource tracker is started here, because under Textual
        `sys.stderr` has no file descriptor and the tracker cannot start."""
        self.config = config
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

    def _spawn(self) -> None:
        with self._lock:
            self._requests = self._ctx.Queue()
            self._events = self._ctx.Queue()
            self._process = self._ctx.Process(
                target=_child_entry,
                args=(self.config, self._requests, self._events),
                name="tinymorph-worker",
                daemon=True,
            )
            self._process.start()

    def request(self, req: Request) -> None:
        """Send a request; a newer SuggestRequest makes the worker abandon an older one; other
        requests are all served in order. Dropped if no worker runs."""
        with self._lock:
            if self._requests is not None and self._process is not None and self._process.is_alive():
                self._requests.put(req)

    def _pump(self) -> None:
        while not self._stopping.is_set():
            events, process = self._events, self._process
            assert events is not None and process is not None
            try:
                event = events.get(timeout=0.1)
            except queue.Empty:
                if process.is_alive() or self._stopping.is_set():
                    continue
                if self._failed:
                    return
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
            self.on_event(event)

    def stop(self, timeout: float = 3.0) -> None:
        """Ask the worker to exit, then kill it if it has not after `timeout` seconds."""
        self._stopping.set()
        with self._lock:
            process, requests = self._process, self._requests
        if process is not None and process.is_alive():
            if requests is not None:
                requests.put(Shutdown())
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(1.0)
        if self._thread is not None:
            self._thread.join(1.0)
