"""Plain dataclasses shared by every layer: steering terms and specs.

Owns: value types that cross layer boundaries (UI -> worker, worker -> store). Imports nothing of
ours and nothing heavy: these objects are pickled between processes and stored as JSON.
"""

import json
import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SteeringTerm:
    """One push on the residual stream: `strength * direction` added at the hook layer.

    `direction` is a vector of `d_model` floats; the worker normalises it to unit length, so
    only its orientation matters. `strength` is in residual-norm multiples: 1.0 adds a vector
    whose norm equals the median residual-stream norm at the hook layer (measured once per
    model), so the same number means the same push on any model. `label` names the term for
    the writer ("feature 1234: the sea", "formal - casual").
    """

    direction: tuple[float, ...]
    strength: float
    label: str = ""

    def __post_init__(self) -> None:
        if not self.direction:
            raise ValueError("a steering direction needs at least one component")
        if not all(math.isfinite(x) for x in self.direction) or not math.isfinite(self.strength):
            raise ValueError(f"steering term {self.label!r} has a non-finite value")
        if not any(self.direction):
            raise ValueError(f"steering term {self.label!r} has a zero direction")


@dataclass(frozen=True)
class SteeringSpec:
    """The full steering of one request: a list of terms, applied together (their sum)."""

    terms: tuple[SteeringTerm, ...] = field(default_factory=tuple)

    @property
    def is_empty(self) -> bool:
        return not any(t.strength for t in self.terms)

    def key(self) -> tuple[tuple[tuple[float, ...], float], ...]:
        """A hashable identity: two specs with equal keys change activations identically.
        The worker keys its KV cache on it (a cache built under other steering is invalid)."""
        return tuple((t.direction, t.strength) for t in self.terms if t.strength)

    def summary(self) -> str:
        """A short JSON summary for the store (labels and strengths, not the vectors)."""
        return json.dumps([{"label": t.label, "strength": t.strength} for t in self.terms])
