"""The lens and search judges: labels on topic by their words, sets read from TOML, and the
shipped sets are well formed (40+ dev sentences, 30 words)."""

from pathlib import Path

import pytest

from tinymorph.errors import TinymorphError
from tinymorph.evals.lens import LensScore, load_search_words, load_topics, on_topic

DOCS = Path(__file__).parents[2] / "docs" / "evals"


def test_a_label_is_on_topic_when_one_of_its_words_names_the_topic():
    words = frozenset({"bees", "hive", "honey"})
    assert on_topic("honey, sweet", words) and on_topic("→ writes: Bees", words)
    assert not on_topic("toad, cuckoo", words) and not on_topic("beeswax", words)


def test_the_score_counts_sentences_named_labels_on_topic_and_silence():
    s = LensScore()
    s.add(["honey, sweet", "toad"], frozenset({"honey"}))
    s.add([], frozenset({"snow"}))
    assert s.as_dict() == {"sentences": 2, "named_rate": 0.5, "labels": 2, "on_topic_rate": 0.5, "silent": 1}


def test_the_shipped_sets_hold_what_the_issue_asks_for():
    topics = load_topics(DOCS / "lens-topics.toml")
    dev = [t for t in topics if t.split == "dev"]
    assert len(dev) >= 40 and len({t.topic for t in dev}) == len(dev)
    assert all(t.words and t.text for t in topics)
    words = load_search_words(DOCS / "search-words.toml")
    assert len(words) >= 30 and all(w.word in w.related for w in words)


def test_a_broken_set_says_what_is_missing(tmp_path):
    bad = tmp_path / "t.toml"
    bad.write_text('[[dev]]\ntopic = "x"\ntext = "y"\n')
    with pytest.raises(TinymorphError, match="words"):
        load_topics(bad)
