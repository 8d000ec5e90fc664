"""Residual-stream steering at the hook layer: activation addition and SAE feature ablation.

Owns: turning a SteeringSpec into one added vector plus a set of ablated features, and the
forward hook that applies them.
Methods: activation addition (Turner et al. 2023, "Steering Language Models With Activation
Engineering"); a feature's direction is a row of the SAE decoder `W_dec[i]` (Templeton et al.
2024, "Scaling Monosemanticity"); feature ablation subtracts the feature's decoded contribution
`a_i(x) W_dec[i]` and keeps the SAE error term (Marks et al. 2024, "Sparse Feature Circuits"),
so the rest of the residual stream is untouched. Imports torch; runs in the worker.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from tinymorph.domain import SteeringSpec
from tinymorph.errors import SteeringError


class FeatureSource(Protocol):
    """What steering needs of an SAE (a `tinymorph.sae.loading.LoadedSAE` provides it)."""

    @property
    def d_sae(self) -> int:
        """Number of features."""
        ...

    def encode(self, resid: torch.Tensor) -> torch.Tensor:
        """Feature activations (..., d_sae) float32 of residual vectors (..., d_model)."""
        ...

    def directions(self) -> torch.Tensor:
        """Decoder directions W_dec (d_sae, d_model) float32."""
        ...


@dataclass
class Steering:
    """A spec resolved against the model: `vector` (d,) float32 to add (None: nothing), and the
    features to ablate with the SAE that finds them. `row_scale` (B, 1, 1), when set, scales the
    added vector per batch row in passes of exactly B rows (`Generator.suggest` eases the push of
    a row once it shows the concept); passes of another batch size get the whole vector."""

    vector: torch.Tensor | None
    ablate: torch.Tensor | None  # (n,) long feature indices
    sae: FeatureSource | None
    row_scale: torch.Tensor | None = None  # (B, 1, 1) float32, multiples of `vector`

    @property
    def is_empty(self) -> bool:
        return self.vector is None and self.ablate is None


def resolve_steering(spec: SteeringSpec, d_model: int, median_norm: float, sae: FeatureSource | None) -> Steering:
    """Sum `strength * median_norm * unit(direction)` over the spec's active "add" terms, and
    collect its active "ablate" features.

    Raises SteeringError if a direction does not have `d_model` components, or a term names a
    feature while no SAE is loaded or an index the SAE does not have.
    """
    total: torch.Tensor | None = None
    ablate: list[int] = []
    directions = sae.directions() if sae is not None and any(t.feature is not None for t in spec.terms) else None
    for term in spec.terms:
        if not term.active:
            continue
        if term.feature is not None:
            if directions is None or sae is None:
                raise SteeringError(f"{term.label or f'feature {term.feature}'} needs an SAE, and none is loaded")
            if not 0 <= term.feature < sae.d_sae:
                raise SteeringError(f"feature {term.feature} does not exist; the SAE has {sae.d_sae} features")
            if term.mode == "ablate":
                ablate.append(term.feature)
                continue
            direction = directions[term.feature]  # (d,)
        else:
            if len(term.direction) != d_model:
                raise SteeringError(
                    f"steering direction {term.label!r} has {len(term.direction)} components; "
                    f"the model's residual stream has {d_model}"
                )
            direction = torch.tensor(term.direction, dtype=torch.float32)  # (d,)
        push = term.strength * median_norm * direction / direction.norm()  # (d,)
        total = push if total is None else total + push
    return Steering(total, torch.tensor(sorted(set(ablate))) if ablate else None, sae if ablate else None)


def steering_vector(spec: SteeringSpec, d_model: int, median_norm: float) -> torch.Tensor | None:
    """The added vector (d_model,) of a spec with no SAE features (see `resolve_steering`)."""
    return resolve_steering(spec, d_model, median_norm, None).vector


def _apply(hidden: torch.Tensor, steering: Steering) -> torch.Tensor:
    out = hidden
    if steering.ablate is not None and steering.sae is not None:
        acts = steering.sae.encode(hidden.float())[..., steering.ablate]  # (B, T, n)
        contribution = acts @ steering.sae.directions()[steering.ablate]  # (B, T, n) @ (n, d) -> (B, T, d)
        out = out - contribution.to(hidden.dtype)
    if steering.vector is not None:
        vector = steering.vector.to(hidden.dtype)  # (d,)
        scale = steering.row_scale
        if scale is not None and scale.shape[0] == hidden.shape[0]:
            vector = scale.to(hidden.dtype) * vector  # (B, 1, 1) * (d,) -> (B, 1, d)
        out = out + vector  # (B, T, d) + (d,) or (B, 1, d)
    return out


@contextmanager
def steered(
    layer: torch.nn.Module, steering: Steering | torch.Tensor | None, last_only: bool = False
) -> Iterator[None]:
    """Apply `steering` to the output of `layer` (the residual stream after it) for every
    position except BOS, for as long as the context is open; the hook is removed on exit.
    A bare tensor (d,) is an added vector.

    BOS is recognised by its position id 0: during a prefill that starts at position 0 the
    first position is skipped; a prefill that continues a KV cache, and every decode step,
    is steered at every position. A decoder layer returns a Tensor (B, T, d) in transformers 5
    (a tuple whose first item is that Tensor in older versions; both are handled).

    `last_only`: steer only the last position of each pass (`Generator.suggest` runs the
    context's new tokens and its last token in one pass, and steering starts at that last token;
    the KV entries before it do not depend on it, the attention being causal).
    """
    if isinstance(steering, torch.Tensor):
        steering = Steering(steering, None, None)
    if steering is None or steering.is_empty:
        yield
        return
    resolved = steering

    def hook(_module: torch.nn.Module, _args: Any, kwargs: dict[str, Any], output: Any) -> Any:
        hidden = output[0] if isinstance(output, tuple) else output  # (B, T, d)
        position_ids = kwargs.get("position_ids")
        starts_at_bos = position_ids is not None and int(position_ids.reshape(-1)[0]) == 0
        if last_only:
            if starts_at_bos and hidden.shape[1] == 1:  # a pass of BOS alone
                return output
            hidden = torch.cat([hidden[:, :-1], _apply(hidden[:, -1:], resolved)], dim=1)
        elif starts_at_bos:
            hidden = torch.cat([hidden[:, :1], _apply(hidden[:, 1:], resolved)], dim=1)  # BOS untouched
        else:
            hidden = _apply(hidden, resolved)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = layer.register_forward_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()
