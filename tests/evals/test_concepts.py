"""The four-arm concept evaluation's logic on the tiny model: the arms share prompts, seeds and
decoding and differ only in what they test; the judge matches whole words."""

import json
import math
from pathlib import Path

import pytest

from tests.builders import save_topk_sae
from tinymorph.engine.generate import Generator
from tinymorph.errors import ConfigError
from tinymorph.evals.concepts import ARMS, ConceptCase, as_json, concept_eval, read_concepts, repetition, shows
from tinymorph.evals.steer import Decoding
from tinymorph.sae.loading import load_sae


def test_the_judge_matches_whole_words_case_insensitively():
    words = ("sea", "ship")
    assert shows("The Sea was calm.", words) and shows("a SHIP!", words)
    assert not shows("seashore and shipping", words)  # no part of a word
    assert not shows("", words)


def test_repetition_is_the_share_of_word_3_grams_seen_before_in_the_same_text():
    assert repetition(["in the forest of the forest in the forest"]) == pytest.approx(1 / 7)  # "in the forest"
    assert repetition(["a b c", "a b c"]) == 0.0  # each text on its own
    assert repetition(["two words"]) == 0.0


def test_concept_files_need_a_name_a_query_and_words(tmp_path):
    good = tmp_path / "c.toml"
    good.write_text('[[concept]]\nname = "the sea"\nquery = "sea"\nwords = ["sea", "ship"]\n')
    assert read_concepts(good) == [ConceptCase("the sea", "sea", ("sea", "ship"))]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[concept]]\nname = "the sea"\nquery = "sea"\n')
    with pytest.raises(ConfigError, match="bad concepts file"):
        read_concepts(bad)


def test_the_four_arms_share_prompts_seeds_and_decoding(tiny_lm, tiny_manifest, tmp_path, monkeypatch):
    sae = load_sae(str(save_topk_sae(tmp_path / "s")), tiny_manifest, 64, 4)
    gen = Generator(tiny_lm, 31, sae)
    calls = []
    real = gen.suggest

    def spy(req, *args, rank_by=None, **kwargs):
        calls.append((req, rank_by))
        return real(req, *args, rank_by=rank_by, **kwargs)

    monkeypatch.setattr(gen, "suggest", spy)
    decoding = Decoding(temperature=1.0, alternatives=3, seed=5, tokens=6)
    cases = [ConceptCase("the sea", "sea", ("sea",)), ConceptCase("war", "war", ("war",))]
    prompts = ["The boat", "She said"]
    results = concept_eval(gen, cases, prompts, decoding, strength=0.3)
    plain, rest = calls[:2], calls[2:]  # the unsteered suggestions are made once, for every concept
    assert [(r.text, r.steering.is_empty, rank) for r, rank in plain] == [
        ("The boat", True, None), ("She said", True, None)]
    for c, case in enumerate(cases):
        selection, steered, prompted = rest[6 * c : 6 * c + 2], rest[6 * c + 2 : 6 * c + 4], rest[6 * c + 4 : 6 * c + 6]
        for k in range(2):
            arms = [plain[k], selection[k], steered[k], prompted[k]]
            assert {r.seed for r, _ in arms} == {5 + k}  # one seed per prompt, shared by the arms
            assert {(r.temperature, r.alternatives, r.max_new_tokens) for r, _ in arms} == {(1.0, 3, 6)}
            (term,) = steered[k][0].steering.terms
            assert term.strength == 0.3 and term.concept == case.query and steered[k][1] is None  # it ranks itself
            assert selection[k][0].text == prompts[k] and selection[k][0].steering.is_empty  # no push
            assert prompted[k][0].steering.is_empty and prompted[k][0].text.endswith("\n\n" + prompts[k])
            assert prompted[k][0].text.startswith(f"This passage is about {case.name}.")
            rankings = {rank for _, rank in (selection[k], prompted[k])}
            assert rankings == {type(steered[k][0].steering)((term.with_strength(1.0),))}  # the slider's ranking
    report = json.loads(json.dumps(as_json(results)))
    assert [c["name"] for c in report["concepts"]] == ["the sea", "war"]
    assert set(report["concepts"][0]["arms"]) == set(ARMS) == set(report["summary"])
    arm = report["concepts"][0]["arms"]["steered"]
    assert set(arm) == {"concept_rate", "perplexity", "repetition", "samples"} and len(arm["samples"]) == 2
    assert report["concepts"][0]["slider"].startswith("in-context vector of 'sea'")


def test_the_command_writes_the_report(tiny_model_dir, tmp_path):
    from tests.ui.fakes import tiny_feature_data
    from tinymorph.cli import main

    sae = save_topk_sae(tmp_path / "sae", model_name="")
    tiny_feature_data(sae)
    data = tiny_feature_data(sae, save=False)
    import dataclasses

    dataclasses.replace(data, features=data.features * 8).save(sae)  # a label for each of the 32 features
    text = tmp_path / "prose.txt"
    text.write_text("The boats came home. " * 40 + "\n\n" + "She wrote letters at night. " * 40)
    concepts = tmp_path / "c.toml"
    concepts.write_text('[[concept]]\nname = "the sea"\nquery = "sea"\nwords = ["sea"]\n')
    out, md = tmp_path / "report.json", tmp_path / "report.md"
    assert main(["steer", "eval", "--text", str(text), "--concepts", str(concepts), "--prompts", "1", "--tokens", "4",
                 "--json", str(out), "--markdown", str(md), "--sae", str(sae), "--model", str(tiny_model_dir)]) == 0
    report = json.loads(out.read_text())
    assert report["command"].startswith("tinymorph steer eval --text") and len(report["concepts"]) == 1
    assert "| vs unsteered | vs selection |" in md.read_text()


def test_prompts_come_from_a_folder_or_a_file(tmp_path):
    from tinymorph.commands.steer import prompts_from

    (tmp_path / "a.txt").write_text("word " * 100)
    assert prompts_from(tmp_path / "a.txt", 1, [], "all") == [" ".join(["word"] * 60)]
    with pytest.raises(ConfigError, match="gives 1 prompts"):
        prompts_from(Path(tmp_path), 3, [], "all")


def test_the_perplexity_rise_is_over_unsteered_or_over_selection():
    from tinymorph.evals.concepts import perplexity_rise

    totals = {"unsteered": {"perplexity": 2.0}, "selection": {"perplexity": 4.0}, "steered": {"perplexity": 6.0}}
    assert perplexity_rise(totals, "steered") == pytest.approx(2.0)  # +200% over the short, sure suggestions
    assert perplexity_rise(totals, "steered", "selection") == pytest.approx(0.5)  # the push alone
    assert math.isnan(perplexity_rise(totals, "prompted"))


def test_the_per_feature_command_writes_both_judges(tiny_model_dir, tmp_path):
    """`steer eval` without --concepts: the table has "feature rises" and "writes its words"."""
    import dataclasses

    from tests.ui.fakes import tiny_feature_data
    from tinymorph.cli import main

    sae = save_topk_sae(tmp_path / "sae", model_name="")
    data = tiny_feature_data(sae, save=False)
    dataclasses.replace(data, features=data.features * 8).save(sae)  # a label for each of the 32 features
    text = tmp_path / "prose.txt"
    text.write_text("The boats came home. " * 40)
    md = tmp_path / "report.md"
    assert main(["steer", "eval", "--text", str(text), "--features", "1,2", "--strengths", "2", "--prompts", "1",
                 "--tokens", "4", "--markdown", str(md), "--sae", str(sae), "--model", str(tiny_model_dir)]) == 0
    report = md.read_text()
    assert "| strength | feature rises | writes its words | median perplexity rise |" in report
    rows = [line.split(" | ")[2] for line in report.splitlines() if line.startswith(("| 1 | ", "| 2 | "))
            and line.count("|") == 9]
    assert rows == ["+0.00 (control)", "+2.00"] * 2  # a control row and a pushed row per feature
