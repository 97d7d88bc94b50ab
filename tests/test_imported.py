"""The notebook's Keras-2 ``.h5`` backtested in all three modes (as is, warm starts, its architecture
retrained cold), the bad-input cases of ``type: imported``, and ``backtest train``."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from backtester.artifacts import load_artifact
from backtester.cli import main
from backtester.config import parse_config
from backtester.runner import run
from strategies.keras.archive import scaler_from_json
from strategies.keras.notebook import load_model_file, load_scaler
from strategies.keras.runtime import keras_module

from .conftest import TINY_LSTM, base_config
from .test_keras_import import NOTEBOOK

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tf_keras") is None, reason="needs tf-keras (the test extra) to write a Keras 2 .h5"
)


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    out = tmp_path_factory.mktemp("nb")
    proc = subprocess.Popen(
        [sys.executable, "-c", NOTEBOOK, str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    keras_module()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return out


def imported(notebook, **kw):
    return {
        "type": "imported",
        "model": str(notebook / "volatility_lstm_model.h5"),
        "scaler": str(notebook / "volatility_scaler.pkl"),
        "trust_pickle": True,
        "multistep": "recursive",
        "epochs": 1,
        "batch_size": 32,
        **kw,
    }


def run_cfg(minute_file, tmp_path, name, **strategies):
    raw = base_config(minute_file, tmp_path, **strategies)
    raw["name"] = name
    raw["output"]["save_models"] = True
    return run(parse_config(raw))


def test_as_is_forecasts_with_the_saved_weights_and_scaler(notebook, minute_file, tmp_path):
    res = run_cfg(minute_file, tmp_path, "asis", nb=imported(notebook, use="as_is", retrain={"rule": "never"}))
    rows = res.forecasts
    assert len(res.retrains) == 1 and res.retrains["samples"].iloc[0] == 0  # no training at all
    # the first forecast by hand: the file's model on the saved scaler's view of the last 60 bars
    from backtester.rv import prepare_bars

    cfg = parse_config(base_config(minute_file, tmp_path))
    bars = prepare_bars(cfg.data).bars
    first = rows.loc[rows["horizon"] == 1].iloc[0]
    end = int(bars.index.get_loc(first["issued_at"])) + 1
    scaler = scaler_from_json(load_scaler(notebook / "volatility_scaler.pkl", trusted=True))
    window = scaler.transform(bars["rv"].to_numpy()[end - 60 : end].reshape(-1, 1))[:, 0]
    pred = load_model_file(notebook / "volatility_lstm_model.h5").predict(
        window[None, :, None].astype("float32"), verbose=0
    )
    expected = scaler.inverse_transform(np.asarray(pred, "float64").reshape(-1, 1))[0, 0]
    assert first["forecast"] == pytest.approx(max(expected, bars["rv"][bars["rv"] > 0].min()), rel=1e-5)
    config = json.loads((res.out_dir / "models" / "nb" / "1" / "config.json").read_text())
    assert config["started_from"].startswith("imported") and config["memory"] == 60


def test_warm_start_from_the_saved_weights_then_from_each_retrain(notebook, minute_file, tmp_path, monkeypatch):
    import strategies.keras.forecaster as km

    starts = []
    real = km.train_epochs
    monkeypatch.setattr(
        km, "train_epochs", lambda model, *a, **k: (starts.append(model.get_weights()), real(model, *a, **k))[1]
    )
    res = run_cfg(minute_file, tmp_path, "warm", nb=imported(notebook, use="warm_start", warm_start={"epochs": 1}))
    saved = load_model_file(notebook / "volatility_lstm_model.h5").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(starts[0], saved))  # the first fit started from the file
    started = [json.loads(d)["started_from"] for d in res.retrains["details"]]
    assert started[0].startswith("imported") and started[1:] == [1, 2]
    assert (res.retrains["status"] == "ok").all() and (res.retrains["samples"] > 0).all()


def test_architecture_retrains_cold_with_the_saved_hyperparameters(notebook, minute_file, tmp_path, monkeypatch):
    import strategies.keras.forecaster as km

    starts = []
    real = km.train_epochs
    monkeypatch.setattr(
        km, "train_epochs", lambda model, *a, **k: (starts.append(model.get_weights()), real(model, *a, **k))[1]
    )
    res = run_cfg(
        minute_file, tmp_path, "arch", nb=imported(notebook, use="architecture", scaler=None, trust_pickle=False)
    )
    saved = load_model_file(notebook / "volatility_lstm_model.h5").get_weights()
    assert [w.shape for w in starts[0]] == [w.shape for w in saved]
    assert not all(np.array_equal(a, b) for a, b in zip(starts[0], saved))  # fresh weights
    config = json.loads((res.out_dir / "models" / "nb" / "2" / "config.json").read_text())
    assert config["learning_rate"] == pytest.approx(0.005)
    assert [(layer["layer"], layer.get("units")) for layer in config["layers"]] == [
        ("LSTM", 32),
        ("Dropout", None),
        ("LSTM", 16),
        ("Dropout", None),
        ("Dense", 1),
    ]
    assert config["started_from"] is None


def cli_run(tmp_path, raw):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    return CliRunner().invoke(main, ["run", str(path)])


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"trust_pickle": False},
            "not loaded: unpickling runs code from the file; if you trust it, pass --trust-pickle",
        ),
        ({"memory": 30}, "strategies.nb: memory: 30 but the model in"),
        ({"multistep": "direct"}, "the model forecasts 1 step(s) but 4 are needed; use multistep: recursive"),
        ({"scaler": "scaler_2_features.pkl"}, "fitted on 2 features"),
        ({"model": "missing.h5"}, "missing.h5: file not found"),
    ],
)
def test_bad_imports_are_one_line_and_write_nothing(notebook, minute_file, tmp_path, change, message):
    spec = imported(notebook, **change)
    if "scaler" in change:
        spec["scaler"] = str(notebook / change["scaler"])
    out = cli_run(tmp_path, base_config(minute_file, tmp_path, nb=spec))
    assert out.exit_code == 2, out.output
    assert message in out.output and len(out.output.strip().splitlines()) == 1, out.output
    assert not (tmp_path / "results").exists()


def test_a_corrupt_h5_is_one_line(minute_file, tmp_path):
    bad = tmp_path / "model.h5"
    bad.write_bytes(os.urandom(2048))
    out = cli_run(
        tmp_path,
        base_config(minute_file, tmp_path, nb={"type": "imported", "model": str(bad), "multistep": "recursive"}),
    )
    assert out.exit_code == 2 and "not an HDF5 (.h5) or .keras file" in out.output
    assert len(out.output.strip().splitlines()) == 1


def test_backtest_train_writes_a_loadable_artifact(minute_file, tmp_path):
    raw = base_config(
        minute_file,
        tmp_path,
        lstm={**TINY_LSTM, "tuning": {"max_trials": 2, "epochs": 1, "space": {"units": {"values": [3, 4]}}}},
        har={"type": "har"},
    )
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = CliRunner().invoke(main, ["train", str(path), "--until", "2024-01-20"])
    assert out.exit_code == 0, out.output
    run_dir = tmp_path / "results" / "t-model"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["trained_at"] == "2024-01-21 00:00:00+00:00"  # a date means the whole day (bars close at :00)
    art = load_artifact(run_dir / "models" / "lstm" / "1")
    assert art.meta["window"]["end"] == "2024-01-21 00:00:00+00:00" and art.meta["issued"]["count"] == 0
    trials = pd.read_parquet(run_dir / "tuning.parquet")
    best = json.loads(trials.loc[trials["best"], "hyperparameters"].iloc[0])
    assert art.params.layers[0].units == best["units_0"]
    pred = CliRunner().invoke(main, ["model", "predict", str(run_dir / "models" / "lstm" / "1")])
    assert pred.exit_code == 0 and "4 forecasts issued 2024-01-21 00:00:00+00:00" in pred.output, pred.output
    assert load_artifact(run_dir / "models" / "har" / "1").meta["type"] == "har"
    again = CliRunner().invoke(main, ["train", str(path)])
    assert again.exit_code == 2 and "already there; pass --force" in again.output
