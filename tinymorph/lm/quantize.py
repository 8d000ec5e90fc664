"""Int8 weights for decoding: the small-batch forward passes that write the ghost text.

Owns: `Int8DecodeLinear`, a drop-in for `nn.Linear` that keeps the layer's own weights for large
inputs (the prefill, SAE tools) and multiplies small ones (<= `DECODE_ROWS` rows: the decode
steps of a few alternatives) with a per-output-channel int8 copy, and `quantize_for_decode`, which
swaps it into a model. Imports torch; no Textual, no store.

Why: decoding a few rows is bound by reading the weights from memory. On 2 CPU cores the bf16
unembedding of Gemma 3 270M (262,144 x 640) takes ~13 ms per step and the 18 layers' linears
~6 ms; weight-only int8 halves both (docs/benchmarks.md). Method: symmetric per-channel int8
weight-only quantization (as in LLM.int8's vector-wise scaling, Dettmers et al. 2022, without the
outlier split), computed by PyTorch's `aten._weight_int8pack_mm` kernel. For many rows that kernel
is ~3x slower than the bf16 GEMM, so the prefill keeps the original weights.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch

DECODE_ROWS = 8
"""Inputs with at most this many rows (batch x tokens) use the int8 weights."""
QUANTIZE_BLOCK_ROWS = 4096


class Int8DecodeLinear(torch.nn.Module):
    """`nn.Linear` (no bias) with an int8 copy of its weight for small inputs.

    weight (N, K) -> `qweight` (N, K) int8 and `scales` (N,) in the weight's dtype, with
    W[n] ~= qweight[n] * scales[n] and |qweight| <= 127. Input (..., K) -> output (..., N).
    Raises ValueError for a Linear with a bias (Gemma's linears have none).
    """

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        if linear.bias is not None:
            raise ValueError("Int8DecodeLinear takes linear layers without bias")
        self.linear = linear
        weight = linear.weight.detach()  # (N, K)
        qweight = torch.empty(weight.shape, dtype=torch.int8)
        scales = torch.empty(weight.shape[0], dtype=torch.float32)  # (N,)
        # In blocks of rows that stay in the CPU's cache: for the 262,144 x 640 unembedding this
        # takes 0.25 s on one core, against 2.4 s for the same arithmetic over the whole matrix
        # at once (which also made a 670 MB float copy). The same values either way.
        for start in range(0, weight.shape[0], QUANTIZE_BLOCK_ROWS):
            block = weight[start : start + QUANTIZE_BLOCK_ROWS].to(torch.float32, copy=True)  # never the weight itself
            block_scales = (block.abs().amax(dim=1) / 127).clamp_(min=1e-12)
            qweight[start : start + QUANTIZE_BLOCK_ROWS] = block.div_(block_scales[:, None]).round_().clamp_(-127, 127)
            scales[start : start + QUANTIZE_BLOCK_ROWS] = block_scales
        self.register_buffer("qweight", qweight)
        self.register_buffer("scales", scales.to(linear.weight.dtype))
        self.force: bool | None = None
        """None: choose by input size; True / False: always / never the int8 weights."""

    @property
    def weight(self) -> torch.Tensor:
        """The original weight (N, K): what tied embeddings and hooks expect to find."""
        return self.linear.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        use_int8 = self.force if self.force is not None else rows <= DECODE_ROWS
        if not use_int8 or x.dtype != self.scales.dtype:
            return self.linear(x)
        out = torch.ops.aten._weight_int8pack_mm(x.reshape(rows, x.shape[-1]), self.qweight, self.scales)  # (rows, N)
        return out.reshape(*x.shape[:-1], out.shape[-1])


def quantize_for_decode(model: torch.nn.Module) -> int:
    """Swap every bias-free `nn.Linear` of `model` (attention, MLP and the unembedding) for an
    `Int8DecodeLinear`, in place. Returns how many were swapped. Only for CPU models: the int8
    kernel used is PyTorch's CPU one."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear) and child.bias is None:
                setattr(parent, name, Int8DecodeLinear(child))
                swapped += 1
    return swapped


@contextmanager
def int8_everywhere(model: torch.nn.Module, on: bool = True) -> Iterator[None]:
    """Make every `Int8DecodeLinear` of `model` use (or, with `on=False`, not use) its int8
    weights for all input sizes while open: to measure the int8 model's perplexity on whole
    sequences."""
    layers = [m for m in model.modules() if isinstance(m, Int8DecodeLinear)]
    for layer in layers:
        layer.force = on
    try:
        yield
    finally:
        for layer in layers:
            layer.force = None
