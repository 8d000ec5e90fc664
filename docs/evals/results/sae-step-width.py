"""One-off kept as the record of docs/steering.md's cost of a wider SAE (2026-12-06), not part of
the package: one training step (4,096 random activations, k = 48, 1% of latents dead so AuxK
runs, bf16 autocast, Adam) of tinymorph's sparse TopK training SAE at 16,384 and at 32,768
latents, interleaved in one process after a warm-up step each; prints the median of 5.
Run from the repository root with the venv's python."""
import statistics
import time

import torch
from sae_lens.saes.sae import TrainStepInput
from sae_lens.saes.topk_sae import TopKTrainingSAEConfig

from tinymorph.sae.sparse_topk import SparseTopKTrainingSAE

WIDTHS = (16384, 32768)
saes, optimizers, dead = {}, {}, {}
for width in WIDTHS:
    cfg = TopKTrainingSAEConfig(d_in=640, d_sae=width, k=48, apply_b_dec_to_input=True, dtype="float32")
    torch.manual_seed(0)
    saes[width] = SparseTopKTrainingSAE(cfg)
    optimizers[width] = torch.optim.Adam(saes[width].parameters(), lr=1e-4)
    dead[width] = torch.zeros(width, dtype=torch.bool)
    dead[width][::100] = True
x = torch.randn(4096, 640)  # (tokens, d_in)


def step(width: int) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = saes[width].training_forward_pass(TrainStepInput(
            sae_in=x, coefficients={}, dead_neuron_mask=dead[width], n_training_steps=0, is_logging_step=False))
    optimizers[width].zero_grad()
    out.loss.backward()
    optimizers[width].step()


times: dict[int, list[float]] = {w: [] for w in WIDTHS}
for width in WIDTHS:
    step(width)
for _ in range(5):
    for width in WIDTHS:
        t0 = time.perf_counter()
        step(width)
        times[width].append((time.perf_counter() - t0) * 1000)
for width, ms in times.items():
    print(f"{width} latents: {statistics.median(ms):.0f} ms a step ({', '.join(f'{t:.0f}' for t in ms)})")
