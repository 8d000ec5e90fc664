"""Generation on the tiny model: KV reuse is exact, steering hooks, latest-wins, alternatives."""

from pathlib import Path

import pytest
import torch
from transformers import DynamicCache

from tinymorph.domain import SteeringSpec, SteeringTerm
from tinymorph.engine.generate import DROP_BLOCK_TOKENS, Generator
from tinymorph.engine.protocol import SuggestRequest
from tinymorph.errors import SteeringError
from tinymorph.lm.model import LoadedModel, cache_keyword, decoder_layers, load_model
from tinymorph.lm.steering import steered, steering_vector


@pytest.fixture(scope="module")
def lm(tiny_manifest) -> LoadedModel:
    return load_model(tiny_manifest, Path("/nonexistent-cache"), lambda *_: None)


def fresh_logits(lm: LoadedModel, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return lm.model(torch.tensor([ids])).logits[0, -1].float()


def test_context_is_capped_below_the_sliding_window_and_starts_with_bos(lm):
    gen = Generator(lm, context_tokens=511)
    assert gen.context_tokens == 31  # sliding window 32 - 1
    ids = gen.context_ids("x" * 500)
    assert ids[0] == lm.tokenizer.bos_token_id
    assert len(ids) <= 31


def test_context_start_moves_in_blocks_so_the_prefix_stays_stable(lm):
    gen = Generator(lm, context_tokens=31)
    gen.context_tokens = 200  # pretend a larger window to see the block behaviour
    text = "abcdefghij" * 30  # 300 tokens
    a, b = gen.context_ids(text), gen.context_ids(text + "k")
    assert a[: len(a)] == b[: len(a)]  # typing one more token keeps the prefix
    assert (300 - (len(a) - 1)) % DROP_BLOCK_TOKENS == 0


@pytest.mark.parametrize("edit", ["append", "replace_tail", "shorter", "same"])
def test_kv_cache_reuse_gives_the_same_logits_as_a_fresh_prefill(lm, edit):
    gen = Generator(lm, context_tokens=31)
    first = gen.context_ids("The cat sat on the mat")
    second = {
        "append": gen.context_ids("The cat sat on the mat and"),
        "replace_tail": gen.context_ids("The cat sat on the hat"),
        "shorter": gen.context_ids("The cat sat on"),
        "same": first,
    }[edit]
    with torch.no_grad():
        gen.prefill(first, (), logits=True)
        logits, reused = gen.prefill(second, (), logits=True)
    assert reused > 0
    torch.testing.assert_close(logits, fresh_logits(lm, second), atol=1e-4, rtol=1e-4)


def test_kv_cache_is_not_reused_across_different_steering(lm):
    gen = Generator(lm, 31)
    ids = gen.context_ids("The cat sat")
    with torch.no_grad():
        gen.prefill(ids, ())
        _, reused = gen.prefill(ids, (((1.0,) * 64, 1.0),))
    assert reused == 0


def steered_request(rid: int, text: str, strength: float) -> SuggestRequest:
    direction = tuple(float(i == 5) for i in range(64))
    return SuggestRequest(rid, text, steering=SteeringSpec((SteeringTerm(strength, direction=direction),)),
                          alternatives=2, max_new_tokens=4, temperature=0)


def test_steering_from_the_cursor_keeps_the_prefix_cache_when_a_slider_moves(lm):
    gen = Generator(lm, 31, heal_words=False)  # the default: steering acts from the context's last token on
    first = gen.suggest(steered_request(1, "The cat sat on", 1.0), lambda: False, lambda *_: None)
    nudged = gen.suggest(steered_request(2, "The cat sat on", 1.2), lambda: False, lambda *_: None)
    assert first is not None and nudged is not None
    assert nudged.prefill_tokens == 1 and nudged.reused_tokens == len(gen.context_ids("The cat sat on")) - 1
    whole = Generator(lm, 31, steer_prompt=True, heal_words=False)  # steering every position: a cold prefill
    whole.suggest(steered_request(1, "The cat sat on", 1.0), lambda: False, lambda *_: None)
    again = whole.suggest(steered_request(2, "The cat sat on", 1.2), lambda: False, lambda *_: None)
    assert again is not None and again.reused_tokens == 0


def test_steering_from_the_cursor_equals_steering_the_last_context_token_and_what_follows(lm):
    """The first token's distribution is the prompt but its last token unsteered, the last one
    steered (one pass runs both: the steering must reach only the last position); afterwards the
    prefix cache holds the prompt but its last token, unsteered, for the next request."""
    seen: list[torch.Tensor] = []

    def recording(logits, temperature, generator):  # type: ignore[no-untyped-def]
        seen.append(logits.clone())
        return logits.argmax(-1)

    gen = Generator(lm, 31, sampler=recording, heal_words=False)  # no typed characters constrain the logits
    req = steered_request(1, "The cat sat on the mat and", 2.0)
    ids = gen.context_ids(req.text)
    gen.prefill(ids[:3], ())  # a cache that holds part of the prompt: the pass runs several tokens
    layer = decoder_layers(lm.model)[lm.hook_layer]
    vector = steering_vector(req.steering, 64, lm.median_norm)
    with torch.no_grad():
        cache = DynamicCache(config=lm.model.config)
        with_cache = {cache_keyword(type(lm.model)): cache}
        lm.model(torch.tensor([ids[:-1]]), use_cache=True, **with_cache)
        with steered(layer, vector):
            expected = lm.model(torch.tensor([ids[-1:]]), use_cache=True, **with_cache).logits[0, -1]
    got = gen.suggest(req, lambda: False, lambda *_: None)
    assert got is not None and got.reused_tokens == 3
    assert seen[0].shape == (2, expected.shape[-1])
    torch.testing.assert_close(seen[0][0], expected.float(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(seen[0][1], expected.float(), atol=1e-4, rtol=1e-4)
    assert gen.prefix is not None and gen.prefix.ids == ids[:-1] and len(gen.prefix.lens) == len(ids) - 1
    with torch.no_grad():
        logits, reused = gen.prefill(ids, (), logits=True)
    assert reused == len(ids) - 1
    torch.testing.assert_close(logits, fresh_logits(lm, ids), atol=1e-4, rtol=1e-4)


def test_a_prefill_that_fails_leaves_no_cache_to_reuse(lm, monkeypatch):
    gen = Generator(lm, 31)
    with torch.no_grad():
        gen.prefill(gen.context_ids("The cat sat on the mat"), ())

    def broken(*_args, **_kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(lm, "run", broken)
    with pytest.raises(RuntimeError), torch.no_grad():
        gen.prefill(gen.context_ids("The cat sat on the hat"), ())  # crops the cache, then fails
    monkeypatch.undo()
    assert gen.prefix is None
    with torch.no_grad():
        logits, reused = gen.prefill(gen.context_ids("The cat sat on the hat"), (), logits=True)
    assert reused == 0
    torch.testing.assert_close(logits, fresh_logits(lm, gen.context_ids("The cat sat on the hat")), atol=1e-4,
                               rtol=1e-4)


def test_steering_adds_the_vector_everywhere_but_bos(lm):
    layer = decoder_layers(lm.model)[lm.hook_layer]
    captured = []
    probe = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    direction = tuple(float(i % 3 == 0) for i in range(64))
    vector = steering_vector(SteeringSpec((SteeringTerm(2.0, direction=direction, label="test"),)), 64, lm.median_norm)
    ids = torch.tensor([lm.tokenizer("<bos>hello").input_ids])
    with torch.no_grad():
        lm.model(ids)
        # The steering hook is registered after the probe, so the probe sees the unsteered
        # output; a second probe registered after it sees the steered one.
        with steered(layer, vector):
            after = []
            probe2 = layer.register_forward_hook(lambda _m, _i, out: after.append(out))
            lm.model(ids)
            probe2.remove()
    probe.remove()
    plain, steered_out = captured[0][0], after[0][0]  # (T, d)
    assert torch.equal(steered_out[0], plain[0])  # BOS untouched
    delta = steered_out[1:] - plain[1:]
    torch.testing.assert_close(delta, vector.expand_as(delta), atol=1e-3, rtol=1e-3)
    assert vector.norm().item() == pytest.approx(2.0 * lm.median_norm, rel=1e-5)
    assert not layer._forward_hooks  # every hook removed


def test_steering_changes_the_next_token_distribution(lm):
    gen = Generator(lm, 31)
    plain_req = SuggestRequest(1, "hello wor", alternatives=1, temperature=0, max_new_tokens=8)
    plain = gen.suggest(plain_req, lambda: False, lambda *_: None)
    direction = tuple(float(i == 5) for i in range(64))
    req = SuggestRequest(2, "hello wor", steering=SteeringSpec((SteeringTerm(8.0, direction=direction),)),
                         alternatives=1, temperature=0, max_new_tokens=8)
    layer = decoder_layers(lm.model)[lm.hook_layer]
    with torch.no_grad(), steered(layer, steering_vector(req.steering, 64, lm.median_norm)):
        steered_logits = fresh_logits(lm, gen.context_ids("hello wor"))
    assert not torch.allclose(steered_logits, fresh_logits(lm, gen.context_ids("hello wor")))
    assert gen.suggest(req, lambda: False, lambda *_: None) is not None
    assert plain is not None


def test_a_direction_of_the_wrong_width_is_refused(lm):
    gen = Generator(lm, 31)
    req = SuggestRequest(1, "hi", steering=SteeringSpec((SteeringTerm(1.0, direction=(1.0, 2.0), label="short"),)))
    with pytest.raises(SteeringError, match="has 2 components"):
        gen.suggest(req, lambda: False, lambda *_: None)


def test_alternatives_are_reproducible_with_the_same_seed(lm):
    req = SuggestRequest(1, "Once upon a ", alternatives=3, max_new_tokens=12, seed=7)
    a = Generator(lm, 31).suggest(req, lambda: False, lambda *_: None)
    b = Generator(lm, 31).suggest(req, lambda: False, lambda *_: None)
    assert a is not None and b is not None
    assert a.alternatives == b.alternatives
    assert len(a.alternatives) <= 3


def test_a_stale_request_is_abandoned_between_tokens(lm):
    gen = Generator(lm, 31)
    checks = []

    def is_stale() -> bool:
        checks.append(1)
        return len(checks) >= 2

    req = SuggestRequest(1, "abc", alternatives=2, max_new_tokens=20, temperature=1.0)
    assert gen.suggest(req, is_stale, lambda *_: None) is None
    assert len(checks) == 2


def test_reuse_is_reported_after_a_small_edit(lm):
    gen = Generator(lm, 31)
    first = gen.suggest(SuggestRequest(1, "The cat sat "), lambda: False, lambda *_: None)
    second = gen.suggest(SuggestRequest(2, "The cat sat o"), lambda: False, lambda *_: None)
    assert first is not None and second is not None
    assert first.reused_tokens == 0
    # The prefix cache holds the context but its last token: BOS + "The cat sa". The word being
    # typed ("o") is not in the context (token healing spells it): only "t" runs again.
    assert second.reused_tokens == len("The cat sat")
    assert second.prefill_tokens == 1


def test_a_long_prefill_runs_on_the_burst_threads_and_gives_them_back(lm, monkeypatch):
    import tinymorph.engine.generate as generate

    monkeypatch.setattr(generate, "LONG_PREFILL_TOKENS", 4)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    seen: list[tuple[int, int]] = []
    run = lm.run

    def counting(ids, cache=None, **kwargs):  # type: ignore[no-untyped-def]
        seen.append((ids.shape[1], torch.get_num_threads()))
        return run(ids, cache, **kwargs)

    monkeypatch.setattr(lm, "run", counting)
    try:
        gen = Generator(lm, 31, prefill_threads=2)
        with torch.no_grad():
            gen.prefill(gen.context_ids("The cat sat on the mat by the door"), ())  # long: a burst
            gen.prefill(gen.context_ids("The cat sat on the mat by the door and"), ())  # one more token
        assert seen[0][0] > 4 and seen[0][1] == 2
        assert seen[1][0] <= 4 and seen[1][1] == 1  # a short one: the usual threads
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
