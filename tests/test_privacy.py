"""Nothing leaves the machine: a full session (the editor with the real worker process:
suggestions, the feature lens, feature search, compare; SAE training and feature search in the
shell) runs with every internet socket and DNS lookup refused, here and in the worker process.

The block is a Python audit hook (PEP 578): creating an AF_INET / AF_INET6 socket is refused
(local AF_UNIX sockets, asyncio's self-pipe, stay allowed), and any name lookup or connect is
recorded and refused. The worker process gets the same hook through a `sitecustomize` module on
PYTHONPATH and writes what it saw to files this test reads. The session must work with the
block in place, and nothing may try to look up a host or connect.
"""

import json
import socket
import sys
from pathlib import Path

import pytest

from tests.builders import save_topk_sae
from tinymorph.cli import main
from tinymorph.config import Settings
from tinymorph.engine.client import EngineClient
from tinymorph.engine.protocol import WorkerConfig
from tinymorph.paths import package_data_dir
from tinymorph.sae.corpus import token_sequences
from tinymorph.sae.feature_data import build_feature_data
from tinymorph.sae.loading import load_sae
from tinymorph.ui.app import make_app

ATTEMPTS: list[str] = []
BLOCKING = {"on": False}
INET = {socket.AF_INET, socket.AF_INET6}


def _hook(event: str, args: tuple) -> None:
    if not BLOCKING["on"]:
        return
    if event == "socket.__new__" and len(args) > 1 and args[1] in INET:
        raise OSError("network blocked by the tinymorph privacy test")  # refused, as in the worker
    inet_connect = event == "socket.connect" and getattr(args[0], "family", None) in INET
    if inet_connect or event in ("socket.getaddrinfo", "socket.gethostbyname"):
        ATTEMPTS.append(f"{event} {args[1:2]!r}")
        raise OSError("network blocked by the tinymorph privacy test")


if not getattr(sys, "_tinymorph_privacy_hook", False):
    sys.addaudithook(_hook)
    sys._tinymorph_privacy_hook = True  # type: ignore[attr-defined]

CHILD_HOOK = """
import socket, sys
INET = {{socket.AF_INET, socket.AF_INET6}}
def _hook(event, args):
    if event == "socket.__new__" and len(args) > 1 and args[1] in INET:
        # Refused. (urllib3 probes for IPv6 at import by binding a socket to ::1; it copes.)
        with open({log!r} + ".refused", "a") as f:
            f.write(event + "\\n")
        raise OSError("network blocked by the tinymorph privacy test")
    inet_connect = event == "socket.connect" and getattr(args[0], "family", None) in INET
    if inet_connect or event in ("socket.getaddrinfo", "socket.gethostbyname"):
        with open({log!r}, "a") as f:
            f.write(event + " " + repr(args[1:2]) + "\\n")
        raise OSError("network blocked by the tinymorph privacy test")
sys.addaudithook(_hook)
open({log!r} + ".installed", "a").close()
"""


@pytest.fixture
def offline(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    log = tmp_path / "child-attempts.txt"
    (site / "sitecustomize.py").write_text(CHILD_HOOK.format(log=str(log)))
    monkeypatch.setenv("PYTHONPATH", f"{site}:{Path(__file__).resolve().parents[1]}")
    ATTEMPTS.clear()
    BLOCKING["on"] = True
    with pytest.raises(OSError, match="network blocked"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)  # the block is real
    with pytest.raises(OSError, match="network blocked"):
        socket.getaddrinfo("huggingface.co", 443)
    ATTEMPTS.clear()
    yield log
    BLOCKING["on"] = False


async def test_a_whole_session_opens_no_network_connection(offline, tiny_model_dir, tiny_manifest, tiny_lm, tmp_path):
    from tests.builders import TINY_TEXT

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "notes.txt").write_text(TINY_TEXT * 40)
    model = ["--model", str(tiny_model_dir)]
    assert main(["sae", "train", str(corpus), "--out", str(tmp_path / "mine"), "--layer", "2", "--width", "32",
                 "--k", "4", "--tokens", "8192", "--seq-len", "32", *model]) == 0
    sae_dir = save_topk_sae(tmp_path / "sae", model_name="")
    sae = load_sae(str(sae_dir), tiny_manifest, 64, 4)
    build_feature_data(tiny_lm, sae, token_sequences(iter([TINY_TEXT * 3]), tiny_lm.tokenizer, 32)).save(sae_dir)
    assert main(["features", "search", "harbour", "--sae", str(sae_dir), *model]) == 0

    notes = tmp_path / "notes.md"
    secret = "Quillon marmalade sextant nineteen"  # a sentence no file of tinymorph's may hold
    notes.write_text(f"{secret}. Out at the harbour")
    from tinymorph.store import Store

    store = Store(tmp_path / "store.db")
    config = WorkerConfig(tiny_manifest, str(tmp_path / "cache"), 511, str(tmp_path / "worker.log"),
                          sae=str(sae_dir), threads=1)
    app = make_app(notes, Settings(idle_delay_ms=10), store, EngineClient(config), package_data_dir("themes"))
    async with app.run_test() as pilot:
        app.editor.move_cursor(app.editor.document.end)
        for _ in range(300):
            await pilot.pause(0.05)
            if app.model_ready and app.editor.suggestion and app.feature_labels is not None:
                break
        assert app.model_ready and app.editor.suggestion, "no suggestion from the worker"
        suggestion = app.editor.suggestion
        app.add_feature(3)
        await pilot.press("alt+c")
        await pilot.pause(1.0)
        await pilot.press("escape", "ctrl+s")
        await pilot.pause(0.1)
        app.engine.stop()
    store.close()
    assert ATTEMPTS == []
    assert Path(str(offline) + ".installed").exists()  # the worker process ran with the block
    assert not offline.exists(), offline.read_text()
    assert json.loads((tmp_path / "mine" / "tinymorph.json").read_text())["completed"]
    # No log or other file outside the store (which keeps the journal and versions on purpose)
    # holds the writer's text or a suggestion, at the default log level.
    for path in [*tmp_path.rglob("*")]:
        if path.is_file() and path != notes and not path.name.startswith("store.db"):
            data = path.read_bytes()
            assert secret.encode() not in data, path
            if len(suggestion.strip()) > 8:
                assert suggestion.strip().encode() not in data, path
