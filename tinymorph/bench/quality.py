"""How useful are the suggestions? A simulated writer types held-out prose with the editor's
suggestions and takes them word by word when they are right.

Owns: `simulate_writer` and `QualityResult`. Method: the keystroke savings rate of word
prediction (Trnka and McCoy 2008, "Evaluating word prediction: framing keystroke savings"):
at the end of each word the editor suggests (`Generator.suggest`, as the editor asks: the text
before the cursor, the alternative it shows first); while the suggestion's next word is the
text's next word, the writer accepts it with Ctrl+Right (one key); at the first wrong word the
suggestion is dropped and the writer types that word, a key per character (its space included),
and the editor asks again at its end. A word-end suggestion that is empty costs nothing.
No Textual, no store.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

from tinymorph.engine.generate import Generator
from tinymorph.engine.protocol import SuggestRequest
from tinymorph.suggestions import next_word

_WORDS = re.compile(r"\s*\S+")


@dataclass
class QualityResult:
    """What the simulated writer did over a text."""

    characters: int = 0
    """Characters of the text typed (the first context is given, not typed)."""
    keystrokes: int = 0
    """Keys the writer pressed: typed characters plus one per accepted word."""
    suggestions: int = 0
    """Suggestions shown (non-empty) at word ends."""
    first_word_right: int = 0
    accepted_chars: int = 0

    @property
    def keystroke_savings(self) -> float:
        """(characters - keystrokes) / characters."""
        return (self.characters - self.keystrokes) / self.characters if self.characters else 0.0

    @property
    def first_word_rate(self) -> float:
        return self.first_word_right / self.suggestions if self.suggestions else 0.0

    @property
    def chars_per_suggestion(self) -> float:
        return self.accepted_chars / self.suggestions if self.suggestions else 0.0


def simulate_writer(
    gen: Generator, text: str, context_words: int = 60, words: int = 200, alternatives: int = 3,
    temperature: float = 0.7, report: Callable[[int], None] = lambda _n: None,
) -> QualityResult:
    """Type `words` words of `text` after its first `context_words` (given, as if already written)
    with the editor's suggestions; see the module docstring. Each request is seeded by its
    position in the text, so two decode paths meet the same requests."""
    chunks = _WORDS.findall(text)
    typed = "".join(chunks[:context_words])
    rest = chunks[context_words : context_words + words]
    result = QualityResult()
    k = 0
    while k < len(rest):
        req = SuggestRequest(k, typed[-3000:], alternatives=alternatives, max_new_tokens=24,
                             temperature=temperature, seed=k)
        answer = gen.suggest(req, lambda: False, lambda *_: None)
        suggestion = answer.alternatives[0] if answer is not None and answer.alternatives else ""
        accepted = 0
        if suggestion:
            result.suggestions += 1
            while suggestion and k < len(rest):
                word = next_word(suggestion)
                if word != rest[k]:
                    break
                result.first_word_right += accepted == 0
                accepted += 1
                result.keystrokes += 1  # Ctrl+Right
                result.characters += len(word)
                result.accepted_chars += len(word)
                typed += word
                suggestion = suggestion[len(word) :]
                k += 1
        if accepted and not suggestion:
            continue  # all of it was right: the editor asks again at this word end
        if k < len(rest):  # the writer types the next word themselves
            result.keystrokes += len(rest[k])
            result.characters += len(rest[k])
            typed += rest[k]
            k += 1
        report(k)
    return result
