"""`tinymorph bench restart`: how long a writer waits for ghost text after the model process dies.

Owns: killing a ready worker (SIGKILL) `kills` times and timing, from the kill, the first
suggestion answered: with the spare worker (`spare_worker`, now) and without (a fresh start,
before), one arm after the other in one run. Prints a table; no report file. Runs the real
model; never a unit test.
"""

import argparse
import dataclasses
import os
import queue
import signal
import statistics
import time

from rich.console import Console
from rich.table import Table

from tinymorph.config import Settings

PROSE = "The committee met on Tuesday to discuss the budget for the new library. After an hour of"


def _suggestion_after_kill(settings: Settings, kills: int, console: Console) -> list[float]:
    from tinymorph.cli_common import worker_config
    from tinymorph.engine import client as client_module
    from tinymorph.engine.client import EngineClient
    from tinymorph.engine.protocol import Event, SuggestionReady, SuggestRequest, WorkerFailed, WorkerReady
    from tinymorph.lm.manifest import resolve_model
    from tinymorph.paths import app_paths

    config = worker_config(settings, app_paths(), resolve_model(settings.model, settings.hub_model))
    events: queue.Queue[Event] = queue.Queue()
    engine = EngineClient(config)
    engine.start(events.put)

    def wait(kind: type, timeout: float = 180.0) -> Event:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = events.get(timeout=1.0)
            except queue.Empty:
                continue
            if isinstance(event, WorkerFailed):
                raise RuntimeError(f"the worker failed: {event.message}")
            if isinstance(event, kind):
                return event
        raise RuntimeError(f"no {kind.__name__} in {timeout:.0f} s (log: {config.log_file})")

    times = []
    try:
        wait(WorkerReady)
        for _ in range(kills):
            if config.spare:  # let the spare finish loading, as it would while the writer writes
                deadline = time.monotonic() + 120
                while engine._spare is None and time.monotonic() < deadline:
                    time.sleep(0.2)
                time.sleep(client_module.SPARE_DELAY_S + 15)
            pid = engine.pid
            assert pid is not None
            killed = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            wait(WorkerReady)
            engine.request(SuggestRequest(engine.next_request_id(), PROSE, alternatives=3, max_new_tokens=24))
            wait(SuggestionReady)
            times.append(time.perf_counter() - killed)
            console.print(f"{'spare' if config.spare else 'fresh start'}: suggestion {times[-1]:.2f} s after the kill")
    finally:
        engine.stop()
    return times


def run_restart_bench(argv: list[str]) -> int:
    summary = (__doc__ or "").splitlines()[0]
    parser = argparse.ArgumentParser(prog="tinymorph bench restart", description=summary)
    parser.add_argument("--kills", type=int, default=5, help="kills per arm (default 5)")
    parser.add_argument("--model", default="gemma3-270m")
    args = parser.parse_args(argv)
    console = Console()
    base = Settings(model=args.model)
    arms = {
        "spare worker (now)": _suggestion_after_kill(dataclasses.replace(base, spare_worker=True), args.kills, console),
        "fresh start (before)": _suggestion_after_kill(dataclasses.replace(base, spare_worker=False), args.kills,
                                                       console),
    }
    table = Table(title=f"seconds from killing a ready worker to the first suggestion ({args.kills} kills each)")
    for col in ("arm", "p50", "min", "max"):
        table.add_column(col)
    for name, times in arms.items():
        table.add_row(name, f"{statistics.median(times):.2f}", f"{min(times):.2f}", f"{max(times):.2f}")
    console.print(table)
    return 0
