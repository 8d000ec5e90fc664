"""Generation of continuations with KV-cache reuse across requests (runs in the worker).

Owns: building the token context from the text before the cursor, reusing the KV cache of the
previous request for the common token prefix, sampling several alternatives in one batch and
stopping them at a sentence or line end; the ranking (`engine.ranking`) and the feature lens
(`engine.lens`) ride on its forward passes. Every caller that
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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from tinymorph.domain import SteeringSpec
from tinymorph.engine.concepts import ConceptWords
from tinymorph.engine.continuation import cut_continuation, loops
from tinymorph.engine.healing import consume, split_typed_word
from tinymorph.engine.lens import LENS_TOKENS, MIN_LENS_SCORE, LensRow, encode_rows, summarize
from tinymorph.engine.protocol import SuggestionReady, SuggestRequest
from tinymorph.engine.ranking import ConceptMeter, reading
from tinymorph.engine.sampling import log_probs, sample, token_confidence
from tinymorph.engine.spelling import Speller
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


CONCEPT_EASE = 0.0
"""What is left of the push on an alternative once it has said a concept slider's concept, as a
multiple of the slider's strength: nothing. On the tuning concepts with modern prompts
(docs/steering.md) the push kept on after the concept was said doubled the perplexity rise at
+0.3 (+125% against +75%) for a few more hits (61% against 57%)."""

CONCEPT_SPREAD = 0.4
"""How far the alternatives' pushes spread around a concept slider's strength: alternative 0 (the
greedy one) is pushed at the slider's strength, the others from (1 - spread) to (1 + spread) times
it (`push_multiples`; the multiple scales that alternative's whole steering vector, every slider
turned with the concept included, as the easing does). The ranking shows the most fluent
alternative that says the concept, so a mildly pushed one is shown when it is enough and a
strongly pushed one when nothing milder says it. Measured in docs/steering.md: over a flat +0.3 it
lifted the validation concepts' median concept rate on modern prompts from 68% to 70% (the
weakest concept from 25% to 55%) at +19% perplexity. A flat +0.35 did better there (78% at +22%),
though on the tuning half, where the spread was chosen, the spread had matched it at less
perplexity."""


def push_multiples(n: int, spread: float) -> list[float]:
    """Multiples of a concept slider's strength for `n` alternatives: 1 for alternative 0, the
    others evenly from 1 - `spread` to 1 + `spread` (n = 3, spread 0.4: [1, 0.6, 1.4]); all 1
    when n < 3 or `spread` is 0. Raises ValueError for a spread outside [0, 1]."""
    if not 0 <= spread <= 1:
        raise ValueError(f"spread must be in [0, 1], got {spread}")
    if n < 3 or spread == 0:
        return [1.0] * n
    return [1.0, *torch.linspace(1 - spread, 1 + spread, n - 1).tolist()]


class Generator:
    """Serves SuggestRequests on one loaded model, keeping the KV cache between requests.

    Not thread-safe: the worker calls it from one thread.
    """

    def __init__(
        self, lm: LoadedModel, context_tokens: int, sae: FeatureSource | None = None,
        max_acts: torch.Tensor | None = None, steer_prompt: bool = False, lens_weights: torch.Tensor | None = None,
        lens_groups: Sequence[int] | None = None,
        sampler: Callable[[torch.Tensor, float, torch.Generator], torch.Tensor] | None = None,
        prefill_threads: int = 0, heal_words: bool = True, greedy_first: bool = True,
        first_by_logprob: bool = False, concept_ease: float | None = None, concept_spread: float | None = None,
    ) -> None:
        """`sae` (optional) gives steering by feature and the feature lens; `max_acts` (d_sae,)
        scales activations to fractions of each feature's max on held-out text, and the lens
        multiplies those by `lens_weights` (d_sae,) (`lens_weights`; default: all 1) and shows one
        feature of each `lens_groups` entry (`LensTable.group`; default: each its own). `sampler`
        replaces `sample` (the benchmark runs the sampling this replaced, beside it).
        `steer_prompt`: steer every context position too (the prefix cache is then rebuilt
        whenever the steering changes); by default steering starts at the last context token.
        `prefill_threads`: torch threads for a prefill of more than LONG_PREFILL_TOKENS new tokens
        (0, or fewer than torch's current count: no change). `heal_words`: finish the word being
        typed by token healing (`engine.healing`); False: only continue after a word's end, as
        before (the benchmark's control). `greedy_first`: alternative 0 is the greedy continuation,
        steered or not (steered, it lowered the perplexity rise of concept sliders at about the
        same concept rate: docs/steering.md), the others sampled. `first_by_logprob` (the benchmark's other arm): with
        no steering, the rows come back by their tokens' total log-probability, best first (a
        log-softmax over the vocabulary each step). `concept_ease`: once an alternative has drawn a
        token that says a concept slider's concept (`ConceptMeter.mentions`), the push on that
        alternative is this multiple of the slider's for the rest of it (default CONCEPT_EASE; 1.0:
        no easing, as before). `concept_spread`: how far the alternatives' pushes spread around a
        concept slider's strength (`push_multiples`; default CONCEPT_SPREAD; 0: one strength for
        all, as before). Raises ValueError for a spread outside [0, 1]."""
        window = lm.sliding_window
        # The sliding-window layers cache window - 1 positions; beyond that a cropped cache
        # would be missing keys, so the context never grows past it.
        self.context_tokens = min(context_tokens, window - 1) if window else context_tokens
        self.lm = lm
        self.sae = sae
        self.max_acts = max_acts
        self.steer_prompt = steer_prompt
        self.lens_weights = lens_weights
        self.lens_groups = lens_groups
        self.sample = sampler or sample
        self.prefill_threads = prefill_threads
        self.words = ConceptWords(lm)
        self.heal_words = heal_words
        self.greedy_first = greedy_first
        self.first_by_logprob = first_by_logprob
        self.concept_ease = CONCEPT_EASE if concept_ease is None else concept_ease
        self.concept_spread = CONCEPT_SPREAD if concept_spread is None else concept_spread
        push_multiples(3, self.concept_spread)  # raises ValueError now, not at the first suggestion
        self._prefix: PrefixCache | None = None
        self.speller = Speller(lm.tokenizer)

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

    def lens(self, last: LensRow = None) -> tuple[tuple[int, float], ...]:
        """The feature lens at the cursor (`engine.lens.summarize`) over the prefix's rows and
        `last`, the row of the context's last token; empty without an SAE."""
        rows = [*(self._prefix.lens if self._prefix is not None else []), last]
        return summarize(rows, self.lens_groups, MIN_LENS_SCORE)

    @torch.no_grad()
    def lens_of(self, text: str) -> tuple[tuple[int, float], ...]:
        """The feature lens with the cursor at the end of `text`, as the editor shows it: the
        context runs through `prefill` (reusing the KV cache of the previous call) and the rows of
        its last LENS_TOKENS tokens are summarized. (index, score) best first; empty without an
        SAE."""
        self.prefill(self.context_ids(text))
        # The prefix now holds the last token's row too (in `suggest` it is passed as `last`).
        rows = self._prefix.lens if self._prefix is not None else []
        return summarize(rows, self.lens_groups, MIN_LENS_SCORE)

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
        if captured and self.sae is not None:
            # Not BOS, nor the first token after it, whose residual is an outlier (features that
            # fire on any text's first word).
            first = max(2 - reuse, 0, new.shape[1] - LENS_TOKENS)
            fresh = encode_rows(self.sae, captured[0][0], first, self.max_acts, self.lens_weights)
        else:
            fresh = [None] * new.shape[1]
        self._prefix = PrefixCache(ids, cache, steering_key, kept + fresh)
        return (out if logits else None), reuse

    def _draw(self, logits: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
        """One token per row of `logits` (n, V): sampled, or for row 0 the likeliest when
        `self.greedy_first`. Returns (n,)."""
        tokens = self.sample(logits, temperature, generator)  # (n,)
        if self.greedy_first:
            tokens[0] = logits[0].argmax()
        return tokens

    def _unsure(self, logits: torch.Tensor, tokens: torch.Tensor, remaining: Sequence[str | None], shown: list[str],
                confidence: float) -> list[str]:
        """Per row, why its suggestion stops before `tokens` (n,): "" (it goes on), "at a word
        start" or "inside a word", when the token's probability (`token_confidence`) is below
        `confidence` and the row already shows a whole word past the typed characters."""
        if confidence <= 0:
            return [""] * len(shown)
        rows = [r for r in range(len(shown)) if shown[r] and not remaining[r]]
        if not rows:
            return [""] * len(shown)
        probs = token_confidence(logits[rows], tokens[rows])  # (len(rows),)
        out = [""] * len(shown)
        for row, p in zip(rows, probs.tolist(), strict=True):
            if p < confidence:
                piece = str(self.lm.tokenizer.convert_ids_to_tokens(int(tokens[row])))  # "▁" starts a word
                starts_word = not piece[:1].isalnum()
                out[row] = "at a word start" if starts_word else "inside a word"
        return out

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
        if self.heal_words:
            # Token healing (`engine.healing`): the context ends on a token boundary before the
            # word being typed, and the first tokens must spell the typed characters.
            context, required = split_typed_word(req.text)
            needs_space = False
        else:
            # Before: a trailing space would be a lone "▁" token the model rarely saw; drop it
            # and keep only continuations that start with a space.
            context, required = req.text.rstrip(" "), ""
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
        # A slider asks for text the unsteered model would not write: its tokens are less sure,
        # and cutting at the first unsure one hid the concept (docs/suggestions.md). Cut only
        # what no slider shapes.
        confidence = req.confidence if steering.is_empty and rank_by is None else 0.0
        remaining: list[str | None] = [required] * n  # per row: typed characters yet to spell (None: cannot)
        logits = self.speller.constrain(last.expand(n, -1), [required] * n)  # (n, V): every row starts alike
        tokens = self._draw(logits, req.temperature, generator)  # (n,)
        gap = logits.amax(-1) - logits.gather(-1, tokens[:, None]).squeeze(-1)  # (n,)
        by_logprob = self.first_by_logprob and steering.is_empty and rank_by is None
        logprob = torch.zeros(n)  # (n,) summed log-probability of each row's tokens, when by_logprob
        step_lp = log_probs(logits, tokens) if by_logprob else None
        first_token_ms = ms()
        readings: list[torch.Tensor] = []  # (n, d) per decode step: the hook layer before steering
        live_rows: list[list[bool]] = []
        generated: list[list[int]] = [[] for _ in range(n)]
        shown, done = [""] * n, [False] * n
        raws = [""] * n  # each row's generated text after the typed characters, uncut
        streamed = ""
        anchor = ids[-_DECODE_ANCHOR_TOKENS:]
        # Special tokens (<start_of_image>, ...) are never part of the writer's text.
        anchor_text = self.lm.tokenizer.decode(anchor, skip_special_tokens=True)
        steps, decode_start = 0, time.perf_counter()
        gaps = torch.zeros(n)  # summed over each row's tokens: best logit - the drawn token's logit
        # A concept slider pushes each row at its own multiple of its strength (`push_multiples`),
        # and once a row has said the concept, it needs no more push to be about it; the rest of
        # it reads better with less (docs/steering.md measures both).
        concept_push = steering.vector is not None and rank_by is None and meter.has_concept
        ease = concept_push and self.concept_ease != 1.0
        if concept_push:
            steering.row_scale = torch.tensor(push_multiples(n, self.concept_spread)).reshape(n, 1, 1)
        eased = [False] * n
        with steered(layer, steering), reading(layer, readings):
            for step in range(req.max_new_tokens):
                last_step = step == req.max_new_tokens - 1
                live = [False] * n  # rows whose token this step is part of their text
                unsure = self._unsure(logits, tokens, remaining, shown, confidence)
                for row in range(n):
                    if done[row]:
                        continue
                    token = int(tokens[row])
                    if token == eos or unsure[row] or remaining[row] is None:
                        done[row] = True
                        if token == eos:
                            shown[row] = cut_continuation(shown[row], finished=True)[0]
                        elif unsure[row] == "at a word start":  # the word before it is whole
                            shown[row] = cut_continuation(raws[row] + " ", finished=False)[0]
                        if remaining[row] is None:
                            shown[row] = ""
                        continue
                    chars = remaining[row]
                    if chars:
                        remaining[row] = consume(chars, self.speller.piece(token) or "")
                    generated[row].append(token)
                    if ease and not eased[row] and meter.mentions(token):
                        eased[row] = True
                        steering.row_scale[row] = self.concept_ease  # type: ignore[index]
                    live[row] = True
                    gaps[row] += gap[row]
                    if step_lp is not None:
                        logprob[row] += step_lp[row]
                    decoded = str(self.lm.tokenizer.decode(anchor + generated[row], skip_special_tokens=True))
                    raw = decoded[len(anchor_text) :]
                    if needs_space:
                        if not raw.startswith(" "):
                            done[row], shown[row] = True, ""
                            continue
                        raw = raw[1:]
                    if required:
                        if raw.startswith(required):
                            raw = raw[len(required) :]
                        elif required.startswith(raw):  # still spelling the typed characters
                            continue
                        else:  # decoded otherwise than its pieces spell (never seen): no suggestion
                            done[row], shown[row] = True, ""
                            continue
                    raws[row] = raw
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
                logits = self.speller.constrain(logits, [r or "" for r in remaining])
                tokens = self._draw(logits, req.temperature, generator)
                gap = logits.amax(-1) - logits.gather(-1, tokens[:, None]).squeeze(-1)
                step_lp = log_probs(logits, tokens) if by_logprob else None
        surprise = (gaps / torch.tensor([max(1, len(g)) for g in generated])).tolist()  # mean gap per row
        ranked = meter.order(readings, live_rows, shown, surprise)  # its one SAE encode counts as decode time
        if by_logprob:
            ranked = sorted(range(n), key=lambda r: -float(logprob[r]))
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
