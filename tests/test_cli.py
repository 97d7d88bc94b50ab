"""The CLI end to end: the smoke config, the output files and columns, and every kind of bad input."""

import json
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from backtester.cli import main

from .conftest import ROOT, base_config

FORECAST_COLUMNS = [
    "asset",
    "strategy",
    "issued_at",
    "target_time",
    "horizon",
    "forecast",
    "model_version",
    "trained_through",
    "actual",
]
RETRAIN_COLUMNS = [
    "asset",
    "strategy",
    "model_version",
    "retrain_time",
    "window_start",
    "window_end",
    "train_bars",
    "samples",
    "train_loss",
    "val_loss",
    "seconds",
    "status",
    "seed",
    "details",
    "artifact",
    "stacked",
]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    res = invoke(
        "run",
        ROOT / "configs/smoke.yaml",
        "-q",
        "--set",
        f"output.dir={out}",
        "--set",
        f"data.cache_dir={out}/cache",
        "--set",
        f"data.path={ROOT / 'data/sample_1m.parquet'}",
    )
    assert res.exit_code == 0, res.output
    return out / "smoke"


def test_smoke_run_writes_every_output(smoke_run):
    names = {p.name for p in smoke_run.iterdir()}
    assert names == {
        "config.yaml",
        "manifest.json",
        "forecasts.parquet",
        "retrains.parquet",
        "metrics.parquet",
        "report.md",
        "forecast_vs_actual.png",
        "error_by_horizon.png",
        "models",
        "segments",
        "tests.parquet",
        "cost.parquet",
        "report.html",
        "scores.parquet",
        "breakdowns.parquet",
        "rolling_loss.png",
        "cumulative_loss_difference.png",
        "loss_by_segment.png",
        "loss_by_hour.png",
        "cost_vs_accuracy.png",
        "economic.parquet",  # what the forecasts are worth (issue 29)
        "returns.parquet",
        "positions.parquet",
        "var.parquet",
        "var_exceedances.png",
        "target_vol.png",
        "equity.png",
        "when.png",
    }
    report = (smoke_run / "report.md").read_text()
    assert "## What it is worth" in report and "## The tests referees ask for" in report
    assert "sizing by `lstm` gave" in report and "its 1 % VaR was exceeded in" in report
    f = pd.read_parquet(smoke_run / "forecasts.parquet")
    assert list(f.columns) == FORECAST_COLUMNS
    assert (f["trained_through"] <= f["issued_at"]).all()
    cfg = yaml.safe_load((smoke_run / "config.yaml").read_text())
    strategies = set(cfg["strategies"])
    assert set(f["strategy"]) == strategies
    # every issue time has horizons 1..H for every strategy (the test period ends well before the data)
    counts = f.groupby(["strategy", "issued_at"]).horizon.agg(["min", "max", "count"])
    assert (counts["min"] == 1).all() and (counts["max"] == 6).all() and (counts["count"] == 6).all()
    assert f.groupby("strategy").issued_at.nunique().eq(14 * 24).all()
    # actual is the RV at the target bar
    assert f["actual"].notna().mean() > 0.99

    r = pd.read_parquet(smoke_run / "retrains.parquet")
    assert list(r.columns) == RETRAIN_COLUMNS
    assert sorted(r["retrain_time"].unique()) == [
        pd.Timestamp("2024-02-19", tz="UTC"),
        pd.Timestamp("2024-02-26", tz="UTC"),
    ]
    assert (r["status"] == "ok").all() and (r["window_end"] == r["retrain_time"]).all()
    garch = json.loads(r.loc[r["strategy"] == "garch", "details"].iloc[0])
    assert {"omega", "alpha", "beta"} <= set(garch) and garch["alpha"] + garch["beta"] < 1
    assert len(json.loads(r.loc[r["strategy"] == "lstm", "details"].iloc[0])["loss_history"]) == 1
    # the model version in each row is the latest retrain at or before its issue time
    lstm = f[f["strategy"] == "lstm"]
    assert (lstm.loc[lstm["issued_at"] < "2024-02-26", "model_version"] == 1).all()
    assert (lstm.loc[lstm["issued_at"] >= "2024-02-26", "model_version"] == 2).all()

    m = pd.read_parquet(smoke_run / "metrics.parquet")
    assert list(m.columns) == ["asset", "strategy", "horizon", "n", "mse", "mae", "qlike"]
    assert len(m) == len(strategies) * 6 and m[["mse", "mae", "qlike"]].notna().all().all()

    manifest = json.loads((smoke_run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["seed"] == 0
    assert len(manifest["data"]["sha256"]) == 64
    assert {"tensorflow", "keras", "pandas", "numpy", "arch"} <= set(manifest["versions"])
    assert {"prepare", "train", "predict", "engine_overhead", "evaluate", "total"} <= set(manifest["seconds"])


def test_refuses_to_overwrite_a_finished_run(smoke_run):
    before = (smoke_run / "manifest.json").read_text()
    res = invoke(
        "run",
        ROOT / "configs/smoke.yaml",
        "-q",
        "--set",
        f"output.dir={smoke_run.parent}",
        "--set",
        f"data.path={ROOT / 'data/sample_1m.parquet'}",
    )
    assert res.exit_code == 2
    assert "a finished run is already there; pass --force" in res.output
    assert (smoke_run / "manifest.json").read_text() == before


def test_plan_prints_retrains_before_training():
    res = invoke(
        "plan",
        ROOT / "configs/weekly.yaml",
        "--set",
        f"data.path={ROOT / 'data/sample_1m.parquet'}",
        "--set",
        "data.cache_dir=null",
        "--set",
        "backend=jax",
    )  # this test process has Keras on jax
    assert res.exit_code == 0, res.output
    assert "retrains: 80 in all" in res.output and "2024-03-25 00:00:00+00:00" in res.output  # lstm: 3 seeds
    assert (
        "lstm#1, lstm#2, lstm#3, har, harq_periodic, garch, har_garch, ewma, naive, rolling_mean: 8 retrains (weekly "
        "mon 00:00 UTC; window expanding)"
    ) in res.output
    assert "forecast rows: 314,040" in res.output


def write_config(tmp_path, raw) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def csv_with(tmp_path, minute_bars, edit):
    frame = minute_bars.copy()
    frame["timestamp"] = frame["timestamp"].astype(str)
    frame = edit(frame)
    path = tmp_path / "bars.csv"
    frame.to_csv(path, index=False)
    return path


BAD_DATA = [
    (
        "unsorted",
        lambda f: pd.concat([f.iloc[10:20], f.iloc[:10], f.iloc[20:]]),
        r"bars.csv: timestamps are not sorted",
    ),
    (
        "duplicate",
        lambda f: pd.concat([f.iloc[:5], f.iloc[4:]]),
        r"bars.csv: duplicate timestamp .* remove duplicate rows",
    ),
    ("nan price", lambda f: f.assign(close=f["close"].where(f.index != 7)), r"non-finite or non-positive price.*row 7"),
    (
        "negative price",
        lambda f: f.assign(close=f["close"].where(f.index != 9, -1.0)),
        r"non-finite or non-positive price",
    ),
    (
        "bad timestamp",
        lambda f: f.assign(timestamp=f["timestamp"].where(f.index != 3, "not a time")),
        r"unparseable timestamp",
    ),
    (
        "wrong column",
        lambda f: f.rename(columns={"close": "Close"}),
        r"bars.csv: no column 'close'; columns are timestamp, open, high, low, Close",
    ),
]


@pytest.mark.parametrize("label, edit, pattern", BAD_DATA, ids=[b[0] for b in BAD_DATA])
def test_bad_data_is_one_line_exit_2_and_no_run_dir(label, edit, pattern, tmp_path, minute_bars):
    raw = base_config(csv_with(tmp_path, minute_bars, edit), tmp_path, naive={})
    res = invoke("run", write_config(tmp_path, raw), "-q")
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and res.output.startswith("error: ")
    assert re.search(pattern, res.output), res.output
    assert not (tmp_path / "results" / "t").exists()


def test_bad_inputs_each_give_one_line(tmp_path, minute_file):
    cases = [
        ({"data": {"path": str(tmp_path / "missing.parquet")}}, r"missing.parquet: data file not found"),
        ({"backtest": {"start": "2030-01-01"}}, r"backtest.start: .* is after the last bar"),
        (
            {"backtest": {"start": "2024-01-01 02:00"}},
            r"backtest.start: the first training window .* has \d+ bars, too few \(strategy .h. needs",
        ),
        ({"strategies": {"m": {"type": "lsmt"}}}, r"unknown strategy 'lsmt' \(did you mean 'lstm'\?\)"),
        ({"backtest": {"retrain": {"rule": "weekly", "weekday": "someday"}}}, r"backtest.retrain.weekday"),
    ]
    for patch, pattern in cases:
        raw = base_config(minute_file, tmp_path, h={"type": "har"})
        for section, value in patch.items():
            raw[section] = value if section == "strategies" else {**raw[section], **value}
        res = invoke("run", write_config(tmp_path, raw), "-q")
        assert res.exit_code == 2, (patch, res.output)
        assert res.output.count("\n") == 1, res.output
        assert re.search(pattern, res.output), res.output
    res = invoke("run", tmp_path / "nope.yaml")
    assert res.exit_code == 2 and "nope.yaml: config file not found" in res.output


def test_real_process_prints_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "backtester.cli", "run", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'nope.yaml'}: config file not found; check the path"
    assert "Traceback" not in proc.stderr


def test_data_prepare_and_synth(tmp_path):
    out = tmp_path / "s.csv"
    res = invoke("data", "synth", "--out", out, "--days", 3, "--seed", 1)
    assert res.exit_code == 0 and out.is_file()
    raw = base_config(out, tmp_path)
    res = invoke("data", "prepare", write_config(tmp_path, raw), "--out", tmp_path / "rv.parquet")
    assert res.exit_code == 0, res.output
    assert "72 bars" in res.output and "1 missing" in res.output
    bars = pd.read_parquet(tmp_path / "rv.parquet")
    assert list(bars.columns[:3]) == ["rv", "ret", "n_returns"] and len(bars) == 72
    assert {"bpv", "rq", "rs_plus", "rs_minus", "jump"} <= set(bars.columns)  # every realized measure beside RV


def test_quiet_prints_where_the_results_went_and_qq_nothing(tmp_path, minute_file):
    raw = base_config(minute_file, tmp_path, naive={})
    res = invoke("run", write_config(tmp_path, raw), "-q")
    assert res.exit_code == 0 and res.output == f"wrote {tmp_path / 'results' / 't'}/\n"
    res = invoke("run", write_config(tmp_path, raw), "-qq", "--force")
    assert res.exit_code == 0 and res.output == ""


def test_ctrl_c_exits_130_and_keeps_nothing_half_written(tmp_path, minute_file, monkeypatch):
    raw = base_config(minute_file, tmp_path, naive={})

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("backtester.runner.run_universe", interrupted)
    res = invoke("run", write_config(tmp_path, raw), "-q")
    assert res.exit_code == 130
    assert res.output.strip() == (
        f"interrupted: nothing was written to {tmp_path / 'results' / 't'}/; run the same command again to start over"
    )
    # only the hidden staging directory (empty: no segment had finished) and the run's lock file
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [".t.lock", ".t.partial"]
    assert list((tmp_path / "results" / ".t.partial").rglob("*.json")) == []


def test_debug_shows_the_traceback_behind_an_error(tmp_path):
    from backtester import cli

    try:
        res = CliRunner().invoke(main, ["--debug", "run", str(tmp_path / "missing.yaml")])
    finally:
        cli._DEBUG[0] = False
    assert res.exit_code == 2
    assert "Traceback (most recent call last)" in res.output and "error: " in res.output
    assert "Traceback" not in CliRunner().invoke(main, ["run", str(tmp_path / "missing.yaml")]).output


def test_ctrl_c_of_a_fresh_run_says_to_continue_without_fresh(tmp_path, minute_file, monkeypatch):
    raw = base_config(minute_file, tmp_path, naive={})
    stage = tmp_path / "results" / ".t.partial" / "segments" / "naive"

    def interrupted(*args, **kwargs):  # one segment finished, then Ctrl-C
        stage.mkdir(parents=True, exist_ok=True)
        (stage / "0001.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr("backtester.runner.run_universe", interrupted)
    res = invoke("run", write_config(tmp_path, raw), "-q", "--fresh")
    assert res.exit_code == 130
    assert res.output.strip().endswith(
        "run the same command without --fresh to continue (with --fresh it computes every segment again)"
    )
    res = invoke("run", write_config(tmp_path, raw), "-q")
    assert res.output.strip().endswith("; run the same command again to continue")


def test_an_error_after_the_progress_bar_starts_on_its_own_line(tmp_path, minute_file, monkeypatch):
    from backtester import cli_output
    from backtester.core.errors import FatalError

    raw = base_config(minute_file, tmp_path, naive={})

    def failing(*args, **kwargs):
        raise FatalError("naive: every retrain failed")

    monkeypatch.setattr("backtester.runner.run_universe", failing)
    monkeypatch.setattr(cli_output.ProgressBar, "_start", lambda self, plan: setattr(self, "bar", _Bar()))
    res = invoke("run", write_config(tmp_path, raw))
    assert _Bar.closed, res.output  # the bar ended its line before the error was printed
    assert res.output.splitlines()[-1] == "error: naive: every retrain failed"


class _Bar:
    """A stand-in for the tqdm bar: closing it ends its line."""

    closed = False
    disable = False

    def close(self) -> None:
        _Bar.closed = True


def test_an_empty_glob_under_data_suggests_making_synthetic_assets(tmp_path):
    path = tmp_path / "u.yaml"
    path.write_text(
        'name: u\ndata: {assets: data/nothing_here/syn*.parquet}\nbacktest: {start: "2024-01-03"}\nstrategies: {naive: {}}\n'
    )
    res = invoke("plan", str(path))
    assert res.exit_code == 2
    assert "to make synthetic assets there: backtest data synth --out data/nothing_here --assets 3" in res.output


def test_a_decimal_comma_csv_is_named_and_read_with_data_decimal(tmp_path, minute_bars):
    from backtester.config import DataConfig
    from backtester.data import load_prices

    frame = minute_bars.head(3000).copy()
    frame["timestamp"] = frame["timestamp"].astype(str)
    path = tmp_path / "komma.csv"
    frame.to_csv(path, index=False, sep=";", decimal=",")
    raw = base_config(path, tmp_path, naive={})
    raw["data"]["separator"] = ";"
    res = invoke("data", "prepare", write_config(tmp_path, raw))
    assert res.exit_code == 2 and res.output.count("\n") == 1
    assert "has non-numeric prices (e.g. " in res.output and "a decimal comma); set data.decimal: ','" in res.output
    plain = tmp_path / "plain.csv"
    frame.to_csv(plain, index=False)
    got = load_prices(DataConfig(path=path, separator=";", decimal=","))
    pd.testing.assert_series_equal(got, load_prices(DataConfig(path=plain)))
