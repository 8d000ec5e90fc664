"""Comparing versions of a document: short summaries and unified diffs (difflib).

Owns: the words the writer reads about a difference, in the editor's restore offer, its history
dialog and `tinymorph history`. Imports nothing heavy.
"""

import difflib


def diff_lines(old: str, new: str, old_name: str = "old", new_name: str = "new") -> list[str]:
    """The unified diff (3 lines of context) from `old` to `new`, one string per line."""
    return list(
        difflib.unified_diff(old.splitlines(), new.splitlines(), old_name, new_name, lineterm="")
    )


def diff_summary(old: str, new: str) -> str:
    """A few words on how `new` differs from `old`: lines added and removed, and the words
    count change, e.g. "+3 lines, -1 line; 412 -> 448 words". "no difference" if equal."""
    if old == new:
        return "no difference"
    added = removed = 0
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0):
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1

    def lines(n: int) -> str:
        return f"{n} line" + ("" if n == 1 else "s")

    return f"+{lines(added)}, -{lines(removed)}; {len(old.split())} -> {len(new.split())} words"
