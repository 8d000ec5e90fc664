"""Where ghost text stops, and what the memory of recent suggestions recalls."""

import pytest

from tinymorph.engine.continuation import can_suggest_at, cut_continuation
from tinymorph.suggestions import SuggestionMemory, context_window, next_word


@pytest.mark.parametrize(
    ("raw", "finished", "expected"),
    [
        (" the sea was calm. Then", False, (" the sea was calm.", True)),
        (" the sea\nNext line", False, (" the sea", True)),
        (" the boats came in and the", False, (" the boats came in and", False)),
        (" the boats came in and the", True, (" the boats came in and", False)),
        ("lo", False, ("", False)),  # completing a word: shown once whole
        ("lo world", False, ("lo", False)),
        (' "Go!" she said', False, (' "Go!" she', False)),  # one word is not a sentence yet
        (' "Go home!" she said', False, (' "Go home!"', True)),
        (" Mr. Smith", False, (" Mr.", False)),  # "Smith" may still be partial
    ],
)
def test_cut_continuation(raw, finished, expected):
    assert cut_continuation(raw, finished) == expected


@pytest.mark.parametrize(
    ("line", "column", "ok"), [("abc", 3, True), ("ab cd", 2, True), ("abcd", 2, False), ("", 0, True)]
)
def test_no_suggestions_in_the_middle_of_a_word(line, column, ok):
    assert can_suggest_at(line, column) is ok


def test_next_word_takes_leading_space_and_one_word():
    assert next_word(" the sea") == " the"
    assert next_word("\n") == "\n"


def test_memory_recalls_only_what_still_fits():
    memory = SuggestionMemory()
    memory.remember("At sea", (" the wind rose.", " we slept."))
    assert memory.recall("At sea") == (" the wind rose.", " we slept.")
    assert memory.recall("At sea th") == ("e wind rose.",)
    assert memory.recall("At sea x") == ()
    assert memory.recall("Elsewhere") == ()


def test_context_window_start_moves_in_quarter_steps():
    starts = {context_window(i, 400) for i in range(1000, 1100)}
    assert len(starts) == 1
    assert context_window(50, 400) == 0
