"""Loading an SAE for a model: the shipped one, a local sae-lens folder, or the sae-lens registry.

Owns: turning an `SaeSource` (the `sae` setting, resolved once by `lm.manifest.resolve_sae`)
into a checked `LoadedSAE` (right model, right width, a
residual-stream hook point), and the SAE's encode / decode / decoder directions in float32.
Weights are read from safetensors only (sae-lens's disk format); no pickle. The registry path
downloads and so runs only with the explicit `allow_downloads`. No Textual, no store.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file

from tinymorph.domain import ModelManifest, SaeSource
from tinymorph.errors import NetworkDisabledError, SAEError
from tinymorph.lm.hooks import layer_for_hook
from tinymorph.lm.manifest import resolve_sae

if TYPE_CHECKING:
    from sae_lens import SAE


def _sae_lens() -> "type[SAE]":
    # sae-lens (and TransformerLens under it) takes ~3.5 s to import on a 2-core CPU: more than a
    # third of a worker's start. The SAE we ship loads without it (`native_topk`).
    from sae_lens import SAE

    return SAE


class NativeTopKSAE(torch.nn.Module):
    """sae-lens's inference `TopKSAE` for its disk format (cfg.json + sae_weights.safetensors)
    with `normalize_activations` "none", in plain torch: the same encode and decode (a test
    compares them with sae-lens's), without importing sae-lens. `cfg` has the fields tinymorph
    reads (d_in, d_sae, k, metadata.hook_name, metadata.model_name)."""

    W_enc: torch.nn.Parameter  # (d_in, d_sae)
    b_enc: torch.nn.Parameter  # (d_sae,)
    W_dec: torch.nn.Parameter  # (d_sae, d_in)
    b_dec: torch.nn.Parameter  # (d_in,)

    def __init__(self, cfg: SimpleNamespace, weights: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.cfg = cfg
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            setattr(self, name, torch.nn.Parameter(weights[name].float(), requires_grad=False))

    def hidden_pre(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d_in) -> (..., d_sae): the pre-activations TopK chooses from (times the decoder
        rows' norms when `rescale_acts_by_decoder_norm`)."""
        sae_in = x.float() - self.b_dec * self.cfg.apply_b_dec_to_input
        hidden_pre = sae_in @ self.W_enc + self.b_enc  # (..., d_sae)
        if self.cfg.rescale_acts_by_decoder_norm:
            hidden_pre = hidden_pre * self.W_dec.norm(dim=-1)
        return hidden_pre

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d_in) -> (..., d_sae): the k largest pre-activations, ReLU'd; zeros elsewhere."""
        return self.topk(self.hidden_pre(x))

    def topk(self, hidden_pre: torch.Tensor) -> torch.Tensor:
        """(..., d_sae) pre-activations -> (..., d_sae): the k largest, ReLU'd; zeros elsewhere."""
        top = hidden_pre.topk(self.cfg.k, dim=-1, sorted=False)
        return torch.zeros_like(hidden_pre).scatter(-1, top.indices, top.values.relu())

    def decode(self, acts: torch.Tensor) -> torch.Tensor:
        """(..., d_sae) -> (..., d_in)."""
        if self.cfg.rescale_acts_by_decoder_norm:
            acts = acts / self.W_dec.norm(dim=-1)
        return acts @ self.W_dec + self.b_dec


def native_topk(folder: Path) -> NativeTopKSAE | None:
    """The TopK SAE in `folder` loaded without sae-lens, or None when its cfg.json asks for
    something else (another architecture, activation normalization, reshaping): sae-lens loads
    those. Raises OSError / ValueError / KeyError for an unreadable folder, as sae-lens would."""
    cfg = json.loads((folder / "cfg.json").read_text(encoding="utf-8"))
    plain = (
        cfg.get("architecture") == "topk"
        and cfg.get("normalize_activations", "none") == "none"
        and cfg.get("reshape_activations", "none") == "none"
    )
    if not plain:
        return None
    meta = cfg.get("metadata", {})
    ns = SimpleNamespace(
        d_in=int(cfg["d_in"]), d_sae=int(cfg["d_sae"]), k=int(cfg["k"]),
        apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", True)),
        rescale_acts_by_decoder_norm=bool(cfg.get("rescale_acts_by_decoder_norm", False)),
        metadata=SimpleNamespace(hook_name=meta.get("hook_name"), model_name=meta.get("model_name")),
    )
    return NativeTopKSAE(ns, load_file(folder / "sae_weights.safetensors"))


@dataclass
class LoadedSAE:
    """An SAE ready to encode the residual stream after decoder layer `layer`."""

    sae: "SAE | NativeTopKSAE"
    layer: int
    """Decoder layer whose output the SAE reads (and where its features steer)."""
    sae_id: str
    """How presets and dashboards name this SAE: the shipped folder's name, RELEASE/ID for the
    registry, or the folder path for a local SAE."""
    model_name: str
    """The model the SAE was trained on, as its cfg.json names it ('' if it does not say)."""
    folder: Path | None
    """Where it was loaded from (None for the registry); feature data lives there."""

    @property
    def d_sae(self) -> int:
        return int(self.sae.cfg.d_sae)

    @property
    def d_in(self) -> int:
        return int(self.sae.cfg.d_in)

    @torch.no_grad()
    def encode(self, resid: torch.Tensor) -> torch.Tensor:
        """Feature activations (..., d_sae) float32 for residual-stream vectors (..., d_in)."""
        return self.sae.encode(resid.float())

    @torch.no_grad()
    def decode(self, acts: torch.Tensor) -> torch.Tensor:
        """Reconstruction (..., d_in) float32 from feature activations (..., d_sae)."""
        return self.sae.decode(acts.float())

    @torch.no_grad()
    def directions(self) -> torch.Tensor:
        """The decoder directions `W_dec` (d_sae, d_in), float32: row i is feature i's direction."""
        return self.sae.W_dec.float()

    def check_index(self, index: int) -> None:
        """Raise SAEError unless 0 <= index < d_sae."""
        if not 0 <= index < self.d_sae:
            raise SAEError(f"feature {index} does not exist; this SAE has features 0..{self.d_sae - 1}")


def _model_names(manifest: ModelManifest) -> set[str]:
    return {n.lower() for n in (manifest.name, manifest.hub_id, manifest.hub_id.split("/")[-1]) if n}


def load_sae(
    choice: str | SaeSource, manifest: ModelManifest, d_model: int, n_layers: int, *, allow_downloads: bool = False
) -> LoadedSAE:
    """Load and check the SAE named by `choice` for a model described by `manifest` with residual
    width `d_model` and `n_layers` decoder layers.

    `choice`: an SaeSource, or the `sae` setting itself ("default", a folder in sae-lens format,
    or RELEASE:ID from the sae-lens registry), resolved by `tinymorph.lm.manifest.resolve_sae`.
    Raises NetworkDisabledError for the registry without `allow_downloads`; SAEError when there
    is no SAE to load ("none"), it cannot be read, was trained on another model, has another
    `d_in`, or reads a hook point that is not on the residual stream or not in this model.
    """
    source = choice if isinstance(choice, SaeSource) else resolve_sae(choice, manifest, "")
    try:
        if source.folder is not None:
            folder = source.folder
            if not (folder / "cfg.json").is_file() or not (folder / "sae_weights.safetensors").is_file():
                if source.kind == "shipped":
                    raise SAEError(f"the shipped SAE {folder} is missing; reinstall tinymorph")
                raise SAEError(f"{folder} is not an SAE in sae-lens format (cfg.json + sae_weights.safetensors)")
            sae = native_topk(folder) or _sae_lens().load_from_disk(folder, device="cpu", dtype="float32")
        elif source.kind == "registry":
            if not allow_downloads:
                raise NetworkDisabledError(
                    f"loading {source.release}:{source.registry_id} downloads it from the Hugging Face Hub; "
                    "pass --allow-downloads to allow that"
                )
            sae = _sae_lens().from_pretrained(source.release, source.registry_id, device="cpu", dtype="float32")
        else:
            raise SAEError("no SAE was asked for (--sae none)")
    except (OSError, ValueError, KeyError, RuntimeError, json.JSONDecodeError) as exc:
        raise SAEError(f"cannot load the SAE {source.sae_id}: {exc}") from exc
    sae.eval()
    return _checked(
        LoadedSAE(sae, -1, source.sae_id, str(sae.cfg.metadata.model_name or ""), source.folder),
        manifest, d_model, n_layers,
    )


def _checked(loaded: LoadedSAE, manifest: ModelManifest, d_model: int, n_layers: int) -> LoadedSAE:
    if loaded.d_in != d_model:
        raise SAEError(
            f"the SAE {loaded.sae_id} reads vectors of width {loaded.d_in}; "
            f"{manifest.name}'s residual stream has {d_model}"
        )
    if loaded.model_name and loaded.model_name.lower() not in _model_names(manifest):
        raise SAEError(f"the SAE {loaded.sae_id} was trained on {loaded.model_name}, not on {manifest.name}")
    hook = loaded.sae.cfg.metadata.hook_name
    if not hook:
        raise SAEError(f"the SAE {loaded.sae_id} does not say which hook point it reads (metadata.hook_name)")
    layer = layer_for_hook(str(hook))
    if layer >= n_layers:
        raise SAEError(f"the SAE {loaded.sae_id} reads layer {layer}; {manifest.name} has {n_layers} decoder layers")
    loaded.layer = layer
    return loaded
