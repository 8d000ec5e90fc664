"""The Textual application: the editor, the status bar, the palette, and the engine wiring.

Owns: turning engine events into UI state, saving, quitting, themes. `make_app()` is the one
factory used by the CLI and the tests.
"""

import gc
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.theme import Theme
from textual.timer import Timer
from textual.widgets import Footer

from tinymorph.config import Settings
from tinymorph.document import DocumentFormat, document_path, load_document
from tinymorph.engine.protocol import (
    Event,
    LoadProgressed,
    Request,
    RequestFailed,
    SuggestionReady,
    SuggestRequest,
    TokensStreamed,
    WorkerDied,
    WorkerFailed,
    WorkerReady,
)
from tinymorph.errors import StoreError
from tinymorph.lock import FileLock
from tinymorph.store import Store
from tinymorph.ui.editor import SuggestingEditor
from tinymorph.ui.messages import EngineReported, SuggestionEnded, SuggestionOrigin, SuggestionWanted
from tinymorph.ui.safety import FileSafety
from tinymorph.ui.steering import SteeringPanel
from tinymorph.ui.steering_actions import SteeringActions
from tinymorph.ui.themes import load_themes
from tinymorph.ui.vim import VimHost, VimKeymap
from tinymorph.ui.widgets import QuitScreen, StatusBar

# Characters sent to the worker per token of context: generous, since the worker trims to
# the token budget; English prose runs ~4-5 characters per Gemma token.
CHARS_PER_CONTEXT_TOKEN = 6


class Engine(Protocol):
    """What the app needs from the engine client (engine.client.EngineClient, or a fake)."""

    def start(self, on_event: Callable[[Event], None]) -> None: ...
    def request(self, req: Request) -> None: ...
    def stop(self, timeout: float = 3.0) -> None: ...
    def next_request_id(self) -> int: ...



@dataclass
class _InFlight:
    before: str
    sent_at: float
    steering: str
    """The request's steering, as sent (`SteeringSpec.summary()`)."""


class TinymorphApp(FileSafety, SteeringActions, App[None]):
    """tinymorph's editor on one file, with the steering panel beside it."""

    TITLE = "tinymorph"
    CSS = """
    #editor { height: 1fr; }
    """
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="save"),
        # Not priority bindings: run in the editor's queue, Ctrl+S saves the keys typed before it.
        Binding("ctrl+q", "quit", "Quit", id="quit"),
        Binding("ctrl+g", "toggle_suggestions", "Suggestions on/off", show=False, id="toggle_suggestions"),
        Binding("ctrl+t", "toggle_steering", "Steering", id="toggle_steering"),
        Binding("ctrl+f", "search_features", "Find feature", id="search_features"),
        Binding("alt+p", "pin_feature", "Pin lens feature", show=False, id="pin_feature"),
        Binding("alt+c", "compare", "Compare", show=False, id="compare"),
        Binding("alt+m", "more_like_this", "More like this", show=False, id="more_like_this"),
    ]

    def __init__(
        self,
        path: Path,
        text: str,
        fmt: DocumentFormat,
        settings: Settings,
        store: Store,
        engine: Engine | None,
        themes: list[Theme],
        lock: FileLock | None = None,
        display_name: str = "",
    ) -> None:
        super().__init__()
        self.path = path
        """The document's path (`document.document_path`: absolute, links followed)."""
        self.display_name = display_name or path.name
        self.fmt = fmt
        self.settings = settings
        self.store = store
        self.engine = engine
        self.model_ready = False
        self.model_name = ""
        self._themes = themes
        self._initial_text = text
        self._in_flight: dict[int, _InFlight] = {}
        self._clean_generation = 0
        self._word_timer: Timer | None = None
        self._recount_delay_s = 0.3
        self.safety_init(text, lock)

    # --- set-up --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        self.editor = SuggestingEditor(
            self._initial_text,
            idle_delay_ms=self.settings.idle_delay_ms,
            context_chars=self.settings.context_tokens * CHARS_PER_CONTEXT_TOKEN,
            id="editor",
        )
        self.status = StatusBar(self.display_name)
        self.panel = SteeringPanel(id="steering")
        self.panel.display = False
        yield self.panel
        yield self.editor
        yield self.status
        yield Footer()

    @contextmanager
    def storing(self, doing: str) -> Iterator[None]:
        """Run store calls; a StoreError (a locked or damaged store) becomes a warning and the
        rest of the block is skipped. The store is a convenience: the writer's text is in the
        editor and the file, and writing goes on."""
        try:
            yield
        except StoreError as exc:
            self.notify(str(exc), title=f"Store: could not {doing}", severity="warning", timeout=6)

    def _remember_theme(self, name: str) -> None:
        with self.storing("remember the theme"):
            self.store.set_state("theme", name)

    def on_mount(self) -> None:
        for theme in self._themes:
            self.register_theme(theme)
        wanted = None
        with self.storing("read the theme"):
            wanted = self.store.get_state("theme")
        wanted = wanted or self.settings.theme
        self.theme = wanted if wanted in self.available_themes else "tinymorph-dark"
        self.theme_changed_signal.subscribe(self, lambda theme: self._remember_theme(theme.name))
        if self.settings.keybindings:
            self.set_keymap(self.settings.keybindings)
        with self.storing("read where the cursor was"):
            state = self.store.document(str(self.path))
            if state is not None:
                self.editor.move_cursor((state.cursor_row, state.cursor_column))
            self.store.remember_document(str(self.path), *self.editor.cursor_location)
        if self.settings.keymap == "vim":
            self.editor.keymap = self._vim_keymap()
        self.editor.focus()
        self._update_words()
        if self.store.recovered_from is not None:
            self.notify(
                f"tinymorph's store was damaged and has been moved to {self.store.recovered_from}; a fresh one "
                "was made. Your documents are untouched; saved presets and remembered cursors start over.",
                title="Store", severity="warning", timeout=15,
            )
        self.safety_mount()
        if self.settings.suggestions and self.engine is not None:
            self.engine.start(lambda event: self.post_message(EngineReported(event)))
            self._set_model_state("model: starting")
        else:
            self._set_model_state("suggestions off")
        self.keep_long_lived()

    def keep_long_lived(self) -> None:
        """Move every object alive now out of the garbage collector's reach (`gc.freeze`): called
        once the app is set up and once the feature labels are in. A full collection walks every
        tracked object; with ~150,000 of them (Textual, the document, the labels) it paused the UI
        thread for 80-140 ms here, mid-typing. Frozen cycles are never collected, so this is
        meant for what lives as long as the app; unmounting hands it all back."""
        gc.freeze()

    # --- engine events -------------------------------------------------------------------

    def _set_model_state(self, text: str) -> None:
        self.status.model_state = text
        self.status.refresh_status()

    def on_engine_reported(self, message: EngineReported) -> None:
        event = message.event
        if isinstance(event, LoadProgressed):
            self._set_model_state(f"model: loading ({event.stage})")
        elif isinstance(event, WorkerReady):
            self.model_ready = True
            self.model_name = event.model_name
            self.editor.suggestions_enabled = self.settings.suggestions
            self._set_model_state(f"{event.model_name}: ready")
            self.steering_ready(event)
            self.editor.schedule_suggestion()
        elif isinstance(event, TokensStreamed):
            flight = self._in_flight.get(event.request_id)
            if flight is not None:
                self.editor.offer(flight.before, event.text, final=False)
        elif isinstance(event, SuggestionReady):
            flight = self._in_flight.pop(event.request_id, None)
            if flight is not None:
                latency_ms = (time.perf_counter() - flight.sent_at) * 1000
                origin = SuggestionOrigin(flight.steering, self.model_name, latency_ms)
                self.editor.offer(flight.before, "", final=True, alternatives=event.alternatives, origin=origin)
                self.status.latency = f"{latency_ms:.0f} ms (first token {event.first_token_ms:.0f} ms)"
            if not self._in_flight:
                self._set_model_state(f"{self.model_name}: ready")
        elif self.steering_event(event):
            pass
        elif isinstance(event, RequestFailed):
            self._in_flight.pop(event.request_id, None)
            self.notify(event.message, title="Suggestion failed", severity="warning")
            self._set_model_state(f"{self.model_name}: ready")
        elif isinstance(event, WorkerFailed):
            self._model_down()
            self._set_model_state(f"model: error ({event.message})")
            self.notify(
                f"{event.message}\nEditing works; suggestions are off.", title="Model", severity="error", timeout=10
            )
        elif isinstance(event, WorkerDied):
            self._model_down()
            when = f"in {event.restart_in_s:.0f} s" if event.restart_in_s >= 1 else "now"
            self._set_model_state(f"model: stopped (exit {event.exitcode}); restarting {when}")
            self.notify(
                "The model process stopped. Your text is safe; restarting it.", title="Model", severity="warning"
            )

    def _model_down(self) -> None:
        self.model_ready = False
        self.editor.suggestions_enabled = False
        self._in_flight.clear()

    def on_suggestion_wanted(self, message: SuggestionWanted) -> None:
        if self.engine is None or not self.model_ready:
            return
        request_id = self.engine.next_request_id()
        steering = self.panel.spec()
        self._in_flight = {request_id: _InFlight(message.before, time.perf_counter(), steering.summary())}
        self.engine.request(
            SuggestRequest(
                request_id=request_id,
                text=message.text,
                text_start=message.text_start,
                alternatives=self.settings.alternatives,
                max_new_tokens=self.settings.max_new_tokens,
                temperature=self.settings.temperature,
                seed=request_id,
                steering=steering,
                confidence=self.settings.suggestion_confidence,
            )
        )
        self._set_model_state(f"{self.model_name}: generating")

    def on_suggestion_ended(self, message: SuggestionEnded) -> None:
        """Log what became of a suggestion, with what made it (its request's steering, latency and
        model), never the panel's state now."""
        origin = message.origin or SuggestionOrigin("[]", self.model_name, None)
        with self.storing("record the suggestion"):
            self.store.record_suggestion(
                str(self.path),
                message.outcome,  # type: ignore[arg-type]
                origin.latency_ms,
                message.alternative_index,
                message.alternatives,
                message.accepted_chars,
                origin.steering,
                origin.model,
            )

    # --- the document --------------------------------------------------------------------

    @property
    def modified(self) -> bool:
        """Whether the editor holds changes the file does not have. Read from the editor's change
        count, which moves with every edit as it happens (the Changed message comes later)."""
        return self.editor.generation != self._clean_generation

    def mark_clean(self) -> None:
        """The editor's text is what the file holds now (loaded, saved or reloaded)."""
        self._clean_generation = self.editor.generation
        self.status.modified = False
        self.status.refresh_status()

    def on_text_area_changed(self, _message: SuggestingEditor.Changed) -> None:
        if self.status.modified != self.modified:
            self.status.modified = self.modified
            self.status.refresh_status()
        if self._word_timer is not None:
            self._word_timer.stop()
        delay = 0.3 if self.editor.words_known else self._recount_delay_s
        self._word_timer = self.set_timer(delay, self._update_words)
        self.journal_soon()

    def _update_words(self) -> None:
        """The word count in the status bar, 0.3 s after typing stops. The editor keeps it edit by
        edit; after an undo, a redo or a load it counts the whole document (~290 ms at 10 MB here),
        so when that took longer than 50 ms the next whole count waits for a 2 s pause."""
        whole = not self.editor.words_known
        started = time.perf_counter()
        self.status.words = self.editor.word_count()
        self.status.refresh_status()
        if whole:
            self._recount_delay_s = 2.0 if time.perf_counter() - started > 0.05 else 0.3

    def action_save(self) -> bool:
        """Save atomically (Ctrl+S) and keep a version in the store. If another program changed
        the file since it was loaded, ask first (overwrite / reload / keep both). On failure the
        text stays in the editor (and is journaled) and a message says why. Returns True if the
        file was written."""
        return self.save()

    async def action_quit(self) -> None:
        """Quit (Ctrl+Q); asks first when there are unsaved changes."""
        if not self.modified:
            self._shut_down()
            return

        def decided(choice: str | None) -> None:
            if choice == "discard":
                self.discard_and_quit()
            elif choice == "save" and self.action_save():
                self._shut_down()

        self.push_screen(QuitScreen(self.path.name), decided)

    def discard_and_quit(self) -> None:
        """Quit, dropping unsaved changes (vim's `:q!`); the journal is cleared, as when the writer
        picks "Quit without saving"."""
        self._discarded = True
        self._clear_journal(self.path)
        self._shut_down()

    def _vim_keymap(self) -> VimKeymap:
        def show_mode(text: str) -> None:
            self.status.mode = text
            self.status.refresh_status()

        host = VimHost(
            save=self.action_save, quit=self.action_quit, discard_and_quit=self.discard_and_quit,
            reload=self.ask_reload, modified=lambda: self.modified, show_mode=show_mode,
            notify=lambda text: self.notify(text, timeout=3),
        )
        keymap = VimKeymap(self.editor, host)
        keymap.start()
        return keymap

    def _shut_down(self) -> None:
        with self.storing("remember the cursor"):
            self.store.remember_document(str(self.path), *self.editor.cursor_location)
        if self.engine is not None:
            self.engine.stop()
        self.exit()

    def on_unmount(self) -> None:
        self.safety_unmount()
        gc.unfreeze()  # what `keep_long_lived` kept is the collector's again (the app is going)

    def action_toggle_suggestions(self) -> None:
        """Turn suggestions on or off for this session (Ctrl+G)."""
        self.editor.suggestions_enabled = not self.editor.suggestions_enabled and self.model_ready
        if not self.editor.suggestions_enabled and self.editor.suggestion:
            self.editor.action_reject_suggestion()
        self.notify("Suggestions " + ("on" if self.editor.suggestions_enabled else "off"), timeout=2)

    def action_suggest_now(self) -> None:
        """Ask for a suggestion at the cursor now, without waiting for the idle pause."""
        self.editor.suggest_now()

    # --- the command palette -------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        commands = [
            ("Save", "Write the file to disk (Ctrl+S)", "app.save"),
            ("History", "Versions kept at each save: see the difference, restore one", "app.history"),
            ("Quit", "Leave tinymorph, asking about unsaved changes (Ctrl+Q)", "app.quit"),
            ("Suggest now", "Ask the model for a continuation at the cursor", "app.suggest_now"),
            ("Toggle suggestions", "Turn ghost text on or off (Ctrl+G)", "app.toggle_suggestions"),
            ("Accept suggestion", "Insert the whole ghost text (Tab)", "accept_suggestion"),
            ("Accept next word", "Insert the ghost text's next word (Ctrl+Right)", "accept_word"),
            ("Reject suggestion", "Drop the ghost text (Esc)", "reject_suggestion"),
            ("Next alternative", "Show the next sampled continuation (Alt+])", "next_alternative"),
            ("Previous alternative", "Show the previous continuation (Alt+[)", "previous_alternative"),
            ("Undo", "Undo the last edit (Ctrl+Z)", "undo"),
            ("Redo", "Redo (Ctrl+Y)", "redo"),
            ("Steering panel", "Show or hide the feature sliders (Ctrl+T)", "app.toggle_steering"),
            ("Find feature", "Search SAE features by words and add one as a slider (Ctrl+F)", "app.search_features"),
            ("Pin lens feature", "Add the strongest feature under the cursor as a slider (Alt+P)", "app.pin_feature"),
            ("Compare steered / unsteered", "Both continuations here, same seed (Alt+C)", "app.compare"),
            ("More like this", "A slider toward the selected text (Alt+M)", "app.more_like_this"),
            ("Add direction", "A shipped tonality slider: formal/casual, positive/negative, ...", "app.add_direction"),
            ("Save preset", "Save the sliders under a name", "app.save_preset"),
            ("Load preset", "Replace the sliders with a saved preset", "app.load_preset"),
            ("Rename preset", "Rename a saved preset", "app.rename_preset"),
            ("Delete preset", "Delete a saved preset", "app.delete_preset"),
        ]
        for title, help_text, action in commands:
            # run_action resolves "app." actions on the app and others on the editor, and
            # treats SkipAction (nothing to accept, say) as a no-op.
            yield SystemCommand(title, help_text, partial(self.run_action, action, self.editor))


def make_app(
    path: Path,
    settings: Settings,
    store: Store,
    engine: Engine | None,
    themes_dir: Path,
    lock: FileLock | None = None,
    display_name: str = "",
) -> TinymorphApp:
    """Build the app for `path` (the document is `document_path(path)`; the status bar shows
    `display_name`, by default the file's name): read the file (raises DocumentError if it cannot
    be edited safely) and the themes (raises ConfigError for a bad theme file). `lock`: the
    file's lock, taken when the app mounts (None: no locking). Shared by CLI and tests."""
    display_name = display_name or path.name
    path = document_path(path)
    text, fmt = load_document(path)
    return TinymorphApp(path, text, fmt, settings, store, engine, load_themes(themes_dir), lock, display_name)
