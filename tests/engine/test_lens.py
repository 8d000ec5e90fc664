"""The feature lens's summary of the positions before the cursor (`engine.lens`)."""

import pytest

from tinymorph.engine.lens import LENS_FEATURES, LENS_TOKENS, summarize


def test_the_lens_averages_the_last_positions_and_forgets_older_ones():
    old = [((99, 5.0),)] * 3  # strong, but before the window: the writer has moved on
    recent = [((1, 0.6), (2, 0.2)), None, ((1, 0.4), (3, 0.9))] + [((4, 0.08),)] * (LENS_TOKENS - 3)
    got = summarize(old + recent)
    ids = [i for i, _ in got]
    assert 99 not in ids
    # None (BOS, not encoded) is not a position of zeros: the means are over the encoded ones.
    encoded = LENS_TOKENS - 1
    assert dict(got)[1] == pytest.approx(1.0 / encoded) and dict(got)[3] == pytest.approx(0.9 / encoded)
    assert ids == [1, 3, 4][:LENS_FEATURES]  # 2 (0.2 once) is left out


def test_the_lens_is_empty_before_any_position_is_encoded():
    assert summarize([None, None]) == ()
