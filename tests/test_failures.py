"""Failed retrains keep the previous model and are recorded; too many in a row stop the run;
a strategy that raises or returns junk gets a one-line error naming it; a run that dies leaves no
directory that looks finished and never harms an earlier run."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import yaml

from backtester.config import parse_config
from backtester.core.errors import FailedRetrain, FatalError, StrategyError
from backtester.core.schedule import WindowConfig, training_window
from backtester.core.series import BarSeries
from backtester.engine import Settings
from backtester.plan import Plan, Schedule
from backtester.runner import run
from backtester.segment import retrain_seed
from strategies.base import FitInfo, Params

from .conftest import base_config
from .harness import run_engine

BARS = pd.date_range("2024-01-01 01:00", periods=100, freq="h", tz="UTC")
SERIES = BarSeries(BARS.asi8, np.linspace(1, 2, 100), np.zeros(100), np.ones(100, dtype=bool))
RETRAINS = BARS[[10, 20, 30, 40]]


class Flaky:
    def __init__(self, fail: bool, mode: str):
        self.fail, self.mode = fail, mode

    def fit(self, train, horizon):
        if self.fail:
            if self.mode == "raise":
                raise ValueError("bad shapes")
            raise FailedRetrain("loss is NaN")
        self.level = train.rv[-1]
        return FitInfo(samples=len(train))

    def forecast(self, history, horizon):
        return np.full(horizon + (self.mode == "shape"), self.level)


class FlakyParams(Params):
    fail_at: tuple = ()  # retrain ordinals (1-based) whose fit fails
    mode: str = "fail"


@dataclass(frozen=True)
class Spec:
    params: Params
    type: str = "flaky"


def run_flaky(fail_at=(), max_failed=3, mode="fail", cls=Flaky):
    versions = {retrain_seed(0, "flaky", t): k for k, t in enumerate(RETRAINS, start=1)}

    class Params_(FlakyParams):
        def build(self, seed):  # a pure factory: the retrain's seed says which retrain it is
            return cls(versions[seed] in self.fail_at, self.mode)

    params = Params_(fail_at=fail_at, mode=mode)
    windows = tuple(training_window(WindowConfig(), BARS, t) for t in RETRAINS)
    plan = Plan(BARS, first=10, stop=50, horizon=2, schedules={"flaky": Schedule("flaky", "test", RETRAINS, windows)})
    return run_engine(plan, {"flaky": Spec(params)}, SERIES, Settings(run_seed=0, max_failed=max_failed))


def test_failed_retrain_keeps_previous_model_and_is_recorded():
    res = run_flaky(fail_at=(2,))
    rec = {r.retrain_time: r for r in res.records}
    first, failed, third = rec[BARS[10]], rec[BARS[20]], rec[BARS[30]]
    assert (first.status, first.model_version) == ("ok", 1)
    assert failed.status == "failed: loss is NaN" and failed.model_version == 1 and failed.artifact is None
    assert (third.status, third.model_version) == ("ok", 3)  # versions number the retrains, so 2 never served
    f = res.forecasts
    during = f[(f["issued_at"] >= BARS[20]) & (f["issued_at"] < BARS[30])]
    assert (during["model_version"] == 1).all() and (during["trained_through"] == BARS[10]).all()
    np.testing.assert_array_equal(during["forecast"], SERIES.rv[10])
    assert set(f["model_version"]) == {1, 3, 4}


def test_no_model_yet_means_no_forecast():
    res = run_flaky(fail_at=(1,))
    assert res.forecasts["issued_at"].min() == BARS[20]
    assert res.records[0].status.startswith("failed") and res.records[0].model_version == 1


def test_too_many_failures_in_a_row_are_fatal():
    with pytest.raises(
        FatalError,
        match=r"strategy 'flaky': 2 retrains in a row failed, the last at 2024-01-02 07:00:00\+00:00 \(failed: loss is NaN\)",
    ):
        run_flaky(fail_at=(2, 3), max_failed=1)


def test_too_many_failures_stop_the_run_before_the_rest_is_fitted():
    fits = []

    class Counted(Flaky):
        def fit(self, train, horizon):
            fits.append(len(train))
            return super().fit(train, horizon)

    with pytest.raises(FatalError, match=r"2 retrains in a row failed"):
        run_flaky(fail_at=(1, 2, 3, 4), max_failed=1, cls=Counted)
    assert len(fits) == 2  # the third and fourth retrains never trained


def test_an_exception_in_fit_is_a_failed_retrain_and_a_wrong_shape_is_named():
    res = run_flaky(fail_at=(2,), mode="raise")  # any exception in a fit: recorded, the previous model kept
    failed = {r.retrain_time: r for r in res.records}[BARS[20]]
    assert failed.status == "failed: fit() raised ValueError: bad shapes" and failed.model_version == 1
    with pytest.raises(
        FatalError, match=r"2 retrains in a row failed, the last at .* \(failed: fit\(\) raised ValueError"
    ):
        run_flaky(fail_at=(1, 2), mode="raise", max_failed=1)
    with pytest.raises(StrategyError, match=r"strategy 'flaky' returned \(3,\) forecasts, expected \(2,\)"):
        run_flaky(mode="shape")


def test_a_crashed_run_leaves_the_earlier_run_intact(minute_file, tmp_path, monkeypatch):
    cfg = parse_config(base_config(minute_file, tmp_path, naive={}))
    done = run(cfg)
    before = {p.relative_to(done.out_dir): p.read_bytes() for p in done.out_dir.rglob("*") if p.is_file()}

    def boom(*args, **kwargs):
        raise RuntimeError("killed mid-run")

    monkeypatch.setattr("backtester.runner.write_results", boom)
    with pytest.raises(RuntimeError):
        run(cfg, force=True)
    after = {p.relative_to(done.out_dir): p.read_bytes() for p in done.out_dir.rglob("*") if p.is_file()}
    assert after == before
    # nothing visible beside it; its finished segments are kept in the hidden staging directory for the rerun
    assert [p.name for p in done.out_dir.parent.iterdir() if not p.name.startswith(".")] == [done.out_dir.name]
    monkeypatch.undo()
    assert run(cfg, force=True).manifest["segments"]["reused"] == 3


def test_a_user_batch_that_reads_later_bars_stops_the_run_with_exit_3(minute_file, tmp_path):
    from click.testing import CliRunner

    from backtester.cli import main

    raw = base_config(minute_file, tmp_path, naive={}, peeking={"type": "tests.leaky_models:PeekingBatchParams"})
    path = tmp_path / "leaky.yaml"
    path.write_text(yaml.safe_dump(raw))
    res = CliRunner().invoke(main, ["run", str(path), "-q"])
    assert res.exit_code == 3, res.output
    assert res.output.strip().startswith(
        "error: strategy 'peeking': its forecast_batch issued at 2024-01-09 00:00:00+00:00 "
        "differs from forecast() on the bars known then"
    )
    assert not (tmp_path / "results" / "t").exists()  # a leaky run is not reported
