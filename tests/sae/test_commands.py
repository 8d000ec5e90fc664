"""The `tinymorph sae` and `features` commands end to end on the tiny model and a tiny SAE."""

import json

from tests.builders import save_topk_sae
from tinymorph.cli import main
from tinymorph.features import load_feature_data


def test_build_show_search_and_eval(tiny_model_dir, tiny_corpus, tmp_path, capsys, monkeypatch):
    from tinymorph.sae import corpus

    monkeypatch.setattr(corpus, "HELDOUT_MODULUS", 2)  # the tiny corpus is small: hold out half
    sae_dir = save_topk_sae(tmp_path / "sae", model_name="")
    common = ["--sae", str(sae_dir), "--model", str(tiny_model_dir)]
    assert main(["features", "build", str(tiny_corpus), "--seq-len", "32", "--tokens", "300", *common]) == 0
    data = load_feature_data(sae_dir, d_sae=32)
    shown = next(f for f in data.features if f.contexts)
    assert main(["features", "show", str(shown.index), *common]) == 0
    out = capsys.readouterr().out
    assert f"feature {shown.index}" in out and "top activating contexts" in out and "promotes" in out
    assert main(["features", "search", "harbour boats", "--limit", "3", *common]) == 0
    assert "features for 'harbour boats'" in capsys.readouterr().out
    assert main(["features", "score", str(tiny_corpus), "--prompts", "2", "--prompt-len", "8", "--strength", "2",
                 *common]) == 0
    scored = load_feature_data(sae_dir, d_sae=32)
    assert all(f.output_score is not None for f in scored.features)
    assert all((f.concept_rate is not None) == (f.output_score >= 0.05 and not f.dense) for f in scored.features)
    assert [f.label for f in scored.features] == [f.label for f in data.features]  # the rest is kept
    assert main(["sae", "eval", str(tiny_corpus), "--seq-len", "32", "--tokens", "200", "--save", *common]) == 0
    metrics = json.loads((sae_dir / "metrics.json").read_text())
    assert metrics["tokens"] > 0 and "ce_recovered" in metrics and metrics["corpus_fingerprint"]


def test_errors_are_one_line_with_an_exit_code(tmp_path, capsys):
    assert main(["features", "show", "3", "--sae", str(tmp_path)]) == 7
    assert "no feature data" in capsys.readouterr().err


def test_sae_eval_reads_one_file_of_the_writers_own_text(tiny_model_dir, tmp_path, capsys):
    from tests.builders import TINY_TEXT

    sae_dir = save_topk_sae(tmp_path / "sae", model_name="")
    mine = tmp_path / "my notes.markdown"  # any suffix: the writer says it is text
    mine.write_text(TINY_TEXT * 3, encoding="utf-8")
    common = ["--sae", str(sae_dir), "--model", str(tiny_model_dir), "--seq-len", "32", "--tokens", "200"]
    assert main(["sae", "eval", str(mine), *common]) == 7  # its held-out side is a chunk or two: empty here
    assert "--split all" in capsys.readouterr().err
    assert main(["sae", "eval", str(mine), "--split", "all", "--save", *common]) == 0
    assert "tokens of all of my notes.markdown" in " ".join(capsys.readouterr().out.split())  # the table wraps
    metrics = json.loads((sae_dir / "metrics.json").read_text())
    assert metrics["split"] == "all" and metrics["tokens"] > 0 and metrics["corpus"] == str(mine)


def test_features_build_labels_a_writers_own_text_from_all_of_it(tiny_model_dir, tmp_path, capsys):
    """After fine-tuning on one file of their own, a writer labels the features from all of it: its
    held-out side alone is a chunk or two."""
    from tests.builders import TINY_TEXT

    sae_dir = save_topk_sae(tmp_path / "sae", model_name="")
    mine = tmp_path / "novel.txt"
    mine.write_text(TINY_TEXT * 3, encoding="utf-8")
    common = ["--sae", str(sae_dir), "--model", str(tiny_model_dir), "--seq-len", "32", "--tokens", "300"]
    assert main(["features", "build", str(mine), *common]) == 7
    assert "the heldout side of" in capsys.readouterr().err
    assert main(["features", "build", str(mine), "--split", "all", *common]) == 0
    data = load_feature_data(sae_dir, d_sae=32)
    assert data.tokens_scanned >= 200 and any(f.contexts for f in data.features)


def test_sae_train_from_a_folder_fine_tunes_it_and_from_none_is_refused(tiny_model_dir, tiny_corpus, tmp_path,
                                                                          capsys, monkeypatch):
    from tinymorph.sae import corpus

    monkeypatch.setattr(corpus, "HELDOUT_MODULUS", 2)
    base = save_topk_sae(tmp_path / "base", model_name="")
    common = ["--model", str(tiny_model_dir), "--seq-len", "32", "--tokens", "4096", "--eval-tokens", "0"]
    assert main(["sae", "train", str(tiny_corpus), "--from", "none", "--out", str(tmp_path / "x"), *common]) == 7
    assert "none" in capsys.readouterr().err
    assert main(["sae", "train", str(tiny_corpus), "--from", str(base), "--out", str(tmp_path / "mine"), *common]) == 0
    meta = json.loads((tmp_path / "mine" / "tinymorph.json").read_text())
    # Layer, width and k come from the SAE fine-tuned; another layer is refused.
    assert meta["started_from"] == str(base)
    assert (meta["options"]["layer"], meta["options"]["d_sae"], meta["options"]["k"]) == (2, 32, 4)
    assert main(["sae", "train", str(tiny_corpus), "--from", str(base), "--layer", "1", "--out", str(tmp_path / "y"),
                 *common]) == 7
    assert "pass --layer 2" in capsys.readouterr().err


def test_features_lens_prints_and_writes_what_the_editor_would_show(tiny_model_dir, tiny_corpus, tmp_path, capsys,
                                                                     monkeypatch):
    from tinymorph.sae import corpus

    monkeypatch.setattr(corpus, "HELDOUT_MODULUS", 2)
    sae_dir = save_topk_sae(tmp_path / "sae", model_name="")
    common = ["--sae", str(sae_dir), "--model", str(tiny_model_dir)]
    assert main(["features", "build", str(tiny_corpus), "--seq-len", "32", "--tokens", "300", *common]) == 0
    text = "The sea was calm and the boats came home."
    assert main(["features", "lens", text, "--json", str(tmp_path / "lens.json"), *common]) == 0
    result = json.loads((tmp_path / "lens.json").read_text())
    assert result["text"] == text and len(result["features"]) <= 3
    scores = [f["score"] for f in result["features"]]
    assert scores == sorted(scores, reverse=True)
    labels = [f["label"] for f in result["features"]]
    assert len(set(labels)) == len(labels)  # a label once
    assert all(set(f) == {"index", "label", "score"} for f in result["features"])
    notes = tmp_path / "notes.txt"
    notes.write_text("The sea was calm. She wrote her letters at night!\nThe committee argued.")
    assert main(["features", "lens", "--file", str(notes), "--json", str(tmp_path / "file.json"), *common]) == 0
    per_sentence = json.loads((tmp_path / "file.json").read_text())
    assert [r["text"].rstrip().rsplit(" ", 1)[-1] for r in per_sentence] == ["calm.", "night!", "argued."]
    assert main(["features", "lens", *common]) != 0  # neither TEXT nor --file
