"""The SQLite store: documents' state, suggestion events and UI state (sqlite-utils).

Never imports torch, transformers, sae-lens or Textual. The file on disk is the source of truth
for a document's text; the store keeps what surrounds it.
"""

from tinymorph.store.journal import JournalWriter
from tinymorph.store.store import DocumentState, JournalEntry, Store, Version, text_sha256

__all__ = ["DocumentState", "JournalEntry", "JournalWriter", "Store", "Version", "text_sha256"]
