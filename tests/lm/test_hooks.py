"""sae-lens / TransformerLens hook names map to Hugging Face decoder-layer outputs, explicitly."""

import pytest
import torch

from tinymorph.errors import SAEError
from tinymorph.lm.hooks import hook_name_for_layer, layer_for_hook, run_to_layer
from tinymorph.lm.model import decoder_layers


@pytest.mark.parametrize(
    ("hook", "layer"),
    [
        ("blocks.12.hook_resid_post", 12),
        ("blocks.12.hook_resid_pre", 11),
        ("blocks.1.hook_resid_pre", 0),
        ("model.layers.12", 12),
        ("model.layers.3.output", 3),
        ("layers.7", 7),
    ],
)
def test_residual_hook_names_map_to_a_layer_output(hook, layer):
    assert layer_for_hook(hook) == layer


@pytest.mark.parametrize("hook", ["blocks.12.attn.hook_z", "blocks.3.hook_mlp_out", "blocks.0.hook_resid_pre", "embed"])
def test_other_hook_points_are_refused_with_a_reason(hook):
    with pytest.raises(SAEError, match=r"residual stream|embedding"):
        layer_for_hook(hook)


def test_names_round_trip():
    assert layer_for_hook(hook_name_for_layer(5)) == 5


def test_resid_post_of_layer_l_is_hidden_state_l_plus_1(tiny_lm):
    """transformers' hidden_states[L + 1] is the output of model.layers[L] (for L below the last
    layer, whose entry has the final norm applied): run_to_layer must return exactly that."""
    ids = tiny_lm.tokenizer("The sea was calm.", return_tensors="pt").input_ids
    with torch.no_grad():
        states = tiny_lm.model(ids, output_hidden_states=True).hidden_states
    for layer in range(3):
        got = run_to_layer(tiny_lm.model, decoder_layers(tiny_lm.model), layer, ids)
        torch.testing.assert_close(got, states[layer + 1])
    assert layer_for_hook("blocks.2.hook_resid_pre") == 1  # = hidden_states[2], the input of layer 2
