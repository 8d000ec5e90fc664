"""Keeping the writer's text safe: the journal, versions, the file lock, changes on disk.

Owns (as a mixin of TinymorphApp): journaling unsaved text to the store after a short idle and
on quit or suspend; offering to restore it when the file is reopened after a crash; keeping a
version in the store on every save and showing the history; refusing to overwrite a file that
another program changed since it was loaded without asking; warning when another live tinymorph
holds the file's lock. The store and the document module do the writing; this decides when.
"""

import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from textual.timer import Timer

from tinymorph.document import DiskStamp, disk_stamp, load_document, remove_stale_temps, save_document
from tinymorph.errors import DocumentError, StoreError
from tinymorph.history import diff_lines, diff_summary
from tinymorph.lock import FileLock
from tinymorph.store import JournalWriter, text_sha256
from tinymorph.ui.dialogs import ChoiceScreen, DiffScreen
from tinymorph.ui.messages import JournalFailed

if TYPE_CHECKING:
    from tinymorph.ui.app import TinymorphApp

JOURNAL_IDLE_S = 2.0
"""Seconds without an edit after which unsaved text is journaled."""
JOURNAL_MAX_S = 10.0
"""While the writer types without a pause, the journal is written at least this often."""

RESTORE, DISCARD = "Restore the unsaved version", "Keep the file as it is (the unsaved version goes to history)"
EDIT_ANYWAY, QUIT = "Edit it here anyway", "Quit"
OVERWRITE, RELOAD, KEEP_BOTH = (
    "Overwrite it with my text",
    "Reload it from disk (my unsaved text goes to history)",
    "Keep both: save my text as a copy beside it",
)
CANCEL = "Cancel"


def _local_time(stamp: str) -> str:
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return stamp


class FileSafety:
    """Mixin for TinymorphApp (which provides path, fmt, store, editor, notify, push_screen...)."""

    _journal_timer: Timer | None = None
    _journaled_generation: int = 0
    _discarded: bool = False
    _unjournaled_since: float | None = None
    lock: FileLock | None = None

    def safety_init(self: "TinymorphApp", text: str, lock: FileLock | None) -> None:
        """Remember what the file was when loaded (its stamp and the hash of its text)."""
        self.lock = lock
        self.disk: DiskStamp | None = disk_stamp(self.path)
        self.base_sha = text_sha256(text)
        self.journal = JournalWriter(self.store, lambda exc: self.post_message(JournalFailed(exc)))

    def safety_mount(self: "TinymorphApp") -> None:
        """On mount: keep the file as first found as a version, then check the lock, then the
        journal (one question at a time)."""
        if self.disk is not None:
            self._keep_version(self.editor.text, "opened")
        if self.lock is not None:
            locked = True
            try:
                other = self.lock.acquire()
            except OSError as exc:
                self.notify(f"could not take the file's lock: {exc}", title="Lock", severity="warning")
                other, locked = None, False
            if other is not None:
                question = (
                    f"{self.path.name} is open in another tinymorph ({other.describe()}).\n"
                    "Two editors on one file overwrite each other's work."
                )

                def decided(choice: str | None) -> None:
                    if choice == EDIT_ANYWAY:
                        assert self.lock is not None
                        self.lock.acquire(force=True)
                        self._offer_journal()
                    else:
                        self._discarded = True  # nothing of ours to keep: we never edited
                        self.exit()

                self.push_screen(ChoiceScreen(question, [EDIT_ANYWAY, QUIT]), decided)
                return
            if locked:
                self._remove_stale_temps()
        self._offer_journal()

    def _remove_stale_temps(self: "TinymorphApp") -> None:
        """With the lock ours, clear the hidden temp files that killed saves left beside the file."""
        removed = remove_stale_temps(self.path)
        if removed:
            self.log.info(f"removed {len(removed)} temp file(s) left by an interrupted save: {removed}")

    # --- the journal -----------------------------------------------------------------------

    def _offer_journal(self: "TinymorphApp") -> None:
        entry = None
        with self.storing("read the journal"):
            entry = self.store.journal(str(self.path))
        if entry is None:
            return
        current = self.editor.text
        if entry.text == current:
            self._clear_journal(self.path)
            return
        changed = " The file itself has changed since." if entry.base_sha256 != self.base_sha else ""
        question = (
            f"Unsaved changes to {self.path.name} from {_local_time(entry.updated)} were found: tinymorph "
            f"stopped before they were saved.\nAgainst the file: {diff_summary(current, entry.text)}.{changed}"
        )

        def decided(choice: str | None) -> None:
            if choice == RESTORE:
                self._replace_text(entry.text)
                self.notify("Unsaved version restored; save to keep it in the file.", timeout=5)
            else:
                self._keep_version(entry.text, "unsaved (not restored)")
                self._clear_journal(self.path)

        self.push_screen(ChoiceScreen(question, [RESTORE, DISCARD]), decided)

    def journal_soon(self: "TinymorphApp") -> None:
        """Called on every edit: journal after `JOURNAL_IDLE_S` without another, and at once when
        the oldest unjournaled edit is `JOURNAL_MAX_S` old (typing without pauses)."""
        now = time.monotonic()
        if self._unjournaled_since is None:
            self._unjournaled_since = now
        if self._journal_timer is not None:
            self._journal_timer.stop()
        if now - self._unjournaled_since >= JOURNAL_MAX_S:
            self.write_journal()
        else:
            self._journal_timer = self.set_timer(JOURNAL_IDLE_S, self.write_journal)

    def write_journal(self: "TinymorphApp") -> None:
        """Journal the buffer if it changed since the last journal write: this thread copies the
        list of lines (~1 ms at 10 MB); the journal thread joins, hashes and writes (`JournalWriter`),
        and clears the entry instead when the text is the file's again."""
        if self._discarded:
            return
        self._unjournaled_since = None
        if self.editor.generation == self._journaled_generation:
            return
        document = self.editor.document
        with self.storing("journal the unsaved text"):
            self.journal.write(str(self.path), list(document.lines), document.newline, self.base_sha)
            self._journaled_generation = self.editor.generation

    def on_journal_failed(self: "TinymorphApp", message: JournalFailed) -> None:
        """The journal thread could not write: say so, and try again after the next pause (and
        on the way out), even if nothing is typed in between."""
        self.notify(str(message.error), title="Store: could not journal the unsaved text", severity="warning",
                    timeout=6)
        self._journaled_generation = -1
        self.journal_soon()

    def action_suspend_process(self: "TinymorphApp") -> None:
        """Journal, then suspend to the shell (Ctrl+Z where the terminal allows it)."""
        self.write_journal()
        super().action_suspend_process()  # type: ignore[misc]

    def safety_unmount(self: "TinymorphApp") -> None:
        """On the way out (normal or not): journal what is unsaved, unless the writer discarded
        it; give the lock back."""
        if self.modified and not self._discarded:
            self.write_journal()
        self.journal.close()
        if self.lock is not None:
            self.lock.release()

    # --- versions --------------------------------------------------------------------------

    def _keep_version(self: "TinymorphApp", text: str, reason: str) -> None:
        with self.storing("keep a version"):  # history is a convenience; the file is the truth
            self.store.add_version(str(self.path), text, reason)

    def _clear_journal(self: "TinymorphApp", path: Path) -> None:
        """Forget the unsaved text of `path` (its file now holds the text hashing to `base_sha`),
        after any journal write asked before."""
        with self.storing("clear the journal"):
            self.journal.clear(str(path), self.base_sha)
        self._journaled_generation = self.editor.generation

    def action_history(self: "TinymorphApp") -> None:
        """Pick a kept version, see its diff against the editor's text, restore it."""
        versions = None
        with self.storing("list the versions"):
            versions = self.store.versions(str(self.path))
        if versions is None:
            return
        if not versions:
            self.notify("No versions kept yet: every save keeps one.", timeout=3)
            return
        labels = [
            f"#{v.id}  {_local_time(v.saved_at)}  {v.reason:<24} {v.size:>9,} chars" for v in versions
        ]

        def picked(choice: str | None) -> None:
            if choice is None:
                return
            version = versions[labels.index(choice)]
            try:
                old = self.store.version_text(version.id)
            except StoreError as exc:
                self.notify(str(exc), title="History", severity="error")
                return
            lines = diff_lines(self.editor.text, old, "editor", f"version #{version.id}")

            def restore(ok: bool | None) -> None:
                if ok:
                    self._replace_text(old)
                    self.save(reason=f"restore of #{version.id}")

            self.push_screen(DiffScreen(f"version #{version.id} against the editor", lines), restore)

        self.push_screen(ChoiceScreen(f"Versions of {self.path.name}, newest first", labels), picked)

    # --- saving ----------------------------------------------------------------------------

    def _replace_text(self: "TinymorphApp", text: str, clean: bool = False) -> None:
        """Replace the whole buffer as one undoable edit. `clean`: the new text is what the
        file holds, so the document is not modified after it."""
        if self.editor.suggestion:
            self.editor.action_reject_suggestion()
        self.editor.replace(text, (0, 0), self.editor.document.end)
        if clean:
            self.mark_clean()

    def changed_on_disk(self: "TinymorphApp") -> bool:
        """True if the file on disk is no longer what was loaded or last saved (another program
        wrote it). A changed stamp with the same text (touched) counts as unchanged."""
        now = disk_stamp(self.path)
        if now == self.disk or now is None:
            return False
        try:
            text, _fmt = load_document(self.path)
        except DocumentError:
            return True
        if text_sha256(text) == self.base_sha:
            self.disk = now
            return False
        return True

    def save(self: "TinymorphApp", reason: str = "save") -> bool:
        """Save unless the file changed on disk (then ask, and return False). Returns True if
        written."""
        if self.changed_on_disk():
            self._ask_about_disk_change()
            return False
        return self._write(self.path, reason)

    def _write(self: "TinymorphApp", path: Path, reason: str) -> bool:
        text = self.editor.text
        try:
            self.fmt = save_document(path, text, self.fmt)
        except DocumentError as exc:
            self.notify(f"{exc}\nYour text is still here, and journaled.", title="Not saved", severity="error",
                        timeout=10)
            self.write_journal()
            return False
        self.disk = disk_stamp(path)
        self.base_sha = text_sha256(text)
        self._clear_journal(path)  # a locked store here must not undo a save that happened
        self._keep_version(text, reason)
        self.mark_clean()
        self.notify(f"Saved {path.name}", timeout=2)
        return True

    def _ask_about_disk_change(self: "TinymorphApp") -> None:
        question = f"{self.path.name} was changed on disk by another program since tinymorph loaded it."

        def decided(choice: str | None) -> None:
            if choice == OVERWRITE:
                self._write(self.path, "save (overwrote a change on disk)")
            elif choice == RELOAD:
                self.reload_from_disk("changed on disk")
            elif choice == KEEP_BOTH:
                stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
                self._save_as_copy(self.path.with_name(f"{self.path.stem}.mine-{stamp}{self.path.suffix}"))

        self.push_screen(ChoiceScreen(question, [OVERWRITE, RELOAD, KEEP_BOTH]), decided)

    def reload_from_disk(self: "TinymorphApp", reason: str = "reloaded") -> None:
        """Replace the editor's text with the file's, as one undoable edit; the text replaced is
        kept in the version history first, so a reload never loses it."""
        try:
            text, fmt = load_document(self.path)
        except DocumentError as exc:
            self.notify(str(exc), title="Not reloaded", severity="error")
            return
        self._keep_version(self.editor.text, "unsaved (replaced by reload)")
        self._replace_text(text, clean=True)
        self.fmt, self.disk, self.base_sha = fmt, disk_stamp(self.path), text_sha256(text)
        self._keep_version(text, reason)
        self._clear_journal(self.path)

    def ask_reload(self: "TinymorphApp") -> None:
        """Reload the file from disk (vim's `:e!`); with unsaved changes, ask first."""
        if not self.modified:
            self.reload_from_disk()
            return

        def decided(choice: str | None) -> None:
            if choice == RELOAD:
                self.reload_from_disk()

        question = f"Reload {self.path.name} from disk? Your unsaved text goes to History."
        self.push_screen(ChoiceScreen(question, [RELOAD, CANCEL]), decided)

    def _save_as_copy(self: "TinymorphApp", copy: Path) -> None:
        """Save the editor's text to `copy` and go on editing that file: its lock is taken and the
        original's given back (the other program's version stays where it was)."""
        old_path, old_lock = self.path, self.lock
        new_lock = FileLock(copy, old_lock.lock_file.parent) if old_lock is not None else None
        if new_lock is not None and new_lock.acquire() is not None:
            self.notify(f"{copy.name} is open in another tinymorph; not saved there", severity="error")
            return
        self.path, self.lock = copy, new_lock
        if not self._write(copy, "save (copy; the original changed on disk)"):
            self.path, self.lock = old_path, old_lock
            if new_lock is not None:
                new_lock.release()
            return
        if old_lock is not None:
            old_lock.release()
        self._clear_journal(old_path)
        self.status.file_name = copy.name
        self.status.refresh_status()
        self.notify(f"Your text is in {copy.name}; {old_path.name} keeps the other version.", timeout=8)
