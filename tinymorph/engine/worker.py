"""The inference worker: the process that owns the model (imports torch).

Owns: the request loop. The newest request wins: requests that arrive while one is running
make it stale, and it is abandoned between tokens. Errors are reported as events, never by
dying silently. Started by `engine.client` in a separate process; never imported by the UI.
"""

import os
import queue
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from tinymorph.engine.generate import Generator
from tinymorph.engine.manifest import ModelManifest
from tinymorph.engine.model import load_model
from tinymorph.engine.protocol import (
    Event,
    LoadProgressed,
    Request,
    RequestFailed,
    Shutdown,
    SuggestRequest,
    TokensStreamed,
    WorkerConfig,
    WorkerFailed,
    WorkerReady,
)
from tinymorph.errors import TinymorphError


def _newest(first: Request, requests: "queue.Queue[Request]") -> Request:
    """Drain the queue without blocking and return the newest request (Shutdown wins)."""
    newest = first
    while not isinstance(newest, Shutdown):
        try:
            newest = requests.get_nowait()
        except queue.Empty:
            break
    return newest


def serve(config: WorkerConfig, requests: "queue.Queue[Request]", emit: Callable[[Event], None]) -> None:
    """Load the model, then serve requests until Shutdown. Blocks.

    The model is loaded here (not at import) so that progress reaches the UI. If it cannot
    load, one WorkerFailed is emitted and the function returns.
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    assert isinstance(config.manifest, ModelManifest)
    t0 = time.perf_counter()
    try:
        lm = load_model(
            config.manifest,
            Path(config.cache_dir),
            lambda stage, fraction: emit(LoadProgressed(stage, fraction)),
        )
    except TinymorphError as exc:
        emit(WorkerFailed(str(exc)))
        return
    generator = Generator(lm, config.context_tokens)
    emit(WorkerReady(lm.name, time.perf_counter() - t0, lm.hook_layer, lm.d_model, generator.context_tokens))

    pending: Request | None = None
    while True:
        request = _newest(pending if pending is not None else requests.get(), requests)
        pending = None
        if isinstance(request, Shutdown):
            return
        assert isinstance(request, SuggestRequest)

        def is_stale() -> bool:
            nonlocal pending
            try:
                pending = requests.get_nowait()
            except queue.Empty:
                return False
            return True

        rid = request.request_id
        try:
            result = generator.suggest(
                request, is_stale, lambda text, ms, rid=rid: emit(TokensStreamed(rid, text, ms))
            )
        except TinymorphError as exc:
            emit(RequestFailed(rid, str(exc)))
            continue
        except RuntimeError as exc:  # torch errors (shapes, out of memory) end this request only
            traceback.print_exc()
            emit(RequestFailed(rid, f"generation failed: {exc}"))
            continue
        if result is not None:
            emit(result)


def worker_main(config: WorkerConfig, requests: "queue.Queue[Request]", events: "queue.Queue[Event]") -> None:
    """Entry point of the worker process: send stdout/stderr to the log file (they would draw
    over the editor's screen), keep the network off unless allowed, then serve."""
    log = os.open(config.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not config.allow_hub:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
    serve(config, requests, events.put)
