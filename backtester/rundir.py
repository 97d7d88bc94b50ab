"""The run directory: staged beside its final place, swapped in whole, with a manifest of what made it.

``backtest run`` writes into a hidden staging directory ``.<name>.partial/`` next to
``results/<name>/`` and moves it into place only when it is complete, so a failed or interrupted
command never leaves a directory that looks finished, and ``--force`` replaces an old one only once
the new one is whole. The staging directory outlives an interrupted or killed run: the same command
again finds its finished segments there (:mod:`backtester.store`). One process at a time writes a
run: :func:`run_lock` holds an exclusive lock on ``.<name>.lock`` (released by the kernel when the
process dies, however it dies). ``backtest train`` stages in ``.<name>.partial-<pid>/``, removed if
it fails.

Examples
--------
>>> import tempfile
>>> from backtester.layout import write_manifest
>>> out = Path(tempfile.mkdtemp()) / "demo"
>>> with staging(out) as stage:
...     write_manifest(stage, {})
...     swap_in(stage, out)
>>> sorted(p.name for p in out.iterdir())
['manifest.json']
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from .core.errors import OutputError
from .core.version import __version__
from .layout import (
    RunDir,
    aside_dir,
    aside_pattern,
    lock_path,
    scratch_dir,
    scratch_pattern,
    stage_dir,
)

PACKAGES = (
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "tensorflow",
    "keras",
    "jax",
    "jaxlib",
    "arch",
    "exchange-calendars",
    "pydantic",
)


def guard_output(out: Path, force: bool) -> None:
    """Refuse to replace ``out`` without ``force``."""
    if out.exists() and not force:
        finished = RunDir(out).is_finished()
        what = "a finished run" if finished else "a directory"
        raise OutputError(f"{out}: {what} is already there; pass --force to replace it, or change 'name' in the config")


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A fresh, empty staging directory for ``out`` (absolute: workers may run elsewhere); removed if the
    block fails or is interrupted, and left to :func:`swap_in` if it succeeds."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = scratch_dir(out, os.getpid())
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


@contextmanager
def run_stage(out: Path, fresh: bool = False) -> Iterator[Path]:
    """The staging directory of ``out``, kept from an interrupted run unless ``fresh`` (call it holding
    :func:`run_lock`). What a killed process left beside ``out`` is tidied first: an older version's
    ``.<name>.partial-<pid>/`` is removed, and a finished run moved aside by a swap that was cut short
    (``.<name>.old-<pid>/`` with no ``<name>/``) is put back."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in sorted(out.parent.glob(aside_pattern(out))):
        if not out.exists() and RunDir(old).is_finished():
            os.replace(old, out)
        else:
            shutil.rmtree(old, ignore_errors=True)
    for old in out.parent.glob(scratch_pattern(out)):
        shutil.rmtree(old, ignore_errors=True)
    stage = stage_dir(out)
    if fresh and stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(exist_ok=True)
    yield stage


def finished_segments(stage: Path) -> int:
    """How many finished segments a staging directory holds."""
    return RunDir(stage).finished_segments()


@contextmanager
def run_lock(out: Path, log=lambda msg: None) -> Iterator[None]:
    """Hold the exclusive lock on ``out``'s run while the block runs; a second writer is refused with
    one line naming the process that holds it. A lock left by a killed process is free (the kernel drops
    it with the process) and is taken over, with a note."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = lock_path(out)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        who = f"pid {holder.get('pid', '?')}" + (f", started {holder['started']}" if "started" in holder else "")
        raise OutputError(
            f"{out}: another backtest ({who}) is writing this run; wait for it to finish or stop "
            f"it (kill {holder.get('pid', '<pid>')}), then run the same command again"
        ) from None
    try:
        before = _holder(fd)
        if before.get("pid") not in (None, os.getpid()) and not _alive(before["pid"]):
            log(f"note: an earlier backtest of {out} (pid {before['pid']}) stopped without finishing; continuing")
        me = {"pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        yield
        os.ftruncate(fd, 0)  # released in order: nothing to take over
    finally:
        os.close(fd)


def _holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError):
        return True
    return True


def swap_in(stage: Path, out: Path) -> None:
    """Move the finished staging directory to ``out``; an old ``out`` is removed only after."""
    old = None
    if out.exists():
        old = aside_dir(out, os.getpid())
        os.replace(out, old)
    os.replace(stage, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def versions() -> dict[str, str]:
    """Python's and every package's version that can change a number (recorded in manifests and artifacts)."""
    out = {"python": platform.python_version(), "backtester": __version__}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def git_commit() -> str | None:
    """The commit of the checkout this package runs from, if it is one."""
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).resolve().parent
        )
        return res.stdout.strip() or None if res.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def data_record(cfg, prepared) -> dict:
    """The data fingerprint recorded in the manifest and in every artifact."""
    return {
        "path": str(cfg.data.path),
        "sha256": prepared.fingerprint,
        "bars_key": prepared.cache_key,
        "bars": len(prepared.bars),
        "first_bar": str(prepared.bars.index[0]),
        "last_bar": str(prepared.bars.index[-1]),
    }
