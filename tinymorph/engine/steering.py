"""Residual-stream steering: add `strength * direction` at the hook layer (activation addition).

Owns: turning a SteeringSpec into one vector and the forward hook that adds it.
Method: activation addition (Turner et al. 2023, "Steering Language Models With Activation
Engineering"); a feature's direction is a row of the SAE decoder `W_dec[i]` (Templeton et al.
2024, "Scaling Monosemanticity"). Imports torch; runs in the worker. No Textual, no store.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from tinymorph.domain import SteeringSpec
from tinymorph.errors import SteeringError


def steering_vector(spec: SteeringSpec, d_model: int, median_norm: float) -> torch.Tensor | None:
    """Sum of `strength * median_norm * unit(direction)` over the spec's terms.

    Returns a float32 tensor of shape (d_model,), or None when nothing is to be added.
    Raises SteeringError if a direction does not have `d_model` components.
    """
    if spec.is_empty:
        return None
    total = torch.zeros(d_model, dtype=torch.float32)
    for term in spec.terms:
        if len(term.direction) != d_model:
            raise SteeringError(
                f"steering direction {term.label!r} has {len(term.direction)} components; "
                f"the model's residual stream has {d_model}"
            )
        direction = torch.tensor(term.direction, dtype=torch.float32)  # (d,)
        total += term.strength * median_norm * direction / direction.norm()
    return total


@contextmanager
def steered(layer: torch.nn.Module, vector: torch.Tensor | None) -> Iterator[None]:
    """Add `vector` (d,) to the output of `layer` (the residual stream after it) for every
    position except BOS, for as long as the context is open; the hook is removed on exit.

    BOS is recognised by its position id 0: during a prefill that starts at position 0 the
    first position is skipped; a prefill that continues a KV cache, and every decode step,
    is steered at every position. A decoder layer returns a Tensor (B, T, d) in transformers 5
    (a tuple whose first item is that Tensor in older versions; both are handled).
    """
    if vector is None:
        yield
        return

    def hook(_module: torch.nn.Module, _args: Any, kwargs: dict[str, Any], output: Any) -> Any:
        hidden = output[0] if isinstance(output, tuple) else output  # (B, T, d)
        steer = vector.to(hidden.dtype)  # (d,)
        position_ids = kwargs.get("position_ids")
        starts_at_bos = position_ids is not None and int(position_ids.reshape(-1)[0]) == 0
        if starts_at_bos:
            hidden = torch.cat([hidden[:, :1], hidden[:, 1:] + steer], dim=1)  # BOS untouched
        else:
            hidden = hidden + steer  # (B, T, d) + (d,)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = layer.register_forward_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()
