"""A scripted engine for Pilot tests: answers each request with fixed alternatives, at once."""

from collections.abc import Callable

from tinymorph.engine.protocol import Event, SuggestionReady, SuggestRequest, TokensStreamed, WorkerReady


class ScriptedEngine:
    """Stands in for EngineClient: same methods, no process, deterministic answers."""

    def __init__(self, alternatives: tuple[str, ...] = (" the sea was calm.", " the boats came in.", " it rained.")):
        self.alternatives = alternatives
        self.requests: list[SuggestRequest] = []
        self.on_event: Callable[[Event], None] = lambda _e: None
        self.stopped = False
        self._ids = 0

    def start(self, on_event: Callable[[Event], None]) -> None:
        self.on_event = on_event
        on_event(WorkerReady("scripted", 0.0, 0, 8, 511))

    def next_request_id(self) -> int:
        self._ids += 1
        return self._ids

    def request(self, req: SuggestRequest) -> None:
        self.requests.append(req)
        self.on_event(TokensStreamed(req.request_id, self.alternatives[0].rsplit(" ", 1)[0], 1.0))
        self.on_event(SuggestionReady(req.request_id, self.alternatives, 1.0, 2.0, 10, 0))

    def stop(self, timeout: float = 3.0) -> None:
        self.stopped = True
