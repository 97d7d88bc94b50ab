"""No look-ahead: forecasts issued up to T do not change when the data after T is cut off or
overwritten with junk, for every built-in strategy, through the whole pipeline (minute bars ->
RV bars -> schedule -> engine)."""

import numpy as np
import pandas as pd
import pytest

from backtester.config import parse_config
from backtester.core.errors import FatalError, LookAheadError
from backtester.core.series import BarSeries
from backtester.engine import Settings
from backtester.plan import make_plan
from backtester.recorder import ForecastRecorder
from backtester.rv import prepare_bars
from strategies import REGISTRY

from .conftest import TINY_GRU, TINY_LSTM, base_config
from .harness import run_engine

CUT = pd.Timestamp("2024-01-17 09:00", tz="UTC")  # mid-week, between retrains

STRATEGIES = {
    "lstm": TINY_LSTM,
    "lstm_recursive": {**TINY_LSTM, "multistep": "recursive"},
    "lstm_qlike": {**TINY_LSTM, "loss": "qlike"},  # the loss reads each window's own scale
    "lstm_features": {
        **TINY_LSTM,
        "features": [
            "rv",
            "log_rv",
            {"rv_mean": ["6h", "1D"]},
            "hour_of_day",
            "weekday",
            "garch_variance",
            "seasonal_profile",
            "bpv",  # realized measures of each bar, known at its close
            "rs_minus",
            "sj",
            "rq",
            "jump",
        ],
    },
    "lstm_hybrid": {**TINY_LSTM, "residual_of": "har", "loss": "qlike"},  # HAR fitted on the same window
    "lstm_hybrid_mean": {**TINY_LSTM, "residual_of": ["har", "garch"]},  # their mean, both fitted on the window
    "keras": TINY_GRU,
    "user_params": {"type": "tests.user_models:MedianParams", "bars": 5},
    "har": {"type": "har"},
    "har_iterated": {"type": "har", "mode": "iterated"},
    # the HAR family: realized measures of each bar (known at its close), a window-fitted periodic factor
    "har_rv": {"type": "har_rv"},
    "log_har": {"type": "log_har"},
    "wls_har": {"type": "wls_har"},
    "harq": {"type": "harq"},
    "har_j": {"type": "har_j"},
    "har_cj": {"type": "har_cj"},
    "shar": {"type": "shar"},
    "har_periodic": {"type": "har_periodic"},
    "har_all": {"type": "har", "target": "variance", "quarticity": True, "semivariance": True, "periodic": True},
    "garch": {"type": "garch"},
    "ewma": {"type": "ewma"},
    "naive": {"type": "naive"},
    "rolling_mean": {"type": "rolling_mean"},
    "mean_of": {"type": "mean_of", "of": ["har", "garch"]},  # both fitted on its window
    # tuned strategies: tests/test_tuning.py poisons the data after a mid-run tuning; warm chains: imported below
    "imported": {"type": "imported", "model": "SAVED_MODEL", "use": "warm_start", "epochs": 1},
}


@pytest.fixture(scope="session")
def saved_model(tmp_path_factory):
    """A small saved Keras model (lookback 12, 4 steps) for ``type: imported``."""
    from strategies.keras.runtime import keras_module

    keras = keras_module()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12, 1)), keras.layers.LSTM(3), keras.layers.Dense(4)])
    model.compile(optimizer="adam", loss="mse")
    path = tmp_path_factory.mktemp("saved") / "model.keras"
    model.save(path)
    return str(path)


def test_every_builtin_strategy_is_covered():
    assert {p["type"] for p in STRATEGIES.values()} >= set(REGISTRY)


def forecasts_for(minute: pd.DataFrame, tmp_path, name: str, saved: str | None = None) -> pd.DataFrame:
    path = tmp_path / f"{name}-{len(minute)}-{hash(minute['close'].sum())}.parquet"
    minute.to_parquet(path, index=False)
    spec = {k: (saved if v == "SAVED_MODEL" else v) for k, v in STRATEGIES[name].items()}
    others = {"har": {"type": "har"}, "garch": {"type": "garch"}} if "residual_of" in spec or "of" in spec else {}
    cfg = parse_config(base_config(path, tmp_path, **{name: spec}, **others))
    bars = prepare_bars(cfg.data).bars
    plan = make_plan(cfg, bars.index)
    rows = run_engine(plan, cfg.strategies, BarSeries.from_frame(bars), Settings(cfg.seed)).forecasts
    return rows[rows["strategy"] == name].reset_index(drop=True) if others else rows


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_truncating_or_poisoning_after_t_changes_nothing_up_to_t(name, minute_bars, tmp_path, saved_model):
    known = minute_bars["timestamp"] + pd.Timedelta("1min") <= CUT  # bars closed at or before CUT
    full = forecasts_for(minute_bars, tmp_path, name, saved_model)

    truncated = forecasts_for(minute_bars[known], tmp_path, name, saved_model)
    poisoned_bars = minute_bars.copy()
    rng = np.random.default_rng(0)
    junk = rng.uniform(1, 1e6, (~known).sum())
    for col in ("open", "high", "low", "close"):
        poisoned_bars.loc[~known, col] = junk
    poisoned = forecasts_for(poisoned_bars, tmp_path, name, saved_model)

    upto = full[full["issued_at"] <= CUT].reset_index(drop=True)
    assert len(upto) > 0 and upto["issued_at"].max() == CUT
    # poisoned: every row issued up to T, every horizon, identical
    pd.testing.assert_frame_equal(poisoned[poisoned["issued_at"] <= CUT].reset_index(drop=True), upto, check_exact=True)
    # truncated: the rows whose target still lies inside the cut data are identical
    within = upto[upto["target_time"] <= CUT].reset_index(drop=True)
    pd.testing.assert_frame_equal(truncated.reset_index(drop=True), within, check_exact=True)
    # and the poison really reached the later forecasts (the test can fail)
    later_full = full[full["issued_at"] > CUT + pd.Timedelta("1h")]["forecast"].to_numpy()
    later_poisoned = poisoned[poisoned["issued_at"] > CUT + pd.Timedelta("1h")]["forecast"].to_numpy()
    assert not np.allclose(later_full, later_poisoned)


def test_no_row_was_trained_after_it_was_issued(minute_bars, tmp_path):
    frame = forecasts_for(minute_bars, tmp_path, "har")
    assert (frame["trained_through"] <= frame["issued_at"]).all()
    assert set(frame["horizon"]) == {1, 2, 3, 4}


def test_recorder_refuses_look_ahead():
    bars = pd.date_range("2024-01-01 01:00", periods=5, freq="h", tz="UTC")
    rec = ForecastRecorder(bars)
    with pytest.raises(LookAheadError, match="cannot issue a forecast"):
        rec.add("x", 1, np.ones(2), model_version=1, trained_through=bars[2].value)
    assert issubclass(LookAheadError, FatalError)
