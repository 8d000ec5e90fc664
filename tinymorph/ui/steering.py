"""The steering panel: the writer's sliders.

Owns: the list of active steering terms (SAE features and writer-made directions), moving
between them and changing them with keys, and telling the app when the steering changed. The
numbers are the worker's units: residual-norm multiples (domain.SteeringTerm).
"""

from dataclasses import replace

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget

from tinymorph.domain import DEFAULT_STRENGTH, STRENGTH_LIMIT, SteeringSpec, SteeringTerm

FINE_STEP = 0.02
COARSE_STEP = 0.1
BAR_CELLS = 16


class SteeringChanged(Message):
    """The panel's terms (or mute) changed: the app asks for a new suggestion at once."""

    def __init__(self, spec: SteeringSpec) -> None:
        super().__init__()
        self.spec = spec


class SearchRequested(Message):
    """The writer pressed the search key inside the panel."""


class RenameRequested(Message):
    """The writer wants to rename the selected slider (`term`)."""

    def __init__(self, term: SteeringTerm) -> None:
        super().__init__()
        self.term = term


def strength_bar(strength: float, cells: int = BAR_CELLS) -> str:
    """A bar centred on zero: left half for negative strengths, right half for positive."""
    half = cells // 2
    filled = round(min(abs(strength), STRENGTH_LIMIT) / STRENGTH_LIMIT * half)
    if strength < 0:
        return "·" * (half - filled) + "█" * filled + "│" + "·" * half
    return "·" * half + "│" + "█" * filled + "·" * (half - filled)


class SteeringPanel(Widget, can_focus=True):
    """Rows of sliders: index or name, label, mode, a bar and the strength."""

    DEFAULT_CSS = """
    SteeringPanel {
        dock: right; width: 46; height: 1fr; border-left: tall $primary; padding: 0 1;
        background: $surface;
    }
    SteeringPanel:focus { border-left: tall $accent; }
    """
    BINDINGS = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("right,plus", f"nudge({FINE_STEP})", "+fine"),
        Binding("left,minus", f"nudge({-FINE_STEP})", "-fine"),
        Binding("shift+right,right_square_bracket", f"nudge({COARSE_STEP})", "+coarse"),
        Binding("shift+left,left_square_bracket", f"nudge({-COARSE_STEP})", "-coarse"),
        Binding("0", "reset", "Reset"),
        Binding("a", "toggle_mode", "Add/ablate"),
        Binding("delete,backspace,x", "remove", "Remove"),
        Binding("m", "mute", "Mute all"),
        Binding("r", "rename", "Rename"),
        Binding("slash", "search", "Search"),
        Binding("escape", "leave", "Back to text"),
    ]

    def __init__(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self.terms: list[SteeringTerm] = []
        self.row = 0
        self.muted = False

    # --- state -----------------------------------------------------------------------

    def spec(self) -> SteeringSpec:
        """What the worker should apply now (nothing while muted)."""
        return SteeringSpec() if self.muted else SteeringSpec(tuple(self.terms))

    def set_terms(self, terms: list[SteeringTerm], announce: bool = True) -> None:
        """Replace every row (a preset loaded); `announce` re-asks for the suggestion."""
        self.terms = list(terms)
        self.row = min(self.row, max(0, len(self.terms) - 1))
        self._changed(announce)

    def add(self, term: SteeringTerm) -> None:
        """Add a term (or select it, if the same feature or direction is already there)."""
        for i, existing in enumerate(self.terms):
            if existing.same_target(term):
                self.row = i
                self.refresh()
                return
        self.terms.append(term)
        self.row = len(self.terms) - 1
        self._changed(True)

    def relabel(self, feature: int, label: str) -> None:
        """Show `label` on every row of SAE feature `feature` (the writer renamed it)."""
        self.terms = [replace(t, label=label) if t.feature == feature else t for t in self.terms]
        self.refresh()

    def rename_selected(self, name: str) -> None:
        """Rename the selected row (a direction or concept slider); an empty name keeps it."""
        if (term := self._current()) is not None and name.strip():
            self.terms[self.row] = replace(term, label=" ".join(name.split()))
            self.refresh()

    def _changed(self, announce: bool) -> None:
        self.refresh()
        if announce:
            self.post_message(SteeringChanged(self.spec()))

    # --- drawing -----------------------------------------------------------------------

    def render(self) -> Text:
        text = Text()
        title = "Steering" + ("  (muted: m to unmute)" if self.muted else "")
        text.append(title + "\n", style="bold")
        if not self.terms:
            text.append("No sliders yet.\n\n", style="dim")
            text.append("/ or Ctrl+F: type what you want (sea, rain,\n  formal letters) for a concept slider,\n"
                        "  or find features\nAlt+P: pin a feature from the lens\n", style="dim")
            return text
        for i, term in enumerate(self.terms):
            mark = "▶ " if i == self.row and self.has_focus else "  "
            name = f"#{term.feature}" if term.feature is not None else "concept" if term.concept else "dir"
            label = term.label.removeprefix("→ ").strip()[:30]
            style = "dim" if self.muted or not term.active else ""
            selected = " reverse" if i == self.row and self.has_focus else ""
            text.append(f"{mark}{name:>7} {label}\n", style=style + selected)
            if term.mode == "ablate":
                text.append(f"         ablate {'on' if term.active else 'off'}\n", style=style or "yellow")
            else:
                text.append(f"         {strength_bar(term.strength)} {term.strength:+.2f}\n", style=style or "cyan")
        return text

    # --- keys --------------------------------------------------------------------------

    def _current(self) -> SteeringTerm | None:
        return self.terms[self.row] if self.terms else None

    def action_move(self, step: int) -> None:
        if self.terms:
            self.row = (self.row + step) % len(self.terms)
            self.refresh()

    def action_nudge(self, step: float) -> None:
        """Raise or lower the strength of the selected row (clamped to ±STRENGTH_LIMIT)."""
        term = self._current()
        if term is None:
            return
        if term.mode == "ablate":
            self.terms[self.row] = replace(term, strength=1.0 if step > 0 else 0.0)
        else:
            self.terms[self.row] = term.with_strength(term.strength + step)
        self._changed(True)

    def action_reset(self) -> None:
        """Set the selected row's strength to 0 (it stays in the panel)."""
        if (term := self._current()) is not None:
            self.terms[self.row] = replace(term, strength=0.0)
            self._changed(True)

    def action_toggle_mode(self) -> None:
        """Switch the selected feature between add and ablate."""
        term = self._current()
        if term is None or term.feature is None:
            self.app.bell()
            return
        if term.mode == "add":
            self.terms[self.row] = replace(term, mode="ablate", strength=1.0)
        else:
            self.terms[self.row] = replace(term, mode="add", strength=DEFAULT_STRENGTH)
        self._changed(True)

    def action_remove(self) -> None:
        if self.terms:
            del self.terms[self.row]
            self.row = max(0, min(self.row, len(self.terms) - 1))
            self._changed(True)

    def action_mute(self) -> None:
        """Mute all sliders (compare with the unsteered model), or unmute."""
        self.muted = not self.muted
        self._changed(True)

    def action_search(self) -> None:
        self.post_message(SearchRequested())

    def action_rename(self) -> None:
        """Give the selected slider a name of the writer's own (r)."""
        if (term := self._current()) is not None:
            self.post_message(RenameRequested(term))

    def action_leave(self) -> None:
        self.app.action_focus_editor()  # type: ignore[attr-defined]

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
