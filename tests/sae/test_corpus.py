"""The training / held-out split is deterministic and disjoint; sequences look like editor input."""

from pathlib import Path

import pytest

from tinymorph.errors import SAEError
from tinymorph.sae import corpus as corpus_mod
from tinymorph.sae.corpus import open_corpus, token_sequences


@pytest.fixture
def many_chunks(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setattr(corpus_mod, "CHUNK_CHARS", 50)
    root = tmp_path / "c"
    root.mkdir()
    for b in range(4):
        (root / f"b{b}.txt").write_text("\n\n".join(f"Paragraph {b}-{i}: the words run on and on." for i in range(200)))
    return root


def test_split_is_disjoint_deterministic_and_about_five_percent(many_chunks):
    corpus = open_corpus(many_chunks)
    train, held = list(corpus.chunks("train")), list(corpus.chunks("heldout"))
    assert not set(train) & set(held)
    assert list(open_corpus(many_chunks).chunks("heldout")) == held
    assert 0.02 < len(held) / (len(train) + len(held)) < 0.09
    assert {c.split(":")[0].split()[1].split("-")[0] for c in held} == {"0", "1", "2", "3"}  # every file gives some


def test_fingerprint_names_the_exact_text(many_chunks):
    before = open_corpus(many_chunks).fingerprint()
    (many_chunks / "b0.txt").write_text("changed")
    assert open_corpus(many_chunks).fingerprint() != before


def test_exclude_and_suffixes(tmp_path):
    (tmp_path / "a.md").write_text("x")
    (tmp_path / "SOURCES.md").write_text("x")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    assert [p.name for p in open_corpus(tmp_path, ["SOURCES.md"]).files] == ["a.md"]


def test_bad_folders_are_refused(tmp_path):
    with pytest.raises(SAEError, match=r"no \.txt or \.md"):
        open_corpus(tmp_path)
    with pytest.raises(SAEError, match="neither a text file nor a folder"):
        open_corpus(tmp_path / "missing")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(SAEError, match="not UTF-8"):
        list(open_corpus(tmp_path).chunks("train")) + list(open_corpus(tmp_path).chunks("heldout"))


def test_sequences_start_with_bos_and_have_one_length(tiny_lm):
    seqs = token_sequences(iter(["abcdefghij" * 10, "short"]), tiny_lm.tokenizer, 16)
    assert seqs and all(len(s) == 16 and s[0] == tiny_lm.tokenizer.bos_token_id for s in seqs)
    assert tiny_lm.tokenizer.bos_token_id not in {t for s in seqs for t in s[1:]}
