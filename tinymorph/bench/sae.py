"""`tinymorph bench sae`: what the SAE costs, with the real model and the shipped SAE.

Owns: the SAE benchmark (never a timed unit test). Prints and writes docs/benchmarks-sae.md:
- activation throughput at the hook layer (tokens/s; the model runs only up to that layer), next
  to the full model's forward throughput, in the same run;
- the shipped SAE's training wall time, as recorded in its tinymorph.json when it was trained;
- the feature lens per suggestion request: one SAE encode of the last 6 tokens, and the prefill
  with and without the lens hook (a ratio from the same run);
- one training step (4,096 tokens, 16,384 latents, k = 48, bf16 autocast, forward, backward and
  Adam) of sae-lens's dense TopK training SAE and of ours (`sae.sparse_topk`), interleaved.
Prose comes from text built into the code: no corpus needed.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

from rich.console import Console

from tinymorph.lm.model import CALIBRATION_TEXT

PROSE = (CALIBRATION_TEXT + " ") * 12


def _median_ms(fn, reps: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def train_step_ms(
    d_in: int = 640, d_sae: int = 16384, k: int = 48, batch: int = 4096, reps: int = 5
) -> dict[str, float]:
    """Median ms of one training step (forward, backward, Adam; bf16 autocast, as `sae train`
    runs) on random activations (batch, d_in), with 1% of latents dead (AuxK on), for sae-lens's
    dense `TopKTrainingSAE` ("dense") and `SparseTopKTrainingSAE` ("sparse"), same weights,
    interleaved after one warm-up step each."""
    import torch
    from sae_lens.saes.sae import TrainStepInput
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    from tinymorph.sae.sparse_topk import SparseTopKTrainingSAE

    cfg = TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=k, apply_b_dec_to_input=True, dtype="float32")
    torch.manual_seed(0)
    saes = {"dense": TopKTrainingSAE(cfg), "sparse": SparseTopKTrainingSAE(cfg)}
    saes["sparse"].load_state_dict(saes["dense"].state_dict())
    optimizers = {name: torch.optim.Adam(sae.parameters(), lr=1e-4) for name, sae in saes.items()}
    x = torch.randn(batch, d_in)
    dead = torch.zeros(d_sae, dtype=torch.bool)
    dead[:: 100] = True

    def step(name: str) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = saes[name].training_forward_pass(
                TrainStepInput(sae_in=x, coefficients={}, dead_neuron_mask=dead, n_training_steps=0,
                               is_logging_step=False))
        optimizers[name].zero_grad()
        out.loss.backward()
        optimizers[name].step()

    times: dict[str, list[float]] = {name: [] for name in saes}
    for name in saes:
        step(name)
    for _ in range(reps):
        for name in saes:
            times[name].append(_median_ms(lambda n=name: step(n), 1))
    return {name: statistics.median(v) for name, v in times.items()}


def run_sae_bench(argv: list[str]) -> int:
    import torch

    from tinymorph.engine.generate import Generator
    from tinymorph.engine.lens import LENS_TOKENS
    from tinymorph.lm.hooks import run_to_layer
    from tinymorph.lm.manifest import resolve_model
    from tinymorph.lm.model import decoder_layers, load_model
    from tinymorph.paths import app_paths
    from tinymorph.sae.loading import load_sae

    parser = argparse.ArgumentParser(prog="tinymorph bench sae", description="What the SAE costs.")
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--sae", default="default")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks-sae.md"))
    args = parser.parse_args(argv)
    console = Console()
    manifest = resolve_model(args.model)
    lm = load_model(manifest, app_paths().models_cache, lambda *_: None)
    sae = load_sae(args.sae, manifest, lm.d_model, int(lm.model.config.num_hidden_layers))
    layers = decoder_layers(lm.model)
    ids = lm.tokenizer(PROSE, add_special_tokens=False).input_ids
    batch = torch.tensor([[lm.tokenizer.bos_token_id, *ids[i * 255 : (i + 1) * 255]] for i in range(4)])  # (4, 256)
    with torch.no_grad():
        to_layer = _median_ms(lambda: run_to_layer(lm.model, layers, sae.layer, batch), args.reps)
        full = _median_ms(lambda: lm.model(input_ids=batch, use_cache=False), args.reps)
    tokens = batch.numel()
    context = ids[:510]

    def prefill(gen: Generator) -> None:
        gen._prefix = None
        gen.prefill([lm.tokenizer.bos_token_id, *context], ())

    with torch.no_grad():
        plain, lensed = Generator(lm, 511), Generator(lm, 511, sae)
        cold: dict[str, list[float]] = {name: [] for name in ("plain", "lens")}
        for _ in range(args.reps):  # interleaved: noise hits both alike
            cold["plain"].append(_median_ms(lambda: prefill(plain), 1))
            cold["lens"].append(_median_ms(lambda: prefill(lensed), 1))
        resid = torch.randn(LENS_TOKENS, lm.d_model) * lm.median_norm / lm.d_model**0.5
        encode = _median_ms(lambda: sae.encode(resid), 50)
    steps = train_step_ms(lm.d_model, reps=args.reps)
    meta_path = (sae.folder or Path()) / "tinymorph.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    cold_plain, cold_lens = statistics.median(cold["plain"]), statistics.median(cold["lens"])
    lines = [
        "# SAE benchmark",
        "",
        f"`tinymorph bench sae` on this machine ({torch.get_num_threads()} torch threads), model "
        f"`{manifest.name}` (bf16), SAE `{sae.sae_id}` ({sae.d_sae} features, layer {sae.layer}). "
        "Rerun to reproduce; compare rows of the same run.",
        "",
        "## Activations for training",
        "",
        "| forward pass, batch 4 x 256 tokens | ms | tokens/s |",
        "|---|---:|---:|",
        f"| up to layer {sae.layer} (hook stops the pass) | {to_layer:.0f} | {tokens / to_layer * 1000:,.0f} |",
        f"| whole model with logits | {full:.0f} | {tokens / full * 1000:,.0f} |",
        "",
        "## Training the shipped SAE",
        "",
        f"Recorded in `tinymorph.json` when it was trained: {meta.get('training_tokens', 0):,} tokens in "
        f"{meta.get('training_seconds', 0) / 60:.0f} min of training wall time (activations included), "
        f"command `{meta.get('command', '?')}`.",
        "",
        "## The feature lens, per suggestion request",
        "",
        "| step | ms |",
        "|---|---:|",
        f"| SAE encode of the last {LENS_TOKENS} tokens | {encode:.2f} |",
        f"| cold prefill of 511 tokens, no SAE | {cold_plain:.0f} |",
        f"| cold prefill of 511 tokens, with the lens hook and encode | {cold_lens:.0f} "
        f"({cold_lens / cold_plain:.2f}x) |",
        "",
        "## One training step",
        "",
        "4,096 random activations, 16,384 latents, k = 48, 1% of latents dead (AuxK on), bf16 autocast; "
        "forward, backward and Adam; interleaved, median of the runs.",
        "",
        "| training SAE | ms per step | tokens/s (SAE step alone) |",
        "|---|---:|---:|",
        f"| sae-lens `TopKTrainingSAE` (dense) | {steps['dense']:.0f} | {4096 / steps['dense'] * 1000:,.0f} |",
        f"| `SparseTopKTrainingSAE` (chosen latents only) | {steps['sparse']:.0f} "
        f"({steps['sparse'] / steps['dense']:.2f}x) | {4096 / steps['sparse'] * 1000:,.0f} |",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    console.print("\n".join(lines))
    return 0
