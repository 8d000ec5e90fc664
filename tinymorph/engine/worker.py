"""The inference worker: the process that owns the model (imports torch).

Owns: the request loop (`serve`). The newest request wins: requests that arrive while one is
running make it stale, and it is abandoned between tokens. Errors are reported as events, never
by dying silently. Started by `engine.client` in a separate process, which has set up its output,
network switch and priority before importing this module; never imported by the UI.
"""

import queue
import time
import traceback
from collections import deque
from collections.abc import Callable
from pathlib import Path

import torch

from tinymorph.domain import SteeringSpec
from tinymorph.engine.concepts import ConceptMaker
from tinymorph.engine.directions import more_like_this
from tinymorph.engine.generate import Generator
from tinymorph.engine.lens import lens_tensors
from tinymorph.engine.protocol import (
    CompareRequest,
    ComparisonReady,
    ConceptMade,
    DirectionMade,
    Event,
    FeatureSearchReady,
    FeaturesLit,
    LoadProgressed,
    MakeConcept,
    MakeDirection,
    Request,
    RequestFailed,
    SearchFeatures,
    Shutdown,
    SuggestRequest,
    TokensStreamed,
    WorkerConfig,
    WorkerFailed,
    WorkerReady,
)
from tinymorph.errors import SAEError, TinymorphError
from tinymorph.features import FeatureData, load_feature_data
from tinymorph.lens_table import LensTable, lens_table, load_lens_table
from tinymorph.lm.manifest import resolve_sae
from tinymorph.lm.model import LoadedModel, load_model, measure_median_norm, torch_threads
from tinymorph.lm.quantize import quantize_for_decode
from tinymorph.sae.loading import LoadedSAE, load_sae
from tinymorph.sae.search import activation_scores


class Inbox:
    """The worker's view of its request queue: suggestions are latest-wins (a newer one
    supersedes an older one, even mid-generation); other requests (compare, search, directions)
    are all served, in order, before the newest suggestion. Shutdown wins over everything."""

    def __init__(self, requests: "queue.Queue[Request]") -> None:
        self.requests = requests
        self.others: deque[Request] = deque()
        self.suggestion: SuggestRequest | None = None
        self.shutdown = False

    def _take(self, request: Request) -> None:
        if isinstance(request, Shutdown):
            self.shutdown = True
        elif isinstance(request, SuggestRequest):
            self.suggestion = request
        else:
            self.others.append(request)

    def drain(self) -> bool:
        """Take everything waiting, without blocking. True if a newer suggestion (or Shutdown)
        arrived: the one being generated is stale."""
        newer = False
        while True:
            try:
                request = self.requests.get_nowait()
            except queue.Empty:
                return newer
            self._take(request)
            newer = newer or isinstance(request, SuggestRequest | Shutdown)

    def next(self) -> Request:
        """Block until there is work; return Shutdown, then other requests, then the suggestion."""
        if not (self.shutdown or self.others or self.suggestion):
            self._take(self.requests.get())
        self.drain()
        if self.shutdown:
            return Shutdown()
        if self.others:
            return self.others.popleft()
        request, self.suggestion = self.suggestion, None
        assert request is not None
        return request


def serve(config: WorkerConfig, requests: "queue.Queue[Request]", emit: Callable[[Event], None]) -> None:
    """Load the model, then serve requests until Shutdown. Blocks.

    The model is loaded here (not at import) so that progress reaches the UI. If it cannot
    load, one WorkerFailed is emitted and the function returns.
    """
    if config.threads:
        torch.set_num_threads(config.threads)
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
    except MemoryError:
        emit(WorkerFailed(
            f"not enough memory to load {config.manifest.name} (about 3 GB the first time, 1 GB after); "
            "close other programs and restart tinymorph"
        ))
        return
    sae, table, data, sae_message, folder = _load_sae(config, lm, emit)
    max_acts, weights, groups = lens_tensors(table) if table is not None else (None, None, None)
    generator = Generator(lm, config.context_tokens, sae, max_acts, lens_weights=weights, lens_groups=groups,
                          prefill_threads=config.burst_threads)
    # The vocabulary as strings for token healing, and the mask every word end uses: built now
    # now, not in the writer's first suggestion.
    generator.speller.allowed(" ")
    emit(WorkerReady(
        lm.name, time.perf_counter() - t0, lm.hook_layer, lm.d_model, generator.context_tokens,
        model_id=config.manifest.hub_id or config.manifest.name,
        sae_id=sae.sae_id if sae else "", d_sae=sae.d_sae if sae else 0,
        feature_folder=str(folder) if sae and folder else "",
        sae_message=sae_message,
    ))
    if config.int8_decode and lm.model.device.type == "cpu":
        # The int8 decode copies, made after "ready" on every core (~0.17 s on 2 here), before the
        # first request is served: the editor asks for its first suggestion after the idle delay,
        # so it waits for them at most the difference. Made on a second thread while the SAE's
        # feature file loaded, they took ~1.1 s (json.loads holds the GIL for the whole parse).
        try:
            with torch_threads(config.burst_threads):
                quantize_for_decode(lm.model)
        except (RuntimeError, MemoryError):
            # Layers already swapped compute what the others do, a little faster: serve on.
            traceback.print_exc()

    concepts = ConceptMaker(lm, config.cache_dir)
    inbox = Inbox(requests)
    while True:
        request = inbox.next()
        if isinstance(request, Shutdown):
            return
        rid = getattr(request, "request_id", 0)
        try:
            if isinstance(request, SuggestRequest):
                result = generator.suggest(
                    request, inbox.drain, lambda text, ms, rid=rid: emit(TokensStreamed(rid, text, ms)),
                    lambda features, rid=rid: emit(FeaturesLit(rid, features)) if sae is not None else None,
                )
                if result is not None:
                    emit(result)
            else:
                _serve_other(request, generator, lm, sae, data, concepts, emit)
        except TinymorphError as exc:
            emit(RequestFailed(rid, str(exc)))
        except Exception as exc:
            # The request boundary: whatever went wrong (a torch error, a tokenizer ValueError, a
            # damaged file) ends this request only. The traceback goes to the worker log; the
            # generator has dropped any KV cache the failure could have left half-updated.
            traceback.print_exc()
            emit(RequestFailed(rid, f"{type(exc).__name__}: {exc}"))


class LazyFeatureData:
    """The SAE's feature data, parsed on first use (feature search): the lens needs only the
    `LensTable`, and parsing the whole feature file before 'ready' would delay the first
    suggestion by seconds for a wide SAE."""

    def __init__(self, folder: Path, d_sae: int, data: FeatureData | None = None) -> None:
        self.folder, self.d_sae, self._data = folder, d_sae, data

    def get(self) -> FeatureData:
        """The feature data. Raises SAEError as `load_feature_data` does."""
        if self._data is None:
            self._data = load_feature_data(self.folder, self.d_sae)
        return self._data


def _load_sae(
    config: WorkerConfig, lm: LoadedModel, emit: Callable[[Event], None],
) -> tuple[LoadedSAE | None, LensTable | None, LazyFeatureData | None, str, Path | None]:
    """Load the SAE asked for, moving the hook layer (and its median norm) to the SAE's layer.
    Returns (SAE, the lens table, its feature data (parsed when first needed, unless the lens
    table had to be made from it), a message for the writer, the feature folder). An SAE that
    cannot load leaves the editor working without features: the message says why."""
    if config.sae == "none":
        return None, None, None, "", None
    emit(LoadProgressed("loading the SAE", 0.97))
    try:
        source = resolve_sae(config.sae, config.manifest, config.cache_dir)
        sae = load_sae(source, config.manifest, lm.d_model, int(lm.model.config.num_hidden_layers),
                       allow_downloads=config.allow_downloads)
    except TinymorphError as exc:
        return None, None, None, str(exc), None
    if sae.layer != lm.hook_layer:
        lm.hook_layer = sae.layer
        lm.median_norm = measure_median_norm(lm.model, lm.tokenizer, sae.layer)
    folder = source.feature_folder
    try:
        if folder is None:
            raise SAEError("it has no feature folder")
        table = load_lens_table(folder, sae.d_sae)
        if table is not None:
            return sae, table, LazyFeatureData(folder, sae.d_sae), "", folder
        data = load_feature_data(folder, sae.d_sae)  # no lens.json yet (older feature data)
    except TinymorphError as exc:
        return sae, None, None, f"no feature labels: {exc}", folder
    return sae, lens_table(data), LazyFeatureData(folder, sae.d_sae, data), "", folder


def _serve_other(
    request: Request, generator: Generator, lm: LoadedModel, sae: LoadedSAE | None, data: LazyFeatureData | None,
    concepts: ConceptMaker,
    emit: Callable[[Event], None],
) -> None:
    """Compare, feature search, "more like this" and concepts: short requests, never abandoned midway.
    Errors propagate to the request loop, which reports them."""
    rid = getattr(request, "request_id", 0)
    if isinstance(request, CompareRequest):
        texts = []
        for spec in (SteeringSpec(), request.steering):
            req = SuggestRequest(rid, request.text, steering=spec, alternatives=1, seed=request.seed,
                                 max_new_tokens=request.max_new_tokens, temperature=request.temperature)
            result = generator.suggest(req, lambda: False, lambda _t, _ms: None)
            texts.append(result.alternatives[0] if result and result.alternatives else "")
        emit(ComparisonReady(rid, texts[0], texts[1]))
    elif isinstance(request, SearchFeatures):
        scores = activation_scores(lm, sae, data.get(), request.text) if sae is not None and data is not None else {}
        emit(FeatureSearchReady(rid, request.text, tuple(sorted(scores.items(), key=lambda kv: -kv[1]))))
    elif isinstance(request, MakeDirection):
        vector, n = more_like_this(lm, request.text)
        emit(DirectionMade(rid, request.name, tuple(float(x) for x in vector), n))
    elif isinstance(request, MakeConcept):
        concept = concepts.make(request.words, sae)
        emit(ConceptMade(rid, concept.name, tuple(float(x) for x in concept.direction), concept.features))
