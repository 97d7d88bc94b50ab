"""The run folder has one owner (:mod:`backtester.layout`): a universe's artifacts
(``models/<asset>/<strategy>/<version>``) reload through ``backtest model predict`` to the very rows
the run recorded, and a folder that is not a run or not an artifact is one error class."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from backtester.cli import main
from backtester.synth import synth_bars

from .conftest import TINY_LSTM, base_config


@pytest.fixture(scope="module")
def universe_run(tmp_path_factory):
    """A 2-asset universe: naive and har on each, a tiny LSTM with two seeds, and a global LSTM."""
    tmp = tmp_path_factory.mktemp("layout")
    for k, name in enumerate(("aaa", "bbb")):
        synth_bars(start="2024-01-01", days=20, seed=21 + k).to_parquet(tmp / f"{name}.parquet", index=False)
    raw = base_config(tmp / "aaa.parquet", tmp, naive={}, har={}, lstm={**TINY_LSTM, "repeats": 2})
    raw["strategies"]["g"] = {**TINY_LSTM, "scope": "global"}
    del raw["data"]["path"]
    raw["data"]["assets"] = {"aaa": str(tmp / "aaa.parquet"), "bbb": str(tmp / "bbb.parquet")}
    raw["evaluation"] = {"benchmark": "har"}
    config = tmp / "u.yaml"
    config.write_text(yaml.safe_dump(raw))
    res = CliRunner().invoke(main, ["run", str(config), "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return tmp / "results" / "t"


@pytest.mark.parametrize(
    "asset, strategy", [("aaa", "har"), ("bbb", "naive"), ("bbb", "lstm#2"), ("aaa", "g"), ("bbb", "g")]
)
def test_model_predict_reproduces_a_universe_artifact(universe_run, tmp_path, asset, strategy):
    folder = universe_run / "models" / asset / strategy
    version = sorted(int(p.name) for p in folder.iterdir())[-1]
    out = tmp_path / "p.parquet"
    res = CliRunner().invoke(
        main, ["model", "predict", str(folder / str(version)), "--out", str(out)], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    assert "identical to the" in res.output
    f = pd.read_parquet(universe_run / "forecasts.parquet")
    want = f[(f["asset"] == asset) & (f["strategy"] == strategy) & (f["model_version"] == version)]
    want = want.drop(columns=["actual", "asset"]).reset_index(drop=True)
    rows = pd.read_parquet(out)
    assert len(want) > 0
    pd.testing.assert_frame_equal(rows, want, check_exact=True)
