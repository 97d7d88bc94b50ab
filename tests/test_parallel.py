"""Segments on worker processes and on Dask give the same results as in one process: forecasts,
fit records and artifacts; a failed fit still falls back on the previous model; a lost worker's
segment runs again; a bad --jobs or an unreachable scheduler is one line, and nothing is written."""

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from backtester.cli import main
from backtester.config import parse_config
from backtester.runner import run

from .conftest import TINY_LSTM, base_config

LEVEL = {"type": "tests.user_models:LevelParams", "fail_days": [15]}  # the 2nd retrain (Mon 15th) fails
STRATEGIES = {
    "lstm": {**TINY_LSTM, "layers": [{"units": 4, "dropout": 0.2}]},  # dropout: seed state must travel too
    "har": {"type": "har", "lags": [1, 6, 24], "retrain": {"rule": "daily"}},
    "level": LEVEL,
    "naive": {"type": "naive"},
}
CHAINED = {  # tunings first (as jobs), then segments with the tuned values; a warm chain in one worker
    "tuned": {**TINY_LSTM, "tuning": {"max_trials": 1, "epochs": 1, "every": 2, "space": {"units": {"values": [3]}}}},
    "warm": {**TINY_LSTM, "warm_start": {"epochs": 1}},
    "level": LEVEL,  # a failed fit inside the warm strategy's neighbour
}


def run_with(path, tmp, name, strategies=STRATEGIES, **execution):
    raw = base_config(path, tmp, **strategies)
    raw["name"] = name
    raw["execution"] = execution
    return run(parse_config(raw))


def same_results(a, b):
    pd.testing.assert_frame_equal(a.forecasts, b.forecasts, check_exact=True)
    pd.testing.assert_frame_equal(
        a.retrains.drop(columns="seconds"), b.retrains.drop(columns="seconds"), check_exact=True
    )
    if (a.out_dir / "tuning.parquet").exists():
        tuning = lambda r: pd.read_parquet(r.out_dir / "tuning.parquet").drop(columns="tuning_seconds")
        pd.testing.assert_frame_equal(tuning(a), tuning(b), check_exact=True)
    files = lambda r: sorted(str(p.relative_to(r.out_dir)) for p in (r.out_dir / "models").rglob("*"))
    assert files(a) == files(b)
    for art in (a.out_dir / "models").rglob("params.json"):
        assert art.read_text() == (b.out_dir / art.relative_to(a.out_dir)).read_text()


@pytest.fixture(scope="module")
def sequential(minute_bars, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("par")
    path = tmp / "bars.parquet"
    minute_bars.to_parquet(path, index=False)
    return path, tmp, run_with(path, tmp, "one")


def test_two_worker_processes_give_the_same_results(sequential):
    path, tmp, one = sequential
    two = run_with(path, tmp, "two", jobs=2)
    same_results(one, two)
    r = one.retrains.set_index(["strategy", "model_version"])
    failed = one.retrains[one.retrains["status"] != "ok"]
    assert list(failed["strategy"]) == ["level"]  # the planned failure happened and fell back on version 1
    assert (failed["model_version"] == 1).all() and len(r) > 6


def test_dask_workers_give_the_same_results(sequential):
    pytest.importorskip("distributed")
    path, tmp, one = sequential
    dask = run_with(path, tmp, "dask", scheduler="local:2")  # --scheduler local:2: a LocalCluster the run starts
    same_results(one, dask)


def test_tunings_and_warm_chains_on_two_workers_give_the_same_results(sequential):
    path, tmp, _ = sequential
    one = run_with(path, tmp, "chained-one", CHAINED)
    two = run_with(path, tmp, "chained-two", CHAINED, jobs=2)
    same_results(one, two)
    started = [json.loads(d)["started_from"] for d in two.retrains.query("strategy == 'warm'")["details"]]
    assert started == [None, 1, 2]


def test_a_worker_lost_mid_segment_is_retried_and_the_result_is_identical(minute_file, tmp_path):
    raw = base_config(minute_file, tmp_path, level=LEVEL, naive={"type": "naive"})
    one = run(parse_config({**raw, "name": "one"}))
    marker = tmp_path / "died"
    raw["strategies"]["level"] = {**LEVEL, "die_marker": str(marker)}
    two = run(parse_config({**raw, "name": "two", "execution": {"jobs": 2}}))
    assert marker.exists()  # a worker did die
    pd.testing.assert_frame_equal(one.forecasts, two.forecasts, check_exact=True)


def test_bad_jobs_and_unreachable_scheduler_are_one_line_and_write_nothing(minute_file, tmp_path, monkeypatch):
    import yaml

    monkeypatch.setattr("backtester.executors.CONNECT_TIMEOUT", "1s")  # nothing listens there: no need to wait 10 s

    raw = base_config(minute_file, tmp_path, naive={"type": "naive"})
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    runner = CliRunner()
    res = runner.invoke(main, ["run", str(cfg), "--jobs", "0"])
    assert res.exit_code == 2 and "execution.jobs" in res.output and "greater than or equal to 1" in res.output
    res = runner.invoke(main, ["run", str(cfg), "--scheduler", "local:0"])
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert "execution.scheduler: local:0 starts no workers; give local:N with N 1 or more" in res.output
    res = runner.invoke(main, ["run", str(cfg), "--scheduler", "tcp://127.0.0.1:9"])
    assert res.exit_code == 2, res.output
    error = res.output.strip().splitlines()[-1]
    assert error.startswith("error: execution.scheduler: cannot reach the Dask scheduler at tcp://127.0.0.1:9")
    assert "Traceback" not in res.output
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())
    res = runner.invoke(main, ["run", str(cfg), "--jobs", "64"])
    assert res.exit_code == 0, res.output
    assert "jobs: 64 asked, but there are only" in res.output


def test_a_dask_worker_killed_mid_segment_is_replaced_and_the_result_is_identical(minute_file, tmp_path):
    pytest.importorskip("distributed")
    raw = base_config(minute_file, tmp_path, level=LEVEL, naive={"type": "naive"})
    one = run(parse_config({**raw, "name": "one"}))
    marker = tmp_path / "died"
    raw["strategies"]["level"] = {**LEVEL, "die_marker": str(marker)}  # its first fit kills its worker (os._exit)
    two = run(parse_config({**raw, "name": "two", "execution": {"scheduler": "local:2"}}))
    assert marker.exists()  # a Dask worker did die; its nanny started another and the scheduler ran the task again
    pd.testing.assert_frame_equal(one.forecasts, two.forecasts, check_exact=True)
    pd.testing.assert_frame_equal(
        one.retrains.drop(columns="seconds"), two.retrains.drop(columns="seconds"), check_exact=True
    )
