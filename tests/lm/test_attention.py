"""The decode attention (query heads packed per key/value head) gives what transformers' SDPA gives."""

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
