"""Large documents: the editor's caches stay right through edits, undo and redo; a 10 MB file
opens, takes typing, and sends the model only the local context."""

import random
from pathlib import Path

from tests.ui.fakes import ScriptedEngine
from tinymorph.config import Settings
from tinymorph.paths import package_data_dir
from tinymorph.store import Store
from tinymorph.ui.app import make_app
from tinymorph.ui.editor import HIGHLIGHT_LIMIT_CHARS
from tinymorph.ui.large_documents import CachedHeightWrappedDocument


async def test_cached_text_and_height_follow_every_edit_undo_and_redo(tmp_path: Path, store: Store):
    path = tmp_path / "notes.md"
    path.write_text("".join(f"line {i} with a few words to wrap around the edge of the screen\n" for i in range(60)))
    app = make_app(path, Settings(suggestions=False), store, None, package_data_dir("themes"))
    rng = random.Random(3)
    async with app.run_test(size=(50, 20)) as pilot:
        editor = app.editor
        for step in range(60):
            kind = rng.choice(["type", "type", "enter", "backspace", "move", "undo", "redo"])
            if kind == "move":
                editor.move_cursor((rng.randrange(editor.document.line_count), rng.randrange(40)))
            elif kind == "type":
                await pilot.press(*rng.choice(["a", "b c", "xyz"]).replace(" ", ""))
            elif kind in ("undo", "redo"):
                getattr(editor, f"action_{kind}")()
            else:
                await pilot.press(kind)
            await pilot.pause()
            assert editor.text == editor.document.text, step
            wrapped = editor.wrapped_document
            assert isinstance(wrapped, CachedHeightWrappedDocument)
            assert wrapped.height == sum(len(o) + 1 for o in wrapped._wrap_offsets), step
        await pilot.resize_terminal(30, 20)
        await pilot.pause()
        wrapped = editor.wrapped_document
        assert wrapped.height == sum(len(o) + 1 for o in wrapped._wrap_offsets)
        assert wrapped.height > editor.document.line_count  # narrower: lines wrap


async def test_a_10_mb_file_opens_takes_typing_and_sends_only_the_local_context(tmp_path: Path, store: Store):
    path = tmp_path / "big.md"
    line = "paragraph: the tide came in over the flats and went out again, slowly.\n"
    body = line * (10_000_000 // len(line))
    path.write_text(body, encoding="utf-8")
    engine = ScriptedEngine()
    settings = Settings(idle_delay_ms=10)
    app = make_app(path, settings, store, engine, package_data_dir("themes"))
    async with app.run_test() as pilot:
        await pilot.pause()
        assert len(app.editor.text) == len(body)
        assert not app.editor.is_syntax_aware  # highlighting is off above HIGHLIGHT_LIMIT_CHARS
        app.editor.move_cursor(app.editor.document.end)
        await pilot.press("W", "e")
        for _ in range(50):
            await pilot.pause(0.02)
            if engine.suggest_requests:
                break
        request = engine.suggest_requests[-1]
        assert len(request.text) <= app.editor.context_chars * 5 // 4  # the window start moves in quarters
        assert request.text.endswith("We") and request.text_start > 9_000_000
        await pilot.press("ctrl+s")
    assert path.stat().st_size == len(body) + 2
    assert len(body) > HIGHLIGHT_LIMIT_CHARS
