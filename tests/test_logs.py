"""Library warnings and progress bars go to the log file, never to a command's output or the
editor's screen (the worker process's import-time warnings included)."""

import json
import os
import queue
import subprocess
import sys

from tests.builders import save_topk_sae
from tinymorph.engine.client import EngineClient
from tinymorph.engine.protocol import SuggestionReady, SuggestRequest, WorkerConfig, WorkerReady


def test_a_command_prints_its_output_and_no_library_warning(tmp_path, tiny_model_dir, tiny_corpus, tinymorph_home):
    # `sae train` imports sae-lens, whose TransformerLens import warns (DeprecationWarning).
    env = {**os.environ, "PYTHONWARNINGS": "always", "TINYMORPH_HOME": str(tinymorph_home)}
    run = subprocess.run(
        [sys.executable, "-m", "tinymorph", "sae", "train", str(tiny_corpus), "--out", str(tmp_path / "mine"),
         "--layer", "2", "--width", "32", "--k", "4", "--tokens", "8192", "--seq-len", "32", "--eval-tokens", "0",
         "--model", str(tiny_model_dir)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    log = tinymorph_home / "cache" / "worker.log"
    assert run.returncode == 0, run.stderr[-2000:]
    assert "done:" in run.stderr
    assert "Warning" not in run.stderr + run.stdout, run.stderr[-2000:]
    assert "Warning" in log.read_text()  # the libraries did warn, into the log


def test_the_worker_never_writes_to_the_editors_terminal(tiny_manifest, tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("PYTHONWARNINGS", "always")  # import-time DeprecationWarnings of sae-lens & co. show
    log = tmp_path / "worker.log"
    sae = save_topk_sae(tmp_path / "sae")
    cfg = json.loads((sae / "cfg.json").read_text())
    (sae / "cfg.json").write_text(json.dumps({**cfg, "architecture": "standard"}))  # loaded by sae-lens, which warns
    engine = EngineClient(WorkerConfig(tiny_manifest, str(tmp_path / "cache"), 511, str(log), threads=1, sae=str(sae)))
    events: queue.Queue = queue.Queue()
    engine.start(events.put)
    try:
        while not isinstance(events.get(timeout=120), WorkerReady):
            pass
        engine.request(SuggestRequest(1, "The sea", max_new_tokens=3))
        while not isinstance(events.get(timeout=120), SuggestionReady):
            pass
    finally:
        engine.stop()
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out + err)[-2000:]
    assert "Warning" in log.read_text()  # they were there, and went to the log
