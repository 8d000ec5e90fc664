"""Which SAE features steer? Measured by steering with each one: the output score of every
feature, and a probe of whether the text written while steering with a candidate has its words.

Owns: `output_scores`, `probe_word_rates` and `judged_words` (documented there). Output score method: the
"output score" of Arad, Mueller & Belinkov 2025 ("SAEs Are Good for Steering - If You Select
the Right Features"), in tinymorph's variant: each feature's
decoder direction `W_dec[i]` is added at the hook layer (strength × median residual norm, every
position but BOS, exactly as the sliders do) in one forward pass over a few short prompts, and
the score is how much next-token probability moves onto the words the feature's logit lens
promotes: its first `LOGIT_TOKENS` word tokens (ASCII letters only, as in the labels)
among its top `CANDIDATES` tokens through the final norm and unembedding. Words, because a
writer steers toward words, and because with Gemma's 262k multilingual vocabulary many
features' top logit-lens tokens are fragments of other scripts: a feature that moves
probability onto those scores high on all tokens and steers into noise. Features that
detect a pattern in the input ("input features") score near 0 even though they fire on the
topic; features with a readable effect on the output score high. Arad et al. find that keeping
only high-output-score features makes SAE steering 2-3x better. No Textual, no store.
"""

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from tinymorph.features import FeatureInfo
from tinymorph.labels import writes, writes_words
from tinymorph.lm.model import LoadedModel, cache_keyword, decoder_layers
from tinymorph.lm.steering import Steering, steered
from tinymorph.sae.feature_data import LOGIT_TOKENS, logit_effects
from tinymorph.sae.loading import LoadedSAE

SCORE_STRENGTH = 0.2
"""Strength (residual-norm multiples) at which features are scored: the sliders' default."""
CANDIDATES = 64
"""Top logit-lens tokens searched for the feature's promoted words."""


def word_tokens(tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """(V,) bool: which token ids are words (ASCII letters only, once the SentencePiece space
    marker is dropped), e.g. " stone" and "ly" but not "," or "了"."""
    words = (str(p).replace("\u2581", "") for p in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))))
    return torch.tensor([w.isascii() and w.isalpha() for w in words])


def promoted_words(top_ids: torch.Tensor, is_word: torch.Tensor, n: int = LOGIT_TOKENS) -> torch.Tensor:
    """From top logit-lens ids (F, C), the first `n` word tokens of each row as (F, C) bool (a
    row with fewer words keeps fewer; one with none keeps nothing)."""
    words = is_word[top_ids]  # (F, C)
    return words & (words.cumsum(-1) <= n)


@torch.no_grad()
def output_scores(
    lm: LoadedModel,
    sae: LoadedSAE,
    prompts: list[list[int]],
    *,
    strength: float = SCORE_STRENGTH,
    batch: int = 16,
    report: Callable[[int, int], None] = lambda _done, _total: None,
) -> torch.Tensor:
    """Output score (d_sae,) float32 of every feature of `sae`, in [-1, 1].

    `prompts`: P BOS-prefixed token lists of equal length T (short snippets of text the steering
    evaluation does not read). For each feature i the prompts run once with
    `strength × lm.median_norm × unit(W_dec[i])` added to the residual stream after layer
    `sae.layer`; score_i = mean over prompts of p_steered(promoted_i) - p_unsteered(promoted_i)
    at the last position, where promoted_i are the feature's first `LOGIT_TOKENS` word tokens
    among its top `CANDIDATES` logit-lens tokens (`promoted_words`). Cost: d_sae × P × T tokens
    through layers L+1.. and P × T through layers 0..L per batch of `batch` features (the
    unsteered prefix is shared; logits only at the last position); `report(features_done, d_sae)` after
    each batch of `batch` features. Raises ValueError if the prompts are empty or of unequal length.
    """
    ids = _prompt_tensor(prompts)  # (P, T)
    n_prompts = ids.shape[0]
    layer = decoder_layers(lm.model)[sae.layer]
    directions = sae.directions()  # (F, d)
    top_ids = logit_effects(lm, directions, CANDIDATES)[0]  # (F, C)
    is_word = torch.zeros(lm.model.get_output_embeddings().weight.shape[0], dtype=torch.bool)  # (V,)
    words = word_tokens(lm.tokenizer)[: is_word.shape[0]]
    is_word[: words.shape[0]] = words  # ids the tokenizer does not know (padding rows) are no words
    keep = promoted_words(top_ids, is_word)  # (F, C)
    base = torch.softmax(lm.model(input_ids=ids, logits_to_keep=1).logits[:, -1].float(), -1)  # (P, V)
    pushes = _pushes(lm, directions, strength)  # (F, d)
    scores = torch.zeros(sae.d_sae)
    for start in range(0, sae.d_sae, batch):
        b = min(batch, sae.d_sae - start)
        vector = pushes[start : start + b].repeat_interleave(n_prompts, dim=0)[:, None, :]  # (b*P, 1, d)
        # Layers 0..L run once on the P prompts; their output is copied b times before the push,
        # so row r steers feature start + r // P (~3x less compute for Gemma 3's layer 12 of 18).
        with _fanned_out(layer, b), steered(layer, Steering(vector, None, None)):
            logits = lm.model(input_ids=ids, logits_to_keep=1).logits[:, -1].float()  # (b*P, V)
        probs = torch.softmax(logits, -1).view(b, n_prompts, -1)  # (b, P, V)
        gather = top_ids[start : start + b, None, :].expand(b, n_prompts, -1)  # (b, P, C)
        kept = keep[start : start + b, None, :]  # (b, 1, C): the promoted words
        steered_mass = (probs.gather(-1, gather) * kept).sum(-1)  # (b, P)
        base_mass = (base[None].expand(b, -1, -1).gather(-1, gather) * kept).sum(-1)  # (b, P)
        scores[start : start + b] = (steered_mass - base_mass).mean(-1)
        report(start + b, sae.d_sae)
    return scores


def judged_words(info: FeatureInfo) -> list[str]:
    """The words a feature is judged by when it steers (`probe_word_rates`, `tinymorph steer
    eval`'s "writes its words"): its first `LOGIT_TOKENS` English promoted words (`labels.writes`;
    an output feature's label shows the first 3)."""
    return writes(info)[:LOGIT_TOKENS]


@torch.no_grad()
def probe_word_rates(
    lm: LoadedModel,
    sae: LoadedSAE,
    prompts: list[list[int]],
    features: list[int],
    words: list[Sequence[str]],
    *,
    strength: float = SCORE_STRENGTH,
    tokens: int = 12,
    batch: int = 16,
    report: Callable[[int, int], None] = lambda _done, _total: None,
) -> torch.Tensor:
    """For each of `features`, the fraction (len(features),) of `prompts` on which steering with
    it writes its words: a greedy `tokens`-token continuation steered with it (strength as the
    sliders, every position but BOS) has a whole word that shares its stem with one of
    `words[k]` (`labels.writes_words`), and the unsteered greedy continuation of the same
    prompt has none. `words[k]`: the feature's `judged_words`; an empty list scores 0.

    The question `tinymorph steer eval --concepts` asks of a concept slider (does the text have
    the words?), asked with the feature's own promoted words (and a stem match, where the concept
    judge wants the exact word), batched over features and run on probe prompts (the training
    side), so that features can be chosen by it without touching the held-out prompts that
    `tinymorph steer eval`'s "writes its words" column reads. It reads the text, not the SAE:
    until 2026-12-05 the probe asked whether the feature's own activation rose over the steered
    continuation, which an output feature need not do when the model writes its words
    (docs/steering.md).

    Cost per feature: P × (T + tokens) tokens steered. Raises ValueError if the prompts are
    empty or of unequal length, or if `words` and `features` differ in length."""
    if len(words) != len(features):
        raise ValueError("one word list per feature")
    ids = _prompt_tensor(prompts)  # (P, T)
    n_prompts, t = ids.shape
    layers = decoder_layers(lm.model)
    pushes = _pushes(lm, sae.directions(), strength)  # (F, d)

    def continue_greedy(rows: torch.Tensor, vector: torch.Tensor | None) -> list[str]:
        """Each row's greedy `tokens`-token continuation as text, steered by `vector` (R, 1, d)."""
        out = rows
        with steered(layers[sae.layer], Steering(vector, None, None) if vector is not None else None):
            step = lm.model(input_ids=rows, use_cache=True)
            for _ in range(tokens):
                nxt = step.logits[:, -1].argmax(-1, keepdim=True)  # (R, 1)
                out = torch.cat([out, nxt], dim=1)
                step = lm.model(input_ids=nxt, use_cache=True, **{cache_keyword(type(lm.model)): step.past_key_values})
        return list(lm.tokenizer.batch_decode(out[:, t:].tolist()))

    base = continue_greedy(ids, None)  # P texts
    rates = torch.zeros(len(features))
    for start in range(0, len(features), batch):
        chosen = torch.tensor(features[start : start + batch])  # (b,)
        vector = pushes[chosen].repeat_interleave(n_prompts, dim=0)[:, None, :]  # (b*P, 1, d)
        written = continue_greedy(ids.repeat(len(chosen), 1), vector)  # b*P texts, feature-major
        for k in range(len(chosen)):
            targets = words[start + k]
            hits = [writes_words(written[k * n_prompts + p], targets) and not writes_words(base[p], targets)
                    for p in range(n_prompts)]
            rates[start + k] = sum(hits) / n_prompts
        report(start + len(chosen), len(features))
    return rates


@contextlib.contextmanager
def _fanned_out(layer: torch.nn.Module, copies: int) -> Iterator[None]:
    """While open, the output of `layer` (P, T, d) is replaced by `copies` copies of it stacked
    along the batch, (copies * P, T, d), for the hooks registered after this one and the layers
    above. The masks and rotary embeddings the model built for P rows are shared by every row
    (no padding; transformers leaves a plain causal mask out), so they broadcast."""

    def hook(_module: torch.nn.Module, _args: object, output: object) -> object:
        hidden = output[0] if isinstance(output, tuple) else output  # type: ignore[index]
        wide = hidden.repeat(copies, 1, 1)  # type: ignore[union-attr]
        return (wide, *output[1:]) if isinstance(output, tuple) else wide

    handle = layer.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _prompt_tensor(prompts: list[list[int]]) -> torch.Tensor:
    if not prompts or len({len(p) for p in prompts}) != 1:
        raise ValueError("the probe needs one or more prompts of equal length")
    return torch.tensor(prompts)


def _pushes(lm: LoadedModel, directions: torch.Tensor, strength: float) -> torch.Tensor:
    """(F, d): each decoder direction scaled to `strength` residual-norm multiples, as the sliders do."""
    return strength * lm.median_norm * directions / directions.norm(dim=-1, keepdim=True)
