"""The Keras backend is a config/CLI choice (JAX by default): a run on either works end to end, and
artifacts saved on one backend load on the other. Each backend needs its own process (Keras reads it once, at import)."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from .conftest import ROOT, TINY_LSTM, base_config

pytest.importorskip("jax")  # installed by the test extra; the jax extra for users


def backtest(*args, cwd=ROOT):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    return subprocess.run(
        [sys.executable, "-m", "backtester.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def runs(minute_bars, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("backend")
    path = tmp / "bars.parquet"
    minute_bars.to_parquet(path, index=False)
    raw = base_config(path, tmp, lstm={**TINY_LSTM, "layers": [{"units": 4, "dropout": 0.1}]}, har={"type": "har"})
    raw["backtest"]["end"] = "2024-01-16 00:00"
    config = tmp / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    jax_run = backtest("run", config, "-q", "--backend", "jax", "--set", "name=on_jax")
    tf_run = backtest("run", config, "-q", "--backend", "tensorflow", "--set", "name=on_tf")
    return tmp / "results", jax_run, tf_run


def test_a_config_without_a_backend_gets_jax(tmp_path):
    from backtester.config import parse_config

    assert parse_config(base_config(tmp_path / "x.parquet", tmp_path)).backend == "jax"


def test_a_run_on_jax_works_and_records_its_backend(runs):
    results, jax_run, tf_run = runs
    assert jax_run.returncode == 0, jax_run.stderr
    assert tf_run.returncode == 0, tf_run.stderr
    assert json.loads((results / "on_jax" / "manifest.json").read_text())["backend"] == "jax"
    assert json.loads((results / "on_jax" / "models" / "lstm" / "1" / "artifact.json").read_text())["backend"] == "jax"
    on_jax = pd.read_parquet(results / "on_jax" / "forecasts.parquet")
    on_tf = pd.read_parquet(results / "on_tf" / "forecasts.parquet")
    # same rows; the baselines are identical, the LSTMs differ only by their backends' random streams
    pd.testing.assert_frame_equal(on_jax[on_jax["strategy"] == "har"], on_tf[on_tf["strategy"] == "har"])
    assert len(on_jax) == len(on_tf)


@pytest.mark.parametrize(
    "saved_on, loaded_on, expect",
    [
        ("on_jax", "jax", "identical to the"),
        ("on_tf", "jax", "recorded forecasts"),
        ("on_jax", "tensorflow", "recorded forecasts"),
    ],
)
def test_artifacts_load_on_either_backend(runs, saved_on, loaded_on, expect):
    results, _, _ = runs
    res = backtest("model", "predict", results / saved_on / "models" / "lstm" / "2", "--backend", loaded_on)
    assert res.returncode == 0, res.stdout + res.stderr
    assert expect in res.stdout and "differs" not in res.stdout
