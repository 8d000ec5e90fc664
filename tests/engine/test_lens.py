"""The feature lens's summary of the positions before the cursor (`engine.lens`)."""

import pytest

from tinymorph.engine.lens import LENS_FEATURES, LENS_TOKENS, summarize


def test_the_lens_averages_the_last_positions_and_forgets_older_ones():
    old = [((99, 5.0),)] * 3  # strong, but before the window: the writer has moved on
    recent = [((1, 0.6), (2, 0.2)), None, ((1, 0.4), (3, 0.9))] + [((4, 0.05),)] * (LENS_TOKENS - 3)
    got = summarize(old + recent)
    ids = [i for i, _ in got]
    assert 99 not in ids
    # None (BOS, not encoded) is not a position of zeros: the means are over the encoded ones.
    encoded = LENS_TOKENS - 1
    assert dict(got)[1] == pytest.approx(1.0 / encoded) and dict(got)[3] == pytest.approx(0.9 / encoded)
    assert ids == [1, 3, 4][:LENS_FEATURES]  # 2 (0.2 once) is left out


def test_the_lens_is_empty_before_any_position_is_encoded():
    assert summarize([None, None]) == ()


def test_a_label_is_shown_once_and_a_weak_lens_is_silent():
    rows = [((1, 0.9), (2, 0.8), (3, 0.5), (4, 0.4))] * LENS_TOKENS
    groups = [0, 1, 1, 3, 4]  # 2 has the label of 1 ("sea, sick · sea, sick" would stutter)
    assert [i for i, _ in summarize(rows, groups)] == [1, 3, 4]
    assert [i for i, _ in summarize(rows, groups, min_score=0.45)] == [1, 3]
    assert summarize(rows, groups, min_score=0.95) == ()  # nothing says enough: silence


def test_features_whose_shown_labels_have_the_same_words_or_first_word_share_a_group():
    from tinymorph.features import FeatureData, FeatureInfo
    from tinymorph.lens_table import lens_table

    labels = ["sea, sick, waves", "→ writes: sick, sea", "bees, honey", "sea, ships", "honey, bees", "ships, sea"]
    features = tuple(FeatureInfo(i, lab, 0.01, 1.0, (), (), ()) for i, lab in enumerate(labels))
    data = FeatureData("s", "m", "h", 1, features)
    # "sea, ships" starts as "sea, sick" does; "honey, bees" and "ships, sea" have the words of earlier ones
    assert lens_table(data).group == (0, 0, 2, 0, 2, 0)


def test_only_topics_weigh_in_the_lens_and_rarer_ones_more():
    from tinymorph.features import FeatureInfo
    from tinymorph.lens_table import weight_of

    def feature(density: float, topical: bool | None) -> FeatureInfo:
        return FeatureInfo(0, "x", density, 1.0, (), (), (), topical=topical)

    assert weight_of(feature(1e-4, False)) == 0.0 == weight_of(feature(1e-4, None))  # detectors, unlabelled
    assert weight_of(feature(1e-4, True)) == pytest.approx(1.0)  # ln(1e4) / ln(1e4)
    assert weight_of(feature(1e-4, True)) > weight_of(feature(1e-2, True)) > 0.0
