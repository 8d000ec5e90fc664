"""Feature data without torch: the file format, text search, rank fusion, labels."""

import gzip
import re

import pytest

from tinymorph.errors import SAEError
from tinymorph.features import (
    FeatureContext,
    FeatureData,
    FeatureInfo,
    fuse,
    load_feature_data,
    steer_scores,
    text_scores,
)


def feature(i, label, context, peak_word, promoted=("x",), density=0.001):
    tokens = tuple(re.findall(r"\s*\S+", context))
    peak = [t.strip() for t in tokens].index(peak_word)
    ctx = FeatureContext(tokens, tuple(100 if j == peak else 0 for j in range(len(tokens))), peak, 3.0)
    return FeatureInfo(i, label, density, 3.0, tuple((p, 1.0) for p in promoted), (("y", -1.0),), (ctx,))


@pytest.fixture
def data():
    return FeatureData(
        "test-sae",
        "tiny",
        "blocks.2.hook_resid_post",
        1000,
        (
            feature(0, "the / a", "the cat sat on the mat", "the"),
            feature(1, "sea / ocean → waves", "ships sailed the ocean blue", "ocean", promoted=("waves",)),
            feature(2, "harbour / boats", "boats rocked in the harbour by the ocean", "harbour"),
            feature(3, "budget / money", "the budget was cut", "budget"),
        ),
    )


def test_text_search_ranks_label_and_peak_matches_first(data):
    scores = text_scores(data, "Ocean")
    assert max(scores, key=scores.get) == 1 and 2 in scores and 3 not in scores
    assert text_scores(data, "!!!") == {}


def test_fusion_rewards_features_found_both_ways():
    hits = fuse({1: 9.0, 2: 5.0}, {2: 0.9, 3: 0.8}, limit=3)
    assert [h.index for h in hits] == [2, 1, 3]
    assert hits[0].text_score == 5.0 and hits[0].activation == 0.9


def test_round_trip_and_refusals(data, tmp_path):
    data.save(tmp_path)
    assert load_feature_data(tmp_path, d_sae=4) == data
    with pytest.raises(SAEError, match="describes 4 features; the SAE has 8"):
        load_feature_data(tmp_path, d_sae=8)
    (tmp_path / "features.json.gz").write_bytes(b"not gzip")
    with pytest.raises(SAEError, match="damaged"):
        load_feature_data(tmp_path)
    with gzip.open(tmp_path / "features.json.gz", "wt") as f:
        f.write('{"format": 99}')
    with pytest.raises(SAEError, match="format 99"):
        load_feature_data(tmp_path)
    with pytest.raises(SAEError, match="no feature data"):
        load_feature_data(tmp_path / "elsewhere")
    with pytest.raises(SAEError, match="feature 7 does not exist"):
        data.get(7)


def test_steer_search_finds_features_that_write_the_words_by_output_score(data):
    import dataclasses

    scored = FeatureData(data.sae_id, data.model, data.hook_name, data.tokens_scanned, (
        data.features[0],
        dataclasses.replace(data.features[1], output_score=0.3),  # promotes " waves"
        dataclasses.replace(data.features[2], promoted=((" waves", 2.0),), output_score=0.6),
        dataclasses.replace(data.features[3], promoted=((" waves", 2.0),), output_score=0.0),
    ))
    assert steer_scores(scored, "Waves") == {1: 0.3, 2: 0.6}  # no score, or 0: left out
    hits = fuse({}, {}, steering=steer_scores(scored, "waves"))
    assert [h.index for h in hits] == [2, 1] and hits[0].steering == 0.6
    assert not scored.features[2].steers  # writes its words, but the probe has not run
    assert not scored.features[0].steers
    assert not dataclasses.replace(scored.features[2], concept_rate=0.25).steers  # writes, but does not show
    assert dataclasses.replace(scored.features[2], concept_rate=0.5).steers


def test_output_scores_survive_the_file_and_old_files_have_none(data, tmp_path):
    import dataclasses

    scored = dataclasses.replace(data, features=(dataclasses.replace(data.features[0], output_score=0.125,
                                                                     concept_rate=0.75),
                                                 *data.features[1:]))
    scored.save(tmp_path)
    back = load_feature_data(tmp_path)
    assert back.features[0].output_score == 0.125 and back.features[0].concept_rate == 0.75
    assert back.features[1].output_score is None and back.features[1].concept_rate is None


def test_the_lens_table_is_saved_beside_the_features_and_refused_when_stale(tmp_path):
    from tinymorph.lens_table import LENS_FILE, lens_table, load_lens_table, save_feature_files

    data = FeatureData("s", "m", "h", 10, tuple(feature(i, f"word{i % 3}, other", "the sea", "sea") for i in range(6)))
    save_feature_files(data, tmp_path)
    table = load_lens_table(tmp_path, 6)
    assert table == lens_table(data) and (tmp_path / LENS_FILE).stat().st_size < 2000
    assert table.group == (0, 1, 2, 0, 1, 2)  # the same shown label, one group
    assert load_lens_table(tmp_path, 7) is None  # another width
    FeatureData("s", "m", "h", 11, data.features).save(tmp_path)  # the feature file changed alone
    assert load_lens_table(tmp_path, 6) is None
