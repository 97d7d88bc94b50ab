"""``backtest audit``: honest runs pass, with and without artifacts, users' own strategies included;
three ways of seeing the future that the engine cannot stop by itself (tests/leaky_models.py) fail,
each naming the strategy and an issue time; bad input is one line and exit 2.

The runs and audits are ``backtest`` processes on the JAX backend (an audit recomputes on the run's
backend, and this test process keeps Keras on TensorFlow); the bad-input cases run in this process.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from backtester.cli import main

from .conftest import ROOT, TINY_LSTM, base_config

HONEST = {
    "naive": {"type": "naive"},
    "har": {"type": "har"},
    "harq": {"type": "harq", "periodic": True},  # realized measures and a window-fitted factor
    "garch": {"type": "garch"},
    "lstm": TINY_LSTM,
    "median": {"type": "tests.user_models:MedianParams", "bars": 5},
    "scaled": {"type": "examples.my_models:ScaledMedianParams", "bars": 6},  # the README's own strategy
}
LEAKY = {  # spy is honest; peek (after it) reads what spy was handed
    "spy": {"type": "tests.leaky_models:SpyParams"},
    "peek": {"type": "tests.leaky_models:PeekParams"},
    "batch_peek": {"type": "tests.leaky_models:FutureBatchParams"},
    "scaler_peek": {"type": "tests.leaky_models:LeakyScalerParams"},
}
ISSUE_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00"


def backtest(*args) -> subprocess.CompletedProcess:
    """The installed ``backtest`` command, from the repository root (so ``examples`` and ``tests`` import)."""
    cmd = [str(Path(sys.executable).with_name("backtest")), *map(str, args)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


RUN_BOTH = """
import sys
from backtester.config import load_config
from backtester.process import choose_backend, setup
from backtester.runner import run
for path in sys.argv[1:]:
    cfg = load_config(path, before_strategies=choose_backend)
    setup(cfg)
    run(cfg)
"""


def write_config(tmp: Path, data: Path, name: str, strategies: dict, save_models: bool) -> Path:
    raw = base_config(data, tmp, **strategies)  # one cache folder: the second run reuses the bars and compiled steps
    raw.update(name=name, backend="jax")
    raw["backtest"]["end"] = "2024-01-20 00:00"  # two weekly segments per strategy
    raw["output"]["save_models"] = save_models
    config = tmp / f"{name}.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))  # config order: spy runs before peek
    return config


@pytest.fixture(scope="module")
def runs(minute_bars, tmp_path_factory) -> dict[str, Path]:
    """Two runs in one process (saves a Keras start-up): honest and leaky strategies with artifacts, and
    honest ones without (its LSTM trained once, one segment: fewer fits to recompute)."""
    tmp = tmp_path_factory.mktemp("audit")
    data = tmp / "bars.parquet"
    minute_bars.to_parquet(data, index=False)
    once = {**HONEST, "lstm": {**TINY_LSTM, "retrain": {"rule": "never"}}}
    configs = [
        write_config(tmp, data, "leaky", {**HONEST, **LEAKY}, save_models=True),
        write_config(tmp, data, "honest", once, save_models=False),
    ]
    res = subprocess.run(
        [sys.executable, "-c", RUN_BOTH, *map(str, configs)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr
    return {"leaky": tmp / "results" / "leaky", "honest": tmp / "results" / "honest"}


def lines_of(out: str, strategy: str) -> dict[str, str]:
    """check -> its report line, for one strategy."""
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[0] in ("PASS", "FAIL", "SKIP") and parts[1] == strategy:
            found[parts[2]] = line
    return found


@pytest.fixture(scope="module")
def leaky_run(runs):
    return runs["leaky"], backtest("audit", runs["leaky"])


@pytest.fixture(scope="module")
def honest_run(runs):
    return runs["honest"], backtest("audit", runs["honest"], "--sample", "1")


def test_an_honest_run_without_artifacts_passes(honest_run):
    run_dir, res = honest_run
    assert res.returncode == 0, res.stdout + res.stderr
    assert not (run_dir / "models").exists()
    for name in HONEST:
        checks = lines_of(res.stdout, name)
        assert {"truncation", "poison", "batch", "windows", "rows", "economic"} <= set(checks), res.stdout
        assert all(line.startswith(("PASS", "SKIP")) for line in checks.values()), res.stdout
        assert "retrains.parquet (no artifacts)" in checks["windows"]
    assert lines_of(res.stdout, "lstm")["batch"].startswith("PASS")  # a Keras batch against its per-bar path
    assert res.stdout.splitlines()[-1].startswith("audit: PASS")
    assert "audit: " in res.stderr  # progress goes to stderr


def test_a_var_that_is_not_the_forecasts_fails_the_economic_check(honest_run, tmp_path):
    import shutil

    import pandas as pd

    run_dir, _ = honest_run
    copy = tmp_path / "honest"
    shutil.copytree(run_dir, copy)
    var = pd.read_parquet(copy / "var.parquet")
    var.loc[(var["strategy"] == "naive") & (var.index % 50 == 7), "var"] *= 1.01  # as if it had seen later returns
    var.to_parquet(copy / "var.parquet")
    res = backtest("audit", copy, "--sample", "1", "--strategy", "naive")
    assert res.returncode == 1 and lines_of(res.stdout, "naive")["economic"].startswith("FAIL"), res.stdout
    assert "VaR/ES issued before T differ" in lines_of(res.stdout, "naive")["economic"]


def test_honest_strategies_pass_beside_leaky_ones_with_artifacts(leaky_run):
    run_dir, res = leaky_run
    assert (run_dir / "models" / "lstm" / "1" / "scaler.json").is_file()
    for name in [*HONEST, "spy"]:
        checks = lines_of(res.stdout, name)
        assert {"truncation", "poison", "batch", "windows", "rows", "economic"} <= set(checks), res.stdout
        assert all(line.startswith(("PASS", "SKIP")) for line in checks.values()), res.stdout
        assert "artifacts" in checks["windows"]
    assert lines_of(res.stdout, "lstm")["scaler"].startswith("PASS  lstm")


@pytest.mark.parametrize(
    "name, checks",
    [
        ("batch_peek", ["truncation", "poison", "batch"]),  # forecast_batch reads the bar after each issue time
        ("peek", ["truncation", "poison"]),  # its fit reads the future out of spy's module global
        ("scaler_peek", ["truncation", "poison", "batch", "scaler"]),  # its scaler is refitted on the segment's future
    ],
)
def test_a_leak_fails_the_audit_naming_the_strategy_and_an_issue_time(leaky_run, name, checks):
    _, res = leaky_run
    assert res.returncode == 1, res.stdout + res.stderr
    found = lines_of(res.stdout, name)
    for check in checks:
        assert found[check].startswith(f"FAIL  {name}"), res.stdout
        assert re.search(ISSUE_TIME, found[check]), found[check]
    assert "first offending issue time" in found["truncation"]
    summary = res.stdout.splitlines()[-1]
    assert summary.startswith("audit: FAIL") and f"{name} truncation" in summary
    assert re.search(f"first offending issue time {ISSUE_TIME}", summary)


def test_the_batch_leak_did_reach_the_run(leaky_run):
    """What the issue saw: the leaky batch scores far better than an honest forecast could."""
    run_dir, _ = leaky_run
    m = pd.read_parquet(run_dir / "metrics.parquet").query("horizon == 1").set_index("strategy")["mae"]
    assert m["batch_peek"] < m["naive"] / 20


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_error_line(res) -> str:
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


def test_not_a_run_directory_is_one_line(tmp_path):
    assert "no such directory" in one_error_line(invoke("audit", tmp_path / "nothing"))
    line = one_error_line(invoke("audit", tmp_path))
    assert "manifest.json" in line and "not a finished run" in line


def test_unknown_strategy_is_one_line_naming_the_run_s_strategies(runs):
    run_dir = runs["honest"]
    line = one_error_line(invoke("audit", run_dir, "--strategy", "lstmm"))
    assert "--strategy lstmm" in line and "naive, har" in line


def test_other_or_missing_data_is_one_line(runs, tmp_path):
    run_dir = runs["honest"]
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    cfg = yaml.safe_load((copy / "config.yaml").read_text())
    data = pd.read_parquet(cfg["data"]["path"])
    other = tmp_path / "other.parquet"
    data.iloc[:-60].to_parquet(other, index=False)
    cfg["data"]["path"] = str(other)
    (copy / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    # this process keeps Keras on JAX; the data is refused before any model is fitted
    line = one_error_line(invoke("audit", copy, "--backend", "jax"))
    assert str(other) in line and "not the data this run used" in line and "sha256" in line
    other.unlink()
    line = one_error_line(invoke("audit", copy, "--backend", "jax"))
    assert str(other) in line and "missing" in line
    manifest = json.loads((copy / "manifest.json").read_text())
    assert len(manifest["data"]["sha256"]) == 64
