"""Failed retrains keep the previous model and are recorded; too many in a row stop the run;
a run that dies leaves no directory that looks finished and never harms an earlier run."""

import numpy as np
import pandas as pd
import pytest

from backtester.config import WindowConfig, parse_config
from backtester.errors import FailedRetrain, FatalError
from backtester.provider import ModelProvider
from backtester.runner import run
from backtester.series import BarSeries
from strategies.base import FitInfo, Params

from .conftest import base_config

BARS = pd.date_range("2024-01-01 01:00", periods=100, freq="h", tz="UTC")
SERIES = BarSeries(BARS.asi8, np.linspace(1, 2, 100), np.zeros(100), np.ones(100, dtype=bool))


class Flaky:
    def __init__(self, fail: bool):
        self.fail = fail

    def fit(self, train, horizon):
        if self.fail:
            raise FailedRetrain("loss is NaN")
        self.level = train.rv[-1]
        return FitInfo(samples=len(train))

    def forecast(self, history, horizon):
        return np.full(horizon, self.level)


class FlakyParams(Params):
    fail_at: tuple = ()

    def build(self, seed):
        self.calls.append(seed)
        return Flaky(len(self.calls) in self.fail_at)


def provider(fail_at, max_failed=3):
    params = FlakyParams(fail_at=fail_at)
    object.__setattr__(params, "calls", [])
    return ModelProvider("flaky", params, SERIES, BARS, WindowConfig(), seed=0, horizon=2, max_failed=max_failed)


def test_failed_retrain_keeps_previous_model_and_is_recorded():
    p = provider(fail_at=(2,))
    first = p.retrain(BARS[10])
    failed = p.retrain(BARS[20])
    assert (first.status, first.model_version) == ("ok", 1)
    assert failed.status == "failed: loss is NaN" and failed.model_version == 1
    assert p.version == 1 and p.trained_through == BARS[10].value
    np.testing.assert_array_equal(p.forecast(25), [SERIES.rv[10]] * 2)
    ok = p.retrain(BARS[30])
    assert (ok.status, ok.model_version, p.failures) == ("ok", 2, 0)


def test_no_model_yet_means_no_forecast():
    p = provider(fail_at=(1,))
    p.retrain(BARS[10])
    assert p.forecast(11) is None


def test_too_many_failures_in_a_row_are_fatal():
    p = provider(fail_at=(2, 3), max_failed=1)
    p.retrain(BARS[10])
    p.retrain(BARS[20])
    with pytest.raises(FatalError, match=r"strategy 'flaky': 2 retrains in a row failed \(last: failed: loss is NaN\)"):
        p.retrain(BARS[30])


def test_a_crashed_run_leaves_the_earlier_run_intact(minute_file, tmp_path, monkeypatch):
    cfg = parse_config(base_config(minute_file, tmp_path, naive={}))
    done = run(cfg)
    before = {p.name: p.read_bytes() for p in done.out_dir.iterdir()}

    def boom(*args, **kwargs):
        raise RuntimeError("killed mid-run")

    monkeypatch.setattr("backtester.runner.run_engine", boom)
    with pytest.raises(RuntimeError):
        run(cfg, force=True)
    after = {p.name: p.read_bytes() for p in done.out_dir.iterdir()}
    assert after == before
    assert [p.name for p in done.out_dir.parent.iterdir()] == [done.out_dir.name]  # no staging left behind
