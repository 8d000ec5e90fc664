"""A scripted engine for Pilot tests: answers each request with fixed results, at once.

With `feature_folder` it behaves like a worker with an SAE: it reports the lens, answers
feature searches, comparisons and "more like this"."""

from collections.abc import Callable
from pathlib import Path

from tinymorph.engine.protocol import (
    CompareRequest,
    ComparisonReady,
    ConceptMade,
    DirectionMade,
    Event,
    FeatureSearchReady,
    FeaturesLit,
    MakeConcept,
    MakeDirection,
    Request,
    SearchFeatures,
    SuggestionReady,
    SuggestRequest,
    TokensStreamed,
    WorkerReady,
)
from tinymorph.features import FeatureContext, FeatureData, FeatureInfo

D_MODEL = 8


def tiny_feature_data(folder: Path, save: bool = True) -> FeatureData:
    """Four labelled features, saved in `folder` (unless not `save`) like a real SAE's feature file."""

    def info(i: int, label: str, context: str) -> FeatureInfo:
        tokens = tuple(context.split("|"))
        return FeatureInfo(i, label, 0.001 * (i + 1), 4.0, ((" waves", 1.0),), ((" desk", -1.0),),
                           (FeatureContext(tokens, (0,) * (len(tokens) - 1) + (100,), len(tokens) - 1, 4.0),))

    data = FeatureData("tiny-sae", "scripted", "blocks.0.hook_resid_post", 1000, (
        info(0, "the, a", "on| the"),
        info(1, "sea, ocean, waves", "across| the| ocean"),
        info(2, "harbour, boats", "in| the| harbour"),
        info(3, "→ writes: money, budget", "the| budget"),
    ))
    if save:
        folder.mkdir(parents=True, exist_ok=True)
        data.save(folder)
    return data


class ScriptedEngine:
    """Stands in for EngineClient: same methods, no process, deterministic answers."""

    def __init__(self, alternatives: tuple[str, ...] = (" the sea was calm.", " the boats came in.", " it rained."),
                 feature_folder: Path | None = None, lit: tuple[tuple[int, float], ...] = ((2, 0.9), (1, 0.4))):
        self.alternatives = alternatives
        self.feature_folder = feature_folder
        self.lit = lit
        self.requests: list[Request] = []
        self.on_event: Callable[[Event], None] = lambda _e: None
        self.stopped = False
        self._ids = 0

    @property
    def suggest_requests(self) -> list[SuggestRequest]:
        return [r for r in self.requests if isinstance(r, SuggestRequest)]

    def start(self, on_event: Callable[[Event], None]) -> None:
        self.on_event = on_event
        if self.feature_folder is None:
            on_event(WorkerReady("scripted", 0.0, 0, D_MODEL, 511))
        else:
            on_event(WorkerReady("scripted", 0.0, 0, D_MODEL, 511, model_id="scripted-model", sae_id="tiny-sae",
                                 d_sae=4, feature_folder=str(self.feature_folder)))

    def next_request_id(self) -> int:
        self._ids += 1
        return self._ids

    def request(self, req: Request) -> None:
        self.requests.append(req)
        if isinstance(req, SuggestRequest):
            if self.feature_folder is not None:
                self.on_event(FeaturesLit(req.request_id, self.lit))
            self.on_event(TokensStreamed(req.request_id, self.alternatives[0].rsplit(" ", 1)[0], 1.0))
            self.on_event(SuggestionReady(req.request_id, self.alternatives, 1.0, 2.0, 10, 0))
        elif isinstance(req, SearchFeatures):
            self.on_event(FeatureSearchReady(req.request_id, req.text, ((1, 0.8),) if "ocean" in req.text else ()))
        elif isinstance(req, CompareRequest):
            self.on_event(ComparisonReady(req.request_id, " plain words.", " salt and spray."))
        elif isinstance(req, MakeDirection):
            self.on_event(DirectionMade(req.request_id, req.name, (1.0,) + (0.0,) * (D_MODEL - 1), len(req.text)))
        elif isinstance(req, MakeConcept):
            self.on_event(ConceptMade(req.request_id, " ".join(req.words.split()), (0.0, 1.0) + (0.0,) * (D_MODEL - 2),
                                      ((1, 0.8), (2, 0.5))))

    def stop(self, timeout: float = 3.0) -> None:
        self.stopped = True


async def ghost_text(pilot, app, tries: int = 50, every: float = 0.02) -> str:
    """The editor's ghost text once it shows (polling `tries` times, `every` seconds apart), or ""."""
    for _ in range(tries):
        await pilot.pause(every)
        if app.editor.suggestion:
            return app.editor.suggestion
    return ""
