"""backtest compare: runs side by side on their common forecast rows, with tests and cost; bad input named."""

import re

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from backtester.cli import main
from backtester.compare import compare
from backtester.config import parse_config
from backtester.core.errors import CompareError, RunError
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
    keys = (
        losses[losses["loss"] == "mse"]
        .groupby("strategy")[["issued_at", "horizon"]]
        .apply(lambda d: tuple(map(tuple, d.sort_values(["issued_at", "horizon"]).to_numpy())))
    )
    assert keys.nunique() == 1  # exactly the same rows for every strategy
    # the same naive model in both runs: identical losses, and the MCS says so
    mcs = res.tests[res.tests["test"] == "mcs"].set_index(["model", "size"])
    assert mcs.loc[("b:naive", 0.10), "note"] == "identical losses to a:naive"
    dm = res.tests[(res.tests["test"] == "dm") & (res.tests["against"] == "har")]
    assert set(dm["model"]) == {"a:naive", "b:naive", "ewma"} and (dm["n"] > 0).all()
    assert {
        "compare.md",
        "comparison.parquet",
        "tests.parquet",
        "cost.parquet",
        "loss_by_horizon.png",
        "cost_vs_accuracy.png",
        "report.html",
    } <= {p.name for p in res.out_dir.iterdir()}
    assert (res.out_dir / "report.html").read_text().count("data:image/png;base64,") == 2
    assert "## Model Confidence Set" in (res.out_dir / "compare.md").read_text()
    # what the forecasts are worth, on the common rows: the same naive model gives the same figures in both runs
    assert "## What it is worth" in (res.out_dir / "compare.md").read_text()
    eco = pd.read_parquet(res.out_dir / "economic.parquet")
    target = eco[eco["section"] == "target"].pivot_table(index="metric", columns="strategy", values="value")
    pd.testing.assert_series_equal(target["a:naive"], target["b:naive"], check_names=False)
    assert {"var_kupiec", "es_z2", "dm_economic"} <= set(res.tests["test"])


def test_compare_names_what_cannot_be_compared(two_runs, minute_bars):
    tmp, a, b = two_runs
    with pytest.raises(
        CompareError, match=r"--benchmark: 'garch' is not among the compared strategies; choose one of: har, a:naive"
    ):
        compare([a.out_dir, b.out_dir], tmp / "c2", benchmark="garch")
    with pytest.raises(RunError, match=r"nope: no such run directory"):
        compare([a.out_dir, tmp / "nope"], tmp / "c3")
    unfinished = tmp / "results" / "half"
    unfinished.mkdir(parents=True)
    with pytest.raises(RunError, match=r"half: not a finished run \(no manifest.json\)"):
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
    raw = base_config(
        tmp / "bars.parquet",
        tmp_path,
        har={"type": "har"},
        weekly={"type": "naive"},
        once={"type": "naive", "bars": 3, "retrain": {"rule": "never"}},
    )
    raw["evaluation"] = {"mcs_reps": 200}
    config = tmp_path / "schemes.yaml"
    config.write_text(yaml.safe_dump(raw))
    runner = CliRunner()
    res = runner.invoke(main, ["compare", str(config), "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "results" / "t" / "comparison" / "report.html").is_file()
    first = (tmp_path / "results" / "t" / "manifest.json").read_text()
    res = runner.invoke(
        main, ["compare", str(config), "--out", str(tmp_path / "cmp"), "--force"], catch_exceptions=False
    )
    assert res.exit_code == 0 and "reusing the finished run" in res.output, res.output
    assert (tmp_path / "results" / "t" / "manifest.json").read_text() == first
    res = runner.invoke(
        main, ["compare", str(tmp_path / "missing"), "--out", str(tmp_path / "x")], catch_exceptions=False
    )
    assert (
        res.exit_code == 2 and res.output.count("\n") == 1 and re.search(r"missing: no such run directory", res.output)
    )


# --------------------------------------------------------------------------- the answer in words


def answer_table(n=300):
    """A loss table on one asset where: ``w`` (3 seeds) clearly beats ``m`` (3 seeds), ``d`` (one seed) ties
    ``w`` within ``w``'s seed spread, and ``m`` ties ``har`` except for one bad retrain segment (its 6th)."""
    rng = np.random.default_rng(3)
    t = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    har = rng.uniform(0.5, 1.5, n)
    seg = np.repeat(np.arange(1, 7), n // 6)
    m = har + rng.normal(0, 0.05, n) + 3.0 * (seg == 6)
    w = har - 0.3 + rng.normal(0, 0.02, n)
    values = {"har": har, "m": m, "w": w, "d": w + rng.normal(0, 0.01, n)}
    for k, offset in enumerate((-0.1, 0.0, 0.1), start=1):
        values[f"w#{k}"] = w + offset + rng.normal(0, 0.02, n)
        values[f"m#{k}"] = m + rng.normal(0, 0.02, n)
    versions = {
        "har": np.ones(n, int),
        "d": np.repeat(np.arange(1, 31), n // 30),
        "w": np.repeat(np.arange(1, 4), n // 3),
    }
    frames = []
    for name, v in values.items():
        base = name.split("#")[0]
        frames.append(
            pd.DataFrame(
                {
                    "asset": "X",
                    "strategy": name,
                    "issued_at": t,
                    "target_time": t + pd.Timedelta("1h"),
                    "horizon": 1,
                    "model_version": versions.get(base, seg),
                    "loss": "qlike",
                    "value": v,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def scheme_profiles(**schedules):
    """Profiles of one learned model under several schedules, and HAR."""
    from backtester.evaluation.profiles import Profile

    out = {"har": Profile("har", "HAR-RV", False, (), (), "h", "weekly", 1)}
    for name, (schedule, seeds) in schedules.items():
        out[name] = Profile(name, "the notebook's LSTM", True, (), (), "lstm", schedule, seeds)
    return out


def test_the_answer_says_which_step_up_in_cost_is_worth_it_and_when_noise_decides():
    from backtester.evaluation.accuracy import dm_table
    from backtester.evaluation.answer import answer_lines, benchmark_table
    from backtester.evaluation.verdict import Answer

    table = answer_table()
    tests = dm_table(table, "qlike", "har").assign(test="dm", asset="X")
    cost = pd.DataFrame(
        {
            "strategy": ["har", "m", "w", "d"],
            "retrains": [1, 6, 3, 30],  # per seed
            "train_seconds": [0.001, 10.0, 25.0, 100.0],
            "tuning_seconds": [0.0, 0.0, 5.0, 0.0],
        }
    )
    retrains = pd.DataFrame(
        {
            "asset": "X",
            "strategy": "m#1",
            "model_version": range(1, 7),
            "status": "ok",
            "retrain_time": pd.date_range("2024-01-01", periods=6, freq="50h", tz="UTC"),
        }
    )
    profiles = scheme_profiles(w=("weekly", 3), m=("monthly", 3), d=("daily", 1))
    ans = Answer(table, tests, cost, "qlike", retrains)
    lines = answer_lines(ans, "har", profiles)
    text = "\n".join(lines)
    assert "- **Lowest qlike: `w`**" in text
    assert (
        "**`w` over `m` (the same model, weekly instead of monthly): worth it.** 3 retrains x 3 seeds instead of "
        "6 retrains x 3 seeds, +20.0 s" in text
    )
    assert re.search(
        r"\*\*`d` over `w` \(the same model, daily instead of weekly\): not told apart\.\*\* 30 retrains instead of "
        r"3 retrains x 3 seeds.*one seed against 3: the ensemble alone can make a difference.*"
        r"smaller than the spread between single seeds of `w` \(std 0\.0\d+\): another draw of seeds "
        r"could reverse it; telling a gap this size apart takes about \d+ seeds\.$",
        text,
        re.M,
    )
    # (and no segment decides a gap within noise: the sentence ends there)
    assert "`d` ran with one seed" in text and "`w` ran with one seed" not in text
    table_lines = benchmark_table(ans, ans.means[["har", "m", "w", "d"]], "har")
    row = next(line for line in table_lines if line.startswith("| har |"))
    assert "benchmark" in row and "no training" in row  # 1 ms of fitting is no training
    # m's 6th segment (a sixth of the rows, loss +3) alone makes it lose to har: said, with its retrain time
    assert re.search(
        r"`m` against `har`: a single retrain segment decides it: `m`'s model 6 on `X`, retrained "
        r"2024-01-11 10:00 \(mean qlike [\d.]+ over its 50 rows\); without it the difference would be",
        "\n".join(table_lines),
    )


def test_a_segment_with_half_the_rows_or_a_single_segment_decides_nothing():
    from backtester.evaluation.verdict import decisive_segment

    idx = pd.MultiIndex.from_product([["X"], range(8)], names=["asset", "t"])
    values = pd.DataFrame({"a": [1.0] * 4 + [5.0] * 4, "b": [2.0] * 8}, index=idx)
    two = pd.DataFrame({"a": [1] * 4 + [2] * 4, "b": [1] * 8}, index=idx)
    assert decisive_segment(values, two, "a", "b") is None  # two halves: leaving one out says nothing
    many = pd.DataFrame({"a": [1, 1, 2, 2, 3, 3, 4, 4], "b": [1] * 8}, index=idx)
    assert decisive_segment(values, many, "a", "b") is None  # a gap spread over segments is no single one's


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-0.5, 1.5), min_size=1, max_size=30), st.floats(0.01, 0.2))
def test_label_positions_keep_their_order_stay_in_the_axes_and_never_overlap(ys, gap):
    from backtester.evaluation.plots import spread_positions

    pos = spread_positions(ys, gap)
    want = min(gap, 1.0 / max(len(ys) - 1, 1))
    order = np.argsort(ys, kind="stable")
    placed = [pos[i] for i in order]
    assert all(0.0 - 1e-9 <= p <= 1.0 + 1e-9 for p in pos)
    assert all(b - a >= want - 1e-9 for a, b in zip(placed, placed[1:]))


def test_every_figure_gives_a_strategy_one_colour_and_members_take_their_ensembles():
    from backtester.evaluation.plots import strategy_styles

    every = strategy_styles(["har", "lstm_weekly", "lstm_weekly#1", "lstm_monthly", "garch"])
    without_har = strategy_styles(["lstm_weekly", "lstm_weekly#1", "lstm_monthly", "garch"])
    for name in without_har:
        assert every[name]["color"] == without_har[name]["color"]
    assert len({s["color"] for n, s in every.items() if "#" not in n}) == 4
    assert every["lstm_weekly#1"]["label"] == "_nolegend_" and every["lstm_weekly"]["lw"] > every["garch"]["lw"]
