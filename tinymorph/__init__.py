"""tinymorph: a local-first terminal writing editor with steerable inline suggestions.

This package root only names the version; it imports nothing heavy (no torch, no Textual).
"""

__version__ = "0.1.0"
