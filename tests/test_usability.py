"""Issue 9, as a new user meets it: the exact commands and the messages they give (plans only, no training)."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .conftest import ROOT

BACKTEST = str(Path(sys.executable).with_name("backtest"))


def backtest(*args, cwd=ROOT):
    """Run the installed ``backtest`` command in a fresh process, as a user would."""
    return subprocess.run([BACKTEST, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def plan(*sets):
    return backtest("plan", "configs/weekly.yaml", *[a for s in sets for a in ("--set", s)])


# --------------------------------------------------------------------------- --set on a rule or window block


@pytest.mark.parametrize("rule, label", [("monthly", "monthly day 1 00:00 UTC"), ("daily", "daily 00:00 UTC")])
def test_set_switches_the_retrain_rule_of_a_weekly_config(rule, label):
    # was: error: configs/weekly.yaml: backtest.retrain.weekday: unknown key (did you mean 'day'?)
    proc = plan(f"backtest.retrain.rule={rule}")
    assert proc.returncode == 0, proc.stderr
    assert (
        "lstm#1, lstm#2, lstm#3, har, harq_periodic, garch, har_garch, ewma, naive, rolling_mean: " in proc.stdout
    )  # 3 seeds
    assert f"({label}; window expanding)" in proc.stdout


def test_set_switches_the_window_from_expanding_to_rolling():
    proc = plan("backtest.window.kind=rolling", "backtest.window.length=30D")
    assert proc.returncode == 0, proc.stderr
    assert "8 retrains (weekly mon 00:00 UTC; window rolling 30D)" in proc.stdout
    assert (
        "  2024-02-05 00:00:00+00:00    2024-01-06 01:00:00+00:00    2024-02-05 00:00:00+00:00       720" in proc.stdout
    )


def test_an_error_caused_by_an_override_names_the_override():
    cases = [
        (
            ["execution.jobs=0"],
            "error: --set execution.jobs=0: execution.jobs: Input should be greater than or equal to 1 (got 0)",
        ),
        (
            ["backtest.retrain.rule=monthly", "backtest.retrain.weekday=tue"],
            "error: --set backtest.retrain.weekday=tue: backtest.retrain.weekday: unknown key (did you mean 'day'?); "
            "valid keys here: rule, day, time, timezone",
        ),
        (
            ["backtest.window.kind=rolling"],
            "error: --set backtest.window.kind=rolling: backtest.window: a rolling window needs exactly one of "
            "'length' (e.g. 30D) or 'bars' (e.g. 2000)",
        ),
    ]
    for sets, message in cases:
        proc = plan(*sets)
        assert (proc.returncode, proc.stderr.strip()) == (2, message), sets


# --------------------------------------------------------------------------- paths relative to the config file


@pytest.fixture
def layout(tmp_path):
    """The repository's layout in a temporary folder: configs/smoke.yaml and data/sample_1m.parquet."""
    (tmp_path / "configs").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "configs" / "smoke.yaml").write_text((ROOT / "configs" / "smoke.yaml").read_text())
    (tmp_path / "data" / "sample_1m.parquet").symlink_to(ROOT / "data" / "sample_1m.parquet")
    return tmp_path


def test_plan_from_the_configs_folder_finds_the_data(layout):
    # was: error: data/sample_1m.parquet: data file not found
    proc = backtest("plan", "smoke.yaml", cwd=layout / "configs")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("data: 2,160 bars from 2024-01-01 01:00:00+00:00")


def test_plan_from_the_real_configs_folder():
    proc = backtest("plan", "smoke.yaml", "--set", "data.cache_dir=null", cwd=ROOT / "configs")
    assert proc.returncode == 0, proc.stderr


def test_a_missing_data_file_names_every_place_tried(layout):
    (layout / "data" / "sample_1m.parquet").unlink()
    work = layout / "configs"
    proc = backtest("plan", "smoke.yaml", cwd=work)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: smoke.yaml: data.path: data/sample_1m.parquet not found (looked in {work}/data/sample_1m.parquet and "
        f"{layout}/data/sample_1m.parquet); paths are relative to the working directory, the config file's folder or "
        "its parent"
    )


def test_a_data_path_given_by_set_is_relative_to_the_working_directory(layout):
    work = layout / "configs"
    proc = backtest("plan", "smoke.yaml", "--set", "data.path=data/sample_1m.parquet", cwd=work)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: --set data.path=data/sample_1m.parquet: data.path: data/sample_1m.parquet not found (looked in "
        f"{work}/data/sample_1m.parquet); paths given with --set are relative to the working directory"
    )
    proc = backtest("plan", "smoke.yaml", "--set", "data.path=../data/sample_1m.parquet", cwd=work)
    assert proc.returncode == 0, proc.stderr


def test_a_naive_run_from_the_configs_folder_writes_results_under_the_working_directory(layout):
    work = layout / "configs"
    proc = backtest(
        "run",
        "smoke.yaml",
        "-q",
        "--set",
        "strategies={naive: {type: naive}}",
        "--set",
        "output.plots=false",
        "--set",
        "output.save_models=false",
        cwd=work,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "wrote results/smoke/"
    out = work / "results" / "smoke"
    assert yaml.safe_load((out / "config.yaml").read_text())["data"]["path"] == "../data/sample_1m.parquet"
    assert pd.read_parquet(out / "forecasts.parquet")["issued_at"].nunique() == 14 * 24


# --------------------------------------------------------------------------- hints that help (item 3)


def test_a_rolling_window_too_short_says_by_how_much_for_every_strategy_at_once():
    # was: "... has 50 bars but strategy 'har' needs 179; start later ..." (one strategy per run; cannot help)
    proc = plan("backtest.window.kind=rolling", "backtest.window.bars=50")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: backtest.window: a rolling window of 50 bars is too short (strategy 'lstm' needs 241, "
        "strategy 'har' needs 197, strategy 'harq_periodic' needs 198, strategy 'garch' needs 100, strategy 'har_garch' needs 197); set bars: 241 or more"
    )
    proc = plan("backtest.window.kind=rolling", "backtest.window.length=2D")
    assert proc.stderr.strip() == (
        "error: backtest.window: a rolling window of 2D holds 48 bars, too few (strategy 'lstm' needs 241, "
        "strategy 'har' needs 197, strategy 'harq_periodic' needs 198, strategy 'garch' needs 100, strategy 'har_garch' needs 197); set length: 11D or more"
    )


def test_a_start_too_early_lists_every_strategy_and_the_first_start_that_works():
    proc = plan("backtest.start=2024-01-03 00:00")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: --set backtest.start=2024-01-03 00:00: backtest.start: the first training window "
        "(2024-01-01 01:00:00+00:00 .. 2024-01-03 00:00:00+00:00) "
        "has 48 bars, too few (strategy 'lstm' needs 241, strategy 'har' needs 197, strategy 'harq_periodic' needs 198, strategy 'garch' needs 100, strategy 'har_garch' needs 197); "
        "start at 2024-01-11 01:00:00+00:00 or later, or shrink the lookback/lags"
    )


# --------------------------------------------------------------------------- lags and windows in time (item 4)


def test_har_defaults_mean_last_bar_day_and_week_on_daily_bars():
    # was: HAR's lags 1/24/168 were bar counts, so on daily bars HAR asked for 178+ bars
    proc = plan("data.bar=1D", "backtest.start=2024-03-31", "strategies.lstm.memory=7D", "strategies.garch.type=naive")
    assert proc.returncode == 0, proc.stderr
    proc = backtest("data", "prepare", "configs/weekly.yaml", "--set", "data.bar=1D")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "sets, message",
    [
        (
            ["strategies.har.lags=[1h, 1D, 90min]"],
            "strategies.har.lags: 90min is not a whole number of 1h bars; give a multiple of 1h or a bar count",
        ),
        (["strategies.lstm.memory=soon"], "strategies.lstm.memory: 'soon' is not a duration"),
    ],
)
def test_durations_that_are_not_whole_bars_are_one_line(sets, message):
    proc = plan(*sets)
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_lags_windows_and_lookbacks_as_durations_equal_the_bar_counts(tmp_path):
    from backtester.config import load_config

    tf = "backend=jax"  # this test process already runs Keras on JAX
    as_time = load_config(
        ROOT / "configs/weekly.yaml",
        ["strategies.har.lags=[1h, 1D, 7D]", "strategies.lstm.memory=60h", "strategies.rolling_mean.bars=1D", tf],
    )
    as_bars = load_config(ROOT / "configs/weekly.yaml", [tf])
    assert as_time.resolved()["strategies"] == as_bars.resolved()["strategies"]
    assert (
        as_bars.strategies["har"].params.lags == [1, 24, 168] and as_bars.strategies["rolling_mean"].params.bars == 24
    )
    five = load_config(ROOT / "configs/weekly.yaml", ["data.bar=15min", tf])
    assert five.strategies["har"].params.lags == [1, 96, 672] and five.strategies["rolling_mean"].params.bars == 96


# --------------------------------------------------------------------------- CSV dialects (item 6)


@pytest.fixture(scope="module")
def csv_files(tmp_path_factory):
    from backtester.synth import synth_bars

    out = tmp_path_factory.mktemp("csv")
    df = synth_bars(start="2024-01-01", days=14, seed=1)[["timestamp", "close"]]  # past the 12th: month-first fails
    ts = pd.to_datetime(df["timestamp"])
    dmy = df.assign(timestamp=ts.dt.strftime("%d/%m/%Y %H:%M"))
    dmy.to_csv(out / "dmy.csv", index=False)
    dmy.to_csv(out / "semi.csv", index=False, sep=";")
    df.assign(timestamp=ts.dt.strftime("%Y-%m-%d %H:%M")).to_csv(out / "nohead.csv", index=False, header=False)
    df.assign(timestamp=ts.astype("int64") // 10**6).to_csv(out / "ms.csv", index=False)
    df.to_csv(out / "iso.csv", index=False)
    return out


def prepare(csv_files, name, *sets):
    args = [
        "data",
        "prepare",
        "configs/smoke.yaml",
        "--set",
        f"data.path={csv_files / name}",
        "--set",
        f"data.cache_dir={csv_files / 'cache'}",
    ]
    return backtest(*args, *[a for s in sets for a in ("--set", s)])


@pytest.mark.parametrize(
    "name, message, fix",
    [
        # was: read month-first, then "timestamps are not sorted" (a wrong lead)
        (
            "dmy.csv",
            "read month-first are out of order, but read day-first they are sorted: "
            "set data.timestamp_format: '%d/%m/%Y %H:%M'",
            ["data.timestamp_format=%d/%m/%Y %H:%M"],
        ),
        (
            "semi.csv",
            "the file seems to be separated by ';': set data.separator: ';'",
            ["data.separator=;", "data.timestamp_format=%d/%m/%Y %H:%M"],
        ),
        (
            "nohead.csv",
            "the file seems to have no header row (its first row reads as data): set data.header: false",
            ["data.header=false", "data.timestamp_column=0", "data.price_column=1"],
        ),
        ("ms.csv", "has epoch numbers out of range", []),  # milliseconds are recognised by their magnitude
    ],
)
def test_a_csv_dialect_is_read_with_its_option_and_a_failure_suggests_it(csv_files, name, message, fix):
    expected = prepare(csv_files, "iso.csv")
    assert expected.returncode == 0, expected.stderr
    if name == "ms.csv":
        proc = prepare(csv_files, name, "data.epoch_unit=s")  # the wrong unit, said explicitly
        assert proc.returncode == 2 and message in proc.stderr and "set data.epoch_unit" in proc.stderr
        same = lambda out: out.strip().removesuffix(" (from cache)")
        assert same(prepare(csv_files, name).stdout) == same(expected.stdout)
        return
    proc = prepare(csv_files, name)
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    fixed = prepare(csv_files, name, *fix)
    assert fixed.returncode == 0, fixed.stderr
    same = lambda out: out.strip().removesuffix(" (from cache)")
    assert same(fixed.stdout) == same(expected.stdout)  # the same bars as the ISO file


# --------------------------------------------------------------------------- plan estimates (item 8)


def test_plan_shows_retrains_samples_and_an_estimated_time_per_strategy(tmp_path):
    sets = ["--set", f"output.dir={tmp_path}", "--set", f"data.cache_dir={tmp_path}/cache", "--set", "backend=jax"]
    proc = backtest("plan", "configs/smoke.yaml", *sets)
    assert proc.returncode == 0, proc.stderr
    assert "  strategy         retrains tunings training samples  est. time" in proc.stdout
    assert "  lstm                    2       0" in proc.stdout  # retrains and tunings; no time without --estimate
    assert "run time: `backtest plan --estimate` times one small fit per strategy" in proc.stdout
    proc = backtest("plan", "configs/smoke.yaml", "--estimate", *sets)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.startswith("  ") and "(timing)" in line}
    assert set(lines) == {"lstm", "har", "garch", "ewma", "naive", "rolling_mean"}
    assert "estimated fit time in one process:" in proc.stdout
    run = backtest("run", "configs/smoke.yaml", *sets)
    assert run.returncode == 0, run.stderr
    # item 9: progress counts retrains (what the plan shows), tables say what they average and keep one format per column
    assert "walk-forward: 0/12 retrains" in run.stderr and "s left" in run.stderr
    out = run.stdout.splitlines()
    assert (
        out[0] == "mean over horizons 1..6 of each horizon's mean over its forecasts with an actual; best QLIKE first"
    )
    assert out[1] == "  strategy            QLIKE   MSE (vol)   MAE (vol)"
    for line in out[2:8]:
        _, qlike, mse, mae = line.split()
        assert len(qlike.split(".")[1]) == 4 and "e-" in mse and "e-" in mae
    proc = backtest("plan", "configs/smoke.yaml", *sets)
    assert proc.stdout.count("(last run)") == 6  # an earlier run of the same config gives the figures
    proc = backtest("plan", "configs/smoke.yaml", "--estimate", *sets)  # asked for: timed now, and says so
    assert proc.stdout.count("(timing)") == 6 and "(last run)" not in proc.stdout
    assert "timing one small fit per strategy" in proc.stderr


# --------------------------------------------------------------------------- FX days (item 11)


def test_fx_daily_bars_close_at_five_pm_new_york_across_daylight_saving(tmp_path):
    import numpy as np

    t = pd.date_range("2024-03-03 22:00", "2024-03-16 00:00", freq="min", tz="UTC")  # DST starts 2024-03-10
    prices = pd.DataFrame(
        {"timestamp": t, "close": 1.1 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 1e-4, len(t))))}
    )
    prices.to_parquet(tmp_path / "fx.parquet", index=False)
    sets = [
        "--set",
        f"data.path={tmp_path / 'fx.parquet'}",
        "--set",
        "data.calendar=fx",
        "--set",
        "data.bar=1d",
        "--set",
        f"data.cache_dir={tmp_path / 'cache'}",
        "--set",
        "backtest.start=2024-03-12",
    ]
    proc = backtest("data", "prepare", "configs/weekly.yaml", *sets, "--out", tmp_path / "bars.parquet")
    assert proc.returncode == 0, proc.stderr
    closes = pd.read_parquet(tmp_path / "bars.parquet").index
    assert [c.strftime("%a %m-%d %H:%M") for c in closes] == [
        "Mon 03-04 22:00",
        "Tue 03-05 22:00",
        "Wed 03-06 22:00",
        "Thu 03-07 22:00",
        "Fri 03-08 22:00",  # 17:00 EST
        "Mon 03-11 21:00",
        "Tue 03-12 21:00",
        "Wed 03-13 21:00",
        "Thu 03-14 21:00",
        "Fri 03-15 21:00",
    ]  # 17:00 EDT
    utc = backtest(
        "data", "prepare", "configs/weekly.yaml", *sets, "--set", "data.anchor=utc", "--out", tmp_path / "u.parquet"
    )
    assert utc.returncode == 0, utc.stderr
    assert {c.strftime("%H:%M") for c in pd.read_parquet(tmp_path / "u.parquet").index} == {"00:00"}


def test_garch_profile_follows_the_calendars_session_time():
    from backtester.config import load_config

    fx = load_config(ROOT / "configs/weekly.yaml", ["data.calendar=fx", "backend=jax"])
    assert fx.strategies["garch"].params.session_timezone == "America/New_York"
    utc = load_config(ROOT / "configs/weekly.yaml", ["backend=jax"])
    assert utc.strategies["garch"].params.session_timezone == "UTC"


def test_an_error_found_after_loading_names_the_override_too():
    proc = plan("backtest.start=2030-01-01")
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        "error: --set backtest.start=2030-01-01: backtest.start: 2030-01-01 00:00:00+00:00 is after the last bar"
    )
