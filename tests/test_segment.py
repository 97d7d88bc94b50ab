"""Segments: they partition the clock's events, equal the per-bar oracle for every built-in strategy,
run alone as pure jobs, and let strategies with different schedules share the same issue times."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtester.config import parse_config
from backtester.core.schedule import DatesRule, EveryNBarsRule, WindowConfig, retrain_times, training_window
from backtester.core.series import BarSeries
from backtester.engine import Settings
from backtester.plan import Plan, Schedule, make_plan
from backtester.runner import run
from backtester.rv import prepare_bars
from backtester.segment import run_segment

from .clock import clock
from .conftest import TINY_GRU, TINY_LSTM, base_config
from .harness import read_records, run_engine
from .oracle import oracle_forecasts

EVERY_TYPE = {
    "lstm": TINY_LSTM,
    "lstm_recursive": {**TINY_LSTM, "multistep": "recursive", "retrain": {"rule": "monthly", "day": 15}},
    "gru": {**TINY_GRU, "window": {"kind": "rolling", "bars": 200}},
    "har": {"type": "har", "retrain": {"rule": "daily", "time": "06:00"}},
    "har_iterated": {
        "type": "har",
        "mode": "iterated",
        "lags": [1, 6, 24],
        "window": {"kind": "rolling", "length": "5D"},
    },
    "harq": {"type": "harq", "lags": [1, 6, 24], "window": {"kind": "rolling", "length": "5D"}},
    "har_cj": {"type": "har_cj", "lags": [1, 6, 24]},
    "shar_log": {"type": "shar", "lags": [1, 6, 24], "periodic": True, "weights": "wls"},
    "log_har": {"type": "log_har", "retrain": {"rule": "daily", "time": "06:00"}},
    "garch": {"type": "garch", "retrain": {"rule": "never"}},
    "ewma": {"type": "ewma"},
    "naive": {"type": "naive"},
    "rolling_mean": {"type": "rolling_mean", "retrain": {"rule": "every_n_bars", "n": 30}},
    "mean_of": {"type": "mean_of", "of": ["har_iterated", "ewma"]},  # its members on its own schedule and window
}


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(30, 400),
    first=st.integers(1, 25),
    every=st.integers(1, 60),
    extra=st.lists(st.integers(0, 399), max_size=6),
    end_cut=st.integers(0, 20),
)
def test_segments_partition_the_clock_events(n, first, every, extra, end_cut):
    bars = pd.date_range("2024-01-01 01:00", periods=n, freq="h", tz="UTC")
    stop = max(first + 1, n - end_cut)
    rules = [EveryNBarsRule(rule="every_n_bars", n=every)]
    dates = [bars[i] for i in extra if i < n]
    if dates:
        rules.append(DatesRule(rule="dates", dates=dates))
    for rule in rules:
        retrains = retrain_times(rule, bars, bars[first], bars[stop - 1])
        windows = tuple(training_window(WindowConfig(), bars, t) for t in retrains)
        plan = Plan(bars, first, stop, 3, {"s": Schedule("s", "x", retrains, windows)})
        events = list(clock(bars, bars[first], retrains, bars[stop - 1]))
        segs = plan.segments()
        # every forecast event belongs to exactly one segment, in order
        issued = [i for s in segs for i in range(s.first, s.stop)]
        assert issued == [e.index for e in events if e.kind == "forecast"]
        # each segment starts at its retrain event, and its window ends at the retrain time
        assert [bars[s.first] for s in segs] == [e.time for e in events if e.kind == "retrain"]
        assert all(s.retrain_time == bars[s.first] and bars[s.window.stop - 1] <= s.retrain_time for s in segs)
        assert [s.model_version for s in segs] == list(range(1, len(segs) + 1))


@pytest.fixture(scope="module")
def every_type(minute_bars, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("every")
    path = tmp / "bars.parquet"
    minute_bars.to_parquet(path, index=False)
    cfg = parse_config(base_config(path, tmp, **EVERY_TYPE))
    bars = prepare_bars(cfg.data).bars
    plan = make_plan(cfg, bars.index)
    series = BarSeries.from_frame(bars)
    return cfg, plan, series, run_engine(plan, cfg.strategies, series, Settings(cfg.seed))


def test_segments_equal_the_per_bar_oracle_for_every_builtin_strategy(every_type):
    cfg, plan, series, _ = every_type
    per_bar = run_engine(plan, cfg.strategies, series, Settings(cfg.seed, batched=False))
    want = oracle_forecasts(plan, cfg.strategies, series, cfg.seed)
    pd.testing.assert_frame_equal(per_bar.forecasts, want, check_exact=True)
    assert set(per_bar.forecasts["strategy"]) == set(EVERY_TYPE)


def test_batched_inference_equals_the_per_bar_path_for_every_builtin_strategy(every_type):
    cfg, plan, series, batched = every_type
    per_bar = run_engine(plan, cfg.strategies, series, Settings(cfg.seed, batched=False)).forecasts
    got = batched.forecasts
    pd.testing.assert_frame_equal(got.drop(columns="forecast"), per_bar.drop(columns="forecast"), check_exact=True)
    for name in EVERY_TYPE:
        a, b = got.loc[got["strategy"] == name, "forecast"], per_bar.loc[per_bar["strategy"] == name, "forecast"]
        keras = cfg.strategies[name].type in ("lstm", "keras")
        # Keras runs in float32 and a batch of 256 may round differently from a batch of 1
        np.testing.assert_allclose(a, b, rtol=1e-5 if keras else 1e-10, atol=0, err_msg=name)


def test_a_segment_run_alone_equals_its_part_of_the_run(every_type):
    cfg, plan, series, result = every_type
    for name in ("lstm", "har", "gru"):
        seg = plan.segments(name)[-1]
        alone = run_segment(seg, cfg.strategies[name].params, series.upto(seg.stop), plan.bars, cfg.seed)
        f = result.forecasts
        part = f[(f["strategy"] == name) & (f["model_version"] == seg.model_version)].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone.rows, part, check_exact=True)


def test_each_strategy_runs_its_own_schedule_on_the_same_issue_times(every_type):
    cfg, plan, series, result = every_type
    f = result.forecasts
    issued = f.groupby("strategy")["issued_at"].apply(lambda s: tuple(sorted(set(s))))
    assert issued.nunique() == 1 and len(issued.iloc[0]) == len(plan.issue_times) - 1  # the last bar has no target
    retrains = {name: list(plan.schedules[name].retrains) for name in EVERY_TYPE}
    assert len(retrains["garch"]) == 1  # never: trained once at the start
    assert len(retrains["lstm_recursive"]) == 2  # the start and the 15th
    assert len(retrains["har"]) == len(plan.issue_times) // 24 + 1  # every day at 06:00 plus the start
    assert len(retrains["lstm"]) == 3  # start (Tue 9th), Mondays 15th and 22nd
    for name, times in retrains.items():
        versions = f[f["strategy"] == name].groupby("issued_at")["model_version"].first()
        # the model version steps up exactly at the strategy's own retrain times
        changes = versions.index[versions.diff().fillna(1) != 0]
        assert list(changes) == times, name
    windows = {r.strategy: r for r in result.records}
    assert windows["gru"].train_bars == 200 and windows["har_iterated"].train_bars == 5 * 24


def test_plan_and_run_of_several_schemes(minute_file, tmp_path):
    lstm = {**TINY_LSTM, "memory": 6}
    raw = base_config(
        minute_file,
        tmp_path,
        lstm_weekly=lstm,
        lstm_monthly={**lstm, "retrain": {"rule": "monthly", "day": 12}},
        lstm_daily={**lstm, "retrain": {"rule": "daily"}},
        lstm_once={**lstm, "retrain": {"rule": "never"}},
    )
    raw["backtest"]["end"] = "2024-01-16 23:00"
    res = run(parse_config(raw))
    r = res.retrains
    counts = r.groupby("strategy").size().to_dict()
    assert counts == {"lstm_daily": 8, "lstm_monthly": 2, "lstm_once": 1, "lstm_weekly": 2}
    f = res.forecasts
    assert f.groupby("strategy").size().nunique() == 1  # same rows for every scheme
    records = read_records(res.out_dir)
    assert len(records) == len(r) and {json.dumps(sorted(x)) for x in records} == {json.dumps(sorted(records[0]))}
    config = (res.out_dir / "config.yaml").read_text()
    assert "lstm_once:" in config and "rule: never" in config
    report = (res.out_dir / "report.md").read_text()
    assert "| lstm_once | 1 | never: trained once at the start; window expanding |" in report
