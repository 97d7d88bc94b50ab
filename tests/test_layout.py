"""The run folder has one owner (:mod:`backtester.layout`): a universe's artifacts
(``models/<asset>/<strategy>/<version>``) reload through ``backtest model predict`` to the very rows
the run recorded, and a folder that is not a run or not an artifact is one error class."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from backtester.artifacts import load_artifact, predict
from backtester.cli import main
from backtester.core.errors import ArtifactError, RunError
from backtester.core.names import Member, Owner
from backtester.layout import MANIFEST, ArtifactHome, RunDir, locate_artifact, read_artifact, read_manifest
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


def test_a_universe_artifact_knows_its_run_asset_and_strategy(universe_run):
    folder = universe_run / "models" / "bbb" / "lstm#1" / "1"
    home = locate_artifact(folder)
    assert home == ArtifactHome(universe_run, Owner("bbb", "lstm#1"), 1)
    assert str(home.owner) == "bbb/lstm#1" and home.owner.member == Member("lstm", 1)
    meta = read_artifact(folder)
    assert (meta.strategy, meta.model_version, meta.restorable) == ("lstm#1", 1, True)
    assert meta.sha256 == read_manifest(universe_run).data_of("bbb").sha256
    assert RunDir(universe_run).artifact_dir(home.owner, 1) == folder
    assert load_artifact(folder).run_dir == universe_run


def test_the_manifest_reads_back_as_written(universe_run):
    m = read_manifest(universe_run)
    assert m.complete and m.universe and m.assets == ["aaa", "bbb"] and m.kind == "run"
    assert m.seeded() == {"lstm", "g"} and m.segments()["total"] == m.raw["plan"]["segments"]
    assert (universe_run / MANIFEST).read_text() == json.dumps(m.to_dict(), indent=2)


def test_not_a_run_and_not_an_artifact_are_one_error_class(universe_run, tmp_path):
    assert issubclass(ArtifactError, RunError)
    with pytest.raises(RunError, match=r"nope: no such run directory"):
        read_manifest(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    with pytest.raises(RunError, match=r"half: not a finished run \(no manifest.json\)"):
        read_manifest(tmp_path / "half")
    (tmp_path / "half" / MANIFEST).write_text("{")
    with pytest.raises(RunError, match=r"manifest.json: not valid JSON"):
        read_manifest(tmp_path / "half")
    moved = tmp_path / "elsewhere" / "bbb" / "har"
    shutil.copytree(universe_run / "models" / "bbb" / "har" / "1", moved / "1")
    with pytest.raises(ArtifactError, match=r"no config.yaml beside the models folder"):
        predict(moved / "1")
    res = CliRunner().invoke(main, ["model", "predict", str(moved / "1")], catch_exceptions=False)
    assert res.exit_code == 2 and res.output.startswith("error: ") and res.output.count("\n") == 1
