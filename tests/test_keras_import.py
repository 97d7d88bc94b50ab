"""Importing the notebook's Keras 2 ``.h5`` model and pickled scaler; ``backtest model inspect``.

The Keras 2 file is written here, in a subprocess, with ``tf_keras`` (TensorFlow's Keras 2),
exactly as the notebook did: LSTM(32, return_sequences) -> Dropout(0.2) -> LSTM(16) ->
Dropout(0.1) -> Dense(1), Adam(0.005), MSE, saved as ``.h5``.
"""

import importlib.util
import json
import os
import pickle
import subprocess
import sys
import textwrap

import h5py
import joblib
import numpy as np
import pytest
from click.testing import CliRunner

from backtester.cli import main
from backtester.core.errors import ModelFileError
from strategies.keras.archive import scaler_from_json
from strategies.keras.inspection import describe_model
from strategies.keras.notebook import load_model_file, load_scaler, translate_config
from strategies.keras.runtime import keras_module

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tf_keras") is None, reason="needs tf-keras (the test extra) to write a Keras 2 .h5"
)

NOTEBOOK = textwrap.dedent("""
    import json, pickle, sys
    import joblib, numpy as np
    import tf_keras as keras2
    from sklearn.preprocessing import MinMaxScaler

    out = sys.argv[1]
    keras2.utils.set_random_seed(7)
    model = keras2.Sequential([
        keras2.layers.LSTM(32, return_sequences=True, input_shape=(60, 1)),
        keras2.layers.Dropout(0.2),
        keras2.layers.LSTM(16),
        keras2.layers.Dropout(0.1),
        keras2.layers.Dense(1),
    ])
    model.compile(optimizer=keras2.optimizers.Adam(learning_rate=0.005), loss="mse")
    rng = np.random.default_rng(7)
    model.fit(rng.random((32, 60, 1), dtype="float32"), rng.random((32, 1), dtype="float32"), epochs=1, verbose=0)
    model.save(f"{out}/volatility_lstm_model.h5")
    x = rng.random((5, 60, 1), dtype="float32")
    np.save(f"{out}/x.npy", x)
    np.save(f"{out}/pred.npy", model.predict(x, verbose=0))
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    json.dump({"total": int(model.count_params()), "trainable": trainable}, open(f"{out}/params.json", "w"))
    rv = 0.001 + rng.random((200, 1)) * 0.02
    joblib.dump(MinMaxScaler().fit(rv), f"{out}/volatility_scaler.pkl")
    with open(f"{out}/scaler_2_features.pkl", "wb") as f:
        pickle.dump(MinMaxScaler().fit(rng.random((20, 2))), f)
""")


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    """The notebook's files, written by Keras 2 (tf_keras) in a subprocess."""
    out = tmp_path_factory.mktemp("notebook")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(
        [sys.executable, "-c", NOTEBOOK, str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    keras_module()  # import Keras 3 here while the subprocess imports Keras 2
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    return out


@pytest.fixture
def model_copy(notebook, tmp_path):
    """The Keras 2 model alone in a fresh folder (inspect writes beside it)."""
    path = tmp_path / "volatility_lstm_model.h5"
    path.write_bytes((notebook / "volatility_lstm_model.h5").read_bytes())
    return path


def invoke(*args):
    return CliRunner().invoke(main, ["model", "inspect", *map(str, args)], catch_exceptions=False)


def test_the_file_is_keras_2_and_keras_3_refuses_it_as_is(notebook):
    import keras

    path = notebook / "volatility_lstm_model.h5"
    with h5py.File(path) as f:
        assert f.attrs["keras_version"].startswith("2.")
        config = json.loads(f.attrs["model_config"])
    lstm = config["config"]["layers"][1]["config"]
    assert lstm["time_major"] is False
    assert "time_major" not in translate_config(config)["config"]["layers"][1]["config"]
    with pytest.raises(ValueError, match="time_major"):
        keras.saving.load_model(path, compile=False)


def test_load_model_file_reproduces_the_keras_2_predictions(notebook):
    model = load_model_file(notebook / "volatility_lstm_model.h5")
    x, expected = np.load(notebook / "x.npy"), np.load(notebook / "pred.npy")
    np.testing.assert_allclose(np.asarray(model.predict(x, verbose=0)), expected, rtol=0, atol=1e-5)


def test_keras_3_h5_and_keras_files_load_too(notebook, tmp_path):
    model = load_model_file(notebook / "volatility_lstm_model.h5")
    x, expected = np.load(notebook / "x.npy"), np.load(notebook / "pred.npy")
    for name in ("keras3.h5", "keras3.keras"):
        model.save(tmp_path / name)
        again = load_model_file(tmp_path / name)
        np.testing.assert_allclose(np.asarray(again.predict(x, verbose=0)), expected, rtol=0, atol=1e-5)
    assert describe_model(again, tmp_path / "keras3.keras")["format"] == "keras"
    assert describe_model(again, tmp_path / "keras3.h5")["format"] == "keras3-h5"


def test_describe_model_reports_the_notebook_architecture(notebook):
    path = notebook / "volatility_lstm_model.h5"
    info = describe_model(load_model_file(path), path)
    params = json.loads((notebook / "params.json").read_text())
    assert [(e["class"], e.get("units"), e.get("rate"), e.get("return_sequences")) for e in info["layers"]] == [
        ("LSTM", 32, None, True),
        ("Dropout", None, 0.2, None),
        ("LSTM", 16, None, False),
        ("Dropout", None, 0.1, None),
        ("Dense", 1, None, None),
    ]
    assert [e.get("activation") for e in info["layers"]] == ["tanh", None, "tanh", None, "linear"]
    assert info["format"] == "keras2-h5" and info["source"] == str(path.resolve())
    assert (info["input_shape"], info["lookback"], info["features"], info["output_steps"]) == ([None, 60, 1], 60, 1, 1)
    assert (info["optimizer"], info["learning_rate"], info["loss"]) == ("Adam", 0.005, "mse")
    assert (info["params_total"], info["params_trainable"]) == (params["total"], params["trainable"]) == (7505, 7505)
    assert info["hyperparameters"] == {
        "num_layers": 2,
        "units_0": 32,
        "dropout_0": 0.2,
        "units_1": 16,
        "dropout_1": 0.1,
        "learning_rate": 0.005,
    }


def test_cli_inspect_prints_a_summary_and_writes_model_config_only_to_out(model_copy):
    res = invoke(model_copy)  # without --out: nothing written, beside the user's model or anywhere
    assert res.exit_code == 0, res.output
    assert "wrote" not in res.stdout
    assert sorted(p.name for p in model_copy.parent.iterdir()) == ["volatility_lstm_model.h5"]
    out = model_copy.parent / "model_config.json"
    res = invoke(model_copy, "--out", out)
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines() == [
        f"{model_copy.resolve()}: Sequential, keras2-h5 (Keras 2.21.0)",
        "  LSTM(32, return_sequences=True)",
        "  Dropout(0.2)",
        "  LSTM(16)",
        "  Dropout(0.1)",
        "  Dense(1)",
        "lookback 60 bars x 1 feature -> 1 output step",
        "optimizer Adam, learning rate 0.005, loss mse",
        "parameters 7,505 (7,505 trainable)",
        "lstm hyperparameters: num_layers=2 units_0=32 dropout_0=0.2 units_1=16 dropout_1=0.1 learning_rate=0.005",
        f"wrote {out}",
    ]
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(describe_model(load_model_file(model_copy), model_copy)))
    assert sorted(p.name for p in model_copy.parent.iterdir()) == ["model_config.json", "volatility_lstm_model.h5"]


def test_cli_inspect_converts_a_trusted_scaler(notebook, model_copy, tmp_path):
    out = tmp_path / "imported" / "model_config.json"
    res = invoke(model_copy, "--out", out, "--scaler", notebook / "volatility_scaler.pkl", "--trust-pickle")
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[-2:] == [f"wrote {out}", f"wrote {out.parent / 'scaler.json'}"]
    d = json.loads((out.parent / "scaler.json").read_text())
    assert list(d) == ["kind", "feature_range", "data_min", "data_max", "data_range", "scale", "min", "n_samples_seen"]
    assert d["kind"] == "MinMaxScaler" and d["n_samples_seen"] == 200
    original = joblib.load(notebook / "volatility_scaler.pkl")
    rv = np.array([[0.0], [0.004], [0.03]])
    np.testing.assert_array_equal(scaler_from_json(d).transform(rv), original.transform(rv))
    np.testing.assert_array_equal(scaler_from_json(d).inverse_transform(rv), original.inverse_transform(rv))


def test_untrusted_pickle_is_refused_and_nothing_is_written(notebook, model_copy):
    before = sorted(model_copy.parent.iterdir())
    res = invoke(model_copy, "--scaler", notebook / "volatility_scaler.pkl")
    assert res.exit_code == 2
    assert res.stderr == (
        f"error: {notebook / 'volatility_scaler.pkl'}: not loaded: unpickling runs code from the file; "
        "if you trust it, pass --trust-pickle (or set trust_pickle: true in the config)\n"
    )
    assert sorted(model_copy.parent.iterdir()) == before


def test_a_scaler_of_two_features_is_refused(notebook):
    path = notebook / "scaler_2_features.pkl"
    with pytest.raises(
        ModelFileError,
        match=r"scaler_2_features.pkl: the MinMaxScaler was fitted on 2 features; "
        r"our models take one \(RV\): refit it on the RV column alone",
    ):
        load_scaler(path, trusted=True)


def test_a_pickle_that_is_not_a_scaler_is_refused(tmp_path):
    path = tmp_path / "thing.pkl"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ModelFileError, match="thing.pkl: holds a builtins.dict, not a fitted MinMaxScaler"):
        load_scaler(path, trusted=True)


def test_a_corrupt_h5_exits_2_with_one_line(tmp_path):
    path = tmp_path / "model.h5"
    path.write_bytes(np.random.default_rng(0).bytes(512))
    res = invoke(path)
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr == (
        f"error: {path}: not an HDF5 (.h5) or .keras file (corrupt or another format); "
        "save the model with model.save('model.h5') or model.save('model.keras')\n"
    )
    assert not (tmp_path / "model_config.json").exists()


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no such file; pass the .h5 or .keras file"),
        ("weights_only", "an HDF5 file without a model_config (weights only, from save_weights?)"),
        ("truncated", "a corrupt or truncated HDF5 file"),
        ("unknown_layer", "cannot rebuild the model in Keras 3 (Unknown layer: 'NotALayer'); re-save it"),
    ],
)
def test_bad_model_files_give_one_line_naming_the_file(notebook, tmp_path, case, message):
    path = tmp_path / "model.h5"
    source = notebook / "volatility_lstm_model.h5"
    if case == "weights_only":
        with h5py.File(path, "w") as f:
            f.create_dataset("kernel", data=np.zeros(3))
    elif case == "truncated":
        path.write_bytes(source.read_bytes()[:4000])
    elif case == "unknown_layer":
        path.write_bytes(source.read_bytes())
        with h5py.File(path, "r+") as f:
            config = json.loads(f.attrs["model_config"])
            config["config"]["layers"][2]["class_name"] = "NotALayer"
            f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(ModelFileError) as err:
        load_model_file(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text
