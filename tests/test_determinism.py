"""Same config and seed give the same forecasts (LSTM included), compared as whole frames."""

import numpy as np
import pandas as pd

from backtester.config import parse_config
from backtester.runner import run

from .conftest import TINY_LSTM, base_config


def test_same_seed_same_forecasts_and_another_seed_differs(minute_file, tmp_path):
    dropout = {**TINY_LSTM, "layers": [{"units": 4, "dropout": 0.2}]}
    raw = base_config(
        minute_file, tmp_path, lstm=TINY_LSTM, lstm_dropout=dropout, har={"type": "har"}, garch={"type": "garch"}
    )
    raw["backtest"]["end"] = "2024-01-20 00:00"
    first = run(parse_config(raw)).forecasts
    second = run(parse_config(raw), force=True).forecasts
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    raw["seed"] = 2
    other = run(parse_config(raw), force=True).forecasts
    lstm_a = first[first["strategy"] == "lstm"]["forecast"].to_numpy()
    lstm_b = other[other["strategy"] == "lstm"]["forecast"].to_numpy()
    assert not np.array_equal(lstm_a, lstm_b)
    pd.testing.assert_frame_equal(first[first["strategy"] == "har"], other[other["strategy"] == "har"])


def test_ready_made_rv_bars_run_directly(minute_file, tmp_path):
    from backtester.rv import prepare_bars

    raw = base_config(minute_file, tmp_path, har={"type": "har"}, naive={})
    from_minutes = run(parse_config(raw)).forecasts
    bars = prepare_bars(parse_config(raw).data).bars
    rv_file = tmp_path / "hourly.csv"
    bars["rv"].rename("vol").reset_index().to_csv(rv_file, index=False)
    raw = base_config(rv_file, tmp_path, har={"type": "har"}, naive={})
    raw["name"] = "rv"
    raw["data"].update({"kind": "rv", "rv_column": "vol", "timestamp_column": "time", "timestamp_is": "close"})
    from_rv = run(parse_config(raw)).forecasts
    assert (from_rv["asset"] == "hourly").all() and (from_minutes["asset"] == "bars").all()  # named after the file
    pd.testing.assert_frame_equal(
        from_rv.drop(columns=["actual", "asset"]),
        from_minutes.drop(columns=["actual", "asset"]),
        check_exact=False,
        rtol=1e-12,
    )
