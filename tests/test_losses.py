"""Training losses for Keras strategies (``loss: mse | qlike | mse_log``): the loss inside Keras is the
evaluation's loss on the unscaled variance, for every target; a run trains on it; nonsense is refused."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import MinMaxScaler

from backtester.config import parse_config
from backtester.core.targets import from_target, to_target
from backtester.evaluation.losses import qlike
from backtester.runner import run
from strategies.keras.losses import training_loss, with_scale

from .conftest import TINY_LSTM, assert_run_refused, base_config


@pytest.mark.parametrize("target", ["rv", "log", "variance"])
@pytest.mark.parametrize("kind", ["qlike", "mse_log"])
def test_the_keras_loss_is_the_evaluations_loss_on_the_unscaled_variance(kind, target):
    from strategies.keras.runtime import keras_module

    ops = keras_module().ops
    rng = np.random.default_rng(0)
    floor = 0.05
    actual_rv, forecast_rv = rng.uniform(0.1, 2.0, (7, 3)), rng.uniform(0.1, 2.0, (7, 3))
    scaler = MinMaxScaler().fit(to_target(actual_rv.reshape(-1, 1), target, floor))
    y = scaler.transform(to_target(actual_rv.reshape(-1, 1), target, floor)).reshape(7, 3)
    pred = scaler.transform(to_target(forecast_rv.reshape(-1, 1), target, floor)).reshape(7, 3)
    got = np.asarray(
        ops.convert_to_numpy(training_loss(kind, target)(with_scale(y, scaler, floor), pred.astype("float32")))
    )
    a, f = from_target(to_target(actual_rv, target, floor), target), forecast_rv
    want = qlike(a, f).mean(axis=1) if kind == "qlike" else np.mean((2 * np.log(a) - 2 * np.log(f)) ** 2, axis=1)
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-5)
    padded = np.asarray(
        ops.convert_to_numpy(training_loss(kind, target)(np.zeros((2, 9), "float32"), np.full((2, 3), -4.0, "float32")))
    )
    assert np.all(padded == 0)  # a padding row costs nothing, even under a wild forecast
    negative = np.asarray(
        ops.convert_to_numpy(
            training_loss(kind, target)(with_scale(y, scaler, floor), np.full((7, 3), -50.0, "float32"))
        )
    )
    assert np.isfinite(negative).all()  # a negative output is floored, never log(<=0)


def test_a_run_trains_on_qlike_and_says_so(minute_file, tmp_path):
    raw = base_config(
        minute_file,
        tmp_path,
        mse=TINY_LSTM,
        qlike={**TINY_LSTM, "loss": "qlike"},
        logvar={**TINY_LSTM, "loss": "mse_log", "target": "variance"},
    )
    raw["output"]["save_models"] = True
    result = run(parse_config(raw))
    rows = result.forecasts.pivot_table(index=["issued_at", "horizon"], columns="strategy", values="forecast")
    assert not np.allclose(rows["mse"], rows["qlike"]) and np.isfinite(rows.to_numpy()).all()
    history = json.loads((result.out_dir / "models" / "qlike" / "1" / "history.json").read_text())
    assert np.isfinite(history["loss"]).all() and 0 < history["loss"][0] < 10  # a QLIKE, not an MSE of scaled RV
    config = json.loads((result.out_dir / "models" / "qlike" / "1" / "config.json").read_text())
    assert config["loss"] == "qlike" and config["target"] == "rv"
    assert json.loads((result.out_dir / "models" / "mse" / "1" / "config.json").read_text())["loss"] == "builder's"
    again = run(parse_config({**raw, "output": {**raw["output"], "dir": str(tmp_path / "again")}}))
    pd.testing.assert_frame_equal(again.forecasts, result.forecasts, check_exact=True)


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            {"loss": "mse_log", "target": "log"},
            "strategies.lstm: loss: mse_log with target: log is loss: mse with target: log",
        ),
        ({"loss": "qlikee"}, "strategies.lstm.loss: Input should be 'mse', 'qlike' or 'mse_log'"),
    ],
)
def test_a_loss_that_makes_no_sense_is_one_line(minute_file, tmp_path, spec, message):
    raw = base_config(minute_file, tmp_path, lstm={**TINY_LSTM, **spec})
    assert_run_refused(raw, tmp_path, message)
