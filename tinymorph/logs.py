"""Where the libraries' own chatter goes: a log file, never the writer's screen or a command's output.

Owns: `route_library_output`, called once per process before torch, transformers or sae-lens are
imported (the CLI at start; the worker process sends its stdout and stderr to the same file).
Python warnings (transformers' FutureWarnings, sae-lens's DeprecationWarnings) are captured into
the `logging` tree; log records of every library go to the file; progress bars that libraries draw
on their own (tqdm inside transformers' GGUF loader, the Hub's downloads) are switched off:
tinymorph draws its own. Imports only `private` (which imports nothing of ours).
"""

import logging
import os
from pathlib import Path

from tinymorph.private import PRIVATE_FILE, private_dir

LOG_NAME = "worker.log"
"""The log file's name, in the cache directory (`AppPaths.cache_dir`)."""

_FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s: %(message)s"


def route_library_output(log_file: Path) -> None:
    """Send warnings and library log records of this process to `log_file` (appended; created
    with its folder), and turn off library progress bars. Safe to call more than once. A log
    file that cannot be opened leaves the records with nowhere to go but nothing is printed."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "warning")
    logging.captureWarnings(True)
    root = logging.getLogger()
    if any(getattr(h, "_tinymorph", False) for h in root.handlers):
        return
    try:
        private_dir(log_file.parent)  # and the parents it creates (a new TINYMORPH_HOME), whatever the umask
        os.close(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE))  # private before any record
        handler: logging.Handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter(_FORMAT))
    except OSError:
        handler = logging.NullHandler()
    handler._tinymorph = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    # Without a handler of its own, the "py.warnings" logger would print to stderr (logging's
    # last resort); with the root's file handler in place it propagates there.
