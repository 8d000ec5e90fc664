"""Attention for Gemma 3 270M's shapes on CPU, registered with transformers' public
`AttentionInterface` as "tinymorph_sdpa".

Owns: `packed_sdpa` and `use_packed_attention`. Imports torch and transformers; no Textual, no
store.

Why: Gemma 3 270M has 4 query heads and 1 key/value head, and transformers hands PyTorch's SDPA
shapes its CPU kernels serve slowly.
- **Decode steps.** For one new token, transformers calls SDPA with `enable_gqa=True` when there
  is no mask, which on CPU runs the flash kernel with a query length of 1: ~1.2 ms per layer for 3
  rows at a 455-token context on 2 cores, 24 ms of a decode step. The query heads that share a
  key/value head can instead be laid out as that head's query positions, (B, H, 1, D) ->
  (B, H_kv, H / H_kv, D), with no causal mask among them (they are one token): the same result,
  ~0.1 ms (the trick transformers' own `pack_gqa` uses when a mask is given).
- **Prefills** (one sequence, several tokens). SDPA's CPU flash kernel takes ~7.7 ms per layer
  for a 511-token prefill in bf16 on 2 cores (torch profiler), a third of the whole pass; two
  matrix products with the query heads packed the same way, (B, H_kv, H / H_kv * T, D), and a
  softmax between them take ~2.6 ms (`_packed_attention`). The scores are rounded to the model's dtype before the
  softmax, as transformers' eager attention rounds them (`eager_attention_forward`), and the
  softmax accumulates in float32.
Anything else goes to transformers' SDPA unchanged.
"""

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

NAME = "tinymorph_sdpa"


def packed_sdpa(
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
    (B, 1, T, S) or None; returns (B, T, H, D) as transformers' attention functions do. With
    H_kv < H and a mask shared by the heads, the query heads become query rows of their key/value
    head: for T = 1 through SDPA, for one sequence of T > 1 with a boolean mask through
    `_packed_attention`; otherwise `sdpa_attention_forward`."""
    groups = int(getattr(module, "num_key_value_groups", 1))
    batch, heads, q_len, dim = query.shape
    shared_mask = attention_mask is None or attention_mask.shape[1] == 1
    if groups == 1 or not shared_mask or kwargs.get("softcap") is not None or dropout:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)  # type: ignore[arg-type]
    if q_len > 1:
        # One sequence: no row is fully masked (that needs padding), so no softmax row is all
        # -inf. Batches (padded) and float masks keep SDPA. transformers leaves the mask out
        # (None) when it is plain causal over as many keys as queries (`masking_utils.sdpa_mask`).
        if attention_mask is None and key.shape[2] == q_len and getattr(module, "is_causal", True):
            causal = torch.ones(q_len, q_len, dtype=torch.bool, device=query.device).tril()  # (T, S)
            attention_mask = causal[None, None]  # (1, 1, T, S)
        if batch != 1 or attention_mask is None or attention_mask.dtype != torch.bool:
            return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)  # type: ignore[arg-type]
        return _packed_attention(query, key, value, attention_mask, scaling), None
    packed = query.reshape(batch, heads // groups, groups, dim)  # (B, H_kv, G, D): one token's query heads
    out = torch.nn.functional.scaled_dot_product_attention(
        packed, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling
    )  # (B, H_kv, G, D)
    return out.reshape(batch, 1, heads, value.shape[-1]), None  # (B, T=1, H, D)


def _packed_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor, scaling: float | None
) -> torch.Tensor:
    """softmax(Q K^T * scaling, masked) V for `query` (B, H, T, D), `key` (B, H_kv, S, D), `value`
    (B, H_kv, S, Dv) and a boolean `mask` (B, 1, T, S) (True: attend), computed per key/value head
    with its query heads stacked; returns (B, T, H, Dv). Every row of `mask` must keep a key."""
    batch, heads, q_len, dim = query.shape
    kv_heads, keys = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    scale = dim**-0.5 if scaling is None else scaling
    packed = (query * scale).reshape(batch, kv_heads, groups * q_len, dim)  # (B, H_kv, G*T, D)
    scores = (packed @ key.transpose(-1, -2)).view(batch, kv_heads, groups, q_len, keys)  # (B, H_kv, G, T, S)
    scores.masked_fill_(~mask[:, :, None], float("-inf"))  # (B, 1, 1, T, S) broadcast over heads
    probs = torch.softmax(scores, dim=-1)  # float32 inside, rounded to the input's dtype
    out = probs.view(batch, kv_heads, groups * q_len, keys) @ value  # (B, H_kv, G*T, Dv)
    out = out.view(batch, kv_heads, groups, q_len, value.shape[-1])  # head h = kv_head * G + g
    return out.permute(0, 3, 1, 2, 4).reshape(batch, q_len, heads, value.shape[-1])  # (B, T, H, Dv)


AttentionInterface.register(NAME, packed_sdpa)
ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)


def use_packed_attention(model: torch.nn.Module) -> bool:
    """Switch `model` to `packed_sdpa` if it runs transformers' SDPA now; True if switched. The
    results are the same up to float rounding (`tests/lm/test_attention.py`)."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    model.set_attn_implementation(NAME)  # type: ignore[operator]
    return True
