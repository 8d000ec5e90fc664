"""Readable labels: English words from where a feature fires and what it writes; fragments, other
scripts and function words never make a label; output features say "writes"; only features whose
contexts and promoted words agree are topics (the lens shows those alone)."""

import re

from tinymorph.features import FeatureContext, FeatureInfo
from tinymorph.labels import readable_label, writes_words


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
    assert label.split(", ")[0] == "harbour" and "bay" in label
    assert not topical  # its decoder writes nothing about harbours: a detector, not a topic
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
    assert readable_label(f) == ("→ writes: gold, metals, bull", False)  # it fires on "same", not on gold
    mines = info([context("they dug gold out of the hills", "gold"), context("a seam of silver and gold", "gold")],
                 promoted=(" gold", "Gold", " metals"), output_score=0.2)
    assert readable_label(mines) == ("→ writes: gold, metals", True)


def test_function_word_features_are_not_topical():
    f = info([context("and so, and then, and", "and"), context("this and that", "and")])
    assert readable_label(f)[1] is False
    writes_that = info([context("so that it", "that")], promoted=(" that", "That"), output_score=0.3)
    assert readable_label(writes_that) == ("→ writes: that", False)


def test_contexts_that_share_no_word_give_one_word_and_no_lens():
    f = info([context("the toad sat under a stone", "toad"), context("a cuckoo called from the hedge", "cuckoo"),
              context("torn to shreds by the wind", "shreds"), context("he lit the hookah slowly", "hookah"),
              context("the bishop of the diocese", "bishop"), context("she sold her tickets", "tickets")])
    label, topical = readable_label(f)
    assert "," not in label and not topical


def test_words_the_contexts_agree_on_make_the_label():
    f = info([context("the bees swarmed out of the hive", "bees"),
              context("honey dripped from the comb of the bees", "bees"),
              context("a hive of wild bees in the oak", "hive"), context("the keeper lifted the hive lid", "hive"),
              context("a lorry passed on the road", "lorry")], promoted=(" bees", " hive", " honey", " of"))
    label, topical = readable_label(f)
    assert label.split(", ")[:2] == ["bees", "hive"] and "lorry" not in label and topical


def test_slurs_never_make_a_label():
    from tinymorph.labels import SLURS

    word = sorted(SLURS)[0]
    f = info([context(f"the {word} ran past the river", word), context(f"a {word} by the river", word),
              context("down to the river bank", "river")])
    assert word not in readable_label(f)[0].split(", ")


def test_a_topic_is_where_input_and_output_agree():
    coffee = info([context("I grind the coffee beans every morning", "coffee"),
                   context("she poured a cup of coffee for him", "cup"),
                   context("the smell of roasted beans and coffee", "beans")],
                  promoted=(" coffee", " Coffee", " coffees", " espresso", " barista", "咖啡"))
    label, topical = readable_label(coffee)
    words = label.split(", ")
    assert words[0] == "coffee" and "coffees" not in words and topical  # "coffees": a spelling of "coffee"
    went = info([context("we went down to the shop", "went"), context("she went home early", "went"),
                 context("they went out at night", "went")], promoted=(" afterwards", " then", " later"))
    label, topical = readable_label(went)
    assert label.startswith("went") and not topical  # a word it fires on, but no topic


def test_one_context_of_many_does_not_make_a_topic():
    """A word the feature promotes, near the peak of 1 of 24 contexts, is an anecdote; in 2 it agrees."""
    others = [context(f"she walked along the {w} slowly", w, act=30) for w in
              ("road", "shore", "lane", "river", "field", "hedge", "wall", "street", "bridge", "meadow", "path",
               "fence", "gate", "square", "market", "yard", "track", "canal", "harbour", "station", "church")]
    promoted = (" garden", " lawn", " kitchen", " DIY")
    kitchen, shelf = context("we cleaned the kitchen floor", "kitchen"), context("dust lay on the shelf", "shelf")
    once = info([kitchen, *others, context("the soil was wet", "soil"), shelf], promoted=promoted)
    twice = info([kitchen, *others, context("in the kitchen at noon", "kitchen"), shelf], promoted=promoted)
    assert len(once.contexts) == len(twice.contexts) == 24
    assert readable_label(once)[1] is False
    label, topical = readable_label(twice)
    assert topical and label.startswith("kitchen")


def test_writes_words_finds_a_whole_word_of_the_same_stem():
    assert writes_words("In those Years the harvest failed.", ["year", "annum"])
    assert writes_words("the sailor's boat", ["sailors"])
    assert not writes_words("yesterday, ye", ["year"])  # "ye" is shorter than a stem: it must be equal
    assert not writes_words("a yearling", []) and not writes_words("", ["year"])
