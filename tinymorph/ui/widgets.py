"""Small widgets: the status bar and the unsaved-changes dialog."""

from textual.app import ComposeResult
from textual.containers import Grid
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class StatusBar(Static):
    """One line: the vim mode (vim keymap), file, saved/modified, words, model state, last latency."""

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        width: 1fr;  /* its size never follows its text: see refresh_status */
        background: $panel;
        color: $foreground;
        padding: 0 1;
    }
    """

    def __init__(self, file_name: str) -> None:
        super().__init__("", id="status")
        self.file_name = file_name
        self.modified = False
        self.words = 0
        self.model_state = "model: starting"
        self.latency = ""
        self.steering = ""
        self.mode = ""
        """The keymap's mode, or the command line being typed (vim keymap); empty otherwise."""

    def refresh_status(self) -> None:
        """Repaint the line from the fields. The bar is one row as wide as the screen, so new text
        never changes its size: no layout pass (Static.update's default), which re-laid out and
        repainted the whole screen on every change, twice per suggestion while the writer typed."""
        saved = "modified" if self.modified else "saved"
        parts = [self.mode] if self.mode else []
        parts += [self.file_name, saved, f"{self.words} words", self.model_state]
        if self.steering:
            parts.append(self.steering)
        if self.latency:
            parts.append(self.latency)
        text = "  ·  ".join(parts)
        if text != self.content:
            self.update(text, layout=False)


class QuitScreen(ModalScreen[str]):
    """Asks what to do with unsaved changes; dismisses with "save", "discard" or "cancel"."""

    DEFAULT_CSS = """
    QuitScreen { align: center middle; }
    QuitScreen > Grid {
        grid-size: 3 2; grid-gutter: 1 2; padding: 1 2;
        width: 72; height: 11; border: thick $primary; background: $surface;
    }
    QuitScreen Label { column-span: 3; width: 1fr; content-align: center middle; height: 3; }
    QuitScreen Button { width: 100%; }
    """
    BINDINGS = [("escape", "dismiss('cancel')", "Cancel")]

    def __init__(self, file_name: str) -> None:
        super().__init__()
        self.file_name = file_name

    def compose(self) -> ComposeResult:
        with Grid():
            yield Label(f"{self.file_name} has unsaved changes.")
            yield Button("Save and quit", variant="primary", id="save")
            yield Button("Quit without saving", variant="error", id="discard")
            yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "cancel")
