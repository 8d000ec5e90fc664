"""Dialogs: feature search, steered-vs-unsteered comparison, asking for a name, picking one.

Owns: modal screens. They get what they need (feature data, a function that asks the worker) from
the app; they never talk to the worker themselves.
"""

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from tinymorph.features import FeatureData, SearchHit, fuse, steer_scores, text_scores

MODAL_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{
    width: 90%; max-width: 110; height: auto; max-height: 90%;
    border: thick $primary; background: $surface; padding: 1 2;
}}
"""


class FeatureSearchScreen(ModalScreen[int | None]):
    """Type words, see matching features live; Enter adds the highlighted one.

    Label and context matches show at once (from the feature file); the features that fire on
    the typed words arrive from the worker a moment later and are merged in (reciprocal-rank
    fusion, `features.fuse`)."""

    DEFAULT_CSS = MODAL_CSS.format(name="FeatureSearchScreen") + """
    FeatureSearchScreen OptionList { height: 20; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), Binding("down", "focus_list", show=False)]
    DEBOUNCE_S = 0.25

    def __init__(self, data: FeatureData, ask_worker: Callable[[str], None]) -> None:
        super().__init__()
        self.data = data
        self.ask_worker = ask_worker
        self.activation: dict[str, dict[int, float]] = {}
        self.hits: list[SearchHit] = []
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Find SAE features: type words (labels, contexts, and what fires on them)")
            yield Input(placeholder="e.g. ocean, apology, dialogue", id="query")
            yield OptionList(id="hits")
            yield Label("Enter: add at the default strength · Esc: cancel · 'steers': adding it makes the model "
                        "write what it promotes (output score)", classes="dim")

    @property
    def search_text(self) -> str:
        return self.query_one("#query", Input).value.strip()

    def on_input_changed(self, _event: Input.Changed) -> None:
        self._show()
        if self._timer is not None:
            self._timer.stop()
        if self.search_text:
            self._timer = self.set_timer(self.DEBOUNCE_S, lambda: self.ask_worker(self.search_text))

    def activation_ready(self, text: str, scores: dict[int, float]) -> None:
        """The worker's answer for `text`; shown if it is still what is typed."""
        self.activation[text] = scores
        if text == self.search_text:
            self._show()

    def _show(self) -> None:
        query = self.search_text
        options = self.query_one("#hits", OptionList)
        options.clear_options()
        if not query:
            self.hits = []
            return
        self.hits = fuse(text_scores(self.data, query), self.activation.get(query, {}), limit=20,
                         steering=steer_scores(self.data, query))
        for hit in self.hits:
            f = self.data.features[hit.index]
            line = Text()
            line.append(f"#{f.index:<5} ", style="bold")
            line.append(f"{f.label[:48]:<48} ")
            line.append(f"{f.density:7.3%} ", style="dim")
            line.append(", ".join(t.strip() for t, _ in f.promoted[:3] if t.strip()), style="green")
            if hit.activation:
                line.append(f"  fires {hit.activation:.0%}", style="cyan")
            if f.steers:
                line.append(f"  steers {f.output_score:.2f}", style="bold yellow")
            options.add_option(Option(line, id=str(f.index)))
        if self.hits:
            options.highlighted = 0

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        options = self.query_one("#hits", OptionList)
        if self.hits and options.highlighted is not None:
            self.dismiss(self.hits[options.highlighted].index)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id or 0))

    def action_focus_list(self) -> None:
        self.query_one("#hits", OptionList).focus()


class CompareScreen(ModalScreen[None]):
    """The unsteered and the steered continuation of the same context, same seed, side by side."""

    DEFAULT_CSS = MODAL_CSS.format(name="CompareScreen") + """
    CompareScreen Horizontal { height: auto; }
    CompareScreen .column { width: 1fr; height: auto; border: round $panel; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,enter", "dismiss(None)", "Close")]

    def __init__(self, context: str, steering: str) -> None:
        super().__init__()
        self.context, self.steering = context, steering

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text.assemble(("…" + self.context[-160:].replace("\n", " "), "dim")))
            with Horizontal():
                yield Static("Unsteered\n\n…", id="unsteered", classes="column")
                yield Static(f"Steered ({self.steering})\n\n…", id="steered", classes="column")
            yield Label("Same seed, greedy. Esc: close", classes="dim")

    def show(self, unsteered: str, steered: str) -> None:
        """Fill both columns with the worker's answer."""
        self.query_one("#unsteered", Static).update(Text.assemble(("Unsteered\n\n", "bold"), unsteered or "(nothing)"))
        self.query_one("#steered", Static).update(
            Text.assemble((f"Steered ({self.steering})\n\n", "bold"), steered or "(nothing)")
        )


class NameScreen(ModalScreen[str | None]):
    """Ask for a name (a preset's, say). Enter accepts a non-empty name; Esc cancels."""

    DEFAULT_CSS = MODAL_CSS.format(name="NameScreen")
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, prompt: str, value: str = "") -> None:
        super().__init__()
        self.prompt, self.value = prompt, value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.prompt)
            yield Input(value=self.value, id="name")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())


class ChoiceScreen(ModalScreen[str | None]):
    """Pick one of `choices` (Enter), or cancel (Esc)."""

    DEFAULT_CSS = MODAL_CSS.format(name="ChoiceScreen") + """
    ChoiceScreen OptionList { height: auto; max-height: 20; }
    ChoiceScreen #prompt { width: 100%; margin-bottom: 1; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, prompt: str, choices: list[str]) -> None:
        super().__init__()
        self.prompt, self.choices = prompt, choices

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.prompt, id="prompt")  # full width, so a long question wraps
            yield OptionList(*[Option(c, id=str(i)) for i, c in enumerate(self.choices)])

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.choices[int(event.option.id or 0)])


class DiffScreen(ModalScreen[bool]):
    """A unified diff to read; Enter (or r) says yes to restoring, Esc says no."""

    DEFAULT_CSS = MODAL_CSS.format(name="DiffScreen") + """
    DiffScreen VerticalScroll { height: auto; max-height: 30; }
    """
    BINDINGS = [
        Binding("escape", "dismiss(False)", "Cancel"),
        Binding("enter,r", "dismiss(True)", "Restore this version"),
    ]
    SHOWN_LINES = 2000

    def __init__(self, title: str, lines: list[str]) -> None:
        super().__init__()
        self.title_text, self.lines = title, lines

    def compose(self) -> ComposeResult:
        text = Text()
        for line in self.lines[: self.SHOWN_LINES]:
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else "cyan" if line.startswith(
                "@@") else "dim"
            text.append(line + "\n", style=style)
        if len(self.lines) > self.SHOWN_LINES:
            text.append(f"... {len(self.lines) - self.SHOWN_LINES} more lines\n", style="dim")
        if not self.lines:
            text.append("no difference\n", style="dim")
        with Vertical():
            yield Label(self.title_text)
            with VerticalScroll():
                yield Static(text)
            yield Label("Enter or r: restore this version (saved as a new version) · Esc: cancel", classes="dim")
