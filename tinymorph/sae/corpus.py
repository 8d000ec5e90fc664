"""Text corpora for SAE training and evaluation: reading a folder, a deterministic held-out split,
a fingerprint, and cutting the text into BOS-prefixed token sequences.

Owns: which text goes into training and which is held out. The split is by chunk: each file is cut
at paragraph boundaries into chunks of ~`CHUNK_CHARS` characters, and a chunk is held out when
crc32("relative/path:index") % `HELDOUT_MODULUS` == 0 (5%). Every file contributes to both sides;
no held-out sentence is ever trained on. Imports no torch; no Textual, no store.
"""

import hashlib
import random
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Literal

from transformers import PreTrainedTokenizerBase

from tinymorph.errors import SAEError

CHUNK_CHARS = 4000
HELDOUT_MODULUS = 20
SUFFIXES = (".txt", ".md")
Split = Literal["train", "heldout", "all"]


@dataclass(frozen=True)
class Corpus:
    """The text files of a folder (recursively, `.txt` and `.md`), minus excluded names."""

    root: Path
    files: tuple[Path, ...]
    exclude: tuple[str, ...] = ()
    """The glob patterns the files were chosen with (so that a resumed run reopens the same)."""

    def fingerprint(self) -> str:
        """sha256 over the sorted (relative path, file sha256) pairs: names the exact training data."""
        digest = hashlib.sha256()
        for path in self.files:
            digest.update(str(path.relative_to(self.root)).encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()

    def chunks(self, split: Split) -> Iterator[str]:
        """The text chunks of one side of the split ("all": both), in file order."""
        for _path, chunk in self.file_chunks(split):
            yield chunk

    def file_chunks(self, split: Split) -> Iterator[tuple[Path, str]]:
        """(file, chunk) for the chunks of one side of the split, in file order."""
        for path in self.files:
            rel = path.relative_to(self.root).as_posix()
            for index, chunk in enumerate(_chunk(_read(path))):
                held = zlib.crc32(f"{rel}:{index}".encode()) % HELDOUT_MODULUS == 0
                if split == "all" or held == (split == "heldout"):
                    yield path, chunk


def open_corpus(root: Path, exclude: Sequence[str] = ()) -> Corpus:
    """The text files under the folder `root`, or the one file `root` (of any suffix: the writer
    says it is text). `exclude` holds glob patterns matched against file names.
    Raises SAEError if `root` does not exist or holds no text file."""
    if root.is_file():
        return Corpus(root.parent, (root,), tuple(exclude))
    if not root.is_dir():
        raise SAEError(f"{root} is neither a text file nor a folder of .txt / .md files")
    files = tuple(
        p
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix.lower() in SUFFIXES and not any(fnmatch(p.name, pat) for pat in exclude)
    )
    if not files:
        raise SAEError(f"{root} holds no .txt or .md file")
    return Corpus(root, files, tuple(exclude))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SAEError(f"{path} is not UTF-8 text; convert it or exclude it") from None
    except OSError as exc:
        raise SAEError(f"cannot read {path}: {exc.strerror}") from None


def _chunk(text: str) -> Iterator[str]:
    """Cut `text` at blank lines into chunks of at least CHUNK_CHARS characters (the last may be
    shorter)."""
    parts: list[str] = []
    size = 0
    for paragraph in text.split("\n\n"):
        parts.append(paragraph)
        size += len(paragraph) + 2
        if size >= CHUNK_CHARS:
            yield "\n\n".join(parts)
            parts, size = [], 0
    if parts and any(p.strip() for p in parts):
        yield "\n\n".join(parts)


def token_sequences(chunks: Iterator[str], tokenizer: PreTrainedTokenizerBase, seq_len: int) -> list[list[int]]:
    """Tokenise each chunk (no special tokens) and cut it into sequences of `seq_len` tokens,
    each starting with BOS, as the model sees text in the editor. The tail shorter than
    `seq_len` of each chunk is dropped. Raises SAEError if the tokenizer has no BOS token."""
    bos = tokenizer.bos_token_id
    if bos is None:
        raise SAEError("the tokenizer has no BOS token")
    body = seq_len - 1
    sequences: list[list[int]] = []
    for chunk in chunks:
        ids = tokenizer(chunk, add_special_tokens=False).input_ids
        sequences.extend([bos, *ids[i : i + body]] for i in range(0, len(ids) - body + 1, body))
    return sequences


def heldout_sequences(
    corpus: Corpus, tokenizer: PreTrainedTokenizerBase, seq_len: int, tokens: int, split: Split = "heldout"
) -> list[list[int]]:
    """About `tokens` tokens of the held-out side (or of `split`: "all" for text the SAE never
    saw in training, such as a writer's own), as BOS-prefixed sequences of `seq_len`, in a
    seeded mixed order (the same every run). Raises SAEError if it gives no full sequence."""
    sequences = shuffled(token_sequences(corpus.chunks(split), tokenizer, seq_len), seed=0)
    sequences = sequences[: max(1, tokens // (seq_len - 1))]
    if not sequences:
        side = "all of" if split == "all" else f"the {split} side of"
        hint = "" if split == "all" else " (for text the SAE was not trained on, --split all reads all of it)"
        raise SAEError(f"{side} {corpus.root} gives no sequence of {seq_len} tokens{hint}")
    return sequences


def tagged_heldout_sequences(
    corpus: Corpus,
    tokenizer: PreTrainedTokenizerBase,
    seq_len: int,
    tokens: int,
    quotable: Sequence[str] = ("*",),
    split: Split = "heldout",
) -> tuple[list[list[int]], list[bool]]:
    """As `heldout_sequences` (of the held-out side, or of `split`), with a flag per sequence: True
    when its file's name matches one of the `quotable` glob patterns (text whose licence allows
    quoting it in shipped dashboards). Raises SAEError if the side gives no full sequence."""
    tagged = [
        (seq, any(fnmatch(path.name, pat) for pat in quotable))
        for path, chunk in corpus.file_chunks(split)
        for seq in token_sequences(iter([chunk]), tokenizer, seq_len)
    ]
    random.Random(0).shuffle(tagged)
    tagged = tagged[: max(1, tokens // (seq_len - 1))]
    if not tagged:
        side = "all of" if split == "all" else f"the {split} side of"
        raise SAEError(f"{side} {corpus.root} gives no sequence of {seq_len} tokens")
    return [s for s, _q in tagged], [q for _s, q in tagged]


def spread_prompts(
    corpus: Corpus, tokenizer: PreTrainedTokenizerBase, n: int, seq_len: int, split: Split
) -> list[list[int]]:
    """`n` BOS-prefixed prompts of `seq_len` tokens, each the start of a chunk, from chunks spread
    evenly over one side of the split (so over the books, not one book). Raises SAEError if the
    side has fewer than `n` chunks long enough."""
    chunks = list(corpus.chunks(split))
    step = max(1, len(chunks) // max(1, n))
    prompts = []
    for chunk in chunks[::step]:
        found = token_sequences(iter([chunk[: seq_len * 16]]), tokenizer, seq_len)
        if found:
            prompts.append(found[0])
        if len(prompts) == n:
            return prompts
    raise SAEError(f"the {split} side of {corpus.root} gives only {len(prompts)} prompts of {seq_len} tokens")


def shuffled(sequences: list[list[int]], seed: int) -> list[list[int]]:
    """A copy of `sequences` in a seeded random order (mixes books within every batch)."""
    out = list(sequences)
    random.Random(seed).shuffle(out)
    return out
