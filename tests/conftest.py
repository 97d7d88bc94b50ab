"""Shared fixtures: small synthetic minute data and config builders. Every test is seeded."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pandas as pd
import pytest

from backtester.process import pin_threads
from backtester.synth import synth_bars

ROOT = Path(__file__).resolve().parents[1]

# One JAX compilation cache for the whole suite: every test process and every `backtest` subprocess
# (they inherit the variable) reuses the train and predict steps compiled by the first to need them.
os.environ.setdefault("BACKTESTER_XLA_CACHE", str(ROOT / ".cache" / "test-xla"))
# One compute thread in the test processes too, as in every process the CLI starts (backtester.process)
pin_threads()

TINY_LSTM = {"type": "lstm", "memory": 12, "layers": [{"units": 4, "dropout": 0.0}], "epochs": 1, "batch_size": 16}
TINY_GRU = {
    "type": "keras",
    "builder": "tests.user_models:build_gru",
    "hyperparameters": {"units": 3},
    "memory": 12,
    "epochs": 1,
}


@pytest.fixture(scope="session")
def minute_bars() -> pd.DataFrame:
    """26 days of synthetic 1-minute bars (about 37,000 rows, a few gaps)."""
    return synth_bars(start="2024-01-01", days=26, seed=3)


@pytest.fixture
def minute_file(tmp_path, minute_bars) -> Path:
    path = tmp_path / "bars.parquet"
    minute_bars.to_parquet(path, index=False)
    return path


def base_config(path: Path, tmp_path: Path, **strategies) -> dict:
    """A small valid config dict over ``path`` (first fit 2024-01-09, then weekly on Mondays)."""
    return copy.deepcopy(
        {
            "name": "t",
            "seed": 1,
            "data": {"path": str(path), "cache_dir": str(tmp_path / "cache")},
            "backtest": {
                "start": "2024-01-09 00:00",
                "horizon": 4,
                "retrain": {"rule": "weekly", "weekday": "mon"},
            },
            "strategies": strategies or {"naive": {}},
            "output": {"dir": str(tmp_path / "results"), "plots": False},
        }
    )


# The longest files start first, so that two workers (pytest -n 2 --dist loadfile) finish together.
LONGEST_FIRST = (
    "test_readme_commands.py",
    "test_readme_commands_b.py",
    "test_resume.py",
    "test_parallel.py",
    "test_universe.py",
    "test_tuning.py",
    "test_backend.py",
    "test_segment.py",
    "test_audit.py",
    "test_usability.py",
    "test_imported.py",
    "test_lookahead.py",
    "test_determinism.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).name, len(rank)))


def assert_run_refused(raw: dict, tmp_path: Path, message: str) -> None:
    """``backtest run`` on ``raw`` (written to a file) exits 2 with one line holding ``message`` and writes nothing."""
    import yaml
    from click.testing import CliRunner

    from backtester.cli import main

    path = tmp_path / "refused.yaml"
    path.write_text(yaml.safe_dump(raw))
    res = CliRunner().invoke(main, ["run", str(path)])
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert message in res.output, res.output
    assert not (tmp_path / "results").exists()
