"""``configs/weekly.yaml``'s real models (the hybrid LSTM of 32 units and 5 epochs, three seeds, stacked as
``stack: auto`` decides; HAR; the seasonal GARCH) give the same bits in one process, on two local worker
processes and on a local Dask cluster: forecasts, retrain records (less their timings) and every artifact
(a Keras model's weights file byte for byte). Each run is the ``backtest`` command, the edge that pins every
process to one compute thread (``backtester.process.pin_threads``), shortened to two weekly retrains. Two
threads in one process against one in each worker moved a seed's forecasts by up to 0.77 relative before."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHORT = {"backtest.end": "2024-02-12 12:00", "output.plots": "false"}  # retrains on Feb 5 and Feb 12
VOLATILE = ("seconds", "date_saved", "shared_object_id")  # timings, and what Keras writes of the clock and memory


def backtest_weekly(out: Path, *args: str) -> Path:
    """``backtest run configs/weekly.yaml`` into ``out`` (same run name everywhere), from the repository root."""
    sets = [a for k, v in {**SHORT, "output.dir": str(out)}.items() for a in ("--set", f"{k}={v}")]
    cmd = [str(Path(sys.executable).with_name("backtest")), "run", "-q", "configs/weekly.yaml", "--fresh"]
    res = subprocess.run([*cmd, *sets, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    return out / "weekly"


def steady(value):
    """A JSON value without its timings: what must equal across executors."""
    if isinstance(value, dict):
        return {k: steady(v) for k, v in value.items() if not any(k.endswith(word) for word in VOLATILE)}
    if isinstance(value, list):
        return [steady(v) for v in value]
    return value


def content(path: Path):
    """What a results file holds, less its timings: a Keras archive's weights byte for byte, JSON parsed."""
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as archive:
            return {
                n: steady(json.loads(archive.read(n))) if n.endswith(".json") else archive.read(n)
                for n in archive.namelist()
            }
    if path.suffix == ".json":
        return steady(json.loads(path.read_text()))
    return path.read_bytes()


def assert_same_bits(a: Path, b: Path) -> None:
    pd.testing.assert_frame_equal(
        pd.read_parquet(a / "forecasts.parquet"), pd.read_parquet(b / "forecasts.parquet"), check_exact=True
    )
    records = lambda run: pd.read_parquet(run / "retrains.parquet").drop(columns="seconds")  # noqa: E731
    pd.testing.assert_frame_equal(records(a), records(b), check_exact=True)
    files = lambda run: sorted(p.relative_to(run) for p in (run / "models").rglob("*") if p.is_file())  # noqa: E731
    assert files(a) == files(b)
    for name in files(a):
        assert content(a / name) == content(b / name), name


@pytest.fixture(scope="module")
def in_process(tmp_path_factory) -> Path:
    run = backtest_weekly(tmp_path_factory.mktemp("one"))
    seeds = pd.read_parquet(run / "retrains.parquet")["strategy"]
    assert {"lstm#1", "lstm#2", "lstm#3", "garch", "har"} <= set(seeds) and (seeds == "lstm#1").sum() == 2
    return run


def test_two_worker_processes_give_the_same_bits(in_process, tmp_path):
    assert_same_bits(in_process, backtest_weekly(tmp_path, "--jobs", "2"))


def test_a_dask_cluster_gives_the_same_bits(in_process, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        run = backtest_weekly(tmp_path, "--scheduler", cluster.scheduler_address)
    assert_same_bits(in_process, run)
