"""Directions the writer makes: "more like this" from a selection, and contrast pairs.

Owns: mean residual-stream activations at the hook layer over a text, the difference of two such
means, and the shipped direction files (JSON: name, model, layer, the vector). Method: the mean
difference of activations, as in contrastive activation addition (Rimsky et al. 2024, "Steering
Llama 2 via Contrastive Activation Addition") and ActAdd (Turner et al. 2023), taken over all
non-BOS tokens of free text rather than at one answer token. Imports torch; no Textual, no store.
"""

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

import torch

from tinymorph.errors import SteeringError
from tinymorph.lm.model import CALIBRATION_TEXT, LoadedModel, decoder_layers

REFERENCE_TEXT = CALIBRATION_TEXT
"""The reference a "more like this" selection is compared against: plain everyday prose."""


def with_bos(lm: LoadedModel, text: str) -> list[int]:
    """BOS + the tokens of `text`, as the editor feeds the model."""
    return [lm.tokenizer.bos_token_id, *lm.tokenizer(text, add_special_tokens=False).input_ids]


@torch.no_grad()
def mean_activation(lm: LoadedModel, texts: list[str], layer: int | None = None) -> tuple[torch.Tensor, int]:
    """Mean residual stream (d,) float32 after decoder layer `layer` (default: the hook layer)
    over the non-BOS tokens of `texts`, and the number of tokens averaged.
    Raises SteeringError if the texts hold no token."""
    layer = lm.hook_layer if layer is None else layer
    captured: list[torch.Tensor] = []
    handle = decoder_layers(lm.model)[layer].register_forward_hook(
        lambda _m, _a, out: captured.append(out[0] if isinstance(out, tuple) else out)
    )
    total, count = torch.zeros(lm.d_model), 0
    try:
        for text in texts:
            tokens = with_bos(lm, text)
            ids = torch.tensor([tokens[:1] + tokens[1:][-510:]])  # (1, T): BOS + the last 510 tokens
            captured.clear()
            lm.model(input_ids=ids, use_cache=False)
            resid = captured[0][0, 1:].float()  # (T-1, d), BOS dropped
            total += resid.sum(0)
            count += resid.shape[0]
    finally:
        handle.remove()
    if count == 0:
        raise SteeringError("the text holds no token to take a direction from")
    return total / count, count


def more_like_this(lm: LoadedModel, selection: str) -> tuple[torch.Tensor, int]:
    """mean(selection) - mean(REFERENCE_TEXT) at the hook layer: (d,) and the selection's tokens."""
    selected, n = mean_activation(lm, [selection])
    reference, _ = mean_activation(lm, [REFERENCE_TEXT])
    return selected - reference, n


@dataclass(frozen=True)
class ContrastPairs:
    """A TOML file of contrast pairs: `name`, then `[[pairs]]` with `positive` and `negative`."""

    name: str
    positive: tuple[str, ...]
    negative: tuple[str, ...]


def read_pairs(path: Path) -> ContrastPairs:
    """Raises SteeringError for a missing or malformed file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        pairs = data["pairs"]
        result = ContrastPairs(str(data["name"]), tuple(str(p["positive"]) for p in pairs),
                               tuple(str(p["negative"]) for p in pairs))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise SteeringError(f"bad contrast-pair file {path}: {exc}") from None
    if not result.positive:
        raise SteeringError(f"{path} has no [[pairs]]")
    return result


def contrast_direction(lm: LoadedModel, pairs: ContrastPairs) -> torch.Tensor:
    """mean(positive) - mean(negative) at the hook layer: (d,) float32."""
    return mean_activation(lm, list(pairs.positive))[0] - mean_activation(lm, list(pairs.negative))[0]


def save_direction(path: Path, name: str, model: str, layer: int, vector: torch.Tensor, source: str) -> None:
    """Write a direction file (JSON, no pickle)."""
    record = {"name": name, "model": model, "layer": layer, "source": source,
              "direction": [round(float(x), 6) for x in vector]}
    path.write_text(json.dumps(record), encoding="utf-8")
