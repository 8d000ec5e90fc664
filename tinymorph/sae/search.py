"""Feature search, the half that needs the model: which features fire on a piece of text.

Owns: running text through the model up to the SAE's layer and ranking features by how strongly
they fire relative to their own maximum on held-out text. The text half (labels, contexts) is
`features.text_scores`; `features.fuse` merges both. No Textual, no store.
"""

import math

import torch

from tinymorph.features import FeatureData, SearchHit, fuse, steer_scores, text_scores
from tinymorph.lens_table import floored_max_act
from tinymorph.lm.hooks import run_to_layer
from tinymorph.lm.model import LoadedModel, decoder_layers
from tinymorph.sae.loading import LoadedSAE


@torch.no_grad()
def feature_activations(lm: LoadedModel, sae: LoadedSAE, text: str) -> torch.Tensor:
    """SAE feature activations (T, d_sae) for the tokens of `text` (BOS excluded)."""
    ids = torch.tensor([[lm.tokenizer.bos_token_id, *lm.tokenizer(text, add_special_tokens=False).input_ids]])
    resid = run_to_layer(lm.model, decoder_layers(lm.model), sae.layer, ids)  # (1, T+1, d)
    return sae.encode(resid[0, 1:])  # (T, F)


def activation_scores(
    lm: LoadedModel, sae: LoadedSAE, data: FeatureData, text: str, limit: int = 50
) -> dict[int, float]:
    """The `limit` features most active on `text`, scored by max activation over its tokens as a
    fraction of the feature's max on held-out text, times an inverse-density weight
    ln(1/density) / ln(10^4) (as idf weights words: a feature that fires on 1 token in 10^4 says
    more about the text than one firing on 1 in 30). Dense features (active on > 10% of tokens)
    fire on nearly anything and are left out."""
    acts = feature_activations(lm, sae, text)
    if acts.shape[0] == 0:
        return {}
    peak = acts.max(dim=0).values  # (F,)
    max_act = torch.tensor([floored_max_act(f) for f in data.features])
    density = torch.tensor([max(f.density, 1e-6) for f in data.features])
    idf = (1 / density).log() / math.log(1e4)  # (F,)
    dense = torch.tensor([f.dense for f in data.features])
    relative = torch.where(dense | (peak <= 0), torch.zeros_like(peak), (peak / max_act).clamp(max=1) * idf)
    best = relative.topk(min(limit, relative.numel()))
    return {int(i): float(v) for i, v in zip(best.indices, best.values, strict=False) if v > 0}


def search_features(
    lm: LoadedModel | None, sae: LoadedSAE | None, data: FeatureData, query: str, limit: int = 10
) -> list[SearchHit]:
    """Features matching `query` by their labels and contexts and, when a model and SAE are given,
    by firing on the query itself, and by promoting the query's words with a positive output
    score (`features.steer_scores`); the rankings merged by reciprocal-rank fusion."""
    by_activation = activation_scores(lm, sae, data, query) if lm is not None and sae is not None else {}
    return fuse(text_scores(data, query), by_activation, limit=limit, steering=steer_scores(data, query))
