"""The real worker process on the tiny model: ready, suggestions, latest-wins, crash, restart."""

import os
import queue
import signal
import time
from pathlib import Path

from tinymorph.domain import ModelManifest
from tinymorph.engine import client as client_module
from tinymorph.engine.client import EngineClient
from tinymorph.engine.protocol import (
    Event,
    SuggestionReady,
    SuggestRequest,
    WorkerConfig,
    WorkerDied,
    WorkerFailed,
    WorkerReady,
)


def start(manifest: ModelManifest, tmp_path: Path) -> tuple[EngineClient, "queue.Queue[Event]"]:
    events: queue.Queue[Event] = queue.Queue()
    config = WorkerConfig(manifest, str(tmp_path / "cache"), 511, str(tmp_path / "worker.log"), threads=1)
    engine = EngineClient(config)
    engine.start(events.put)
    return engine, events


def wait_for(events: "queue.Queue[Event]", kind: type, timeout: float = 60.0) -> Event:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            event = events.get(timeout=0.5)
        except queue.Empty:
            continue
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__} within {timeout} s")


def test_worker_loads_serves_and_the_newest_request_wins(tiny_manifest, tmp_path):
    engine, events = start(tiny_manifest, tmp_path)
    try:
        ready = wait_for(events, WorkerReady)
        assert ready.context_tokens == 31
        # Two requests at once: the first is abandoned, only the second is answered.
        engine.request(SuggestRequest(1, "The sea", max_new_tokens=200, alternatives=3, temperature=1.0))
        engine.request(SuggestRequest(2, "The sea was", max_new_tokens=4))
        answer = wait_for(events, SuggestionReady)
        assert answer.request_id == 2
        time.sleep(0.5)
        leftovers = [e for e in iter_events(events) if isinstance(e, SuggestionReady)]
        assert all(e.request_id == 2 for e in leftovers)
    finally:
        engine.stop()
    assert engine.pid is None or not _alive(engine.pid)


def test_a_killed_worker_is_reported_and_restarted(tiny_manifest, tmp_path, monkeypatch):
    monkeypatch.setattr(client_module, "BACKOFF_S", (0.1,))
    engine, events = start(tiny_manifest, tmp_path)
    try:
        wait_for(events, WorkerReady)
        first_pid = engine.pid
        assert first_pid is not None
        os.kill(first_pid, signal.SIGKILL)
        died = wait_for(events, WorkerDied)
        assert died.exitcode == -signal.SIGKILL
        wait_for(events, WorkerReady)
        assert engine.pid != first_pid
        engine.request(SuggestRequest(5, "Hello", max_new_tokens=3))
        assert wait_for(events, SuggestionReady).request_id == 5
    finally:
        engine.stop()


def test_a_model_that_cannot_load_fails_once_with_a_message(tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    manifest = ModelManifest(name="broken", kind="local", location=str(broken))
    engine, events = start(manifest, tmp_path)
    try:
        failed = wait_for(events, WorkerFailed)
        assert "could not load broken" in failed.message
        time.sleep(1.0)
        assert not any(isinstance(e, WorkerDied) for e in iter_events(events))  # not restarted
    finally:
        engine.stop()


def iter_events(events: "queue.Queue[Event]"):
    while True:
        try:
            yield events.get_nowait()
        except queue.Empty:
            return


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True




def _serve_until_failed(manifest: ModelManifest, tmp_path: Path) -> list[Event]:
    from tinymorph.engine.worker import serve

    emitted: list[Event] = []
    config = WorkerConfig(manifest, str(tmp_path / "cache"), 511, str(tmp_path / "worker.log"), threads=1)
    serve(config, queue.Queue(), emitted.append)  # returns after WorkerFailed; never reaches the loop
    return emitted


def test_a_missing_model_package_is_one_clear_message(tmp_path):
    manifest = ModelManifest(name="gone", kind="pypi-gguf", location="tinymorph_no_such_model_package",
                             gguf_file="m.gguf")
    failed = [e for e in _serve_until_failed(manifest, tmp_path) if isinstance(e, WorkerFailed)]
    assert len(failed) == 1 and "is not installed" in failed[0].message


def test_not_enough_memory_to_load_is_one_clear_message(tiny_manifest, tmp_path, monkeypatch):
    from tinymorph.engine import worker

    def out_of_memory(*_args, **_kwargs):
        raise MemoryError

    monkeypatch.setattr(worker, "load_model", out_of_memory)
    failed = [e for e in _serve_until_failed(tiny_manifest, tmp_path) if isinstance(e, WorkerFailed)]
    assert len(failed) == 1 and "not enough memory" in failed[0].message
