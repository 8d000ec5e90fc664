"""How useful are the suggestions? A simulated writer types held-out prose with the editor's
suggestions and takes them when they are right.

Owns: `simulate_writer` and `QualityResult`. Method: the keystroke savings rate of word
prediction (Trnka and McCoy 2008, "Evaluating word prediction: framing keystroke savings"). The
writer types the text a character at a time. Whenever no suggestion shows at a place where the
editor asks for one, it asks (`Generator.suggest`, the text before the cursor, the alternative
shown first): at a word's end, and with `in_word` also after each letter of a word being typed
(token healing finishes it). When a suggestion shows, the writer takes it if all of it is right
(Tab, one key), otherwise word by word while its next word is right (Ctrl+Right, a key each); at
the first wrong word the writer types on, and a typed character that is the suggestion's next
one keeps the rest of it showing, as the editor does. No Textual, no store.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from tinymorph.engine.generate import Generator
from tinymorph.engine.protocol import SuggestRequest
from tinymorph.suggestions import next_word

_WORDS = re.compile(r"\s*\S+")
KINDS = ("word end", "in word")


@dataclass
class QualityResult:
    """What the simulated writer did over a text. Counts per kind of place the suggestion was
    asked at: "word end" (after a word's last character) or "in word" (after one or more of its
    letters)."""

    characters: int = 0
    """Characters of the text typed (the first context is given, not typed)."""
    keystrokes: int = 0
    """Keys the writer pressed: typed characters, one per word taken with Ctrl+Right, one per Tab."""
    words: int = 0
    shown: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    """Suggestions shown (non-empty)."""
    taken: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    """Suggestions of which at least one word was taken."""
    first_word_right: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    """Suggestions whose first word was right when they were shown."""
    words_shown: int = 0
    words_taken: int = 0
    accepted_chars: int = 0

    @property
    def keystroke_savings(self) -> float:
        """(characters - keystrokes) / characters."""
        return (self.characters - self.keystrokes) / self.characters if self.characters else 0.0

    def rate(self, counts: dict[str, int], kind: str | None = None) -> float:
        """`counts` (taken or first_word_right) over suggestions shown, of one kind or all."""
        kinds = KINDS if kind is None else (kind,)
        shown = sum(self.shown[k] for k in kinds)
        return sum(counts[k] for k in kinds) / shown if shown else 0.0

    @property
    def acceptance_rate(self) -> float:
        """Suggestions of which at least one word was taken / suggestions shown."""
        return self.rate(self.taken)

    @property
    def first_word_rate(self) -> float:
        return self.rate(self.first_word_right)

    @property
    def suggestions(self) -> int:
        return sum(self.shown.values())

    def per_100_words(self, kind: str | None = None) -> float:
        """Suggestions shown per 100 words typed: how often the writer is interrupted."""
        shown = self.suggestions if kind is None else self.shown[kind]
        return 100 * shown / self.words if self.words else 0.0

    @property
    def word_precision(self) -> float:
        """Words taken / words shown: how much of what the writer reads is right."""
        return self.words_taken / self.words_shown if self.words_shown else 0.0

    def as_json(self) -> dict[str, float | int]:
        """The `--json` summary (rates as fractions)."""
        return {"keystroke_savings": self.keystroke_savings, "first_word_right": self.first_word_rate,
                "acceptance_rate": self.acceptance_rate, "suggestions": self.suggestions, "words": self.words}


def simulate_writer(
    gen: Generator, text: str, context_words: int = 60, words: int = 200, alternatives: int = 3,
    temperature: float = 0.7, in_word: bool = True, confidence: float = 0.0,
    report: Callable[[int], None] = lambda _n: None,
) -> QualityResult:
    """Type `words` words of `text` after its first `context_words` (given, as if already written)
    with the editor's suggestions; see the module docstring. `in_word`: also ask inside a word;
    `confidence`: the request's `SuggestRequest.confidence`. Requests are seeded by their count,
    so two arms meet the same seeds."""
    chunks = _WORDS.findall(text)
    typed = "".join(chunks[:context_words])
    rest = chunks[context_words : context_words + words]
    result = QualityResult(words=len(rest))
    requests = 0
    k, i = 0, 0  # the next character to type is rest[k][i]
    showing, kind = "", KINDS[0]
    while k < len(rest):
        chunk = rest[k]
        lead = len(chunk) - len(chunk.lstrip())
        asks = i == 0 or (in_word and i > lead)
        if not showing and asks:
            req = SuggestRequest(requests, typed[-3000:], alternatives=alternatives, max_new_tokens=24,
                                 temperature=temperature, seed=requests, confidence=confidence)
            requests += 1
            answer = gen.suggest(req, lambda: False, lambda *_: None)
            showing = answer.alternatives[0] if answer is not None and answer.alternatives else ""
            if showing:
                kind = KINDS[0] if i == 0 else KINDS[1]
                result.shown[kind] += 1
                result.words_shown += len(_WORDS.findall(showing))
                right = _take(showing, rest, k, i)
                result.first_word_right[kind] += right > 0
                if right:
                    result.taken[kind] += 1
                    taken = "".join([rest[k][i:], *rest[k + 1 : k + right]])
                    whole = taken == showing
                    result.keystrokes += 1 if whole else right
                    result.characters += len(taken)
                    result.accepted_chars += len(taken)
                    result.words_taken += right
                    typed += taken
                    showing = "" if whole else showing[len(taken) :]
                    k, i = k + right, 0
                    report(k)
                    continue
        # The writer types the next character; the suggestion stays while it agrees.
        char = chunk[i]
        showing = showing[1:] if showing.startswith(char) else ""
        typed += char
        result.keystrokes += 1
        result.characters += 1
        i += 1
        if i == len(chunk):
            k, i = k + 1, 0
            report(k)
    return result


def _take(suggestion: str, rest: list[str], k: int, i: int) -> int:
    """How many words of `suggestion` are right, from character `i` of word `k` of the text:
    the first must finish word k, the next ones are words k+1, k+2, ..."""
    right = 0
    expected = rest[k][i:]
    while suggestion and k + right < len(rest):
        word = next_word(suggestion)
        if word != expected:
            break
        right += 1
        suggestion = suggestion[len(word) :]
        expected = rest[k + right] if k + right < len(rest) else ""
    return right
