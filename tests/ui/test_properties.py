"""Property tests (Hypothesis): any sequence of typing, accepting, rejecting, cycling,
undo/redo and saving leaves the editor's text equal to a plain model of it, the file equal to
the text at the last save, and undo all the way back gives the text the file started with."""

import asyncio
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ui.fakes import ScriptedEngine, ghost_text
from tinymorph.config import Settings
from tinymorph.paths import package_data_dir
from tinymorph.store import Store
from tinymorph.ui.app import make_app

START = "The boats came in"
typing = st.text(alphabet="abc \n", min_size=1, max_size=4).map(lambda s: ("type", s))
actions = st.lists(
    st.one_of(
        typing,
        st.sampled_from([("accept",), ("accept_word",), ("reject",), ("cycle",), ("undo_redo",), ("save",)]),
    ),
    min_size=1,
    max_size=12,
)
KEYS = {" ": "space", "\n": "enter"}


async def _run(path: Path, steps: list[tuple]) -> None:
    path.write_text(START, encoding="utf-8")
    store = Store(None)
    engine = ScriptedEngine(alternatives=(" and the sea was calm.", " at dusk.", "\nThen rain."))
    app = make_app(path, Settings(idle_delay_ms=5), store, engine, package_data_dir("themes"))
    model, on_disk = START, START
    async with app.run_test() as pilot:
        app.editor.move_cursor(app.editor.document.end)
        for step in steps:
            kind = step[0]
            if kind == "type":
                await pilot.press(*(KEYS.get(c, c) for c in step[1]))
                model += step[1]
            elif kind in ("accept", "accept_word", "reject", "cycle"):
                ghost = await ghost_text(pilot, app, tries=25, every=0.01)
                if not ghost:
                    continue  # nothing offered here (mid-word): these keys would mean something else
                if kind == "accept":
                    await pilot.press("tab")
                    model += ghost
                elif kind == "accept_word":
                    before = app.editor.text
                    await pilot.press("ctrl+right")
                    taken = app.editor.text[len(before):]
                    assert taken and ghost.startswith(taken)
                    model += taken
                elif kind == "reject":
                    await pilot.press("escape")
                else:
                    await pilot.press("alt+right_square_bracket")
                    shown = app.editor.suggestion
                    assert not shown or any(alt.endswith(shown) for alt in engine.alternatives)
            elif kind == "undo_redo":
                before = app.editor.text
                app.editor.action_undo()
                await pilot.pause()
                app.editor.action_redo()
                await pilot.pause()
                assert app.editor.text == before
            else:
                await pilot.press("ctrl+s")
                on_disk = model
            assert app.editor.text == model, steps
            assert path.read_text(encoding="utf-8") == on_disk
        for _ in range(200):
            before = app.editor.text
            app.editor.action_undo()
            await pilot.pause()
            if app.editor.text == before:
                break
        assert app.editor.text == START
    store.close()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=actions)
def test_any_edit_sequence_matches_a_plain_model_of_the_text(tmp_path: Path, steps: list[tuple]):
    asyncio.run(_run(tmp_path / "notes.md", steps))
