"""A writer's keys apply in the order typed, and none is lost, whatever the worker is doing.

Keys reach the app in bursts when it is busy (the terminal delivers what was typed meanwhile):
here, at the moment the worker reports ready and the first suggestion and lens arrive. Each test
puts a burst of key events into the app's queue at once, as Textual's driver does, and checks
the text."""

from pathlib import Path

import pytest
from textual import events

from tests.ui.fakes import ScriptedEngine, tiny_feature_data
from tinymorph.config import Settings
from tinymorph.engine.protocol import WorkerReady
from tinymorph.paths import package_data_dir
from tinymorph.ui.app import make_app

LINE = "The boat left the harbour at dawn and"


class ReadyOnCue(ScriptedEngine):
    """Reports ready only when the test says so (the worker finishing its load)."""

    def start(self, on_event) -> None:  # type: ignore[no-untyped-def]
        self.on_event = on_event

    def become_ready(self) -> None:
        self.on_event(WorkerReady("scripted", 0.0, 0, 8, 511, model_id="scripted-model", sae_id="tiny-sae",
                                  d_sae=4, feature_folder=str(self.feature_folder)))


def burst(app, *keys: str) -> None:
    """Put key events in the app's queue at once, as the driver does for keys typed together."""
    for key in keys:
        character = " " if key == "space" else key if len(key) == 1 else None
        app.post_message(events.Key(key, character))


@pytest.fixture
def line(tmp_path: Path) -> Path:
    path = tmp_path / "boat.md"
    path.write_text(LINE, encoding="utf-8")
    return path


@pytest.mark.parametrize("idle_ms", [0, 10])
async def test_keys_typed_as_the_worker_becomes_ready_land_in_order(line, store, tmp_path, idle_ms):
    engine = ReadyOnCue(feature_folder=tmp_path / "features")
    tiny_feature_data(tmp_path / "features")
    app = make_app(line, Settings(idle_delay_ms=idle_ms), store, engine, package_data_dir("themes"))
    async with app.run_test() as pilot:
        await pilot.pause()
        engine.become_ready()  # ready, then (on the first request) lens and suggestion at once
        burst(app, "end", "space", "t", "h", "e")
        await pilot.pause(0.3)
        app.editor.suggestions_enabled = False
        burst(app, "escape", "ctrl+s")
        await pilot.pause(0.3)
        assert app.editor.text == LINE + " the"
    assert line.read_text(encoding="utf-8") == LINE + " the"


async def test_moves_deletions_and_undo_typed_in_one_burst_apply_in_order(line, store):
    app = make_app(line, Settings(suggestions=False), store, None, package_data_dir("themes"))
    async with app.run_test() as pilot:
        await pilot.pause()
        burst(app, "end", "space", "x", "backspace", "home", "A", "ctrl+end", "!", "ctrl+home", "B",
              "ctrl+z", "ctrl+s")
        await pilot.pause(0.3)
    assert line.read_text(encoding="utf-8") == "A" + LINE + " !"


async def test_quit_typed_right_after_a_character_still_asks_about_it(line, store):
    from tinymorph.ui.widgets import QuitScreen

    app = make_app(line, Settings(suggestions=False), store, None, package_data_dir("themes"))
    async with app.run_test() as pilot:
        await pilot.pause()
        burst(app, "x", "ctrl+q")
        await pilot.pause(0.2)
        assert isinstance(app.screen, QuitScreen)  # the x was typed before Ctrl+Q was read
        assert app.editor.text == "x" + LINE
