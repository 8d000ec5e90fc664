"""The writer's story in the editor, with a scripted engine (Pilot)."""

from pathlib import Path

import pytest

from tests.ui.fakes import ScriptedEngine, ghost_text
from tinymorph.config import Settings
from tinymorph.paths import package_data_dir
from tinymorph.store import Store
from tinymorph.ui.app import TinymorphApp, make_app
from tinymorph.ui.widgets import QuitScreen


def build(path: Path, store: Store, engine=None, **settings) -> TinymorphApp:
    cfg = Settings(idle_delay_ms=settings.pop("idle_delay_ms", 10), **settings)
    return make_app(path, cfg, store, engine if engine is not None else ScriptedEngine(), package_data_dir("themes"))


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    path = tmp_path / "notes.md"
    path.write_text("Out at the harbour", encoding="utf-8")
    return path


async def test_ghost_text_appears_after_a_pause_and_tab_inserts_it(notes, store):
    app = build(notes, store)
    async with app.run_test() as pilot:
        app.editor.move_cursor(app.editor.document.end)
        assert await ghost_text(pilot, app) == " the sea was calm."
        await pilot.press("tab")
        assert app.editor.text == "Out at the harbour the sea was calm."
    assert store.suggestion_events(str(notes))[0]["outcome"] == "accepted"


async def test_escape_rejects_and_the_text_is_unchanged(notes, store):
    app = build(notes, store)
    async with app.run_test() as pilot:
        app.editor.move_cursor(app.editor.document.end)
        await ghost_text(pilot, app)
        app.editor.suggestions_enabled = False  # no new suggestion after the rejection
        await pilot.press("escape")
        assert app.editor.suggestion == ""
        assert app.editor.text == "Out at the harbour"
    assert [e["outcome"] for e in store.suggestion_events()] == ["rejected"]


async def test_typing_the_next_characters_keeps_the_rest(notes, store):
    app = build(notes, store)
    async with app.run_test() as pilot:
        app.editor.move_cursor(app.editor.document.end)
        await ghost_text(pilot, app)
        await pilot.press("space", "t", "h")
        assert app.editor.suggestion == "e sea was calm."
        await pilot.press("x")
        assert app.editor.suggestion != "e sea was calm."  # typed something else: dropped


async def test_moving_the_cursor_drops_the_suggestion(notes, store):
    app = build(notes, store)
    async with app.run_test() as pilot:
        app.editor.move_cursor(app.editor.document.end)
        await ghost_text(pilot, app)
        app.editor.suggestions_enabled = False
        await pilot.press("left")
        assert app.editor.suggestion == ""
        assert app.editor.text == "Out at the harbour"
    assert store.suggestion_events()[0]["outcome"] == "dropped"


async def test_ctrl_right_accepts_one_word(notes, store):
    app = build(notes, store)
    async with app.run_test() as pilot:
        app.editor.move_cursor(app.editor.document.end)
        await ghost_text(pilot, app)
        await pilot.press("ctrl+right")
        assert app.editor.text == "Out at the harbour the"
        assert app.editor.suggestion == " sea was calm."


async def test_alternatives_cycle_with_alt_brackets_and_ctrl_arrows(notes, store):
    app = build(notes, store)
    async with app.run_test() as pilot:
        app.editor.move_cursor(app.editor.document.end)
        await ghost_text(pilot, app)
        await pilot.press("alt+right_square_bracket")
        assert app.editor.suggestion == " the boats came in."
        await pilot.press("ctrl+down")
        assert app.editor.suggestion == " it rained."
        await pilot.press("alt+left_square_bracket")
        assert app.editor.suggestion == " the boats came in."
        await pilot.press("tab")
        assert app.editor.text.endswith("the boats came in.")
    event = store.suggestion_events()[0]
    assert (event["outcome"], event["alternative_index"], event["alternatives"]) == ("accepted", 1, 3)


async def test_cycling_keeps_only_alternatives_that_fit_what_was_typed(notes, store):
    app = build(notes, store)
    async with app.run_test() as pilot:
        app.editor.move_cursor(app.editor.document.end)
        await ghost_text(pilot, app)
        await pilot.press("space", "t", "h", "e", "space")
        await pilot.press("alt+right_square_bracket")
        assert app.editor.suggestion == "boats came in."
        await pilot.press("alt+right_square_bracket")
        assert app.editor.suggestion == "sea was calm."  # " it rained." does not fit


async def test_tab_indents_when_there_is_no_suggestion(notes, store):
    app = build(notes, store, engine=None, suggestions=False)
    async with app.run_test() as pilot:
        app.editor.move_cursor((0, 0))
        await pilot.press("tab")
        assert app.editor.text.startswith("    Out")


async def test_no_suggestion_in_the_middle_of_a_word(notes, store):
    engine = ScriptedEngine()
    app = build(notes, store, engine=engine)
    async with app.run_test() as pilot:
        app.editor.move_cursor((0, 9))  # "Out at th|e harbour"
        await pilot.pause(0.2)
        assert engine.requests == []
        assert app.editor.suggestion == ""


async def test_a_recent_suggestion_that_still_fits_is_reused(notes, store):
    engine = ScriptedEngine()
    app = build(notes, store, engine=engine)
    async with app.run_test() as pilot:
        app.editor.move_cursor(app.editor.document.end)
        await ghost_text(pilot, app)
        await pilot.press("space", "t", "h", "backspace")
        assert await ghost_text(pilot, app) == "he sea was calm."  # " t" typed, the rest recalled
        assert len(engine.requests) == 1


async def test_ctrl_s_saves_atomically_keeping_crlf(tmp_path, store):
    path = tmp_path / "crlf.md"
    path.write_bytes(b"one\r\ntwo\r\n")
    app = build(path, store, suggestions=False)
    async with app.run_test() as pilot:
        app.editor.move_cursor((1, 3))
        await pilot.press("!", "ctrl+s")
        assert not app.modified
    assert path.read_bytes() == b"one\r\ntwo!\r\n"
    assert not [p for p in tmp_path.iterdir() if "tinymorph-tmp" in p.name]


async def test_a_new_file_is_created_on_first_save(tmp_path, store):
    path = tmp_path / "new.md"
    app = build(path, store, suggestions=False)
    async with app.run_test() as pilot:
        await pilot.press("h", "i", "ctrl+s")
    assert path.read_text() == "hi"


async def test_quit_with_unsaved_changes_asks_and_cancel_keeps_the_text(notes, store):
    app = build(notes, store, suggestions=False)
    async with app.run_test() as pilot:
        await pilot.press("x", "ctrl+q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.click("#cancel")
        assert app.is_running and app.editor.text.startswith("x")
        await pilot.press("ctrl+q")
        await pilot.click("#save")
    assert notes.read_text().startswith("xOut")


async def test_quit_without_changes_stops_the_engine_and_remembers_the_cursor(notes, store):
    engine = ScriptedEngine()
    app = build(notes, store, engine=engine, idle_delay_ms=5000)
    async with app.run_test() as pilot:
        app.editor.move_cursor((0, 4))
        await pilot.press("ctrl+q")
    assert engine.stopped
    state = store.document(str(notes))
    assert state is not None and (state.cursor_row, state.cursor_column) == (0, 4)


async def test_status_bar_shows_file_words_and_model_state(notes, store):
    app = build(notes, store, idle_delay_ms=5000)
    async with app.run_test() as pilot:
        await pilot.pause(0.4)
        status = str(app.status.render())
        assert "notes.md" in status and "4 words" in status and "scripted: ready" in status
        await pilot.press("a")
        assert "modified" in str(app.status.render())


async def test_the_theme_picked_is_remembered_across_runs(notes, store):
    app = build(notes, store, suggestions=False)
    async with app.run_test() as pilot:
        assert app.theme == "tinymorph-dark"
        app.theme = "tinymorph-high-contrast"
        await pilot.pause()
    again = build(notes, store, suggestions=False)
    async with again.run_test():
        assert again.theme == "tinymorph-high-contrast"


async def test_every_action_is_in_the_command_palette(notes, store):
    app = build(notes, store, suggestions=False)
    async with app.run_test():
        titles = {c.title for c in app.get_system_commands(app.screen)}
    for title in ("Save", "Quit", "Accept suggestion", "Accept next word", "Reject suggestion",
                  "Next alternative", "Previous alternative", "Undo", "Redo", "Theme"):
        assert any(t.startswith(title) for t in titles), title


async def test_palette_actions_with_nothing_to_act_on_do_nothing(notes, store):
    app = build(notes, store, suggestions=False)
    async with app.run_test() as pilot:
        await app.run_action("accept_suggestion", app.editor)
        await pilot.pause()
        assert app.editor.text == "Out at the harbour"


async def test_keybindings_come_from_settings(notes, store):
    app = build(notes, store, keybindings={"accept_suggestion": "ctrl+l"})
    async with app.run_test() as pilot:
        app.editor.move_cursor(app.editor.document.end)
        await ghost_text(pilot, app)
        await pilot.press("ctrl+l")
        assert app.editor.text.endswith("the sea was calm.")


async def test_an_idle_delay_of_zero_works(notes, store):
    app = build(notes, store, idle_delay_ms=0)
    async with app.run_test() as pilot:
        app.editor.move_cursor(app.editor.document.end)
        assert await ghost_text(pilot, app) == " the sea was calm."
        await pilot.press("x")


async def test_a_damaged_store_is_reported_and_editing_goes_on(notes, tmp_path):
    path = tmp_path / "store.db"
    path.write_bytes(b"garbage" * 500)
    store = Store(path)
    app = build(notes, store)
    async with app.run_test() as pilot:
        await pilot.pause(0.05)
        assert any("store was damaged" in str(n.message) for n in app._notifications)
        await pilot.press("x")
        assert app.editor.text.startswith("x") or app.editor.text.endswith("x")
    store.close()


async def test_ctrl_home_and_ctrl_end_go_to_the_ends_of_the_document(tmp_path, store):
    path = tmp_path / "three.md"
    path.write_text("one\ntwo\nthree", encoding="utf-8")
    app = build(path, store, suggestions=False)
    async with app.run_test() as pilot:
        app.editor.move_cursor((1, 1))
        await pilot.press("ctrl+end", "!")
        assert app.editor.text == "one\ntwo\nthree!"
        await pilot.press("ctrl+home", "#")
        assert app.editor.text == "#one\ntwo\nthree!"
        await pilot.press("ctrl+shift+end")
        assert app.editor.selected_text == "one\ntwo\nthree!"


async def test_the_word_count_follows_every_kind_of_edit_without_counting_the_whole_text(notes, store):
    import random

    app = build(notes, store, suggestions=False)
    async with app.run_test() as pilot:
        editor = app.editor
        rng = random.Random(3)
        pieces = ["word", " ", "\n", "two words", "a\nb c\n\nd", "", "  x  "]
        for step in range(300):
            end = editor.document.end
            a = (rng.randint(0, end[0]), 0)
            a = (a[0], rng.randint(0, len(editor.document.lines[a[0]])))
            b = (rng.randint(a[0], end[0]), 0)
            b = (b[0], rng.randint(0, len(editor.document.lines[b[0]])))
            editor.replace(rng.choice(pieces), a, max(a, b))
            assert editor.words_known  # kept edit by edit: no whole count
            assert editor.word_count() == len(editor.text.split()), step
        editor.undo()
        assert not editor.words_known and editor.word_count() == len(editor.text.split())
        await pilot.press("space", "z", "z")
        await pilot.pause(0.4)
        assert f"{len(editor.text.split())} words" in str(app.status.render())


async def test_streamed_ghost_text_and_the_lens_repaint_only_the_cursors_line(tmp_path, store):
    """Suggestions stream in a token at a time while the writer types: each change of the ghost
    text (or the lens beside it) repaints the rows of the cursor's line, not the whole editor."""
    path = tmp_path / "long.md"
    path.write_text("\n".join(f"line {n} of the notes" for n in range(12)) + "\nOut at the " + "long " * 40,
                    encoding="utf-8")
    app = build(path, store, suggestions=False)
    async with app.run_test(size=(60, 24)) as pilot:
        editor = app.editor
        editor.move_cursor(editor.document.end)
        await pilot.pause()
        row = editor.cursor_location[0]
        first = editor.wrapped_document.location_to_offset((row, 0))[1] - editor.scroll_offset.y
        rows_of_line = set(range(first, first + len(editor.wrapped_document.get_offsets(row)) + 1))
        assert len(rows_of_line) > 1  # soft-wrapped: the ghost text's line spans several rows
        painted: dict[int, str] = {}
        render_line = editor.render_line

        def recording(y: int):  # type: ignore[no-untyped-def]
            strip = render_line(y)
            painted[y] = strip.text
            return strip

        editor.render_line = recording  # type: ignore[method-assign]
        for text in (" the", " the sea", " the sea was"):
            painted.clear()
            editor.suggestion = text
            await pilot.pause()
            assert painted and set(painted) <= rows_of_line
            assert any(text in line for line in painted.values())
        painted.clear()
        editor.inlay = "harbour, boats"
        await pilot.pause()
        assert painted and set(painted) <= rows_of_line
        assert any("◂ harbour, boats" in line for line in painted.values())
        painted.clear()
        await pilot.press("x")  # an edit moves the cursor: the whole editor, as before
        assert len(painted) > len(rows_of_line)


async def test_the_heap_alive_after_start_is_out_of_the_collectors_reach(notes, store):
    """A full garbage collection of the ~150,000 objects alive after start paused typing for
    80-140 ms; the app freezes them (gc.freeze) once set up."""
    import gc

    gc.unfreeze()
    app = build(notes, store)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0  # handed back when the app goes


async def test_escape_also_drops_the_answer_still_on_its_way(notes, store):
    class Slow(ScriptedEngine):
        def request(self, req):  # type: ignore[no-untyped-def]
            self.requests.append(req)  # answered below, by hand, as a slow worker would

    app = build(notes, store, engine=Slow())
    async with app.run_test() as pilot:
        app.editor.move_cursor(app.editor.document.end)
        for _ in range(50):
            await pilot.pause(0.02)
            if app.engine.suggest_requests:
                break
        before = app.editor.before_cursor()
        assert app.editor.offer(before, " the sea", final=False)  # the start streams in
        assert app.editor.suggestion == " the sea"
        await pilot.press("escape")
        assert app.editor.suggestion == ""
        # The rest of the answer arrives after Esc: it must not bring the ghost text back.
        assert not app.editor.offer(before, "", final=True, alternatives=(" the sea was calm.",))
        assert app.editor.suggestion == ""
