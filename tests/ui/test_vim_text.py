"""Where vim's motions and text objects land (pure functions), and the normal-mode grammar."""

import pytest

from tinymorph.ui import vim_text
from tinymorph.ui.vim_keys import Command, parse

TEXT = "foo.bar  baz\n\n  qux(1, [2]) end.\nlast"


@pytest.mark.parametrize(("start", "big", "expected"), [
    (0, False, 3), (3, False, 4), (4, False, 9), (0, True, 9), (9, False, 13), (13, False, 16), (35, False, 37),
])
def test_word_forward_stops_at_words_punctuation_and_empty_lines(start, big, expected):
    assert vim_text.word_forward(TEXT, start, big) == expected


def test_word_end_and_backward():
    assert vim_text.word_end(TEXT, 0) == 2
    assert vim_text.word_end(TEXT, 2) == 3
    assert vim_text.word_end(TEXT, 0, big=True) == 6
    assert vim_text.word_backward(TEXT, 9) == 4
    assert vim_text.word_backward(TEXT, 16) == 13  # the empty line stops it
    assert vim_text.word_backward(TEXT, 9, big=True) == 0


def test_operator_w_stops_at_the_line_end():
    assert vim_text.words_forward_for_operator(TEXT, 9, 1) == 12
    assert vim_text.words_forward_for_operator("a b\nc", 2, 1) == 3


def test_paragraphs():
    lines = ["a", "b", "", "", "c", "d", ""]
    assert vim_text.paragraph_forward(lines, 0) == 2
    assert vim_text.paragraph_forward(lines, 2) == 6
    assert vim_text.paragraph_backward(lines, 5) == 3
    assert vim_text.paragraph_object(lines, 0, around=False) == (0, 1)
    assert vim_text.paragraph_object(lines, 0, around=True) == (0, 3)
    assert vim_text.paragraph_object(lines, 5, around=True) == (4, 6)
    assert vim_text.paragraph_object(lines, 2, around=False) == (2, 3)


def test_find_in_line():
    line = "a-b-c-d"
    assert vim_text.find_in_line(line, 0, "-", "f") == 1
    assert vim_text.find_in_line(line, 0, "-", "f", 3) == 5
    assert vim_text.find_in_line(line, 0, "-", "t") == 0
    assert vim_text.find_in_line(line, 0, "-", "t", 2) == 2
    assert vim_text.find_in_line(line, 0, "-", "t", repeat=True) == 2  # `;` after t- goes on to the next
    assert vim_text.find_in_line(line, 6, "-", "F") == 5
    assert vim_text.find_in_line(line, 6, "-", "T") == 6
    assert vim_text.find_in_line(line, 0, "x", "f") is None


def test_matching_brackets():
    assert vim_text.matching_bracket(TEXT, 14) == 26
    assert vim_text.matching_bracket(TEXT, 26) == 19
    assert vim_text.matching_bracket(TEXT, 23) == 25
    assert vim_text.matching_bracket(TEXT, 0) is None


def test_word_and_sentence_objects():
    assert vim_text.word_object("one two  three", 5, around=False) == (4, 7)
    assert vim_text.word_object("one two  three", 5, around=True) == (4, 9)
    assert vim_text.word_object("one two", 5, around=True) == (3, 7)
    text = "First one. Second (two)! Third"
    assert vim_text.sentence_object(text, 13, around=False) == (11, 24)
    assert vim_text.sentence_object(text, 13, around=True) == (11, 25)
    assert vim_text.sentence_object(text, 27, around=False) == (25, 30)


def test_search_is_plain_text_and_wraps():
    text = "e.g. the end, e.g. then"
    assert vim_text.search(text, "e.g.", 0) == 14
    assert vim_text.search(text, "e.g.", 14) == 0
    assert vim_text.search(text, "the", 0, whole_word=True) == 5
    assert vim_text.search(text, "the", 6, whole_word=True) == 5
    assert vim_text.search(text, "the", 6, backward=True) == 5
    assert vim_text.search(text, "zzz", 0) is None


@pytest.mark.parametrize(("typed", "expected"), [
    ("w", Command(None, None, "w")),
    ("3w", Command(3, None, "w")),
    ("d", "incomplete"),
    ("d3w", Command(3, "d", "w")),
    ("2d3w", Command(6, "d", "w")),
    ("dd", Command(None, "d", "line")),
    ("ci", "incomplete"),
    ("ciw", Command(None, "c", "iw")),
    ("cix", "invalid"),
    ("f", "incomplete"),
    ("fx", Command(None, None, "f", "x")),
    ("dtx", Command(None, "d", "t", "x")),
    ("g", "incomplete"),
    ("gg", Command(None, None, "gg")),
    ("dz", "invalid"),
    ("0", Command(None, None, "0")),
    ("10j", Command(10, None, "j")),
    ("3r-", Command(3, None, "r", "-")),
    ("d/", Command(None, "d", "/")),
])
def test_parse(typed, expected):
    assert parse(list(typed)) == expected


def test_parse_in_visual_mode_takes_an_operator_alone():
    assert parse(["d"], visual=True) == Command(None, None, "d")
