"""backtest compare: runs side by side on their common forecast rows, with tests and cost; bad input named."""

import re

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from backtester.cli import main
from backtester.compare import CompareError, compare
from backtester.config import parse_config
from backtester.runner import run

from .conftest import base_config


def small_run(path, tmp_path, name, start, **strategies):
    raw = base_config(path, tmp_path, **strategies)
    raw["name"], raw["backtest"]["start"] = name, start
    raw["evaluation"] = {"mcs_reps": 200}
    return run(parse_config(raw))


@pytest.fixture(scope="module")
def two_runs(minute_bars, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    path = tmp / "bars.parquet"
    minute_bars.to_parquet(path, index=False)
    a = small_run(path, tmp, "a", "2024-01-09 00:00", har={"type": "har"}, naive={})
    b = small_run(path, tmp, "b", "2024-01-12 00:00", naive={}, ewma={"type": "ewma", "retrain": {"rule": "never"}})
    return tmp, a, b


def test_compare_aligns_on_common_rows_and_labels_shared_names(two_runs):
    tmp, a, b = two_runs
    res = compare([a.out_dir, b.out_dir], tmp / "cmp", mcs_reps=200)
    losses = pd.read_parquet(res.out_dir / "losses.parquet")
    assert set(losses["strategy"]) == {"har", "a:naive", "b:naive", "ewma"}
    assert losses["issued_at"].min() == pd.Timestamp("2024-01-12", tz="UTC")  # b starts later
    keys = losses[losses["loss"] == "mse"].groupby("strategy")[["issued_at", "horizon"]].apply(
        lambda d: tuple(map(tuple, d.sort_values(["issued_at", "horizon"]).to_numpy())))
    assert keys.nunique() == 1  # exactly the same rows for every strategy
    # the same naive model in both runs: identical losses, and the MCS says so
    mcs = res.tests[res.tests["test"] == "mcs"].set_index(["model", "size"])
    assert mcs.loc[("b:naive", 0.10), "note"] == "identical losses to a:naive"
    dm = res.tests[(res.tests["test"] == "dm") & (res.tests["against"] == "har")]
    assert set(dm["model"]) == {"a:naive", "b:naive", "ewma"} and (dm["n"] > 0).all()
    assert {"compare.md", "comparison.parquet", "tests.parquet", "cost.parquet", "loss_by_horizon.png",
            "cost_vs_accuracy.png", "report.html"} <= {p.name for p in res.out_dir.iterdir()}
    assert (res.out_dir / "report.html").read_text().count("data:image/png;base64,") == 2
    assert "## Model Confidence Set" in (res.out_dir / "compare.md").read_text()


def test_compare_names_what_cannot_be_compared(two_runs, minute_bars):
    tmp, a, b = two_runs
    with pytest.raises(CompareError, match=r"--benchmark: 'garch' is not among the compared strategies: har, a:naive"):
        compare([a.out_dir, b.out_dir], tmp / "c2", benchmark="garch")
    with pytest.raises(CompareError, match=r"nope: no such run directory"):
        compare([a.out_dir, tmp / "nope"], tmp / "c3")
    unfinished = tmp / "results" / "half"
    unfinished.mkdir(parents=True)
    with pytest.raises(CompareError, match=r"half: not a finished run \(no manifest.json\)"):
        compare([a.out_dir, unfinished], tmp / "c4")
    other = tmp / "other.parquet"
    minute_bars.iloc[:-10].to_parquet(other, index=False)
    c = small_run(other, tmp, "c", "2024-01-09 00:00", naive={})
    with pytest.raises(CompareError, match=r"runs used different data: .*sha256"):
        compare([a.out_dir, c.out_dir], tmp / "c5")
    early = base_config(tmp / "bars.parquet", tmp, naive={})
    early["name"], early["backtest"]["end"] = "early", "2024-01-11 00:00"
    late = small_run(tmp / "bars.parquet", tmp, "late", "2024-01-15 00:00", naive={})
    with pytest.raises(CompareError, match=r"the runs share no forecast rows .*early: 2024-01-09.*late: 2024-01-15"):
        compare([run(parse_config(early)).out_dir, late.out_dir], tmp / "c6")
    with pytest.raises(CompareError, match=r"already there; pass --force"):
        compare([a.out_dir, b.out_dir], tmp / "cmp")
    for out in (a.out_dir, a.out_dir.parent):
        with pytest.raises(CompareError, match=r"would replace the run in"):
            compare([a.out_dir, b.out_dir], out, force=True)
    assert (a.out_dir / "manifest.json").is_file()


def test_compare_cli_runs_a_config_first_then_reuses_it(two_runs, tmp_path):
    tmp, a, b = two_runs
    raw = base_config(tmp / "bars.parquet", tmp_path, har={"type": "har"}, weekly={"type": "naive"},
                      once={"type": "naive", "bars": 3, "retrain": {"rule": "never"}})
    raw["evaluation"] = {"mcs_reps": 200}
    config = tmp_path / "schemes.yaml"
    config.write_text(yaml.safe_dump(raw))
    runner = CliRunner()
    res = runner.invoke(main, ["compare", str(config), "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "results" / "t" / "comparison" / "report.html").is_file()
    first = (tmp_path / "results" / "t" / "manifest.json").read_text()
    res = runner.invoke(main, ["compare", str(config), "--out", str(tmp_path / "cmp"), "--force"], catch_exceptions=False)
    assert res.exit_code == 0 and "reusing the finished run" in res.output, res.output
    assert (tmp_path / "results" / "t" / "manifest.json").read_text() == first
    res = runner.invoke(main, ["compare", str(tmp_path / "missing"), "--out", str(tmp_path / "x")], catch_exceptions=False)
    assert res.exit_code == 2 and res.output.count("\n") == 1 and re.search(r"missing: no such run directory", res.output)
