"""Generation of continuations with KV-cache reuse across requests (runs in the worker).

Owns: building the token context from the text before the cursor, reusing the KV cache of the
previous request for the common token prefix, sampling several alternatives in one batch, and
stopping them at a sentence or line end. Imports torch; no Textual, no store.

The loop is plain and reads top to bottom, like nanoGPT's `sample.py`.
"""

import copy
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from tinymorph.domain import SteeringSpec
from tinymorph.engine.continuation import cut_continuation
from tinymorph.engine.protocol import SuggestionReady, SuggestRequest
from tinymorph.features import FeatureData
from tinymorph.lm.model import LoadedModel, decoder_layers
from tinymorph.lm.steering import FeatureSource, resolve_steering, steered

# When the context is longer than the window, leading tokens are dropped in blocks of this
# many, so that the token prefix (and the KV cache) stays the same while the writer types.
DROP_BLOCK_TOKENS = 64
# Decoded context tokens kept in front of the generated ones, so that SentencePiece's leading
# space is decoded as it will appear in the document.
_DECODE_ANCHOR_TOKENS = 4
LENS_TOKENS = 6
"""The feature lens looks at this many tokens before the cursor."""
LENS_FEATURES = 3
_LENS_KEEP = 16
"""Strongest features kept per position for the lens."""

LensRow = tuple[tuple[int, float], ...] | None
"""(feature, activation) pairs of one position, strongest first; None where not encoded (BOS)."""


@dataclass
class PrefixCache:
    """The KV cache of the last context, batch 1, and the logits at its last position."""

    ids: list[int]
    cache: DynamicCache
    steering_key: tuple
    last_logits: torch.Tensor  # (V,) float32
    lens: list[LensRow]
    """One row per position of `ids` (the feature lens's memory of the unsteered residual)."""


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


MIN_P = 0.05
"""Min-p truncation (Nguyen et al. 2024, "Turning Up the Heat: Min-p Sampling"): a token whose
probability is below MIN_P times the most likely token's is never sampled. Without it, sampling
from Gemma's 262k-token vocabulary at temperature 0.7 now and then draws a fragment of another
script, and a steered model does so more often (docs/steering.md)."""


def sample(
    logits: torch.Tensor, temperature: float, generator: torch.Generator, min_p: float = MIN_P
) -> torch.Tensor:
    """Sample one token per row from `logits` (B, V) at `temperature`, among the tokens whose
    probability is at least `min_p` times the row's most likely one; greedy when temperature
    is 0. Returns (B,) token ids."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # (B, V)
    if min_p > 0:
        probs = probs * (probs >= min_p * probs.amax(dim=-1, keepdim=True))  # multinomial renormalises
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (B,)


def max_act_tensor(data: FeatureData) -> torch.Tensor:
    """(d_sae,) each feature's max activation on held-out text (floored at 1e-6), to scale
    activations to fractions of it."""
    return torch.tensor([max(f.max_act, 1e-6) for f in data.features])


class ConceptMeter:
    """How strongly the features the writer turned up fire on each alternative, recorded while it
    is decoded and encoded by the SAE once at the end, so that the alternative shown first is
    the one that shows them most.

    The meter reads the hook layer's output *before* the steering hook adds to it. Steering
    acts only after that layer, so up to there every position (and every key and value the
    layers up to it attend to) is exactly what the unsteered model computes on the same tokens:
    the reading equals re-encoding the generated text with the unsteered model and the SAE, as
    `tinymorph steer eval` does, at no extra forward pass.

    Score of a row: the mean over its generated tokens of sum_i sign(strength_i) * a_i / max_i,
    over the spec's active "add" terms with an SAE feature i (a_i its SAE activation, max_i its
    max on held-out text, 1 when unknown). A spec with no such term makes an inactive meter
    (`active` False), which keeps the sampled order.
    Method: best-of-n sampling (as in Nakano et al. 2021, WebGPT, with a reward model), here
    ranked by the SAE's own reading instead.
    """

    def __init__(
        self, sae: FeatureSource | None, spec: SteeringSpec, rows: int, max_acts: torch.Tensor | None = None
    ) -> None:
        terms = [
            (t.feature, 1.0 if t.strength > 0 else -1.0)
            for t in spec.terms
            if t.active and t.mode == "add" and t.feature is not None and t.strength != 0
        ]
        self.sae = sae if terms else None
        self.features = torch.tensor([f for f, _ in terms], dtype=torch.long)  # (k,)
        scale = max_acts[self.features] if max_acts is not None and terms else torch.ones(len(terms))
        self.weights = torch.tensor([sign for _, sign in terms]) / scale  # (k,)
        self.rows = rows
        self._read: list[torch.Tensor] = []  # (rows, d) hook-layer output, one per forward pass
        self._live: list[list[bool]] = []
        self._last: torch.Tensor | None = None
        self._scores: torch.Tensor | None = None

    @property
    def active(self) -> bool:
        return self.sae is not None

    @contextmanager
    def reading(self, layer: torch.nn.Module) -> Iterator[None]:
        """Keep the last position of every forward pass through `layer` while open (a hook
        placed before any steering hook). Does nothing when the meter is inactive."""
        if self.sae is None:
            yield
            return

        def hook(_m: torch.nn.Module, _a: object, out: object) -> None:
            hidden = out[0] if isinstance(out, tuple) else out  # (B, T, d)
            self._last = hidden[:, -1].detach().clone()  # (B, d)

        handle = layer.register_forward_hook(hook, prepend=True)
        try:
            yield
        finally:
            handle.remove()

    def count(self, live: list[bool]) -> None:
        """Count the last reading for the rows in `live` (rows whose fed token is part of their text)."""
        if self._last is None:
            return
        self._read.append(self._last)
        self._live.append(live)
        self._last = None
        self._scores = None

    def scores(self) -> torch.Tensor:
        """(rows,) mean score per token read (0 for a row with none). The SAE encodes all the
        readings in one call here, not one per decode step: ~4 ms for 24 steps of 3 rows on 2
        CPU cores, against ~1 ms per call when encoding at every ~74 ms step."""
        if self._scores is None:
            if not self._read or self.sae is None:
                self._scores = torch.zeros(self.rows)
            else:
                hidden = torch.stack(self._read)  # (steps, rows, d)
                acts = self.sae.encode(hidden.float())[..., self.features]  # (steps, rows, k)
                mask = torch.tensor(self._live, dtype=torch.float32)  # (steps, rows)
                per_token = (acts @ self.weights) * mask  # (steps, rows)
                self._scores = per_token.sum(0) / mask.sum(0).clamp(min=1)
        return self._scores

    def order(self) -> list[int]:
        """Rows, best first; ties (and an inactive meter) keep the sampled order."""
        scores = self.scores().tolist()
        return sorted(range(len(scores)), key=lambda r: -scores[r]) if self.active else list(range(len(scores)))


class Generator:
    """Serves SuggestRequests on one loaded model, keeping the KV cache between requests.

    Not thread-safe: the worker calls it from one thread.
    """

    def __init__(
        self, lm: LoadedModel, context_tokens: int, sae: FeatureSource | None = None,
        max_acts: torch.Tensor | None = None,
    ) -> None:
        """`sae` (optional) gives steering by feature and the feature lens; `max_acts` (d_sae,)
        scales lens activations to fractions of each feature's max on held-out text."""
        window = lm.sliding_window
        # The sliding-window layers cache window - 1 positions; beyond that a cropped cache
        # would be missing keys, so the context never grows past it.
        self.context_tokens = min(context_tokens, window - 1) if window else context_tokens
        self.lm = lm
        self.sae = sae
        self.max_acts = max_acts
        self._prefix: PrefixCache | None = None

    @property
    def prefix(self) -> PrefixCache | None:
        """The KV cache of the last context (None before the first request)."""
        return self._prefix

    def context_ids(self, text: str) -> list[int]:
        """BOS + the last tokens of `text`, at most `context_tokens` in all. Leading tokens are
        dropped in blocks of DROP_BLOCK_TOKENS so the start moves rarely."""
        tok = self.lm.tokenizer
        tokens: list[int] = tok(text, add_special_tokens=False).input_ids
        bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
        room = self.context_tokens - len(bos)
        if len(tokens) > room:
            drop = -(-(len(tokens) - room) // DROP_BLOCK_TOKENS) * DROP_BLOCK_TOKENS
            tokens = tokens[drop:]
        return bos + tokens

    def _forward(self, ids: torch.Tensor, cache: DynamicCache) -> torch.Tensor:
        """Run `ids` (B, T) through the model, extending `cache`. Returns last logits (B, V)."""
        out = self.lm.model(input_ids=ids, past_key_values=cache, use_cache=True)
        return out.logits[:, -1].float()  # (B, V)

    def _lens_rows(self, resid: torch.Tensor, starts_at_bos: bool) -> list[LensRow]:
        """Encode the last LENS_TOKENS positions of `resid` (T, d) with the SAE; earlier
        positions (and BOS) get None."""
        rows: list[LensRow] = [None] * resid.shape[0]
        first = max(1 if starts_at_bos else 0, resid.shape[0] - LENS_TOKENS)
        if self.sae is None or first >= resid.shape[0]:
            return rows
        acts = self.sae.encode(resid[first:].float())  # (n, F)
        if self.max_acts is not None:
            acts = acts / self.max_acts  # fraction of each feature's held-out max
        top = acts.topk(min(_LENS_KEEP, acts.shape[-1]), dim=-1)
        for offset, (idx, val) in enumerate(zip(top.indices.tolist(), top.values.tolist(), strict=True)):
            rows[first + offset] = tuple((i, v) for i, v in zip(idx, val, strict=True) if v > 0)
        return rows

    def lens(self) -> tuple[tuple[int, float], ...]:
        """The LENS_FEATURES features most active (max over the last LENS_TOKENS positions of
        the current prefix), strongest first; empty without an SAE."""
        if self._prefix is None:
            return ()
        best: dict[int, float] = {}
        for row in self._prefix.lens[-LENS_TOKENS:]:
            for i, v in row or ():
                best[i] = max(v, best.get(i, 0.0))
        return tuple(sorted(best.items(), key=lambda kv: -kv[1])[:LENS_FEATURES])

    def prefill(self, ids: list[int], steering_key: tuple) -> tuple[torch.Tensor, int]:
        """Make the prefix cache hold `ids`, reusing the common prefix of the previous one
        (only if it was built under the same steering). Must run inside `steered(...)`.
        Returns (logits at the last position (V,), number of tokens reused)."""
        prev = self._prefix
        reuse = 0
        if prev is not None and prev.steering_key == steering_key:
            reuse = common_prefix(prev.ids, ids)
            if reuse == len(ids) == len(prev.ids):
                return prev.last_logits, reuse
            reuse = min(reuse, len(ids) - 1)  # at least one token must run to get logits
        if reuse > 0 and prev is not None:
            cache = prev.cache
            # A negative count removes that many tokens. Exact only while no sliding-window
            # layer has dropped keys, which the context cap guarantees.
            cache.crop(reuse - len(prev.ids))
        else:
            cache = DynamicCache(config=self.lm.model.config)
        new = torch.tensor([ids[reuse:]])  # (1, T_new)
        captured: list[torch.Tensor] = []
        handle = None
        if self.sae is not None:
            # prepend: runs before the steering hook, so the lens reads the writer's own text.
            handle = decoder_layers(self.lm.model)[self.lm.hook_layer].register_forward_hook(
                lambda _m, _a, out: captured.append(out[0] if isinstance(out, tuple) else out), prepend=True
            )
        try:
            logits = self._forward(new, cache)[0]  # (V,)
        finally:
            if handle is not None:
                handle.remove()
        kept = prev.lens[:reuse] if reuse > 0 and prev is not None else []
        fresh = self._lens_rows(captured[0][0], reuse == 0) if captured else [None] * new.shape[1]
        self._prefix = PrefixCache(ids, cache, steering_key, logits, kept + fresh)
        return logits, reuse

    @torch.no_grad()
    def suggest(
        self,
        req: SuggestRequest,
        is_stale: Callable[[], bool],
        on_partial: Callable[[str, float], None],
        on_lens: Callable[[tuple[tuple[int, float], ...]], None] = lambda _f: None,
    ) -> SuggestionReady | None:
        """Generate `req.alternatives` continuations of `req.text` (sampled with `sample`).

        When the steering turns SAE features up or down, the alternatives come back ordered by
        how much they show those features (`ConceptMeter`), best first; otherwise in the order
        sampled. Calls `on_lens(features)` once after the prefill (the feature lens, when an SAE
        is loaded), `on_partial(text, ms)` as alternative 0 grows (the ranking comes at the end),
        and `is_stale()` between tokens: when it returns True the request is abandoned and None
        is returned.
        Raises SteeringError if the steering spec does not fit the model.
        """
        t0 = time.perf_counter()
        ms = lambda: (time.perf_counter() - t0) * 1000  # noqa: E731
        # Token healing, simply: a trailing space would be a lone "▁" token the model rarely
        # saw; drop it from the context and keep only continuations that start with a space.
        context = req.text.rstrip(" ")
        needs_space = len(context) < len(req.text)
        ids = self.context_ids(context)
        layer = decoder_layers(self.lm.model)[self.lm.hook_layer]
        steering = resolve_steering(req.steering, self.lm.d_model, self.lm.median_norm, self.sae)
        n = req.alternatives
        meter = ConceptMeter(self.sae, req.steering, n, self.max_acts)
        eos = self.lm.tokenizer.eos_token_id
        generator = torch.Generator().manual_seed(req.seed)
        with steered(layer, steering):
            logits, reused = self.prefill(ids, req.steering.key())
            assert self._prefix is not None
            on_lens(self.lens())
            tokens = sample(logits.expand(n, -1), req.temperature, generator)  # (n,)
            first_token_ms = ms()
            cache = copy.deepcopy(self._prefix.cache)
            cache.batch_repeat_interleave(n)
            generated: list[list[int]] = [[] for _ in range(n)]
            shown, done = [""] * n, [False] * n
            streamed = ""
            anchor = ids[-_DECODE_ANCHOR_TOKENS:]
            # Special tokens (<start_of_image>, ...) are never part of the writer's text.
            anchor_text = self.lm.tokenizer.decode(anchor, skip_special_tokens=True)
            with meter.reading(layer):  # every decode step, not the prefill
                for step in range(req.max_new_tokens):
                    last_step = step == req.max_new_tokens - 1
                    live = [False] * n  # rows whose token this step is part of their text
                    for row in range(n):
                        if done[row]:
                            continue
                        token = int(tokens[row])
                        if token == eos:
                            done[row] = True
                            shown[row] = cut_continuation(shown[row], finished=True)[0]
                            continue
                        generated[row].append(token)
                        live[row] = True
                        decoded = self.lm.tokenizer.decode(anchor + generated[row], skip_special_tokens=True)
                        raw = decoded[len(anchor_text) :]
                        if needs_space:
                            if not raw.startswith(" "):
                                done[row], shown[row] = True, ""
                                continue
                            raw = raw[1:]
                        shown[row], done[row] = cut_continuation(raw, finished=last_step)
                    if shown[0] != streamed:
                        streamed = shown[0]
                        on_partial(streamed, ms())
                    if all(done) or last_step:
                        break
                    if is_stale():
                        return None
                    logits = self._forward(tokens[:, None], cache)  # (n, V)
                    meter.count(live)
                    tokens = sample(logits, req.temperature, generator)
        return SuggestionReady(
            request_id=req.request_id,
            alternatives=tuple(dict.fromkeys(shown[r] for r in meter.order() if shown[r].strip())),
            first_token_ms=first_token_ms,
            total_ms=ms(),
            prefill_tokens=len(ids) - reused,
            reused_tokens=reused,
        )
