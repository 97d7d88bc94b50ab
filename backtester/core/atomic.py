"""Files written whole or not at all: a temporary file beside the target, fsync, rename.

A process killed at any moment leaves either the old file, the new one, or a stray
``<name>.tmp-<pid>`` that nothing reads (and the next run of the same output removes).

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "a.txt"
>>> atomic_write_text(path, "done")
>>> path.read_text(), sorted(p.name for p in path.parent.iterdir())
('done', ['a.txt'])
"""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` as a whole or not at all: a temporary file, fsync, rename."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def fsync_tree(folder: Path) -> None:
    """fsync every file under ``folder`` (before it is renamed into place)."""
    for p in Path(folder).rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
