"""Input features of Keras strategies (``features: [...]``): each channel at a bar depends only on bars
closed by then, time codes follow the session's zone, nonsense is one line, a global model can code its
assets, a user's builder gets the channel count, and a search tunes on the same channels."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from backtester.cli import main
from backtester.config import parse_config
from backtester.runner import run
from strategies.keras.features import channels, raw_channels
from strategies.keras.search import tune
from strategies.lstm import LstmParams

from .conftest import TINY_GRU, TINY_LSTM, base_config
from .test_tuning import series_of

ALL = ["rv", "log_rv", {"rv_mean": [3, 24]}, "hour_of_day", "weekday"]


@settings(max_examples=40, deadline=None)
@given(st.integers(30, 200), st.integers(1, 29), st.sampled_from(["rv", "log", "variance"]))
def test_a_channel_at_a_bar_depends_only_on_bars_closed_by_then(n, cut, target):
    rng = np.random.default_rng(n)
    rv = rng.uniform(0.001, 0.02, n)
    time = pd.date_range("2024-01-05 01:00", periods=n, freq="h", tz="UTC").asi8
    full = raw_channels(ALL, rv, time, target, 0.001, "America/New_York")
    poisoned = rv.copy()
    poisoned[n - cut :] = 99.0
    again = raw_channels(ALL, poisoned, time, target, 0.001, "America/New_York")
    np.testing.assert_array_equal(full[: n - cut], again[: n - cut])
    assert full.shape == (n, len(channels(ALL)))


def test_the_garch_channels_at_a_bar_depend_only_on_bars_closed_by_then_and_are_garchs_own_forecast():
    from backtester.core.series import BarSeries
    from strategies.garch import GarchParams
    from strategies.keras.features import garch_channels

    def series():
        rng = np.random.default_rng(7)
        time = pd.date_range("2024-01-01 01:00", periods=400, freq="h", tz="UTC")
        level = 0.01 * (1 + 0.5 * np.sin(2 * np.pi * time.hour.to_numpy() / 24))  # an intraday pattern
        ret = rng.normal(0, level)
        return BarSeries(time.asi8, np.abs(ret) + 1e-4, ret, np.ones(400, bool))

    bars = series()
    train = bars.slice(0, 300)
    garch = GarchParams().build(0)
    garch.fit(train, 1)
    full = garch_channels(garch, bars, 1e-6)
    cut = 350
    poisoned = series()
    poisoned.rv[cut:], poisoned.ret[cut:] = 5.0, 3.0  # bars after the cut are junk
    again = garch_channels(garch, poisoned, 1e-6)
    for name in ("garch_variance", "seasonal_profile"):
        np.testing.assert_array_equal(full[name][:cut], again[name][:cut])
    # the channel is GARCH's own one-step forecast, issued at each bar (inside the window: its fitted values)
    ends = np.array([120, 300, 360])
    vol = garch.forecast_batch(bars, ends, 1)[:, 0]
    np.testing.assert_allclose(full["garch_variance"][ends - 1], 2 * np.log(vol), rtol=1e-12)
    assert full["seasonal_profile"].std() > 0  # an intraday pattern, not a constant


def test_time_codes_follow_the_session_zone_and_means_are_harrs_components():
    time = pd.DatetimeIndex(
        ["2024-01-02 17:00", "2024-01-06 05:00"], tz="UTC"
    ).asi8  # 12:00 Tue / 00:00 Sat in New York
    rv = np.array([1.0, 3.0])
    x = raw_channels(["hour_of_day", "weekday", {"rv_mean": [2]}], rv, time, "rv", 0.5, "America/New_York")
    np.testing.assert_allclose(x[0, :2], [0.0, -1.0], atol=1e-12)  # noon: half the day
    np.testing.assert_allclose(x[1, :2], [0.0, 1.0], atol=1e-12)  # midnight
    np.testing.assert_allclose(x[1, 2:4], [np.sin(2 * np.pi * 5 / 7), np.cos(2 * np.pi * 5 / 7)], atol=1e-12)
    assert x[:, 4].tolist() == [1.0, 2.0]


def write(tmp_path, raw):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            {"features": ["rv", "hour_of_dya"]},
            "strategies.lstm.features: unknown feature 'hour_of_dya' (did you mean 'hour_of_day'?)",
        ),
        (
            {"features": [{"rv_mean": ["90min"]}]},
            "strategies.lstm.features.rv_mean: 90min is not a whole number of 1h bars",
        ),
        ({"features": ["rv_mean"]}, "rv_mean: give the spans to average over"),
        (
            {"features": ["rv", "log_rv"], "multistep": "recursive"},
            "only works with features: [rv]; use multistep: direct",
        ),
        ({"features": ["rv", "asset"]}, "only a global model (scope: global) trains on several"),
        ({"features": []}, "give at least one feature"),
        ({"features": ["rv", "garch_varaince"]}, "unknown feature 'garch_varaince' (did you mean 'garch_variance'?)"),
        (
            {"features": ["rv", "garch_variance"], "scope": "global"},
            "a global model (scope: global) cannot use them yet",
        ),
    ],
)
def test_a_bad_feature_is_one_line(minute_file, tmp_path, spec, message):
    raw = base_config(minute_file, tmp_path, lstm={**TINY_LSTM, **spec})
    res = CliRunner().invoke(main, ["run", str(write(tmp_path, raw))])
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert message in res.output, res.output
    assert not (tmp_path / "results").exists()


def test_a_builder_without_n_features_is_told_how_to_take_them(minute_file, tmp_path):
    raw = base_config(minute_file, tmp_path, gru={**TINY_GRU, "features": ["rv", "hour_of_day"]})
    res = CliRunner().invoke(main, ["run", str(write(tmp_path, raw))])
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert "takes (hp, memory, steps), but features make 3 input channels" in res.output
    assert "def build(hp, memory, steps, n_features=1)" in res.output


def test_features_change_the_forecasts_and_are_recorded(minute_file, tmp_path):
    raw = base_config(minute_file, tmp_path, plain=TINY_LSTM, featured={**TINY_LSTM, "features": ALL})
    res = run(parse_config(raw))
    wide = res.forecasts.pivot_table(index=["issued_at", "horizon"], columns="strategy", values="forecast")
    assert np.isfinite(wide.to_numpy()).all() and not np.allclose(wide["plain"], wide["featured"])
    config = json.loads((res.out_dir / "models" / "featured" / "1" / "config.json").read_text())
    assert config["features"] == ["rv", "log_rv", {"rv_mean": [3, 24]}, "hour_of_day", "weekday"]
    assert config["params_trainable"] == 4 * (4 * (8 + 4 + 1)) + (4 + 1) * 4  # LSTM(4) on 8 channels, Dense(4)
    scaler = json.loads((res.out_dir / "models" / "featured" / "1" / "scaler.json").read_text())
    assert scaler["features"]["channels"] == channels(ALL)


def test_a_global_model_can_code_its_assets(tmp_path):
    from backtester.synth import synth_bars

    assets = {}
    for k, name in enumerate(("aaa", "bbb")):
        path = tmp_path / f"{name}.parquet"
        synth_bars(start="2024-01-01", days=20, seed=5 + k).to_parquet(path, index=False)
        assets[name] = str(path)
    raw = base_config(
        tmp_path / "aaa.parquet", tmp_path, g={**TINY_LSTM, "scope": "global", "features": ["rv", "asset"]}
    )
    del raw["data"]["path"]
    raw["data"]["assets"] = assets
    res = run(parse_config(raw))
    for name in assets:
        scaler = json.loads((res.out_dir / "models" / name / "g" / "1" / "scaler.json").read_text())
        assert (
            scaler["features"]["channels"] == ["rv", "asset_aaa", "asset_bbb"] and scaler["features"]["asset"] == name
        )
    f = res.forecasts.pivot_table(index=["issued_at", "horizon"], columns="asset", values="forecast")
    assert np.isfinite(f.to_numpy()).all()


def test_a_search_tunes_on_the_same_channels(tmp_path):
    raw = {
        **TINY_LSTM,
        "features": ["rv", "hour_of_day"],
        "tuning": {"max_trials": 1, "epochs": 1, "space": {"units": {"values": [2, 3]}}},
    }
    best, trials = tune(LstmParams.model_validate(raw), series_of(300), 4, seed=1, directory=tmp_path)
    assert len(trials) == 1 and np.isfinite(trials["score"]).all() and best["units_0"] in (2, 3)
