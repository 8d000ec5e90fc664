"""Generation of continuations with KV-cache reuse across requests (runs in the worker).

Owns: building the token context from the text before the cursor, reusing the KV cache of the
previous request for the common token prefix, sampling several alternatives in one batch,
stopping them at a sentence or line end, ranking them, and the feature lens. Every caller that
wants what the editor shows (the worker, `tinymorph steer eval`, the benchmarks) calls
`Generator.suggest`: there is one decode loop. Imports torch; no Textual, no store.

The loop is plain and reads top to bottom, like nanoGPT's `sample.py`:
1. run the context's tokens that the prefix cache (kept across requests) does not hold, up to and
   including its last token, in one pass, steered at that last token only: its logits give each
   alternative its first token, and the hook layer's reading there gives the lens;
2. copy the cache to one row per alternative; the prefix cache drops the last token again (the
   entries before it do not depend on the steering, the attention being causal);
3. decode all rows together, one token a step, until every row has reached a sentence end.
By default the steering acts from the context's last token on (the cursor), so the prefix cache
does not depend on the sliders and a slider nudge costs a one-token pass (docs/steering.md
measures that it steers as well as steering every position); `steer_prompt=True` steers the
prefix too.
"""

import copy
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from tinymorph.domain import SteeringSpec
from tinymorph.engine.concepts import ConceptWords
from tinymorph.engine.continuation import cut_continuation, loops
from tinymorph.engine.protocol import SuggestionReady, SuggestRequest
from tinymorph.features import FeatureData
from tinymorph.lm.model import LoadedModel, decoder_layers, torch_threads
from tinymorph.lm.steering import FeatureSource, resolve_steering, steered

# When the context is longer than the window, leading tokens are dropped in blocks of this
# many, so that the token prefix (and the KV cache) stays the same while the writer types.
DROP_BLOCK_TOKENS = 64
# Decoded context tokens kept in front of the generated ones, so that SentencePiece's leading
# space is decoded as it will appear in the document.
_DECODE_ANCHOR_TOKENS = 4
LONG_PREFILL_TOKENS = 64
"""A prefill of more new tokens than this runs on `Generator.prefill_threads` threads: typing adds
a token or two per request; more is a document opened, text pasted or a jump."""
LENS_TOKENS = 12
"""The feature lens looks at this many tokens before the cursor (about a sentence): a feature that
stays lit over them says more about the text than one that flashes on one word."""
LENS_FEATURES = 3
_LENS_KEEP = 16
"""Strongest features kept per position for the lens."""

LensRow = tuple[tuple[int, float], ...] | None
"""(feature, activation) pairs of one position, strongest first; None where not encoded (BOS)."""


@dataclass
class PrefixCache:
    """The KV cache (batch 1) of the context but its last token, as of the last request."""

    ids: list[int]
    cache: DynamicCache
    steering_key: tuple
    """The steering it was built under: () unless the generator steers the prompt."""
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


CONCEPT_CLOSE = 0.45
"""Closeness (`ConceptWords.closeness`, an input-embedding cosine) from which an alternative shows
the concept: for "sea", "ocean" 0.75, "boat" 0.56, "harbour" 0.46; "table" 0.38, "went" 0.23."""

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
    is 0. Returns (B,) token ids.

    The min-p test is done on the logits (p_i / p_max >= min_p  <=>  l_i >= l_max + T ln min_p),
    so that the softmax runs over the few tokens kept, not the whole vocabulary: ~0.3 ms per
    step for 3 rows of 262,144 logits, against ~17 ms for a full softmax on 2 CPU cores."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits.float()
    floor = logits.amax(dim=-1, keepdim=True) + (temperature * math.log(min_p) if min_p > 0 else -math.inf)  # (B, 1)
    tokens = []
    for row, bar in zip(logits, floor, strict=True):
        kept = (row >= bar).nonzero().squeeze(-1)  # (k,) candidate ids
        probs = torch.softmax(row[kept] / temperature, dim=-1)  # (k,)
        tokens.append(kept[torch.multinomial(probs, 1, generator=generator)])
    return torch.cat(tokens)  # (B,)


def max_act_tensor(data: FeatureData) -> torch.Tensor:
    """(d_sae,) each feature's max activation on held-out text (floored at 1e-6), to scale
    activations to fractions of it."""
    return torch.tensor([max(f.max_act, 1e-6) for f in data.features])


def lens_weights(data: FeatureData) -> torch.Tensor:
    """(d_sae,) how much a feature lighting up says about the writer's text, for the feature lens:
    its inverse density ln(1/density) / ln(10^4) (as idf weighs words: a feature firing on 1 token
    in 10^4 says more than one firing on 1 in 30, as feature search weighs them), and 0 for dense
    features (active on > 10% of tokens) and features of punctuation and function words
    (`FeatureInfo.topical` False)."""
    density = torch.tensor([max(f.density, 1e-6) for f in data.features])
    idf = (1 / density).log() / math.log(1e4)  # (F,)
    keep = torch.tensor([not f.dense and f.topical is not False and not f.dead for f in data.features])
    return idf.clamp(min=0) * keep


class ConceptMeter:
    """How strongly each alternative shows what the writer turned up, from the hook layer's
    readings taken while it was decoded, so that the alternative shown first is the one that
    shows it most.

    The readings are the hook layer's output *before* the steering hook adds to it. Steering
    acts only after that layer, so up to there every position (and every key and value the
    layers up to it attend to) is exactly what the unsteered model computes on the same tokens:
    the reading equals re-encoding the generated text with the unsteered model, at no extra
    forward pass.

    Score of a row: the mean over its generated tokens of
    - sum_i sign_i * a_i / max_i over the spec's "add" terms with an SAE feature i (a_i its SAE
      activation, max_i its max on held-out text, 1 when unknown), encoded by the SAE once at the
      end (~4 ms for 24 steps of 3 rows on 2 CPU cores), plus
    - sum_j sign_j * <x, u_j> / median_norm over its "add" terms with a direction (concept sliders,
      directions the writer made): x the reading, u_j the unit direction, plus
    - for a concept slider, sign * the closeness of the alternative's words to the words the
      writer typed (`engine.concepts.ConceptWords`, a cosine in [-1, 1], which dominates the
      projection, ~0.05 in these units),
    where sign is the sign of the term's strength; terms at strength 0 are left out. A spec with
    no such term makes an inactive meter (`active` False), which keeps the sampled order.
    With a concept slider turned up, the alternatives that show the concept (a word at least
    CONCEPT_CLOSE close to the writer's) come first, the most fluent of them first (the smallest
    mean gap between the logit of each token it drew and the best logit there): among samples
    that all say "sea", the writer should see the one that reads best.
    Method: best-of-n sampling (as in Nakano et al. 2021, WebGPT, with a reward model), here
    ranked by the model's own reading instead.
    """

    def __init__(
        self, sae: FeatureSource | None, spec: SteeringSpec, rows: int, max_acts: torch.Tensor | None = None,
        median_norm: float = 1.0, words: ConceptWords | None = None,
    ) -> None:
        added = [t for t in spec.terms if t.mode == "add" and t.strength != 0]
        features = [(t.feature, math.copysign(1.0, t.strength)) for t in added if t.feature is not None]
        self.sae = sae if features else None
        self.features = torch.tensor([f for f, _ in features], dtype=torch.long)  # (k,)
        scale = max_acts[self.features] if max_acts is not None and features else torch.ones(len(features))
        self.weights = torch.tensor([sign for _, sign in features]) / scale  # (k,)
        directions = [(torch.tensor(t.direction), math.copysign(1.0, t.strength)) for t in added if t.direction]
        self.directions = (
            torch.stack([sign * d / d.norm() / median_norm for d, sign in directions]) if directions else None
        )  # (j, d): signed unit directions, in residual-norm units
        self.words = words
        self.concepts = (
            [(words.query_ids(t.concept), math.copysign(1.0, t.strength)) for t in added if t.concept]
            if words is not None else []
        )
        self.rows = rows

    @property
    def active(self) -> bool:
        return self.sae is not None or self.directions is not None

    def scores(
        self, readings: list[torch.Tensor], live: list[list[bool]], texts: list[str] | None = None
    ) -> torch.Tensor:
        """(rows,) score of each row (0 for a row with no token read). `readings`: one (rows, d)
        hook-layer output per decode step; `live`: which rows' tokens at that step belong to
        their text; `texts`: each row's text as shown (for concept sliders)."""
        closeness = torch.zeros(self.rows)
        if self.words is not None and texts is not None:
            for query_ids, sign in self.concepts:
                closeness += torch.tensor([sign * self.words.closeness(query_ids, t) for t in texts])
        if not readings or not self.active:
            return closeness
        hidden = torch.stack(readings).float()  # (steps, rows, d)
        per_token = torch.zeros(hidden.shape[:2])  # (steps, rows)
        if self.sae is not None:
            acts = self.sae.encode(hidden)[..., self.features]  # (steps, rows, k)
            per_token += acts @ self.weights
        if self.directions is not None:
            per_token += (hidden @ self.directions.T).sum(-1)  # (steps, rows, j) -> (steps, rows)
        mask = torch.tensor(live, dtype=torch.float32)  # (steps, rows)
        return (per_token * mask).sum(0) / mask.sum(0).clamp(min=1) + closeness

    def order(
        self, readings: list[torch.Tensor], live: list[list[bool]], texts: list[str] | None = None,
        surprise: list[float] | None = None,
    ) -> list[int]:
        """Rows, best first; ties (and an inactive meter) keep the sampled order. `surprise`: each
        row's mean logit gap (see the class docstring), for concept sliders."""
        if not self.active:
            return list(range(self.rows))
        scores = self.scores(readings, live, texts).tolist()
        shows = [False] * self.rows
        if self.words is not None and texts is not None and surprise is not None:
            for query_ids, sign in self.concepts:
                if sign > 0:
                    close = [self.words.closeness(query_ids, t) >= CONCEPT_CLOSE for t in texts]
                    shows = [a or b for a, b in zip(shows, close, strict=True)]

        def key(r: int) -> tuple[bool, float]:
            return (not shows[r], surprise[r] if shows[r] and surprise is not None else -scores[r])

        return sorted(range(self.rows), key=key)


@contextmanager
def _reading(layer: torch.nn.Module, into: list[torch.Tensor]) -> Iterator[None]:
    """Append the last position of `layer`'s output, (B, d), at every forward pass while open.
    Registered first (prepend), so it reads the output before any steering hook adds to it."""

    def hook(_m: torch.nn.Module, _a: object, out: object) -> None:
        hidden = out[0] if isinstance(out, tuple) else out  # (B, T, d)
        into.append(hidden[:, -1].detach().clone())  # type: ignore[index]

    handle = layer.register_forward_hook(hook, prepend=True)
    try:
        yield
    finally:
        handle.remove()


class Generator:
    """Serves SuggestRequests on one loaded model, keeping the KV cache between requests.

    Not thread-safe: the worker calls it from one thread.
    """

    def __init__(
        self, lm: LoadedModel, context_tokens: int, sae: FeatureSource | None = None,
        max_acts: torch.Tensor | None = None, steer_prompt: bool = False, lens_weights: torch.Tensor | None = None,
        sampler: Callable[[torch.Tensor, float, torch.Generator], torch.Tensor] | None = None,
        prefill_threads: int = 0,
    ) -> None:
        """`sae` (optional) gives steering by feature and the feature lens; `max_acts` (d_sae,)
        scales activations to fractions of each feature's max on held-out text, and the lens
        multiplies those by `lens_weights` (d_sae,) (`lens_weights`; default: all 1). `sampler`
        replaces `sample` (the benchmark runs the sampling this replaced, beside it).
        `steer_prompt`: steer every context position too (the prefix cache is then rebuilt
        whenever the steering changes); by default steering starts at the last context token.
        `prefill_threads`: torch threads for a prefill of more than LONG_PREFILL_TOKENS new tokens
        (0, or fewer than torch's current count: no change)."""
        window = lm.sliding_window
        # The sliding-window layers cache window - 1 positions; beyond that a cropped cache
        # would be missing keys, so the context never grows past it.
        self.context_tokens = min(context_tokens, window - 1) if window else context_tokens
        self.lm = lm
        self.sae = sae
        self.max_acts = max_acts
        self.steer_prompt = steer_prompt
        self.lens_weights = lens_weights
        self.sample = sampler or sample
        self.prefill_threads = prefill_threads
        self.words = ConceptWords(lm)
        self._prefix: PrefixCache | None = None

    @property
    def prefix(self) -> PrefixCache | None:
        """The KV cache of the last context but its last token (None before the first request)."""
        return self._prefix

    def context_ids(self, text: str) -> list[int]:
        """BOS + the last tokens of `text`, at most `context_tokens` in all. Leading tokens are
        dropped in blocks of DROP_BLOCK_TOKENS (at most half the window) so the start moves rarely."""
        tok = self.lm.tokenizer
        tokens: list[int] = tok(text, add_special_tokens=False).input_ids
        bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
        room = self.context_tokens - len(bos)
        if len(tokens) > room:
            block = min(DROP_BLOCK_TOKENS, max(1, room // 2))  # a small window drops in smaller blocks
            drop = -(-(len(tokens) - room) // block) * block
            tokens = tokens[drop:]
        return bos + tokens

    def _lens_rows(self, resid: torch.Tensor, first: int) -> list[LensRow]:
        """Encode the positions of `resid` (T, d) from `first` on with the SAE (the earlier ones
        get None): each position's features that say the most, by activation as a fraction of
        the held-out max (at most 1) times `lens_weights`."""
        rows: list[LensRow] = [None] * resid.shape[0]
        if self.sae is None or first >= resid.shape[0]:
            return rows
        acts = self.sae.encode(resid[first:].float())  # (n, F)
        if self.max_acts is not None:
            acts = (acts / self.max_acts).clamp(max=1.0)  # fraction of each feature's held-out max
        if self.lens_weights is not None:
            acts = acts * self.lens_weights  # (n, F) * (F,)
        top = acts.topk(min(_LENS_KEEP, acts.shape[-1]), dim=-1)
        for offset, (idx, val) in enumerate(zip(top.indices.tolist(), top.values.tolist(), strict=True)):
            rows[first + offset] = tuple((i, v) for i, v in zip(idx, val, strict=True) if v > 0)
        return rows

    def lens(self, last: LensRow = None) -> tuple[tuple[int, float], ...]:
        """The LENS_FEATURES features that say the most about the last LENS_TOKENS positions (the
        prefix's, then `last`, the row of the context's last token): (index, score), best first,
        the score being the mean over the encoded positions of the weighted activation
        (`_lens_rows`); empty without an SAE."""
        rows = [r for r in (([*self._prefix.lens] if self._prefix is not None else []) + [last])[-LENS_TOKENS:] if r]
        total: dict[int, float] = {}
        for row in rows:
            for i, v in row:
                total[i] = total.get(i, 0.0) + v
        return tuple((i, v / len(rows)) for i, v in sorted(total.items(), key=lambda kv: -kv[1])[:LENS_FEATURES])

    def prefill(
        self, ids: list[int], steering_key: tuple = (), logits: bool = False
    ) -> tuple[torch.Tensor | None, int]:
        """Make the prefix cache hold `ids`, reusing the common prefix of the previous one (only
        if it was built under the same `steering_key`); when the generator steers the prompt,
        call it inside `steered(...)` (`suggest` steers the last position of the pass). Returns
        (logits at the last position (V,) when `logits` else None, number of tokens reused). If
        the forward pass raises, no prefix is kept: a cache cropped for a pass that failed must
        never be reused."""
        prev, self._prefix = self._prefix, None
        reuse = 0
        if prev is not None and prev.steering_key == steering_key:
            reuse = common_prefix(prev.ids, ids)
            if logits:
                reuse = min(reuse, len(ids) - 1)  # a pass must run to give logits
        if reuse > 0 and prev is not None:
            cache = prev.cache
            if reuse < len(prev.ids):
                # A negative count removes that many tokens. Exact only while no sliding-window
                # layer has dropped keys, which the context cap guarantees.
                cache.crop(reuse - len(prev.ids))
        else:
            cache, reuse = DynamicCache(config=self.lm.model.config), 0
        new = torch.tensor([ids[reuse:]])  # (1, T_new)
        out = None
        captured: list[torch.Tensor] = []
        if new.shape[1]:
            handle = None
            if self.sae is not None:
                # prepend: runs before the steering hook, so the lens reads the writer's own text.
                handle = decoder_layers(self.lm.model)[self.lm.hook_layer].register_forward_hook(
                    lambda _m, _a, o: captured.append(o[0] if isinstance(o, tuple) else o), prepend=True
                )
            burst = self.prefill_threads if new.shape[1] > LONG_PREFILL_TOKENS else 0
            try:
                with torch_threads(burst):
                    out = self.lm.run(new, cache, logits=logits)[0]  # (V,) or (d,)
            finally:
                if handle is not None:
                    handle.remove()
        kept = prev.lens[:reuse] if reuse > 0 and prev is not None else []
        if captured:
            # Not BOS, nor the first token after it, whose residual is an outlier (features that
            # fire on any text's first word).
            fresh = self._lens_rows(captured[0][0], max(2 - reuse, 0, new.shape[1] - LENS_TOKENS))
        else:
            fresh = [None] * new.shape[1]
        self._prefix = PrefixCache(ids, cache, steering_key, kept + fresh)
        return (out if logits else None), reuse

    @torch.no_grad()
    def suggest(
        self,
        req: SuggestRequest,
        is_stale: Callable[[], bool],
        on_partial: Callable[[str, float], None],
        on_lens: Callable[[tuple[tuple[int, float], ...]], None] = lambda _f: None,
        rank_by: SteeringSpec | None = None,
    ) -> SuggestionReady | None:
        """Generate `req.alternatives` continuations of `req.text` (sampled with `sample`), each
        cut at a sentence or line end (`cut_continuation`), the ones the editor would show.

        When the steering turns SAE features or directions up or down, the alternatives come back
        ordered by how much they show them (`ConceptMeter`), best first; otherwise in the order
        sampled. `rank_by` ranks by another spec's features instead (the evaluation's
        selection arm ranks by a slider it does not push). Calls `on_lens(features)` once the
        context's last token has run (the feature lens, when an SAE is loaded), `on_partial(text,
        ms)` as alternative 0 grows (the ranking comes at the end), and `is_stale()` between
        tokens: when it returns True the request is abandoned and None is returned.
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
        meter = ConceptMeter(self.sae, rank_by if rank_by is not None else req.steering, n, self.max_acts,
                             self.lm.median_norm, self.words)
        eos = self.lm.tokenizer.eos_token_id
        generator = torch.Generator().manual_seed(req.seed)
        key = req.steering.key() if self.steer_prompt else ()
        with steered(layer, steering, last_only=not self.steer_prompt):
            last, reused = self.prefill(ids, key, logits=True)  # (V,): the context's last position
        prefix = self._prefix
        assert prefix is not None and last is not None
        cache = copy.deepcopy(prefix.cache)
        cache.batch_repeat_interleave(n)
        # The prefix cache holds the context but its last token, whose entries are steered.
        prefix.cache.crop(-1)
        prefix.ids = ids[:-1]
        last_row = prefix.lens.pop()
        if self.sae is not None:
            on_lens(self.lens(last_row))
        logits = last.expand(n, -1)  # (n, V): every row starts from the same distribution
        tokens = self.sample(logits, req.temperature, generator)  # (n,)
        gap = logits.amax(-1) - logits.gather(-1, tokens[:, None]).squeeze(-1)  # (n,)
        first_token_ms = ms()
        readings: list[torch.Tensor] = []  # (n, d) per decode step: the hook layer before steering
        live_rows: list[list[bool]] = []
        generated: list[list[int]] = [[] for _ in range(n)]
        shown, done = [""] * n, [False] * n
        streamed = ""
        anchor = ids[-_DECODE_ANCHOR_TOKENS:]
        # Special tokens (<start_of_image>, ...) are never part of the writer's text.
        anchor_text = self.lm.tokenizer.decode(anchor, skip_special_tokens=True)
        steps, decode_start = 0, time.perf_counter()
        gaps = torch.zeros(n)  # summed over each row's tokens: best logit - the drawn token's logit
        with steered(layer, steering), _reading(layer, readings):
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
                    gaps[row] += gap[row]
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
                logits = self.lm.run(tokens[:, None], cache)  # (n, V)
                steps += 1
                live_rows.append(live)
                tokens = self.sample(logits, req.temperature, generator)
                gap = logits.amax(-1) - logits.gather(-1, tokens[:, None]).squeeze(-1)
        surprise = (gaps / torch.tensor([max(1, len(g)) for g in generated])).tolist()  # mean gap per row
        ranked = meter.order(readings, live_rows, shown, surprise)  # its one SAE encode counts as decode time
        # A suggestion that loops ("the forest of the forest, in the forest of the forest") is never
        # shown first while another one does not: steering, and a small model, fall into loops.
        order = sorted(ranked, key=lambda r: loops(shown[r]))
        decode_ms = (time.perf_counter() - decode_start) * 1000
        return SuggestionReady(
            request_id=req.request_id,
            alternatives=tuple(dict.fromkeys(shown[r] for r in order if shown[r].strip())),
            first_token_ms=first_token_ms,
            total_ms=ms(),
            prefill_tokens=len(ids) - reused,
            reused_tokens=reused,
            decode_steps=steps,
            decode_ms=decode_ms,
        )
