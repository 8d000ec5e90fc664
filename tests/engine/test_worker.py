"""The real worker process on the tiny model: ready, suggestions, latest-wins, crash, restart."""

import os
import queue
import signal
import time
from pathlib import Path

from tests.builders import save_topk_sae
from tinymorph.domain import ModelManifest
from tinymorph.engine import client as client_module
from tinymorph.engine.client import EngineClient
from tinymorph.engine.protocol import (
    Event,
    FeaturesLit,
    SuggestionReady,
    SuggestRequest,
    WorkerConfig,
    WorkerDied,
    WorkerFailed,
    WorkerReady,
)


def start(
    manifest: ModelManifest, tmp_path: Path, sae: str = "default", spare: bool = False
) -> tuple[EngineClient, "queue.Queue[Event]"]:
    events: queue.Queue[Event] = queue.Queue()
    config = WorkerConfig(manifest, str(tmp_path / "cache"), 511, str(tmp_path / "worker.log"), threads=1, sae=sae,
                          spare=spare)
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


def test_worker_loads_serves_and_a_request_superseded_in_the_queue_never_starts(tiny_manifest, tmp_path):
    engine, events = start(tiny_manifest, tmp_path, sae=str(save_topk_sae(tmp_path / "sae")))
    try:
        ready = wait_for(events, WorkerReady)
        assert ready.context_tokens == 31
        # Two requests at once: the worker takes the newest; the first never starts (no lens, no text).
        engine.request(SuggestRequest(1, "The sea", max_new_tokens=200, alternatives=3, temperature=1.0))
        engine.request(SuggestRequest(2, "The sea was", max_new_tokens=4))
        answer = wait_for(events, SuggestionReady)
        assert answer.request_id == 2
        time.sleep(0.5)
        assert not [e for e in iter_events(events) if getattr(e, "request_id", None) == 1]
    finally:
        engine.stop()
    assert engine.pid is None or not _alive(engine.pid)


def test_a_request_superseded_mid_generation_is_abandoned_between_tokens(tiny_manifest, tmp_path):
    engine, events = start(tiny_manifest, tmp_path, sae=str(save_topk_sae(tmp_path / "sae")))
    try:
        wait_for(events, WorkerReady)
        # 8 rows of up to 256 tokens: it cannot be over (every row at a line or sentence end) by then.
        engine.request(SuggestRequest(1, "The sea", max_new_tokens=256, alternatives=8, temperature=1.0))
        started = wait_for(events, FeaturesLit)  # sent after the first step: request 1 is generating
        assert started.request_id == 1
        engine.request(SuggestRequest(2, "The sea was", max_new_tokens=4))
        answer = wait_for(events, SuggestionReady)
        assert answer.request_id == 2  # request 1 never finished: abandoned mid-generation
        time.sleep(0.5)
        assert all(e.request_id == 2 for e in iter_events(events) if isinstance(e, SuggestionReady))
    finally:
        engine.stop()


def test_a_killed_worker_is_reported_and_restarted_at_once(tiny_manifest, tmp_path):
    engine, events = start(tiny_manifest, tmp_path)
    try:
        wait_for(events, WorkerReady)
        first_pid = engine.pid
        assert first_pid is not None
        os.kill(first_pid, signal.SIGKILL)
        died = wait_for(events, WorkerDied)
        assert died.exitcode == -signal.SIGKILL and died.restart_in_s == 0  # a first crash waits for nothing
        wait_for(events, WorkerReady)
        assert engine.pid != first_pid
        engine.request(SuggestRequest(5, "Hello", max_new_tokens=3))
        assert wait_for(events, SuggestionReady).request_id == 5
    finally:
        engine.stop()


def test_a_spare_worker_takes_over_at_once_and_another_spare_follows(tiny_manifest, tmp_path, monkeypatch):
    monkeypatch.setattr(client_module, "SPARE_DELAY_S", 0.2)
    monkeypatch.setattr(client_module, "SPARE_MIN_FREE_GB", 0.0)
    started = time.monotonic()
    engine, events = start(tiny_manifest, tmp_path, spare=True)
    try:
        wait_for(events, WorkerReady)
        first_start = time.monotonic() - started
        deadline = time.monotonic() + 30
        while engine._spare is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine._spare is not None
        spare_pid = engine._spare[0].pid
        time.sleep(2 * first_start + 1)  # the spare loads the tiny model meanwhile
        os.kill(engine.pid, signal.SIGKILL)
        died = wait_for(events, WorkerDied)
        assert died.restart_in_s == 0
        t0 = time.monotonic()
        wait_for(events, WorkerReady)
        # It had loaded already: back far sooner than a start takes.
        assert engine.pid == spare_pid and time.monotonic() - t0 < first_start / 2
        engine.request(SuggestRequest(7, "Hello", max_new_tokens=3))
        assert wait_for(events, SuggestionReady).request_id == 7
        deadline = time.monotonic() + 30
        while (engine._spare is None or engine._spare[0].pid == spare_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine._spare is not None and engine._spare[0].pid != spare_pid  # a new spare for the next time
    finally:
        engine.stop()
    assert engine._spare is None


def test_no_spare_when_memory_is_short(tiny_manifest, tmp_path, monkeypatch):
    monkeypatch.setattr(client_module, "SPARE_DELAY_S", 0.0)
    monkeypatch.setattr(client_module, "free_memory_gb", lambda: 1.0)
    engine, events = start(tiny_manifest, tmp_path, spare=True)
    try:
        wait_for(events, WorkerReady)
        time.sleep(0.5)
        assert engine._spare is None
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


def test_a_request_that_keeps_killing_the_worker_stops_the_restarts(tmp_path, monkeypatch):
    """The editor re-asks after every restart; after 3 deaths on the same request the client gives
    up and says why, instead of restarting (and dying) forever."""
    from tests.engine.scripted_workers import dies_on_boom

    monkeypatch.setattr(client_module, "BACKOFF_S", (0.05,))
    events: queue.Queue[Event] = queue.Queue()
    config = WorkerConfig(ModelManifest("scripted", "local", "."), str(tmp_path), 511, str(tmp_path / "worker.log"))
    engine = EngineClient(config, target=dies_on_boom)
    engine.start(events.put)
    try:
        wait_for(events, WorkerReady)
        engine.request(SuggestRequest(1, "fine"))
        assert wait_for(events, SuggestionReady).request_id == 1  # answered: never blamed
        for attempt in range(2):
            engine.request(SuggestRequest(10 + attempt, "boom", seed=attempt))  # as the editor re-asks
            wait_for(events, WorkerDied)
            wait_for(events, WorkerReady)  # restarted
        engine.request(SuggestRequest(12, "boom", seed=2))  # the third death: no restart
        failed = wait_for(events, WorkerFailed)
        assert "3 times while answering the same request (a suggestion at the cursor)" in failed.message
        time.sleep(0.5)
        assert not any(isinstance(e, (WorkerReady, WorkerDied)) for e in iter_events(events))  # no restart
    finally:
        engine.stop()


def test_an_unexpected_error_in_a_request_is_reported_and_the_worker_goes_on(tiny_manifest, tmp_path, monkeypatch):
    """A fault while serving a request (a tokenizer ValueError, say) becomes RequestFailed; the next
    request is served by the same process."""
    from tinymorph.engine import worker
    from tinymorph.engine.protocol import RequestFailed, Shutdown

    real = worker.Generator.suggest

    def suggest(self, request, *args, **kwargs):
        if request.text == "bad":
            raise ValueError("the tokenizer choked")
        return real(self, request, *args, **kwargs)

    monkeypatch.setattr(worker.Generator, "suggest", suggest)
    requests: queue.Queue = queue.Queue()
    requests.put(SuggestRequest(1, "bad"))
    emitted: list[Event] = []

    def emit(event: Event) -> None:
        emitted.append(event)
        if isinstance(event, RequestFailed):
            requests.put(SuggestRequest(2, "The sea", max_new_tokens=2))
        if isinstance(event, SuggestionReady):
            requests.put(Shutdown())

    config = WorkerConfig(tiny_manifest, str(tmp_path / "cache"), 511, str(tmp_path / "worker.log"), threads=1,
                          sae="none")
    worker.serve(config, requests, emit)
    failed = [e for e in emitted if isinstance(e, RequestFailed)]
    assert [(e.request_id, e.message) for e in failed] == [(1, "ValueError: the tokenizer choked")]
    assert [e.request_id for e in emitted if isinstance(e, SuggestionReady)] == [2]


def test_a_worker_whose_editor_was_killed_ends_by_itself(tmp_path):
    """`exit_with_parent`, which `prepare_worker_process` starts in every worker: SIGKILL the
    parent (an editor killed or crashed) and the child is gone within a few checks."""
    import subprocess
    import sys

    child = ("from tinymorph.engine.client import exit_with_parent; import time; exit_with_parent(0.1); "
             "time.sleep(60)")
    parent = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', {child!r}]); "
              "print(p.pid, flush=True); time.sleep(60)")
    editor = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    assert editor.stdout is not None
    worker = int(editor.stdout.readline())
    time.sleep(1.0)  # the child is up and watching
    os.kill(worker, 0)  # alive while its parent is
    editor.kill()
    editor.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    raise AssertionError("the worker outlived its editor")
