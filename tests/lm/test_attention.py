"""The attention with query heads packed per key/value head (decode steps and prefills) gives what
transformers' SDPA gives."""

from pathlib import Path

import torch
from transformers import DynamicCache

from tinymorph.lm.attention import NAME
from tinymorph.lm.model import load_model


def test_decode_steps_match_transformers_sdpa_and_the_model_uses_it(tiny_manifest):
    lm = load_model(tiny_manifest, Path("/nonexistent"), lambda *_: None)
    assert lm.model.config._attn_implementation == NAME
    ids = lm.tokenizer("<bos>The sea was calm and the boats", return_tensors="pt").input_ids  # (1, T)
    results = []
    for implementation in (NAME, "sdpa"):
        lm.model.set_attn_implementation(implementation)
        with torch.no_grad():
            cache = DynamicCache(config=lm.model.config)
            lm.run(ids, cache)
            cache.batch_repeat_interleave(3)
            steps = [lm.run(torch.tensor([[5], [17], [23]]), cache), lm.run(torch.tensor([[8], [9], [10]]), cache)]
        results.append(torch.stack(steps))  # (2, 3, V)
    lm.model.set_attn_implementation(NAME)
    torch.testing.assert_close(results[0], results[1], atol=1e-5, rtol=1e-5)
    assert lm.model.config.num_attention_heads > lm.model.config.num_key_value_heads  # grouped: the packed path ran


def test_prefills_match_transformers_sdpa_with_and_without_a_cache(tiny_manifest, monkeypatch):
    import tinymorph.lm.attention as attention

    lm = load_model(tiny_manifest, Path("/nonexistent"), lambda *_: None)
    packed_calls = []
    real = attention._packed_attention
    monkeypatch.setattr(attention, "_packed_attention", lambda *a: packed_calls.append(1) or real(*a))
    text = "<bos>The sea was calm and the boats lay still in the harbour all night"
    ids = lm.tokenizer(text, return_tensors="pt").input_ids  # (1, T): longer than the 32-token window
    assert ids.shape[1] > lm.model.config.sliding_window
    results = []
    for implementation in (NAME, "sdpa"):
        lm.model.set_attn_implementation(implementation)
        with torch.no_grad():
            short = lm.run(ids[:, :20], DynamicCache(config=lm.model.config), logits=True)[0]  # causal, no mask
            cache = DynamicCache(config=lm.model.config)
            long = lm.run(ids[:, :-3], cache, logits=True)[0]  # the window cuts: a boolean mask
            extended = lm.run(ids[:, -3:], cache, logits=True)[0]  # 3 queries over a cache
            batch = lm.model(input_ids=ids[:, :12].repeat(2, 1)).logits[:, -1]  # (2, V): two rows keep SDPA
        results.append(torch.stack([short, long, extended, batch[0], batch[1]]))
    lm.model.set_attn_implementation(NAME)
    torch.testing.assert_close(results[0], results[1], atol=1e-5, rtol=1e-5)
    # The packed path ran for the three one-sequence passes, on every layer (none for the batch).
    assert len(packed_calls) == 3 * lm.model.config.num_hidden_layers


def test_packed_attention_keeps_each_query_head_with_its_key_value_head():
    from tinymorph.lm.attention import _packed_attention

    torch.manual_seed(0)
    # 2 key/value heads with 3 query heads each
    query, key, value = torch.randn(1, 6, 5, 8), torch.randn(1, 2, 9, 8), torch.randn(1, 2, 9, 4)
    mask = torch.ones(5, 9, dtype=torch.bool).tril(4)[None, None]  # (1, 1, T, S): 5 queries after 4 cached keys
    want = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, scale=0.3, enable_gqa=True
    ).transpose(1, 2)  # (1, T, H, Dv)
    torch.testing.assert_close(_packed_attention(query, key, value, mask, 0.3), want)
