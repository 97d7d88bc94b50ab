"""Artifacts for every retrain reload to identical forecasts; users' own builders and Params classes
run end to end from the CLI; bad builders, bad model folders and bad strategy types are one line each."""

import json
import re

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from backtester.artifacts import load_artifact, predict
from backtester.cli import main
from backtester.config import parse_config
from backtester.core.errors import ConfigError
from backtester.process import choose_backend
from backtester.runner import run
from strategies import validate_params
from strategies.keras.runtime import keras_module

from .conftest import TINY_GRU, TINY_LSTM, base_config

USER = {
    "lstm": {**TINY_LSTM, "layers": [{"units": 4, "dropout": 0.1}], "retrain": {"rule": "monthly", "day": 16}},
    "gru": TINY_GRU,
    "featured": {
        **TINY_LSTM,
        "features": [
            "rv",
            "log_rv",
            {"rv_mean": ["6h", "1D"]},
            "hour_of_day",
            "weekday",
            "garch_variance",
            "bpv",
            "sj",
        ],
    },
    "hybrid": {**TINY_LSTM, "residual_of": ["har", "garch"], "loss": "qlike"},  # their mean, corrected
    "median": {"type": "tests.user_models:MedianParams", "bars": 6},
    "har": {"type": "har", "lags": [1, 6, 24]},
    "harq": {"type": "harq", "lags": [1, 6, 24]},
    "har_cj": {"type": "har_cj", "lags": [1, 6, 24]},
    "shar_p": {"type": "shar", "lags": [1, 6, 24], "periodic": True},
    "log_har": {"type": "log_har", "lags": [1, 6, 24]},
    "garch": {"type": "garch"},
    "ewma": {"type": "ewma"},
    "naive": {"type": "naive"},
    "combined": {"type": "mean_of", "of": ["har", "ewma"]},  # a forecast combination: each member saved
}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def write_config(tmp_path, raw, name="c.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def user_run(minute_bars, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("user")
    path = tmp / "bars.parquet"
    minute_bars.to_parquet(path, index=False)
    raw = base_config(path, tmp, **USER)
    raw["backtest"]["end"] = "2024-01-20 00:00"
    res = invoke("run", write_config(tmp, raw), "-q")
    assert res.exit_code == 0, res.output
    return tmp / "results" / "t"


def test_every_model_version_leads_to_a_complete_artifact(user_run):
    f = pd.read_parquet(user_run / "forecasts.parquet")
    r = pd.read_parquet(user_run / "retrains.parquet")
    assert set(f["strategy"]) == set(USER)
    for (strategy, version), _ in f.groupby(["strategy", "model_version"]):
        folder = user_run / "models" / strategy / str(version)
        meta = json.loads((folder / "artifact.json").read_text())
        assert set(meta["files"]) == {p.name for p in folder.iterdir()}
        assert meta["model_version"] == version and meta["strategy"] == strategy and meta["restorable"]
        assert meta["data"]["sha256"] == json.loads((user_run / "manifest.json").read_text())["data"]["sha256"]
        assert pd.Timestamp(meta["trained_through"]) <= pd.Timestamp(meta["issued"]["first"])
        row = r[(r["strategy"] == strategy) & (r["model_version"] == version)].iloc[0]
        assert row["artifact"] == f"models/{strategy}/{version}"
        assert pd.Timestamp(meta["window"]["end"]) == row["window_end"]
    lstm = user_run / "models" / "lstm" / "1"
    assert {"model.keras", "scaler.json", "config.json", "history.json", "summary.txt"} <= {
        p.name for p in lstm.iterdir()
    }
    config = json.loads((lstm / "config.json").read_text())
    assert config["hyperparameters"] == {"num_layers": 1, "units_0": 4, "dropout_0": 0.1, "learning_rate": 0.003}
    assert [l["layer"] for l in config["layers"]] == ["LSTM", "Dropout", "Dense"]
    assert {k: config[k] for k in ("memory", "batch_size", "epochs")} == {"memory": 12, "batch_size": 16, "epochs": 1}
    assert config["seed"] == json.loads((lstm / "artifact.json").read_text())["seed"]
    assert config["params_trainable"] == 4 * (4 * (1 + 4 + 1)) + (4 + 1) * 4  # LSTM(4) on 1 input, Dense(4)
    history = json.loads((lstm / "history.json").read_text())
    assert len(history["loss"]) == 1 and len(history["val_loss"]) == 1
    summary = (lstm / "summary.txt").read_text()
    assert "Total params" in summary and "Trainable params: 116" in summary
    assert json.loads((user_run / "models" / "har" / "1" / "params.json").read_text())["coef"]["array"]
    assert json.loads((user_run / "models" / "garch" / "1" / "params.json").read_text())["alpha"] > 0


@pytest.mark.parametrize("strategy", sorted(USER))
def test_artifacts_reload_to_identical_forecasts(user_run, strategy):
    versions = sorted(p.name for p in (user_run / "models" / strategy).iterdir())
    folder = user_run / "models" / strategy / versions[-1]
    rows = predict(folder)
    f = pd.read_parquet(user_run / "forecasts.parquet").drop(columns=["actual", "asset"])
    want = f[(f["strategy"] == strategy) & (f["model_version"] == int(versions[-1]))].reset_index(drop=True)
    pd.testing.assert_frame_equal(rows, want, check_exact=True)
    assert rows.attrs["max_abs_diff"] == 0.0 and rows.attrs["recorded"] == len(want) > 0


def test_model_predict_cli(user_run, tmp_path):
    out = tmp_path / "p.parquet"
    res = invoke("model", "predict", user_run / "models" / "gru" / "1", "--out", out)
    assert res.exit_code == 0, res.output
    assert "identical to the" in res.output and out.is_file()
    art = load_artifact(user_run / "models" / "gru" / "1")
    assert art.meta["params"]["builder"] == "tests.user_models:build_gru" and art.run_dir == user_run


def test_model_predict_bad_folders_are_one_line(user_run, tmp_path):
    cases = [
        (user_run / "models", r"not a model artifact \(no artifact.json\)"),
        (tmp_path / "nope", r"nope: no such folder"),
    ]
    broken = tmp_path / "run" / "models" / "x" / "1"
    broken.mkdir(parents=True)
    (broken / "artifact.json").write_text("{not json")
    cases.append((broken, r"artifact.json: not valid JSON"))
    for folder, pattern in cases:
        res = invoke("model", "predict", folder)
        assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
        assert re.search(pattern, res.output), res.output


def test_save_models_off_writes_no_artifacts(minute_file, tmp_path):
    raw = base_config(minute_file, tmp_path, naive={})
    raw["output"]["save_models"] = False
    res = invoke("run", write_config(tmp_path, raw), "-q")
    assert res.exit_code == 0, res.output
    out = tmp_path / "results" / "t"
    assert not (out / "models").exists()
    assert pd.read_parquet(out / "retrains.parquet")["artifact"].isna().all()


def test_entry_point_plugins_register_strategies(tmp_path, monkeypatch):
    dist = tmp_path / "myplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[backtester.strategies]\nmedian = tests.user_models:MedianParams\nbroken = tests.no_such_module:Params\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    kind, params = validate_params("m", {"type": "median", "bars": 3})
    assert kind == "median" and type(params).__name__ == "MedianParams" and params.bars == 3
    with pytest.raises(ConfigError, match=r"strategies.b.type: strategy 'broken' from entry point .* failed to import"):
        validate_params("b", {"type": "broken"})
    with pytest.raises(ConfigError, match=r"valid names: broken, ewma, .*median"):
        validate_params("x", {"type": "nope"})


BAD_CONFIGS = [
    (
        {"m": {"type": "keras", "builder": "no_such_pkg.models:build"}},
        r"strategies.m.builder: cannot import module 'no_such_pkg.models'",
    ),
    (
        {"m": {"type": "keras", "builder": "tests.user_models:build_missing"}},
        r"strategies.m.builder: module 'tests.user_models' has no attribute 'build_missing'",
    ),
    (
        {"m": {"type": "keras", "builder": "tests.user_models:NOT_A_FUNCTION"}},
        r"strategies.m.builder: .*not a function build\(hp, memory, steps\)",
    ),
    ({"m": {"type": "keras"}}, r"strategies.m.builder: required key is missing"),
    (
        {"m": {"type": "keras", "builder": "os:system"}},  # a callable, but not a builder: never called
        r"strategies.m.builder: 'os:system' is in Python's standard library \(module 'os'\)",
    ),
    ({"m": {"type": "tests.user_models:NotParams"}}, r"strategies.m.type: .*not a subclass of strategies.Params"),
    ({"m": {"type": "tests.nope:X"}}, r"strategies.m.type: cannot import module 'tests.nope'"),
    ({"m": {"type": "naive", "retrain": {"rule": "monthly", "day": 40}}}, r"strategies.m.retrain.day: .*1..31"),
    (
        {"m": {"type": "naive", "retrain": {"rule": "weekly", "weekdy": "tue"}}},
        r"strategies.m.retrain.weekdy: unknown key \(did you mean 'weekday'\?\)",
    ),
    ({"m": {"type": "naive", "window": 24}}, r"strategies.m.window: is this strategy's training window.*'bars: 24'"),
    ({"m": {"type": "naive", "window": {"kind": "rolling"}}}, r"strategies.m.window: .*exactly one of 'length'"),
]


@pytest.mark.parametrize("strategies, pattern", BAD_CONFIGS, ids=[str(i) for i in range(len(BAD_CONFIGS))])
def test_bad_strategy_config_is_one_line_exit_2(strategies, pattern, minute_file, tmp_path):
    raw = base_config(minute_file, tmp_path)
    raw["strategies"] = strategies
    res = invoke("run", write_config(tmp_path, raw), "-q")
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert re.search(pattern, res.output), res.output
    assert not (tmp_path / "results").exists()


BAD_RUNS = [
    (
        {"type": "keras", "builder": "tests.user_models:build_nothing", "memory": 12},
        r"builder 'tests.user_models:build_nothing' returned str, not a keras.Model",
    ),
    (
        {"type": "keras", "builder": "tests.user_models:build_uncompiled", "memory": 12},
        r"builder 'tests.user_models:build_uncompiled' returned a model that is not compiled; call model.compile",
    ),
    (
        {"type": "keras", "builder": "tests.user_models:build_wrong_output", "memory": 12},
        r"the model's output shape is \(None, 5\), expected \(None, 4\)",
    ),
    (
        {"type": "tests.user_models:NotAStrategyParams"},
        r"strategy 'm': NotAStrategyParams.build\(\) returned object, which has no fit/forecast methods",
    ),
]


@pytest.mark.parametrize(
    "params, pattern", BAD_RUNS, ids=["not-a-model", "uncompiled", "wrong-shape", "not-a-strategy"]
)
def test_bad_builders_and_strategies_fail_before_writing(params, pattern, minute_file, tmp_path):
    raw = base_config(minute_file, tmp_path, m=params)
    res = invoke("run", write_config(tmp_path, raw), "-q")
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert re.search(pattern, res.output), res.output
    assert not (tmp_path / "results" / "t").exists()
    assert not list((tmp_path / "results").glob(".t.partial-*")) if (tmp_path / "results").exists() else True


def test_unknown_backend_is_one_line(minute_file, tmp_path):
    raw = base_config(minute_file, tmp_path)
    raw["backend"] = "torch"
    res = invoke("run", write_config(tmp_path, raw), "-q")
    assert res.exit_code == 2 and res.output.count("\n") == 1
    assert "backend: Input should be 'tensorflow' or 'jax'" in res.output
    raw["backend"], raw["strategies"] = "tensorflow", {"lstm": TINY_LSTM}
    keras_module()  # this process is on jax (the suite's in-process backend, the default)
    with pytest.raises(ConfigError, match=r"backend: Keras is already loaded with the 'jax' backend"):
        parse_config(raw, before_strategies=choose_backend)  # what the CLI does
    with pytest.raises(ConfigError, match=r"backend: the config asks for 'tensorflow' but this process uses 'jax'"):
        run(parse_config(raw))  # the API without backtester.process.setup


def test_a_baseline_only_run_ignores_the_keras_backend_of_the_process(minute_file, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")  # e.g. exported in the user's shell; no strategy here uses Keras
    done = run(parse_config(base_config(minute_file, tmp_path, naive={}, har={"type": "har"})))
    assert set(done.forecasts["strategy"]) == {"naive", "har"}
