"""The store key's code digest follows the imports of a segment's computation: editing any module a
segment's code imports (here: the kernel's losses that score tuning trials, a strategy, the segment
itself) changes it; editing a module no segment imports (the report's Markdown) does not."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def digest(tree: Path) -> str:
    code = "from backtester.store import code_digest; print(code_digest())"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tree, env={"PYTHONPATH": str(tree)}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    for pkg in ("backtester", "strategies"):
        shutil.copytree(ROOT / pkg, tree / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return tree


def edited(tree: Path, module: str) -> str:
    path = tree / module
    before = path.read_text()
    path.write_text(before + "\n# an edit\n")
    try:
        return digest(tree)
    finally:
        path.write_text(before)


def test_the_digest_is_the_same_in_every_process(tree):
    assert digest(tree) == digest(tree)


@pytest.mark.parametrize(
    "module",
    [
        "backtester/core/scores.py",  # QLIKE scores tuning trials (it once lay outside a hand-kept list)
        "backtester/core/series.py",
        "backtester/segment.py",
        "strategies/har.py",
        "strategies/base.py",
    ],
)
def test_editing_a_module_a_segment_imports_changes_the_digest(tree, module):
    assert edited(tree, module) != digest(tree)


@pytest.mark.parametrize("module", ["backtester/evaluation/markdown.py", "backtester/cli.py"])
def test_editing_a_module_no_segment_imports_keeps_the_digest(tree, module):
    assert edited(tree, module) == digest(tree)


def test_how_fits_stack_is_in_the_keys_of_strategies_that_stack_only():
    """A fit trained in another stacked group is another fit (README: stacked is not bit-identical to alone)."""
    import pandas as pd

    from backtester.core.schedule import TrainWindow
    from backtester.store import RunKeyBase, segment_key
    from backtester.work import Segment
    from strategies.har import HarParams
    from strategies.lstm import LstmParams

    t = pd.Timestamp("2024-01-01", tz="UTC")
    seg = Segment("x", 1, t, TrainWindow(t, 0, 10), 10, 12, 1)
    alone = RunKeyBase("code", (), "jax", 0, True, (1, False))
    stacked = RunKeyBase("code", (), "jax", 0, True, (16, True))
    lstm, har = LstmParams(), HarParams()
    assert segment_key(alone, seg, "lstm", lstm, "d") != segment_key(stacked, seg, "lstm", lstm, "d")
    assert segment_key(alone, seg, "har", har, "d") == segment_key(stacked, seg, "har", har, "d")
