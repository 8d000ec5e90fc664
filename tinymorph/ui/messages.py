"""Textual messages of tinymorph's UI: small, named in the past tense."""

from dataclasses import dataclass

from textual.message import Message

from tinymorph.engine.protocol import Event
from tinymorph.errors import StoreError


@dataclass
class EngineReported(Message):
    """The worker (or the client watching it) sent an event; delivered on the UI thread."""

    event: Event


@dataclass
class JournalFailed(Message):
    """The journal thread could not write the unsaved text (posted from that thread)."""

    error: StoreError


@dataclass
class SuggestionWanted(Message):
    """The editor has been idle at a place where a suggestion fits."""

    text: str
    """The text sent to the model: from `text_start` to the cursor."""
    text_start: int
    before: str
    """The last characters before the cursor, to match the answer with the text."""


@dataclass(frozen=True)
class SuggestionOrigin:
    """What made a suggestion: recorded when its request was sent and its answer came, so that
    the suggestion log never reads the panel's state at some later moment."""

    steering: str
    """The request's steering (`SteeringSpec.summary()`)."""
    model: str
    latency_ms: float | None
    """From the request to all alternatives; None for a suggestion recalled from memory."""


@dataclass
class SuggestionEnded(Message):
    """A shown suggestion is gone: accepted, partly accepted, rejected or dropped."""

    outcome: str
    alternative_index: int
    alternatives: int
    accepted_chars: int
    origin: SuggestionOrigin | None = None
