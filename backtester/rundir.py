"""The run directory: staged beside its final place, swapped in whole, with a manifest of what made it.

``backtest run`` and ``backtest train`` both write into a hidden staging directory
``.<name>.partial-<pid>/`` next to ``results/<name>/`` and move it into place only when it is
complete, so a failed or interrupted command never leaves a directory that looks finished, and
``--force`` replaces an old one only once the new one is whole.

Examples
--------
>>> import tempfile
>>> out = Path(tempfile.mkdtemp()) / "demo"
>>> with staging(out) as stage:
...     _ = (stage / "manifest.json").write_text("{}")
...     swap_in(stage, out)
>>> sorted(p.name for p in out.iterdir())
['manifest.json']
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Iterator

from . import __version__
from .errors import OutputError

PACKAGES = ("numpy", "pandas", "pyarrow", "scikit-learn", "tensorflow", "keras", "arch",
            "exchange-calendars", "pydantic")


def guard_output(out: Path, force: bool) -> None:
    """Refuse to replace ``out`` without ``force``."""
    if out.exists() and not force:
        finished = (out / "manifest.json").is_file()
        what = "a finished run" if finished else "a directory"
        raise OutputError(f"{out}: {what} is already there; pass --force to replace it, or change 'name' in the config")


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A fresh, empty staging directory for ``out`` (absolute: workers may run elsewhere); removed if the
    block fails or is interrupted, and left to :func:`swap_in` if it succeeds."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent.resolve() / f".{out.name}.partial-{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def swap_in(stage: Path, out: Path) -> None:
    """Move the finished staging directory to ``out``; an old ``out`` is removed only after."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
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
        res = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
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
