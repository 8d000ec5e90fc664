"""Hook points: which Hugging Face module a sae-lens / TransformerLens hook name refers to.

Owns: the explicit mapping from SAE hook names to the decoder layer whose *output* is that point
of the residual stream, and a way to run a model only up to that layer. Imports torch only in
`run_to_layer`'s module-level helpers; no Textual, no store.

Mapping (TransformerLens names, as sae-lens and Gemma Scope use them; HF names as sae-lens's
`HookedProxyLM` uses them):
- `blocks.L.hook_resid_post`  -> output of `model.layers[L]`
- `blocks.L.hook_resid_pre`   -> output of `model.layers[L-1]` (L >= 1; L = 0 is the embedding)
- `model.layers.L` and `model.layers.L.output` -> output of `model.layers[L]`
Anything else (attention `hook_z`, `hook_mlp_out`, ...) is not the residual stream and is refused.
"""

import re

import torch

from tinymorph.errors import SAEError

_PATTERNS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"^blocks\.(\d+)\.hook_resid_post$"), 0),
    (re.compile(r"^blocks\.(\d+)\.hook_resid_pre$"), -1),
    (re.compile(r"^(?:model\.)?layers\.(\d+)(?:\.output)?$"), 0),
    (re.compile(r"^model\.model\.layers\.(\d+)(?:\.output)?$"), 0),
)


def layer_for_hook(hook_name: str) -> int:
    """The index L of the decoder layer whose output is the residual-stream point `hook_name`.

    Raises SAEError for a hook that is not on the residual stream, or for `blocks.0.hook_resid_pre`
    (the embedding output, which tinymorph does not hook).
    """
    for pattern, shift in _PATTERNS:
        if match := pattern.match(hook_name):
            layer = int(match.group(1)) + shift
            if layer < 0:
                raise SAEError(f"{hook_name} is the embedding output; tinymorph hooks decoder layer outputs only")
            return layer
    raise SAEError(
        f"hook point {hook_name!r} is not on the residual stream; tinymorph reads and steers the "
        "residual stream (blocks.L.hook_resid_post, blocks.L.hook_resid_pre or model.layers.L)"
    )


def hook_name_for_layer(layer: int) -> str:
    """The TransformerLens name of the output of decoder layer `layer`: `blocks.L.hook_resid_post`."""
    return f"blocks.{layer}.hook_resid_post"


class _Stop(Exception):
    """Raised from a forward hook to end the forward pass once the hook layer has run."""


@torch.no_grad()
def run_to_layer(
    model: torch.nn.Module, layers: torch.nn.ModuleList, layer: int, input_ids: torch.Tensor
) -> torch.Tensor:
    """Residual stream after decoder layer `layer` for `input_ids` (B, T): returns (B, T, d_model).

    Only layers 0..`layer` run: a forward hook captures the output and stops the pass (no KV cache,
    no later layers, no unembedding). `model` is the causal LM; `layers` its decoder layers.
    """
    captured: list[torch.Tensor] = []

    def hook(_module: torch.nn.Module, _args: object, output: object) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output)  # type: ignore[arg-type]
        raise _Stop

    handle = layers[layer].register_forward_hook(hook)
    try:
        model(input_ids=input_ids, use_cache=False)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured:
        raise SAEError(f"decoder layer {layer} did not run")
    return captured[0]
