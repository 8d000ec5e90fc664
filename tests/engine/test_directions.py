"""Directions the writer makes: "more like this" and contrast pairs, on the tiny model."""

import json

import pytest
import torch

from tinymorph.cli import main
from tinymorph.engine.directions import REFERENCE_TEXT, contrast_direction, mean_activation, more_like_this, read_pairs
from tinymorph.errors import SteeringError
from tinymorph.lm.model import decoder_layers
from tinymorph.paths import package_data_dir
from tinymorph.presets import read_direction, shipped_directions

PAIRS = """
name = "sea - land"
[[pairs]]
positive = "waves and salt"
negative = "fields and hills"
[[pairs]]
positive = "the ship sailed"
negative = "the cart rolled"
"""


def test_mean_activation_is_the_mean_over_non_bos_tokens(tiny_lm):
    text = "the boats came home"
    ids = [tiny_lm.tokenizer.bos_token_id, *tiny_lm.tokenizer(text, add_special_tokens=False).input_ids]
    with torch.no_grad():
        seen = []
        h = decoder_layers(tiny_lm.model)[2].register_forward_hook(lambda _m, _a, out: seen.append(out))
        tiny_lm.model(torch.tensor([ids]))
        h.remove()
    mean, n = mean_activation(tiny_lm, [text])
    assert n == len(ids) - 1
    torch.testing.assert_close(mean, seen[0][0, 1:].mean(0))
    vector, _ = more_like_this(tiny_lm, text)
    torch.testing.assert_close(vector, mean - mean_activation(tiny_lm, [REFERENCE_TEXT])[0])


def test_contrast_pairs_give_the_mean_difference(tiny_lm, tmp_path):
    (tmp_path / "p.toml").write_text(PAIRS)
    pairs = read_pairs(tmp_path / "p.toml")
    direction = contrast_direction(tiny_lm, pairs)
    pos, _ = mean_activation(tiny_lm, list(pairs.positive))
    neg, _ = mean_activation(tiny_lm, list(pairs.negative))
    torch.testing.assert_close(direction, pos - neg)
    (tmp_path / "bad.toml").write_text("name = 'x'\n")
    with pytest.raises(SteeringError, match="bad contrast-pair file"):
        read_pairs(tmp_path / "bad.toml")


def test_the_build_command_writes_json_the_ui_can_read(tiny_model_dir, tmp_path):
    (tmp_path / "sea.toml").write_text(PAIRS)
    assert main(["directions", "build", str(tmp_path / "sea.toml"), "--model", str(tiny_model_dir)]) == 0
    made = read_direction(tmp_path / "sea.json")
    assert made.name == "sea - land" and len(made.vector) == 64 and made.layer == 2
    assert json.loads((tmp_path / "sea.json").read_text())["source"] == "sea.toml"


def test_the_shipped_tonality_directions_fit_the_embedded_model():
    found = shipped_directions(package_data_dir("models") / "directions", "google/gemma-3-270m", 640)
    assert {d.name for d in found} >= {"formal - casual", "positive - negative", "concrete - abstract"}
    assert all(d.layer == 12 for d in found)
