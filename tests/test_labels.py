"""Readable labels: English words from where a feature fires and what it writes; fragments, other
scripts and function words never make a label; output features say "writes"."""

import re

from tinymorph.features import FeatureContext, FeatureInfo
from tinymorph.labels import readable_label


def context(text: str, peak_word: str, act: int = 100) -> FeatureContext:
    tokens = tuple(re.findall(r"\s*\S+", text))
    peak = [t.strip(" ,.") for t in tokens].index(peak_word)
    return FeatureContext(tokens, tuple(act if j == peak else 10 for j in range(len(tokens))), peak, 3.0)


def info(contexts, promoted=(" x",), output_score=None, density=0.001) -> FeatureInfo:
    return FeatureInfo(1, "", density, 3.0, tuple((p, 1.0) for p in promoted), (), tuple(contexts),
                       output_score=output_score)


def test_a_detector_is_named_by_the_content_words_where_it_fires():
    f = info([context("the waves broke over the harbour wall", "harbour"),
              context("we rowed the boat into the harbour at dawn", "harbour"),
              context("ships anchored in the bay, rocking", "bay")],
             promoted=(" 域", "igans", " Pines"))
    label, topical = readable_label(f)
    assert label.split(", ")[0] == "harbour" and "bay" in label and topical
    assert all(re.fullmatch(r"[a-z]+", w) for w in label.split(", "))  # no fragment, no other script
    assert len(label.split(", ")) <= 3


def test_a_feature_that_fires_on_the_before_a_topic_takes_its_words_from_the_context():
    f = info([context("sailed across the ocean to Lisbon", "the"), context("down the river to the sea", "the")],
             promoted=(" ocean", " Atlantic", " sea", " gulf"))
    label, topical = readable_label(f)
    assert "the" not in label.split(", ") and ("ocean" in label or "sea" in label or "river" in label)
    assert topical  # it fires on "the", but writes a topic in English


def test_an_output_feature_says_what_it_writes():
    f = info([context("of all the same things", "same")], promoted=(" gold", "Gold", " metals", " 金", "bull"),
             output_score=0.2)
    assert readable_label(f) == ("→ writes: gold, metals, bull", True)


def test_function_word_features_are_not_topical():
    f = info([context("and so, and then, and", "and"), context("this and that", "and")])
    assert readable_label(f)[1] is False
    writes_that = info([context("so that it", "that")], promoted=(" that", "That"), output_score=0.3)
    assert readable_label(writes_that) == ("→ writes: that", False)
