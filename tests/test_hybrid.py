"""Hybrids (``residual_of: har``, or ``[har, garch]`` for their mean forecast): the net learns the correction
to a baseline fitted on the same training window, starts at no correction (so untrained it is the baseline),
and a baseline that is not one is refused."""

import numpy as np
import pytest

from backtester.config import parse_config
from backtester.runner import run

from .conftest import TINY_LSTM, assert_run_refused, base_config


def test_a_hybrid_starts_as_its_baseline_and_learns_a_correction(minute_file, tmp_path):
    still = {**TINY_LSTM, "residual_of": "har", "learning_rate": 1e-9}  # trains, but its weights barely move
    still_mean = {**still, "residual_of": ["har", "ewma"]}  # several baselines: it starts at their mean forecast
    raw = base_config(
        minute_file,
        tmp_path,
        har={"type": "har"},
        ewma={"type": "ewma"},
        still=still,
        still_mean=still_mean,
        hybrid={**TINY_LSTM, "residual_of": "har", "learning_rate": 0.05, "epochs": 3},
    )
    raw["backtest"]["start"] = "2024-01-15 00:00"  # a hybrid trains where HAR can forecast: HAR's bars and the horizon
    res = run(parse_config(raw))
    wide = res.forecasts.pivot_table(index=["issued_at", "horizon"], columns="strategy", values="forecast")
    np.testing.assert_allclose(wide["still"], wide["har"], rtol=1e-5)  # zero correction: exactly HAR
    np.testing.assert_allclose(wide["still_mean"], (wide["har"] + wide["ewma"]) / 2, rtol=1e-5)
    assert not np.allclose(wide["hybrid"], wide["har"], rtol=1e-3)  # a trained correction moves it
    assert np.isfinite(wide.to_numpy()).all() and (wide.to_numpy() > 0).all()


@pytest.mark.parametrize(
    "strategies, message",
    [
        (
            {"h": {**TINY_LSTM, "residual_of": "harr"}, "har": {"type": "har"}},
            "strategies.h.residual_of: 'harr' is not a strategy of this run (did you mean 'har'?)",
        ),
        (
            {"h": {**TINY_LSTM, "residual_of": ["har", "garhc"]}, "har": {"type": "har"}, "garch": {"type": "garch"}},
            "strategies.h.residual_of: 'garhc' is not a strategy of this run (did you mean 'garch'?)",
        ),
        (
            {"h": {**TINY_LSTM, "residual_of": ["har", 3]}, "har": {"type": "har"}},
            "strategies.h.residual_of: a baseline's name (residual_of: har) or a list of names",
        ),
        (
            {"h": {**TINY_LSTM, "residual_of": ["har", "har"]}, "har": {"type": "har"}},
            "strategies.h.residual_of: name one baseline (residual_of: har) or several different ones",
        ),
        (
            {"m": {"type": "mean_of", "of": ["har", "garhc"]}, "har": {"type": "har"}, "garch": {"type": "garch"}},
            "strategies.m.of: 'garhc' is not a strategy of this run (did you mean 'garch'?)",
        ),
        (
            {"m": {"type": "mean_of", "of": ["har", "lstm"]}, "har": {"type": "har"}, "lstm": TINY_LSTM},
            "strategies.m.of: 'lstm' is not a baseline (it depends on a seed)",
        ),
        (
            {
                "h": {**TINY_LSTM, "residual_of": "m"},
                "m": {"type": "mean_of"},
                "har": {"type": "har"},
                "garch": {"type": "garch"},
            },
            "strategies.h.residual_of: 'm' is a combination itself; name its members",
        ),
        (
            {"h": {**TINY_LSTM, "residual_of": "lstm"}, "lstm": TINY_LSTM},
            "strategies.h.residual_of: 'lstm' is not a baseline (it depends on a seed)",
        ),
        (
            {"h": {**TINY_LSTM, "residual_of": "har", "multistep": "recursive"}, "har": {"type": "har"}},
            "residual_of: a hybrid forecasts every horizon at once",
        ),
        ({"h": {**TINY_LSTM, "residual_params": {"type": "har"}}}, "residual_params: is filled in from residual_of"),
    ],
)
def test_a_bad_hybrid_is_one_line(minute_file, tmp_path, strategies, message):
    raw = base_config(minute_file, tmp_path, **strategies)
    assert_run_refused(raw, tmp_path, message)
