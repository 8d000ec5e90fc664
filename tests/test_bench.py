"""The benchmark's instruments, checked on things whose answer is known (the numbers themselves
are in docs/benchmarks.md, never asserted in a test)."""

import os
import sys

import pytest

from tinymorph.bench.quality import simulate_writer
from tinymorph.engine.protocol import SuggestionReady


@pytest.mark.skipif(sys.platform != "linux", reason="a Linux pseudo-terminal")
def test_the_terminal_harness_sees_every_key_painted_and_reads_the_file(tmp_path, tinymorph_home):
    from tinymorph.bench.keys import START, TYPED, type_keys

    env = {**os.environ, "TERM": "xterm-256color", "TINYMORPH_HOME": str(tinymorph_home)}
    run = type_keys(tmp_path, env, ["--no-suggestions"], 12, rate_hz=20, ready=("suggestions off",))
    assert run.missed == 0 and len(run.latencies_ms) == 12 and all(t > 0 for t in run.latencies_ms)
    assert run.saved == run.expected == START + TYPED[:12] and run.lost_or_reordered == 0
    run.saved = run.saved[:-3] + run.saved[-1:]  # two keys lost
    assert run.lost_or_reordered == 2


@pytest.mark.skipif(sys.platform != "linux", reason="a Linux pseudo-terminal")
def test_a_closed_terminal_stops_reading_before_the_next_one_can_take_its_number():
    from tinymorph.bench.keys import Terminal

    # A process the program started keeps the terminal open after the program is killed, and
    # writes to it later (the editor starts model processes, which may do the same).
    first = Terminal(["-c", "(sleep 1; echo late) & echo first; sleep 30"], dict(os.environ), program=["/bin/sh"])
    first.wait_for(("first",), timeout=10)
    first.close()
    assert not first.reader.is_alive()
    lines = [f"line{i}" for i in range(1, 25)]
    second = Terminal(["-c", f"for w in {' '.join(lines)}; do echo $w; sleep 0.1; done; sleep 30"],
                      dict(os.environ), program=["/bin/sh"])
    try:
        second.wait_for((lines[-1],), timeout=10)
        shown = "\n".join(second.lines())
        assert [w for w in lines if w not in shown] == []  # no output went to the first's reader
    finally:
        second.close()


class Suggests:
    """Stands in for the Generator: answers with the next words of the text (right) or junk."""

    def __init__(self, text: str, right: int) -> None:
        self.text, self.right, self.asked = text, right, 0

    def suggest(self, req, *_args, **_kwargs):  # type: ignore[no-untyped-def]
        self.asked += 1
        rest = self.text[len(req.text):] if self.text.startswith(req.text) else ""
        words = rest.split(" ")[1 : self.right + 1]
        guess = "".join(" " + w for w in words) + " zebra"
        return SuggestionReady(req.request_id, (guess,), 1.0, 2.0, 1, 0)


def test_the_simulated_writer_counts_one_key_per_accepted_word():
    text = "one two three four five six seven eight nine ten eleven twelve"
    result = simulate_writer(Suggests(text, right=2), text, context_words=2, words=10,  # type: ignore[arg-type]
                             in_word=False)
    # After "one two": " three four" accepted (2 keys), " five" typed (5 keys), and so on; the
    # last suggestion, " twelve zebra", is right for the text's last word.
    assert result.characters == len(" three four five six seven eight nine ten eleven twelve")
    assert result.accepted_chars == len(" three four") + len(" six seven") + len(" nine ten") + len(" twelve")
    assert result.keystrokes == 2 + 2 + 2 + 1 + len(" five") + len(" eight") + len(" eleven")
    assert result.first_word_right["word end"] == 4 and result.suggestions == 4
    assert result.acceptance_rate == 1.0 and result.per_100_words() == 40
    assert result.keystroke_savings == pytest.approx(1 - result.keystrokes / result.characters)


class Finishes:
    """Stands in for the Generator: inside a word, the rest of that word and a wrong one; at a
    word's end, a wrong word."""

    def __init__(self, text: str) -> None:
        self.text, self.asked = text, []

    def suggest(self, req, *_args, **_kwargs):  # type: ignore[no-untyped-def]
        self.asked.append(req.text)
        typed_word = req.text.split(" ")[-1]
        rest = self.text[len(req.text):]
        guess = rest.split(" ")[0] + " zebra" if typed_word and not req.text.endswith(" ") and rest[:1] != " " \
            else " zebra"
        return SuggestionReady(req.request_id, (guess,), 1.0, 2.0, 1, 0)


def test_the_writer_takes_the_rest_of_a_word_after_typing_its_first_letter():
    text = "alpha beta gamma"
    gen = Finishes(text)
    result = simulate_writer(gen, text, context_words=1, words=2)  # type: ignore[arg-type]
    # After "alpha": " zebra" (wrong); " " agrees with it, "b" does not: asked again after "b",
    # "eta zebra": "eta" taken (one key); " zebra" shows on; " " agrees, "g" does not; "amma".
    assert gen.asked == ["alpha", "alpha b", "alpha beta g"]
    assert result.keystrokes == len(" b") + 1 + len(" g") + 1
    assert result.characters == len(" beta gamma")
    assert result.shown == {"word end": 1, "in word": 2}
    assert result.taken == {"word end": 0, "in word": 2}
    assert result.words_taken == 2 and result.words_shown == 1 + 2 + 2


def test_a_suggestion_right_to_the_texts_end_is_all_taken():
    text = "a b c d e f g"
    gen = Suggests(text, right=10)
    result = simulate_writer(gen, text, context_words=1, words=6)  # type: ignore[arg-type]
    assert result.keystrokes == 6 and gen.asked == 1  # " zebra" is wrong: a key per word, not Tab


def test_a_suggestion_right_in_all_its_words_is_taken_with_one_tab():
    text = "a b c d e f g"

    class Exact(Suggests):
        def suggest(self, req, *_args, **_kwargs):  # type: ignore[no-untyped-def]
            self.asked += 1
            return SuggestionReady(req.request_id, (" b c",) if req.text == "a" else ("",), 1.0, 2.0, 1, 0)

    gen = Exact(text, right=0)
    result = simulate_writer(gen, text, context_words=1, words=2)  # type: ignore[arg-type]
    assert result.keystrokes == 1 and result.characters == len(" b c")


def test_ghost_text_is_what_follows_the_cursor_not_the_lens_inlay():
    from tinymorph.bench.keys import shows_ghost

    assert shows_ghost(" the sea was calm.                 ◂ the sea · ships ")
    assert not shows_ghost("                                   ◂ the sea · ships ")
    assert not shows_ghost("          ")


def _crash() -> None:
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)


def _answer(x: int) -> int:
    return x + 1


def test_foreign_code_runs_in_a_child_whose_crash_becomes_a_sentence():
    from tinymorph.bench import _in_child

    assert _in_child(_answer, 41) == 42
    assert _in_child(_crash) == "crashed: SIGSEGV"


def test_the_concept_bench_times_each_case_before_and_now(tiny_lm, monkeypatch):
    from tinymorph.bench import concepts

    monkeypatch.setattr(concepts, "QUERIES", ("lighthouses",))
    costs = concepts.concept_costs(tiny_lm, None, reps=1)
    assert set(costs) == {"make before", "make now, first ever", "make now, first of a worker", "make now, later",
                          "nudge first token before", "nudge first token now", "nudge full before", "nudge full now"}
    assert all(v > 0 for v in costs.values())
    lines = concepts.concept_lines(costs, 1)
    assert sum(line.startswith("| make a concept slider") for line in lines) == 3 and len(lines) == 9


def test_the_training_step_bench_times_the_dense_and_the_sparse_sae():
    from tinymorph.bench.sae import train_step_ms

    times = train_step_ms(d_in=16, d_sae=128, k=4, batch=32, reps=1)
    assert set(times) == {"dense", "sparse"} and all(v > 0 for v in times.values())
