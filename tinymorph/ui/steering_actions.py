"""The app's steering side: the panel, feature search, the feature lens, compare, directions and
presets. A mixin of TinymorphApp (kept apart so that app.py stays about the document).

Owns: turning steering events from the worker into UI state, and the steering actions of the
keys and the command palette.
"""

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work

from tinymorph.domain import DEFAULT_CONCEPT_STRENGTH, DEFAULT_STRENGTH, SteeringTerm
from tinymorph.engine.protocol import (
    CompareRequest,
    ComparisonReady,
    ConceptMade,
    DirectionMade,
    FeatureSearchReady,
    FeaturesLit,
    MakeConcept,
    MakeDirection,
    SearchFeatures,
    WorkerReady,
)
from tinymorph.errors import TinymorphError
from tinymorph.features import FeatureData, load_feature_data
from tinymorph.labels import lens_label
from tinymorph.lens_table import load_lens_table
from tinymorph.paths import package_data_dir
from tinymorph.presets import Preset, SteeringTarget, shipped_directions
from tinymorph.ui.dialogs import ChoiceScreen, CompareScreen, FeatureSearchScreen, NameScreen
from tinymorph.ui.steering import RenameRequested, SearchRequested, SteeringChanged

if TYPE_CHECKING:
    from tinymorph.ui.app import TinymorphApp

    _Base = TinymorphApp
else:
    _Base = object

LENS_LABEL_CHARS = 24


def short_label(label: str) -> str:
    """A feature's label for the lens (`labels.lens_label`), or the writer's own name, trimmed to
    LENS_LABEL_CHARS."""
    text = lens_label(label)
    return text if len(text) <= LENS_LABEL_CHARS else text[: LENS_LABEL_CHARS - 1] + "…"


class SteeringActions(_Base):
    """Steering for TinymorphApp. Expects `self.panel`, `self.editor`, `self.engine`, `self.store`."""

    feature_labels: tuple[str, ...] | None = None
    """Every feature's label, from the small lens table (`lens_table.LensTable.label`)."""
    feature_data: FeatureData | None = None
    """The whole feature data (contexts, scores), parsed when search first needs it."""
    _feature_source: tuple[str, int] | None = None
    _dashboards_loading = False
    feature_names: dict[int, str] = {}
    """The writer's names for features of the loaded SAE (from the store), shown instead of labels."""
    target: SteeringTarget | None = None
    lit: tuple[tuple[int, float], ...] = ()
    _compare: CompareScreen | None = None

    # --- worker events -----------------------------------------------------------------

    def steering_ready(self, event: WorkerReady) -> None:
        """The worker is up: remember what presets must fit, load labels, restore the preset."""
        if event.sae_message:
            self.notify(event.sae_message, title="SAE features", severity="warning", timeout=8)
        if not event.sae_id:
            return
        self.target = SteeringTarget(event.model_id, event.sae_id, event.d_sae, event.d_model)
        with self.storing("read your names for features"):
            self.feature_names = self.store.feature_names(event.sae_id)
        if event.feature_folder:
            self._feature_source = (event.feature_folder, event.d_sae)
            self._load_labels(event.feature_folder, event.d_sae)
        state = None
        with self.storing("read the document's preset"):
            state = self.store.document(str(self.path))
        if state is not None and state.preset:
            self._apply_preset(state.preset, quiet=True)

    @work(thread=True, exclusive=True, group="features")
    def _load_labels(self, folder: str, d_sae: int) -> None:
        """The labels from `lens.json` (~0.8 MB for 16,384 features). Only without one (older
        feature data) the whole feature file, whose parsing holds the GIL for seconds."""
        table = load_lens_table(Path(folder), d_sae)
        if table is not None:
            self.call_from_thread(self._labels_loaded, table.label)
            return
        self._load_feature_data(folder, d_sae, search=False)

    def _labels_loaded(self, labels: tuple[str, ...]) -> None:
        self.feature_labels = labels
        self._show_lens()  # the lens may have arrived before the labels
        self.keep_long_lived()

    def _load_feature_data(self, folder: str, d_sae: int, search: bool) -> None:
        """Parse the whole feature file (runs in a worker thread); then search opens if asked."""
        try:
            data = load_feature_data(Path(folder), d_sae)
        except TinymorphError as exc:
            self.call_from_thread(self._features_failed, str(exc))
            return
        self.call_from_thread(self._features_loaded, data, search)

    def _features_failed(self, message: str) -> None:
        self._dashboards_loading = False
        self.notify(message, title="Feature labels", severity="warning")

    @work(thread=True, exclusive=True, group="features")
    def _load_for_search(self, folder: str, d_sae: int) -> None:
        self._load_feature_data(folder, d_sae, search=True)

    def _features_loaded(self, data: FeatureData, search: bool) -> None:
        self.feature_data = data
        self._dashboards_loading = False
        if self.feature_labels is None:
            self.feature_labels = tuple(f.label for f in data.features)
            self._show_lens()
        self.keep_long_lived()
        if search:
            self.action_search_features()

    def steering_event(self, event: object) -> bool:
        """Handle a steering event from the worker; False if it is not one."""
        if isinstance(event, FeaturesLit):
            if event.request_id in self._in_flight:
                self.lit = event.features
                self._show_lens()
        elif isinstance(event, FeatureSearchReady):
            if isinstance(self.screen, FeatureSearchScreen):
                self.screen.activation_ready(event.text, dict(event.scores))
        elif isinstance(event, ComparisonReady):
            if self._compare is not None and self.screen is self._compare:
                self._compare.show(event.unsteered, event.steered)
        elif isinstance(event, DirectionMade):
            self._show_panel()
            self.panel.add(SteeringTerm(DEFAULT_STRENGTH, direction=event.direction, label=event.name))
            self.notify(f"Slider {event.name!r}: the selection ({event.tokens} tokens) minus plain prose", timeout=4)
        elif isinstance(event, ConceptMade):
            self._show_panel()
            self.panel.add(SteeringTerm(DEFAULT_CONCEPT_STRENGTH, direction=event.direction, label=event.name,
                                        concept=event.name))
            made = "; ".join(f"#{i} {short_label(self._label(i))}" for i, _cos in event.features[:3])
            self.notify(f"Concept slider {event.name!r}" + (f", closest features: {made}" if made else ""), timeout=6)
        else:
            return False
        return True

    def _label(self, index: int) -> str:
        """What the writer sees for feature `index`: their own name for it, else its label."""
        if index in self.feature_names:
            return self.feature_names[index]
        if self.feature_labels is not None and index < len(self.feature_labels):
            return self.feature_labels[index]
        return f"feature {index}"

    def _show_lens(self) -> None:
        self.editor.inlay = " · ".join(short_label(self._label(i)) for i, _ in self.lit)

    # --- the panel -----------------------------------------------------------------------

    def on_steering_changed(self, message: SteeringChanged) -> None:
        self.status.steering = self._steering_summary()
        self.status.refresh_status()
        self.editor.restart_suggestion()

    def on_search_requested(self, _message: SearchRequested) -> None:
        self.action_search_features()

    def _steering_summary(self) -> str:
        active = [t for t in self.panel.terms if t.active]
        if not active:
            return ""
        return f"steering: {len(active)}" + (" (muted)" if self.panel.muted else "")

    def _show_panel(self) -> None:
        self.panel.display = True

    def action_toggle_steering(self) -> None:
        """Show the steering panel and move into it, or hide it (Ctrl+T)."""
        if self.panel.display and self.panel.has_focus:
            self.panel.display = False
            self.editor.focus()
        else:
            self.panel.display = True
            self.panel.focus()

    def action_focus_editor(self) -> None:
        self.editor.focus()

    def _need_sae(self) -> bool:
        if self.target is None:
            self.notify("No SAE is loaded, so there are no features to steer with.", severity="warning")
            return False
        return True

    def add_feature(self, index: int) -> None:
        """Add feature `index` to the panel at the default strength and show the panel."""
        self._show_panel()
        self.panel.add(SteeringTerm(DEFAULT_STRENGTH, feature=index, label=self._label(index)))

    def action_search_features(self) -> None:
        """Find a concept or features by words and add it as a slider (Ctrl+F)."""
        if not self._need_sae():
            return
        if self.feature_data is None:
            if self._feature_source is None or self.feature_labels is None:
                self.notify("The feature labels are still loading.", severity="warning")
            elif not self._dashboards_loading:  # the first search parses the dashboards (seconds for a wide SAE)
                self._dashboards_loading = True
                self.notify("Loading the features' dashboards…", timeout=3)
                self._load_for_search(*self._feature_source)
            return

        def ask(text: str) -> None:
            if self.engine is not None and self.model_ready:
                self.engine.request(SearchFeatures(self.engine.next_request_id(), text))

        def chosen(choice: int | str | None) -> None:
            if isinstance(choice, int):
                self.add_feature(choice)
            elif isinstance(choice, str):
                self.add_concept(choice)

        self.push_screen(FeatureSearchScreen(self.feature_data, ask, self._label), chosen)

    def add_concept(self, words: str) -> None:
        """Ask the worker for a concept slider toward `words`; it joins the panel when it comes."""
        if self.engine is None or not self.model_ready:
            self.notify("The model is not ready.", severity="warning")
            return
        self.engine.request(MakeConcept(self.engine.next_request_id(), words))
        self.notify(f"Making a concept slider for {words!r}…", timeout=2)

    def on_rename_requested(self, message: RenameRequested) -> None:
        """Rename the selected slider (r in the panel): a feature keeps the name everywhere (the
        store remembers it for this SAE); a concept or direction slider is renamed in the panel
        (and in presets saved after)."""
        term = message.term
        if term.feature is not None and self.target is None:
            return

        def named(name: str | None) -> None:
            if name is None:
                return
            if term.feature is not None and self.target is not None:
                with self.storing("rename the feature"):
                    self.store.rename_feature(self.target.sae_id, term.feature, name)
                    self.feature_names = self.store.feature_names(self.target.sae_id)
                    self.panel.relabel(term.feature, self._label(term.feature))
                    self._show_lens()
            else:
                self.panel.rename_selected(name)

        current = self._label(term.feature) if term.feature is not None else term.label
        what = f"feature #{term.feature}" if term.feature is not None else "slider"
        self.push_screen(NameScreen(f"Name for {what} (empty: its generated label):", current, allow_empty=True),
                         named)

    def action_pin_feature(self) -> None:
        """Pin the strongest feature shown by the lens into the panel (Alt+P)."""
        if not self._need_sae():
            return
        if not self.lit:
            self.notify("The lens shows no feature here yet: type a little, then pin.", severity="warning")
            return
        self.add_feature(self.lit[0][0])

    def action_compare(self) -> None:
        """Show the unsteered and the steered continuation here, same seed (Alt+C)."""
        if self.engine is None or not self.model_ready:
            self.notify("The model is not ready.", severity="warning")
            return
        spec = self.panel.spec()
        if spec.is_empty:
            self.notify("No active slider: the two continuations would be the same.", severity="warning")
            return
        before = self.editor.before_cursor(self.settings.context_tokens * 6)
        self._compare = CompareScreen(before, ", ".join(short_label(t.label) for t in spec.terms if t.active))
        self.push_screen(self._compare)
        self.engine.request(CompareRequest(self.engine.next_request_id(), before, spec,
                                           max_new_tokens=self.settings.max_new_tokens, temperature=0.0))

    def action_more_like_this(self) -> None:
        """Make a slider from the selection: its mean activation minus plain prose's (Alt+M)."""
        text = self.editor.selected_text
        if not text.strip():
            self.notify("Select some text first: the slider pushes toward it.", severity="warning")
            return
        if self.engine is None or not self.model_ready:
            self.notify("The model is not ready.", severity="warning")
            return
        name = "like: " + " ".join(text.split()[:4])
        self.engine.request(MakeDirection(self.engine.next_request_id(), name, text))

    def action_add_direction(self) -> None:
        """Add one of the shipped tonality directions (formal/casual, ...) as a slider."""
        if self.target is None:
            self.notify("The model is not ready.", severity="warning")
            return
        try:
            folder = package_data_dir("models") / "directions"
            found = shipped_directions(folder, self.target.model, self.target.d_model)
        except TinymorphError as exc:
            self.notify(str(exc), severity="error")
            return
        if not found:
            self.notify("No direction is shipped for this model.", severity="warning")
            return
        by_name = {d.name: d for d in found}

        def chosen(name: str | None) -> None:
            if name is not None:
                self._show_panel()
                self.panel.add(SteeringTerm(DEFAULT_STRENGTH, direction=by_name[name].vector, label=name))

        self.push_screen(ChoiceScreen("Add a direction (contrast pairs, mean difference)", list(by_name)), chosen)

    # --- presets -------------------------------------------------------------------------

    def action_save_preset(self) -> None:
        """Save the current sliders under a name."""
        if not self._need_sae() or self.target is None:
            return
        target = self.target

        def named(name: str | None) -> None:
            if name is None:
                return
            with self.storing("save the preset"):
                self.store.save_preset(Preset(name, target.model, target.sae_id, tuple(self.panel.terms)))
                self.store.remember_preset(str(self.path), name)
                self.notify(f"Saved preset {name!r}", timeout=3)

        state = None
        with self.storing("read the document's preset"):
            state = self.store.document(str(self.path))
        self.push_screen(NameScreen("Save the sliders as preset:", (state.preset if state else None) or ""), named)

    def _apply_preset(self, name: str, quiet: bool = False) -> None:
        assert self.target is not None
        try:
            preset = self.store.preset(name, self.target)
        except TinymorphError as exc:
            self.notify(str(exc), title="Preset not applied", severity="warning")
            return
        self.panel.muted = False
        # A feature shows the writer's name for it (or today's label), whatever the preset says.
        self.panel.set_terms([replace(t, label=self._label(t.feature)) if t.feature is not None else t
                              for t in preset.terms])
        if preset.terms:
            self._show_panel()
        with self.storing("remember the preset"):
            self.store.remember_preset(str(self.path), name)
        if not quiet:
            self.notify(f"Preset {name!r}: {len(preset.terms)} sliders", timeout=3)
        else:
            self.notify(f"Restored preset {name!r}", timeout=3)

    def _pick_preset(self, prompt: str, then) -> None:  # type: ignore[no-untyped-def]
        names: list[str] = []
        with self.storing("list the presets"):
            names = self.store.preset_names()
        if not names:
            self.notify("No preset saved yet.", severity="warning")
            return
        self.push_screen(ChoiceScreen(prompt, names), lambda name: name is not None and then(name))

    def action_load_preset(self) -> None:
        """Replace the sliders with a saved preset."""
        if self._need_sae():
            self._pick_preset("Load preset:", self._apply_preset)

    def action_rename_preset(self) -> None:
        def rename(old: str) -> None:
            def named(new: str | None) -> None:
                if new is not None:
                    try:
                        self.store.rename_preset(old, new)
                    except TinymorphError as exc:
                        self.notify(str(exc), severity="error")

            self.push_screen(NameScreen(f"Rename {old!r} to:", old), named)

        self._pick_preset("Rename preset:", rename)

    def action_delete_preset(self) -> None:
        def delete(name: str) -> None:
            with self.storing("delete the preset"):
                self.store.delete_preset(name)

        self._pick_preset("Delete preset:", delete)
