"""Worker processes with scripted behaviour for the client's tests (importable by a spawned child)."""

import os

from tinymorph.engine.protocol import SuggestionReady, SuggestRequest, WorkerReady


def dies_on_boom(config, requests, events) -> None:  # type: ignore[no-untyped-def]
    """Ready at once; answers every suggestion, except that the text "boom" kills the process."""
    events.put(WorkerReady("scripted", 0.0, 0, 8, 511))
    while True:
        request = requests.get()
        if isinstance(request, SuggestRequest):
            if request.text == "boom":
                os._exit(3)
            events.put(SuggestionReady(request.request_id, (" ok",), 1.0, 1.0, 1, 0))
