"""The typed request/response protocol between the UI process and the inference worker.

Owns: the messages that cross the process boundary (pickled over multiprocessing queues).
Must not import torch, Textual or the store: the UI process imports this module.
Requests go UI -> worker; events go worker -> UI. Events are named in the past tense.
"""

from dataclasses import dataclass, field
from typing import Literal

from tinymorph.domain import ModelManifest, SteeringSpec

ModelState = Literal["starting", "loading", "ready", "generating", "error", "stopped"]


# --- requests (UI -> worker) -------------------------------------------------------------


@dataclass(frozen=True)
class SuggestRequest:
    """Ask for continuations of `text`, the text just before the cursor.

    `text` is a slice of the document ending at the cursor; `text_start` is the character
    offset of its first character in the document (the client aligns it so that the token
    prefix stays stable while the writer types, which lets the worker reuse its KV cache).
    A newer request supersedes this one: the worker abandons it between tokens.
    """

    request_id: int
    text: str
    text_start: int = 0
    steering: SteeringSpec = field(default_factory=SteeringSpec)
    alternatives: int = 3
    max_new_tokens: int = 24
    temperature: float = 0.8
    seed: int = 0
    confidence: float = 0.0
    """Cut each suggestion, after its first whole word, before the first token whose probability
    is below this (`sampling.token_confidence`); 0: never cut. Applies only with no steering."""


@dataclass(frozen=True)
class CompareRequest:
    """Ask for one unsteered and one steered continuation of `text` with the same seed (greedy
    when temperature is 0), to show side by side."""

    request_id: int
    text: str
    steering: SteeringSpec
    max_new_tokens: int = 32
    temperature: float = 0.7
    seed: int = 0


@dataclass(frozen=True)
class SearchFeatures:
    """Ask which SAE features fire most on `text` (the model half of feature search)."""

    request_id: int
    text: str


@dataclass(frozen=True)
class MakeDirection:
    """Ask for a "more like this" direction: the mean residual stream over `text` at the hook
    layer minus the mean over the worker's reference prose."""

    request_id: int
    name: str
    text: str


@dataclass(frozen=True)
class MakeConcept:
    """Ask for a concept slider toward the words the writer typed (`engine.concepts`)."""

    request_id: int
    words: str


@dataclass(frozen=True)
class Shutdown:
    """Ask the worker to exit cleanly."""


Request = SuggestRequest | CompareRequest | SearchFeatures | MakeDirection | MakeConcept | Shutdown


# --- events (worker -> UI) -----------------------------------------------------------------


@dataclass(frozen=True)
class LoadProgressed:
    """The worker is preparing the model. `stage` is a short phrase for the status bar;
    `fraction` is in [0, 1] when known, else None."""

    stage: str
    fraction: float | None = None


@dataclass(frozen=True)
class WorkerReady:
    """The model is loaded and the worker takes requests."""

    model_name: str
    load_seconds: float
    hook_layer: int
    d_model: int
    context_tokens: int
    model_id: str = ""
    """The model's Hugging Face id (or manifest name): how presets name it."""
    sae_id: str = ""
    """The SAE whose features the worker steers with and reports ('' when none is loaded)."""
    d_sae: int = 0
    feature_folder: str = ""
    """Where the SAE's feature data (labels) lives, for the UI to read ('' if unknown)."""
    sae_message: str = ""
    """Why no SAE is loaded, for the writer ('' when one is, or none was asked for)."""


@dataclass(frozen=True)
class TokensStreamed:
    """Partial text of alternative 0, sent as tokens are generated (ghost text can grow)."""

    request_id: int
    text: str
    ms_since_request: float


@dataclass(frozen=True)
class SuggestionReady:
    """All alternatives of a request, cut at a sentence or line end, the one to show first first.

    Times are in ms from the worker receiving the request. `prefill_tokens` is how many
    context tokens had to be run; `reused_tokens` how many came from the KV cache.
    """

    request_id: int
    alternatives: tuple[str, ...]
    first_token_ms: float
    total_ms: float
    prefill_tokens: int
    reused_tokens: int
    decode_steps: int = 0
    """Forward passes of all alternatives together from the context's last token on: each gives
    every alternative still running one token."""
    decode_ms: float = 0.0
    """Time spent in those passes, sampling and ranking included (decode tokens/s per
    alternative = decode_steps / decode_ms * 1000)."""


@dataclass(frozen=True)
class FeaturesLit:
    """The SAE features that say the most about the last tokens before the cursor (the feature
    lens), computed from the suggestion's own forward passes. `features` holds (index, score),
    best first: the activation as a fraction of the feature's max on held-out text, times how
    rare the feature is (`engine.generate.lens_weights`; dense and function-word features 0)."""

    request_id: int
    features: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class ComparisonReady:
    """The answer to a CompareRequest: two greedy continuations of the same text."""

    request_id: int
    unsteered: str
    steered: str


@dataclass(frozen=True)
class FeatureSearchReady:
    """Features that fire on the searched text: (index, fraction of its max), strongest first."""

    request_id: int
    text: str
    scores: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class DirectionMade:
    """A "more like this" direction (d_model floats, unnormalised) for a MakeDirection request."""

    request_id: int
    name: str
    direction: tuple[float, ...]
    tokens: int
    """How many tokens of the selection the mean was taken over."""


@dataclass(frozen=True)
class ConceptMade:
    """A concept slider for a MakeConcept request: its name (the words, trimmed), its direction
    (d_model floats, unnormalised) and the SAE features closest to it, (index, cosine)."""

    request_id: int
    name: str
    direction: tuple[float, ...]
    features: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class RequestFailed:
    """A request could not be served; the worker goes on with the next one."""

    request_id: int
    message: str


@dataclass(frozen=True)
class WorkerFailed:
    """The worker cannot serve at all (the model did not load). `message` is for the writer."""

    message: str


@dataclass(frozen=True)
class WorkerDied:
    """Sent by the client (not the worker) when the worker process exited unexpectedly."""

    exitcode: int | None
    restart_in_s: float


Event = (
    LoadProgressed
    | WorkerReady
    | TokensStreamed
    | SuggestionReady
    | FeaturesLit
    | ComparisonReady
    | FeatureSearchReady
    | DirectionMade
    | ConceptMade
    | RequestFailed
    | WorkerFailed
    | WorkerDied
)


@dataclass(frozen=True)
class WorkerConfig:
    """What the worker process needs to start: which model, where to cache it, how much context.

    `allow_hub` is the user's explicit choice to let transformers (or sae-lens) reach the Hugging
    Face Hub; when False the worker sets HF_HUB_OFFLINE.
    """

    manifest: ModelManifest
    cache_dir: str
    context_tokens: int
    log_file: str
    allow_hub: bool = False
    sae: str = "default"
    """The `sae` setting: "default", "none", a folder, or RELEASE:ID (resolved in the worker by
    `lm.manifest.resolve_sae`)."""
    allow_downloads: bool = False
    """The explicit choice to let sae-lens download a registry SAE."""
    threads: int = 0
    """torch intra-op threads; 0 keeps torch's default (one per core)."""
    burst_threads: int = 0
    """torch threads for the load (the int8 copies) and for a long prefill
    (`Generator.prefill_threads`: opening a document, a jump far from the cached text); 0:
    `threads`. The editor passes every core: bursts of ~0.15-0.4 s that typing does not wait
    behind, where one thread took ~1.8x as long."""
    int8_decode: bool = False
    """Decode steps use int8 copies of the weights (`lm.quantize`)."""
    spare: bool = False
    """Keep a second worker loaded and waiting, to take over at once when the first dies."""
    nice: int = 10
    """How much lower than the editor the worker's scheduling priority is (`os.nice`); on Linux
    it also runs as SCHED_BATCH (a throughput task the scheduler does not favour on wake-up)."""
