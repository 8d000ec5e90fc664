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


CONCEPT_ROW = "concept"


class FeatureSearchScreen(ModalScreen[int | str | None]):
    """Type words, see what steers toward them; Enter adds the highlighted row as a slider.

    The first row is always the concept slider made from the words themselves (dismissed with
    the words, a str); the rows after it are SAE features (dismissed with their index, an int):
    label and context matches at once (from the feature file), then the features that fire on
    the typed words, which the worker sends a moment later, merged in by reciprocal-rank fusion
    (`features.fuse`). Each feature row says whether the feature fires on the words (a detector)
    or writes them (an output feature)."""

    DEFAULT_CSS = MODAL_CSS.format(name="FeatureSearchScreen") + """
    FeatureSearchScreen OptionList { height: 20; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), Binding("down", "focus_list", show=False)]
    DEBOUNCE_S = 0.25

    def __init__(
        self, data: FeatureData, ask_worker: Callable[[str], None], label: Callable[[int], str] | None = None
    ) -> None:
        """`label(index)`: what to call a feature (the writer's name for it, else its label)."""
        super().__init__()
        self.data = data
        self.ask_worker = ask_worker
        self.label = label or (lambda i: data.features[i].label)
        self.activation: dict[str, dict[int, float]] = {}
        self.hits: list[SearchHit] = []
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Type what the suggestions should be about: a concept slider from your words, "
                        "or an SAE feature")
            yield Input(placeholder="e.g. sea, rain and storms, formal letters", id="query")
            yield OptionList(id="hits")
            yield Label("Enter: add as a slider · Esc: cancel · 'writes': turning it up makes the model write "
                        "these words; 'fires on': it detects them", classes="dim")

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
        concept = Text()
        concept.append("concept  ", style="bold magenta")
        concept.append(f"{query[:60]}", style="bold")
        concept.append("  a slider toward these words", style="dim")
        options.add_option(Option(concept, id=CONCEPT_ROW))
        self.hits = fuse(text_scores(self.data, query), self.activation.get(query, {}), limit=20,
                         steering=steer_scores(self.data, query))
        for hit in self.hits:
            f = self.data.features[hit.index]
            label = self.label(f.index)
            writes = label.startswith("→ writes:")
            line = Text()
            line.append(f"#{f.index:<5} ", style="bold")
            line.append("writes   " if writes else "fires on ", style="green" if writes else "cyan")
            line.append(f"{label.removeprefix('→ writes:').strip()[:44]:<44} ")
            line.append(f"{f.density:7.3%}", style="dim")
            if hit.activation:
                line.append(f"  lit {hit.activation:.0%}", style="cyan")
            if f.steers:
                line.append(f"  steers {f.output_score:.2f}", style="bold yellow")
            options.add_option(Option(line, id=str(f.index)))
        options.highlighted = 0

    def _choice(self, option_id: str | None) -> int | str:
        return self.search_text if option_id == CONCEPT_ROW else int(option_id or 0)

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        options = self.query_one("#hits", OptionList)
        if self.search_text and options.highlighted is not None:
            self.dismiss(self._choice(options.get_option_at_index(options.highlighted).id))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self._choice(event.option.id))

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
    """Ask for a name (a preset's, say). Enter accepts a non-empty name (or, with `allow_empty`, an
    empty one); Esc cancels."""

    DEFAULT_CSS = MODAL_CSS.format(name="NameScreen")
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, prompt: str, value: str = "", allow_empty: bool = False) -> None:
        super().__init__()
        self.prompt, self.value, self.allow_empty = prompt, value, allow_empty

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.prompt)
            yield Input(value=self.value, id="name")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() or self.allow_empty:
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
