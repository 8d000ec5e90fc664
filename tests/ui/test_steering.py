"""The writer steers: finds a feature, pins it, turns it up, mutes, ablates, compares, saves a
preset and finds it applied when the document is reopened (Pilot, scripted engine)."""

from pathlib import Path

import pytest

from tests.ui.fakes import ScriptedEngine, tiny_feature_data
from tinymorph.config import Settings
from tinymorph.domain import DEFAULT_CONCEPT_STRENGTH, DEFAULT_STRENGTH
from tinymorph.paths import package_data_dir
from tinymorph.store import Store
from tinymorph.ui.app import TinymorphApp, make_app
from tinymorph.ui.dialogs import CompareScreen, FeatureSearchScreen, NameScreen
from tinymorph.ui.steering import COARSE_STEP, FINE_STEP


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    path = tmp_path / "notes.md"
    path.write_text("Out at the harbour", encoding="utf-8")
    return path


@pytest.fixture
def engine(tmp_path: Path) -> ScriptedEngine:
    tiny_feature_data(tmp_path / "sae")
    return ScriptedEngine(feature_folder=tmp_path / "sae")


def build(path: Path, store: Store, engine: ScriptedEngine) -> TinymorphApp:
    return make_app(path, Settings(idle_delay_ms=10), store, engine, package_data_dir("themes"))


async def settle(pilot, app: TinymorphApp, until=lambda: True, tries: int = 60) -> None:
    for _ in range(tries):
        await pilot.pause(0.02)
        if until():
            return


def last_terms(engine: ScriptedEngine):
    return engine.suggest_requests[-1].steering.terms


async def test_typing_words_and_enter_adds_a_concept_slider_named_by_them(notes, store, engine):
    app = build(notes, store, engine)
    async with app.run_test() as pilot:
        app.editor.move_cursor(app.editor.document.end)
        await settle(pilot, app, lambda: app.feature_labels is not None and engine.suggest_requests)
        await pilot.press("ctrl+f")
        await settle(pilot, app, lambda: isinstance(app.screen, FeatureSearchScreen))
        await pilot.press(*"rain  and storms")
        options = app.screen.query_one("#hits")
        first_row = str(options.get_option_at_index(0).prompt)
        assert first_row.startswith("concept") and "rain  and storms" in first_row
        await pilot.press("enter")
        await settle(pilot, app, lambda: last_terms(engine))
        (term,) = last_terms(engine)
        assert (term.label, term.concept) == ("rain and storms", "rain and storms")
        assert term.strength == DEFAULT_CONCEPT_STRENGTH
        assert term.direction and term.feature is None
        assert "concept" in str(app.panel.render()) and "rain and storms" in str(app.panel.render())


async def test_labels_come_from_the_lens_table_and_the_dashboards_only_when_search_opens(notes, store, tmp_path):
    """With `lens.json` beside the feature file the editor reads only it at start (parsing a wide
    SAE's feature file holds the GIL for seconds, mid-typing); Ctrl+F parses the rest, then opens."""
    from tinymorph.lens_table import save_feature_files

    (tmp_path / "lensed").mkdir()
    save_feature_files(tiny_feature_data(tmp_path / "lensed", save=False), tmp_path / "lensed")
    engine = ScriptedEngine(feature_folder=tmp_path / "lensed")
    app = build(notes, store, engine)
    async with app.run_test() as pilot:
        await settle(pilot, app, lambda: app.feature_labels is not None)
        assert app.feature_labels[1] == "sea, ocean, waves" and app.feature_data is None
        await pilot.press("ctrl+f")
        await settle(pilot, app, lambda: isinstance(app.screen, FeatureSearchScreen))
        assert isinstance(app.screen, FeatureSearchScreen) and app.feature_data is not None


async def test_search_add_a_feature_turn_up_and_the_suggestion_is_asked_again(notes, store, engine):
    app = build(notes, store, engine)
    async with app.run_test() as pilot:
        app.editor.move_cursor(app.editor.document.end)
        await settle(pilot, app, lambda: app.feature_labels is not None and engine.suggest_requests)
        await pilot.press("ctrl+f")
        await settle(pilot, app, lambda: isinstance(app.screen, FeatureSearchScreen))
        assert isinstance(app.screen, FeatureSearchScreen)
        await pilot.press(*"ocean")
        await settle(pilot, app, lambda: app.screen.activation.get("ocean"))
        assert app.screen.hits[0].index == 1  # label match and fires on "ocean"
        await pilot.press("down", "down", "enter")  # past the concept row, the first feature
        await settle(pilot, app, lambda: last_terms(engine))
        (term,) = last_terms(engine)
        assert (term.feature, term.strength, term.mode) == (1, DEFAULT_STRENGTH, "add")
        assert app.panel.display and "sea, ocean" in term.label
        asked = len(engine.suggest_requests)
        await pilot.press("ctrl+t")  # into the panel
        assert app.panel.has_focus
        await pilot.press("right", "right", "shift+right")
        await settle(pilot, app)
        assert len(engine.suggest_requests) > asked  # each change re-asks at once
        assert app.editor.suggestion  # and the new ghost text shows while the panel has focus
        assert last_terms(engine)[0].strength == pytest.approx(DEFAULT_STRENGTH + 2 * FINE_STEP + COARSE_STEP)
        assert "steering: 1" in str(app.status.render())
        await pilot.press("m")  # mute all: the next request is unsteered
        await settle(pilot, app)
        assert last_terms(engine) == ()
        await pilot.press("m", "a")  # unmute; switch the row to ablate
        await settle(pilot, app)
        assert last_terms(engine)[0].mode == "ablate"
        await pilot.press("0")
        await settle(pilot, app)
        assert last_terms(engine) == () or not last_terms(engine)[0].active
        await pilot.press("x")
        assert app.panel.terms == []


async def test_the_lens_shows_labels_beside_the_cursor_and_pins(notes, store, engine):
    app = build(notes, store, engine)
    async with app.run_test() as pilot:
        app.editor.move_cursor(app.editor.document.end)
        await settle(pilot, app, lambda: app.feature_labels is not None and app.editor.inlay)
        await settle(pilot, app, lambda: "harbour" in app.editor.inlay)
        assert app.editor.inlay == "harbour, boats · sea, ocean"
        assert "harbour, boats" in app.editor.render_line(0).text  # drawn on the cursor's line
        assert "harbour, boats" not in app.editor.text  # never part of the document
        await pilot.press("alt+p")
        await settle(pilot, app)
        assert [t.feature for t in app.panel.terms] == [2]


async def test_compare_and_more_like_this(notes, store, engine):
    app = build(notes, store, engine)
    async with app.run_test() as pilot:
        app.editor.move_cursor(app.editor.document.end)
        await settle(pilot, app, lambda: app.feature_labels is not None)
        app.add_feature(1)
        await pilot.press("alt+c")
        await settle(pilot, app, lambda: isinstance(app.screen, CompareScreen))
        await pilot.pause(0.1)
        shown = str(app.screen.query_one("#steered").render())
        assert "salt and spray" in shown
        await pilot.press("escape")
        app.editor.select_all()
        await pilot.press("alt+m")
        await settle(pilot, app, lambda: len(app.panel.terms) == 2)
        assert app.panel.terms[1].label == "like: Out at the harbour" and app.panel.terms[1].direction


async def test_a_saved_preset_is_restored_when_the_document_is_reopened(notes, tmp_path, engine):
    store = Store(tmp_path / "store.db")
    app = build(notes, store, engine)
    async with app.run_test() as pilot:
        await settle(pilot, app, lambda: app.feature_labels is not None)
        app.add_feature(1)
        app.add_feature(3)
        app.action_save_preset()
        await pilot.pause(0.05)
        await pilot.press(*"sea voice", "enter")
        await pilot.pause(0.05)
    assert store.preset_names() == ["sea voice"]
    store.close()

    store = Store(tmp_path / "store.db")
    again = build(notes, store, ScriptedEngine(feature_folder=tmp_path / "sae"))
    async with again.run_test() as pilot:
        await settle(pilot, again, lambda: again.panel.terms)
        assert [t.feature for t in again.panel.terms] == [1, 3] and again.panel.display
    store.close()


async def test_a_renamed_feature_shows_its_name_everywhere_and_keeps_it_in_a_new_feature_file(notes, tmp_path, engine):
    store = Store(tmp_path / "store.db")
    app = build(notes, store, engine)
    async with app.run_test() as pilot:
        app.editor.move_cursor(app.editor.document.end)
        await settle(pilot, app, lambda: app.feature_labels is not None and "harbour" in app.editor.inlay)
        app.add_feature(2)
        await pilot.press("ctrl+t", "r")  # in the panel: rename the selected slider
        await settle(pilot, app, lambda: isinstance(app.screen, NameScreen))
        await pilot.press("ctrl+a", "ctrl+k", *"quayside", "enter")  # clear the field, type the name
        await settle(pilot, app, lambda: app.panel.terms[0].label == "quayside")
        assert "quayside" in str(app.panel.render())
        assert app.editor.inlay.startswith("quayside")  # the lens
        app.action_search_features()
        await settle(pilot, app, lambda: isinstance(app.screen, FeatureSearchScreen))
        await pilot.press(*"harbour")
        await pilot.pause(0.1)
        rows = [str(app.screen.query_one("#hits").get_option_at_index(k).prompt) for k in range(2)]
        assert "quayside" in rows[1]  # search
        await pilot.press("escape")
        app.action_save_preset()
        await pilot.pause(0.05)
        await pilot.press(*"harbour", "enter")
        await pilot.pause(0.05)
    assert store.preset_json("harbour")["features"][0]["label"] == "quayside"  # presets
    store.close()
    tiny_feature_data(tmp_path / "sae")  # a new feature file, with its own labels
    store = Store(tmp_path / "store.db")
    again = build(notes, store, ScriptedEngine(feature_folder=tmp_path / "sae"))
    async with again.run_test() as pilot:
        again.editor.move_cursor(again.editor.document.end)
        await settle(pilot, again, lambda: again.feature_labels is not None and again.editor.inlay)
        assert again.editor.inlay.startswith("quayside") and again.panel.terms[0].label == "quayside"
    store.close()


async def test_without_an_sae_steering_keys_explain_themselves(notes, store):
    app = build(notes, store, ScriptedEngine())
    async with app.run_test() as pilot:
        await pilot.press("ctrl+f")
        await pilot.pause(0.05)
        assert not isinstance(app.screen, FeatureSearchScreen)
        assert any("No SAE" in str(n.message) for n in app._notifications)


class Held(ScriptedEngine):
    """Answers suggestions only when the test releases them (a suggestion in flight)."""

    def request(self, req):  # type: ignore[no-untyped-def]
        from tinymorph.engine.protocol import SuggestRequest

        if isinstance(req, SuggestRequest):
            self.requests.append(req)
            return
        super().request(req)

    def answer(self, req) -> None:  # type: ignore[no-untyped-def]
        from tinymorph.engine.protocol import SuggestionReady

        self.on_event(SuggestionReady(req.request_id, self.alternatives, 1.0, 2.0, 10, 0))


async def test_the_log_records_the_steering_of_the_request_not_the_panel_when_it_answered(notes, store, tmp_path):
    tiny_feature_data(tmp_path / "sae")
    engine = Held(feature_folder=tmp_path / "sae")
    app = build(notes, store, engine)
    async with app.run_test() as pilot:
        app.editor.move_cursor(app.editor.document.end)
        await settle(pilot, app, lambda: app.feature_labels is not None and engine.suggest_requests)
        app.add_feature(1)  # a slider at +0.125: a new request goes out
        await settle(pilot, app, lambda: len(engine.suggest_requests) >= 2)
        asked = engine.suggest_requests[-1]
        assert [t.strength for t in asked.steering.terms] == [DEFAULT_STRENGTH]
        app.panel.terms[0] = app.panel.terms[0].with_strength(0.5)  # moved while the answer is in flight
        engine.answer(asked)
        await settle(pilot, app, lambda: app.editor.suggestion)
        await pilot.press("tab")
    events = store.suggestion_events(str(notes))
    assert [e["outcome"] for e in events] == ["accepted"]
    steering = events[0]["steering"]
    assert steering == asked.steering.summary() and '"strength": 0.125' in steering
    assert events[0]["latency_ms"] is not None
