"""Attention for single-token decode steps with grouped-query attention, registered with
transformers' public `AttentionInterface` as "tinymorph_sdpa".

Owns: `decode_sdpa` and `use_decode_attention`. Imports torch and transformers; no Textual, no
store.

Why: Gemma 3 270M has 4 query heads and 1 key/value head. For one new token, transformers calls
PyTorch's SDPA with `enable_gqa=True` when there is no mask, which on CPU runs the flash kernel
with a query length of 1: ~1.2 ms per layer for 3 rows at a 455-token context on 2 cores, 24 ms
of a decode step. The query heads that share a key/value head can instead be laid out as that
head's query positions, (B, H, 1, D) -> (B, H_kv, H / H_kv, D), with no causal mask among them
(they are one token): the same result, ~0.1 ms (the trick transformers' own `pack_gqa` uses when a
mask is given). Anything else goes to transformers' SDPA unchanged.
"""

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

NAME = "tinymorph_sdpa"


def decode_sdpa(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    """Attention of `query` (B, H, T, D) over `key`, `value` (B, H_kv, S, D) with `attention_mask`
    (B, 1, T, S) or None; returns (B, T, H, D) as transformers' attention functions do. For T = 1
    with H_kv < H and a mask shared by the heads, the query heads become query rows of their key
    /value head; otherwise `sdpa_attention_forward`."""
    groups = int(getattr(module, "num_key_value_groups", 1))
    batch, heads, q_len, dim = query.shape
    shared_mask = attention_mask is None or attention_mask.shape[1] == 1
    if q_len != 1 or groups == 1 or not shared_mask or kwargs.get("softcap") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)  # type: ignore[arg-type]
    packed = query.reshape(batch, heads // groups, groups, dim)  # (B, H_kv, G, D): one token's query heads
    out = torch.nn.functional.scaled_dot_product_attention(
        packed, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling
    )  # (B, H_kv, G, D)
    return out.reshape(batch, 1, heads, value.shape[-1]), None  # (B, T=1, H, D)


AttentionInterface.register(NAME, decode_sdpa)
ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)


def use_decode_attention(model: torch.nn.Module) -> bool:
    """Switch `model` to `decode_sdpa` if it runs transformers' SDPA now; True if switched. The
    results are the same up to float rounding (`tests/lm/test_attention.py`)."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    model.set_attn_implementation(NAME)  # type: ignore[operator]
    return True
