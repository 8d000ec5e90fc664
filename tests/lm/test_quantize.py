"""Int8 decode weights: close to the model's own for the few rows of a decode step, exact for the
prefill, swapped into every linear layer (the unembedding too)."""

from pathlib import Path

import torch

from tinymorph.lm.model import load_model
from tinymorph.lm.quantize import DECODE_ROWS, Int8DecodeLinear, int8_everywhere


def test_small_inputs_use_int8_weights_and_large_ones_the_originals():
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 96, bias=False)
    q = Int8DecodeLinear(linear)
    small, large = torch.randn(3, 64), torch.randn(DECODE_ROWS + 1, 64)
    with torch.no_grad():
        approx, exact = q(small), linear(small)
        assert not torch.equal(approx, exact)  # the int8 path ran
        torch.testing.assert_close(approx, exact, atol=0.02 * float(exact.abs().max()), rtol=0.0)
        assert torch.equal(q(large), linear(large))  # the prefill keeps the model's own weights
        assert q.qweight.dtype == torch.int8 and int(q.qweight.abs().max()) == 127


def test_a_model_loaded_for_int8_decoding_swaps_every_linear_and_stays_close(tiny_manifest):
    plain = load_model(tiny_manifest, Path("/nonexistent"), lambda *_: None)
    fast = load_model(tiny_manifest, Path("/nonexistent"), lambda *_: None, int8_decode=True)
    wrapped = [m for m in fast.model.modules() if isinstance(m, Int8DecodeLinear)]
    linears = [m for m in fast.model.modules() if type(m) is torch.nn.Linear]
    assert len(wrapped) == len(linears) == 4 * 7 + 1  # q k v o gate up down per layer, and the unembedding
    assert isinstance(fast.model.get_output_embeddings(), Int8DecodeLinear)
    ids = torch.tensor([plain.tokenizer("<bos>The sea was calm").input_ids])
    with torch.no_grad():
        expected = plain.model(ids).logits[0, -1]
        torch.testing.assert_close(fast.model(ids).logits[0, -1], expected)  # long input: original weights
        with int8_everywhere(fast.model):
            quantized = fast.model(ids).logits[0, -1]
    assert not torch.equal(quantized, expected)
    assert torch.nn.functional.cosine_similarity(quantized, expected, dim=0) > 0.999
