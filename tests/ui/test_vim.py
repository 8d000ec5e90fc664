"""A vim user's story with `--keymap vim` (Pilot, scripted engine): modes, motions with counts,
operators and text objects, `.`, undo as one step, search, the command line, and ghost text."""

from pathlib import Path

import pytest

from tests.ui.fakes import ScriptedEngine, ghost_text
from tinymorph.config import Settings
from tinymorph.paths import package_data_dir
from tinymorph.store import Store
from tinymorph.ui.app import TinymorphApp, make_app
from tinymorph.ui.dialogs import ChoiceScreen
from tinymorph.ui.widgets import QuitScreen

TEXT = "One two three four.\nfive six seven\n\nA new paragraph (with brackets) here."


def vim_app(path: Path, store: Store, text: str = TEXT, suggestions: bool = False) -> TinymorphApp:
    path.write_text(text, encoding="utf-8")
    settings = Settings(idle_delay_ms=10, keymap="vim", suggestions=suggestions)
    return make_app(path, settings, store, ScriptedEngine() if suggestions else None, package_data_dir("themes"))


async def keys(pilot, *typed: str) -> None:
    """Press each key of each string (names such as "escape" pass whole)."""
    for item in typed:
        if len(item) > 1 and not item.startswith(("ctrl+", "escape", "enter", "backspace", "tab")):
            await pilot.press(*item)
        else:
            await pilot.press(item)


@pytest.fixture
def doc(tmp_path: Path) -> Path:
    return tmp_path / "draft.md"


# --- modes ---------------------------------------------------------------------------------

async def test_starts_in_normal_mode_where_letters_are_commands_not_text(doc, store):
    app = vim_app(doc, store)
    async with app.run_test() as pilot:
        await keys(pilot, "zq")  # not commands: nothing happens
        assert app.editor.text == TEXT
        assert app.status.mode == "NORMAL"
        await pilot.press("tab", "ctrl+w", "ctrl+k")  # TextArea's editing keys do nothing here
        assert app.editor.text == TEXT


async def test_insert_append_open_and_escape(doc, store):
    app = vim_app(doc, store, "middle")
    async with app.run_test() as pilot:
        await keys(pilot, "i", "[", "escape")
        assert app.editor.text == "[middle"
        assert app.status.mode == "NORMAL"
        assert app.editor.cursor_location == (0, 0)  # Esc steps back onto the last typed character
        await keys(pilot, "A", "]", "escape", "I", "<", "escape", "a", "-", "escape")
        assert app.editor.text == "<-[middle]"
        await keys(pilot, "o", "below", "escape", "O", "above", "escape")
        assert app.editor.text == "<-[middle]\nabove\nbelow"
        assert app.status.mode == "NORMAL"


async def test_the_status_bar_shows_the_mode_and_pending_keys(doc, store):
    app = vim_app(doc, store)
    async with app.run_test() as pilot:
        await keys(pilot, "2d")
        assert app.status.mode == "NORMAL 2d"
        await keys(pilot, "escape", "i")
        assert app.status.mode == "-- INSERT --"
        assert app.editor.has_class("-vim-insert")  # the cursor's shape changes with the mode
        await keys(pilot, "escape", "v")
        assert app.status.mode == "-- VISUAL --"
        await keys(pilot, "escape", ":", "se")
        assert app.status.mode == ":se"
        await keys(pilot, "escape")
        assert app.status.mode == "NORMAL"


# --- motions with counts -------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "where"), [
    ("w", (0, 4)), ("3w", (0, 14)), ("e", (0, 2)), ("2e", (0, 6)), ("$", (0, 18)), ("$b", (0, 14)),
    ("W", (0, 4)), ("4W", (1, 0)), ("4E", (0, 18)), ("j", (1, 0)), ("2jk", (1, 0)), ("G", (3, 0)),
    ("3G", (2, 0)), ("Ggg", (0, 0)), ("}", (2, 0)), ("2}", (3, 36)), ("G{", (2, 0)), ("ft", (0, 4)),
    ("2fe", (0, 11)), ("tt", (0, 3)), ("fe;", (0, 11)), ("fe;,", (0, 2)), ("$Fo", (0, 15)),
    ("$To", (0, 16)), ("ll0", (0, 0)), ("G%", (3, 30)), ("G%%", (3, 16)), ("G$b^", (3, 0)),
    ("3l", (0, 3)), ("jl", (1, 1)),
])
async def test_motions(doc, store, typed, where):
    app = vim_app(doc, store)
    async with app.run_test() as pilot:
        await keys(pilot, typed)
        assert app.editor.cursor_location == where
        assert app.editor.text == TEXT


async def test_g_goes_to_the_last_line_of_text_when_the_file_ends_in_a_line_break(doc, store):
    app = vim_app(doc, store, "one\ntwo\n")
    async with app.run_test() as pilot:
        await keys(pilot, "yyGp")
        assert app.editor.text == "one\ntwo\none\n"


async def test_j_and_k_keep_the_column_across_a_short_line(doc, store):
    app = vim_app(doc, store, "a long first line\nab\nanother long line")
    async with app.run_test() as pilot:
        await keys(pilot, "8l", "j")
        assert app.editor.cursor_location == (1, 1)
        await keys(pilot, "j")
        assert app.editor.cursor_location == (2, 8)


# --- operators, counts, text objects, registers ---------------------------------------------

@pytest.mark.parametrize(("typed", "expected"), [
    ("dw", "two three four.\nfive six seven\n\nA new paragraph (with brackets) here."),
    ("d3w", "four.\nfive six seven\n\nA new paragraph (with brackets) here."),
    ("2d2w", ".\nfive six seven\n\nA new paragraph (with brackets) here."),
    ("wD", "One \nfive six seven\n\nA new paragraph (with brackets) here."),
    ("dd", "five six seven\n\nA new paragraph (with brackets) here."),
    ("2dd", "\nA new paragraph (with brackets) here."),
    ("Gdd", "One two three four.\nfive six seven\n"),
    ("dj", "\nA new paragraph (with brackets) here."),
    ("jdk", "\nA new paragraph (with brackets) here."),
    ("dG", ""),
    ("$dw", "One two three four\nfive six seven\n\nA new paragraph (with brackets) here."),
    ("jwdw", "One two three four.\nfive seven\n\nA new paragraph (with brackets) here."),
    ("jwwdw", "One two three four.\nfive six \n\nA new paragraph (with brackets) here."),
    ("d}", "\nA new paragraph (with brackets) here."),
    ("dfr", "ee four.\nfive six seven\n\nA new paragraph (with brackets) here."),
    ("dtr", "ree four.\nfive six seven\n\nA new paragraph (with brackets) here."),
    ("wdiw", "One  three four.\nfive six seven\n\nA new paragraph (with brackets) here."),
    ("wdaw", "One three four.\nfive six seven\n\nA new paragraph (with brackets) here."),
    ("dap", "A new paragraph (with brackets) here."),
    ("Gdip", "One two three four.\nfive six seven\n"),
    ("Gf(d%", "One two three four.\nfive six seven\n\nA new paragraph  here."),
    ("Gd%", "One two three four.\nfive six seven\n\n here."),
    ("x", "ne two three four.\nfive six seven\n\nA new paragraph (with brackets) here."),
    ("3x", " two three four.\nfive six seven\n\nA new paragraph (with brackets) here."),
    ("llX", "Oe two three four.\nfive six seven\n\nA new paragraph (with brackets) here."),
    ("rx", "xne two three four.\nfive six seven\n\nA new paragraph (with brackets) here."),
    ("3r-", "--- two three four.\nfive six seven\n\nA new paragraph (with brackets) here."),
    ("3~", "oNE two three four.\nfive six seven\n\nA new paragraph (with brackets) here."),
    ("J", "One two three four. five six seven\n\nA new paragraph (with brackets) here."),
    ("3J", "One two three four. five six seven\nA new paragraph (with brackets) here."),
    ("yyp", "One two three four.\nOne two three four.\nfive six seven\n\nA new paragraph (with brackets) here."),
    ("jyyP", "One two three four.\nfive six seven\nfive six seven\n\nA new paragraph (with brackets) here."),
    ("yw$p", "One two three four.One \nfive six seven\n\nA new paragraph (with brackets) here."),
    ("dwwP", "two One three four.\nfive six seven\n\nA new paragraph (with brackets) here."),
    ("ddp", "five six seven\nOne two three four.\n\nA new paragraph (with brackets) here."),
    ("Gddkkp", "One two three four.\nA new paragraph (with brackets) here.\nfive six seven\n"),
    ("Y2jp", "One two three four.\nfive six seven\n\nOne two three four.\nA new paragraph (with brackets) here."),
    ("vlld", " two three four.\nfive six seven\n\nA new paragraph (with brackets) here."),
    ("wvey$p", "One two three four.two\nfive six seven\n\nA new paragraph (with brackets) here."),
    ("Vjd", "\nA new paragraph (with brackets) here."),
    ("vj~", "oNE TWO THREE FOUR.\nFive six seven\n\nA new paragraph (with brackets) here."),
])
async def test_operators_and_commands(doc, store, typed, expected):
    app = vim_app(doc, store)
    async with app.run_test() as pilot:
        await keys(pilot, typed)
        assert app.editor.text == expected
        assert app.status.mode == "NORMAL"


@pytest.mark.parametrize(("typed", "expected"), [
    (("cw", "Two", "escape"), "Two two three four."),
    (("c2w", "Zero", "escape"), "Zero three four."),
    (("wc$", "end", "escape"), "One end"),
    (("wC", "end", "escape"), "One end"),
    (("cc", "whole", "escape"), "whole"),
    (("S", "whole", "escape"), "whole"),
    (("s", "N", "escape"), "Nne two three four."),
    (("wciw", "2", "escape"), "One 2 three four."),
    (("cis", "Short.", "escape"), "Short."),
    (("cip", "Para", "escape"), "Para"),
])
async def test_change_operators_type_in_insert_mode(doc, store, typed, expected):
    app = vim_app(doc, store, "One two three four.")
    async with app.run_test() as pilot:
        await keys(pilot, *typed)
        assert app.editor.text == expected
        assert app.status.mode == "NORMAL"


async def test_sentence_objects(doc, store):
    app = vim_app(doc, store, "First one here. Second one here! Third.")
    async with app.run_test() as pilot:
        await keys(pilot, "fSdas")
        assert app.editor.text == "First one here. Third."
        await keys(pilot, "dis")
        assert app.editor.text == "First one here. "


async def test_dot_repeats_the_last_change_with_its_typed_text_and_a_new_count(doc, store):
    app = vim_app(doc, store, "a b c d e f g h")
    async with app.run_test() as pilot:
        await keys(pilot, "dw", ".")
        assert app.editor.text == "c d e f g h"
        await keys(pilot, "3.")
        assert app.editor.text == "f g h"
        await keys(pilot, "cw", "X", "escape", "w", ".")
        assert app.editor.text == "X X h"
        await keys(pilot, "A", "!", "escape", "0", ".")
        assert app.editor.text == "X X h!!"


async def test_undo_takes_back_a_whole_command_and_its_insert_session(doc, store):
    app = vim_app(doc, store, "one two three four five")
    async with app.run_test() as pilot:
        await keys(pilot, "d3w")
        assert app.editor.text == "four five"
        await keys(pilot, "u")
        assert app.editor.text == "one two three four five"
        await keys(pilot, "ctrl+r")
        assert app.editor.text == "four five"
        await keys(pilot, "u", "c2w", "a new beginning", "enter", "and a line", "escape")
        assert app.editor.text == "a new beginning\nand a line three four five"
        await keys(pilot, "u")  # one step, though TextArea made several batches of it
        assert app.editor.text == "one two three four five"
        await keys(pilot, "ctrl+r")
        assert app.editor.text == "a new beginning\nand a line three four five"
        await keys(pilot, "2u")
        assert app.editor.text == "one two three four five"


async def test_a_long_insert_session_is_one_undo_step(doc, store):
    app = vim_app(doc, store, "start")
    async with app.run_test() as pilot:
        await keys(pilot, "A")
        for n in range(8):
            await keys(pilot, f" line {n} of many", "enter")
        await keys(pilot, "escape", "u")
        assert app.editor.text == "start"


# --- search --------------------------------------------------------------------------------

async def test_search_forward_backward_repeat_and_star(doc, store):
    app = vim_app(doc, store, "the cat and the dog and the cat\nthen the end")
    async with app.run_test() as pilot:
        await keys(pilot, "/", "cat", "enter")
        assert app.editor.cursor_location == (0, 4)
        await keys(pilot, "n")
        assert app.editor.cursor_location == (0, 28)
        await keys(pilot, "n")  # wraps around
        assert app.editor.cursor_location == (0, 4)
        await keys(pilot, "N")
        assert app.editor.cursor_location == (0, 28)
        await keys(pilot, "?", "dog", "enter")
        assert app.editor.cursor_location == (0, 16)
        await keys(pilot, "gg*")  # whole word "the": not "then"
        assert app.editor.cursor_location == (0, 12)
        await keys(pilot, "nn")
        assert app.editor.cursor_location == (1, 5)
        await keys(pilot, "d/", "end", "enter")  # an operator up to a search match
        assert app.editor.text == "the cat and the dog and the cat\nthen end"
        await keys(pilot, "u", "c?", "dog", "enter", "a bird ", "escape")
        assert app.editor.text == "the cat and the a bird the end"


# --- the command line ----------------------------------------------------------------------

async def test_colon_w_saves_and_colon_wq_quits(doc, store):
    app = vim_app(doc, store, "draft")
    async with app.run_test() as pilot:
        await keys(pilot, "A", " two", "escape", ":", "w", "enter")
        assert doc.read_text(encoding="utf-8") == "draft two"
        await keys(pilot, "A", " three", "escape", ":", "wq", "enter")
        await pilot.pause()
    assert doc.read_text(encoding="utf-8") == "draft two three"
    assert app.return_code == 0


async def test_colon_q_asks_about_unsaved_changes_and_q_bang_drops_them(doc, store):
    app = vim_app(doc, store, "draft")
    async with app.run_test() as pilot:
        await keys(pilot, "x", ":", "q", "enter")
        await pilot.pause()
        assert isinstance(app.screen, QuitScreen)
        await keys(pilot, "escape")
        await pilot.pause()
        assert app.editor.text == "raft"
        await keys(pilot, ":", "q!", "enter")
        await pilot.pause()
    assert doc.read_text(encoding="utf-8") == "draft"
    assert app.return_code == 0


async def test_colon_x_quits_without_writing_an_unchanged_file(doc, store):
    app = vim_app(doc, store, "draft")
    async with app.run_test() as pilot:
        stamp = doc.stat().st_mtime_ns
        await keys(pilot, ":", "x", "enter")
        await pilot.pause()
    assert doc.stat().st_mtime_ns == stamp
    assert app.return_code == 0


async def test_colon_e_bang_reloads_after_asking(doc, store):
    app = vim_app(doc, store, "on disk")
    async with app.run_test() as pilot:
        await keys(pilot, "dw", ":", "e!", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ChoiceScreen)
        await pilot.press("enter")  # the first choice: reload
        await pilot.pause()
        assert app.editor.text == "on disk"
        assert not app.modified


async def test_set_nowrap_and_wrap_and_a_line_number(doc, store):
    app = vim_app(doc, store)
    async with app.run_test() as pilot:
        await keys(pilot, ":", "set nowrap", "enter")
        assert app.editor.soft_wrap is False
        await keys(pilot, ":", "set wrap", "enter")
        assert app.editor.soft_wrap is True
        await keys(pilot, ":", "4", "enter")
        assert app.editor.cursor_location == (3, 0)
        await keys(pilot, ":", "nonsense", "enter")
        assert app.editor.text == TEXT


# --- ghost text ----------------------------------------------------------------------------

async def test_ghost_text_only_in_insert_mode_and_escape_drops_it_and_leaves_insert_in_one_press(doc, store):
    app = vim_app(doc, store, "Out at the harbour", suggestions=True)
    async with app.run_test() as pilot:
        await keys(pilot, "$")
        assert await ghost_text(pilot, app, tries=10) == ""  # normal mode: none asked for
        await keys(pilot, "a")
        assert await ghost_text(pilot, app) == " the sea was calm."
        await keys(pilot, "escape")
        assert app.editor.suggestion == ""
        assert app.status.mode == "NORMAL"
        assert app.editor.text == "Out at the harbour"
        assert await ghost_text(pilot, app, tries=10) == ""


async def test_tab_and_ctrl_right_accept_in_insert_mode(doc, store):
    app = vim_app(doc, store, "Out at the harbour", suggestions=True)
    async with app.run_test() as pilot:
        await keys(pilot, "A")
        await ghost_text(pilot, app)
        await keys(pilot, "ctrl+right")
        assert app.editor.text == "Out at the harbour the"
        await keys(pilot, "tab")
        assert app.editor.text == "Out at the harbour the sea was calm."
        await keys(pilot, "escape", "u")
        assert app.editor.text == "Out at the harbour"


async def test_typing_into_ghost_text_keeps_the_rest_as_without_vim(doc, store):
    app = vim_app(doc, store, "Out at the harbour", suggestions=True)
    async with app.run_test() as pilot:
        await keys(pilot, "A")
        await ghost_text(pilot, app)
        await keys(pilot, " th")
        assert app.editor.suggestion == "e sea was calm."


async def test_panel_keys_work_from_normal_mode(doc, store):
    app = vim_app(doc, store, "Out at the harbour", suggestions=True)
    async with app.run_test() as pilot:
        await keys(pilot, "ctrl+t")
        await pilot.pause()
        assert app.panel.display
