"""Private by default: tinymorph's folders are 0700 and every file in them 0600, whatever the umask.

Owns: making tinymorph's own folders (config, data, cache; a `TINYMORPH_HOME` only when
tinymorph creates it) and the files it creates in them readable by the writer alone, and
tightening what an older version made looser, once, on start. tinymorph keeps copies of the
writer's text (the journal, every saved version) in the store; with the usual umask 022 they would be
readable by every account on the machine. Vim gives its swap file the permissions of the file it
protects; tinymorph does at least as well. Imports nothing of ours (`AppPaths.roots` says which
folders are tinymorph's own).
"""

import logging
import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_OTHERS = 0o077

log = logging.getLogger(__name__)


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) as 0700 folders, or make an existing one 0700.
    Only `path` and the parents this call creates are changed. Raises OSError as mkdir does."""
    missing = []
    for parent in [path, *path.parents]:
        if parent.exists():
            break
        missing.append(parent)
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    for made in [path, *missing]:
        os.chmod(made, PRIVATE_DIR)  # mkdir's mode is masked by the umask
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty as a 0600 file if it does not exist (its folder made private), or make
    an existing one 0600. Raises OSError when it cannot."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    return path


def tighten(roots: list[Path]) -> list[Path]:
    """Make every existing folder under `roots` (tinymorph's own folders) 0700 and every file 0600
    where group or others had any permission (what an older version, or the umask, left). Symlinks are
    not followed. Returns the paths changed; logs one line when there are any."""
    changed: list[Path] = []
    for root in roots:
        if not root.is_dir():
            continue
        for folder, dirs, files in os.walk(root):
            for entry in (folder, *(os.path.join(folder, f) for f in files)):
                st = os.lstat(entry)
                if stat.S_ISLNK(st.st_mode) or not st.st_mode & _OTHERS:
                    continue
                os.chmod(entry, stat.S_IMODE(st.st_mode) & ~_OTHERS)
                changed.append(Path(entry))
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
    if changed:
        log.warning("made %d of tinymorph's files and folders private (group and others had access)", len(changed))
    return changed


def secure(roots: list[Path]) -> None:
    """Create `roots` (tinymorph's own folders) private and tighten what is already in them (on
    every start; cheap when nothing needs it). Errors are logged, not raised: a folder tinymorph cannot change
    (a shared mount) must not keep the writer from writing."""
    try:
        for root in roots:
            private_dir(root)
        tighten(roots)
    except OSError as exc:
        log.warning("could not make tinymorph's folders private: %s", exc)
