"""The loss suite against hand-computed values, Diebold–Mariano against an independent worked example,
the Model Confidence Set through arch, and the tables a run writes."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from backtester.config import parse_config
from backtester.core.errors import ConfigError
from backtester.evaluation.accuracy import diebold_mariano, dm_table, model_confidence_set
from backtester.evaluation.losses import coverage, loss_table, mincer_zarnowitz, oos_r2, row_losses
from backtester.runner import run

from .conftest import base_config


def test_each_loss_against_hand_computed_values():
    a = np.array([0.02, 0.01, 0.0, np.nan, 0.03])
    f = np.array([0.01, 0.01, 0.01, 0.02, -0.01])
    got = row_losses(a, f)
    # row 0: a = 0.02, f = 0.01
    assert got["mse"][0] == pytest.approx(1e-4)
    assert got["mae"][0] == pytest.approx(0.01)
    assert got["mse_var"][0] == pytest.approx((1e-4 - 4e-4) ** 2)
    assert got["qlike"][0] == pytest.approx(4 - math.log(4) - 1)
    assert got["mse_log"][0] == pytest.approx(math.log(2) ** 2)
    # a perfect forecast has zero loss everywhere
    assert [got[k][1] for k in ("mse", "mae", "mse_var", "qlike", "mse_log")] == [0, 0, 0, 0, 0]
    # zero actual: qlike and log undefined, the others defined; missing actual: nothing; f <= 0: no qlike/log
    assert np.isnan(got["qlike"][2]) and np.isnan(got["mse_log"][2]) and got["mse"][2] == pytest.approx(1e-4)
    assert all(np.isnan(got[k][3]) for k in got)
    assert np.isnan(got["qlike"][4]) and got["mae"][4] == pytest.approx(0.04)


def rows_frame():
    t = pd.date_range("2024-01-01 01:00", periods=4, freq="h", tz="UTC")
    return pd.DataFrame(
        {
            "strategy": ["a", "a", "b", "b"],
            "issued_at": [t[0], t[1], t[0], t[1]],
            "target_time": [t[1], t[2], t[1], t[2]],
            "horizon": [1, 1, 1, 1],
            "forecast": [1.0, 2.0, 0.0, 2.0],
            "model_version": [1, 1, 1, 1],
            "actual": [1.0, 0.0, 1.0, np.nan],
        }
    )


def test_loss_table_is_tidy_and_coverage_counts_what_is_left_out():
    rows = rows_frame()
    table = loss_table(rows)
    assert list(table.columns) == ["strategy", "issued_at", "target_time", "horizon", "model_version", "loss", "value"]
    counts = table.groupby(["strategy", "loss"], observed=True).size().to_dict()
    assert counts[("a", "mse")] == 2 and counts[("a", "qlike")] == 1 and counts[("b", "mse")] == 1
    assert ("b", "qlike") not in counts  # b's only known actual meets a zero forecast
    assert np.isfinite(table["value"]).all()
    cov = coverage(rows).set_index("strategy")
    assert cov.loc["a"].to_dict() == {
        "rows": 2,
        "missing_actual": 0,
        "zero_actual": 1,
        "nonpositive_forecast": 0,
        "scored_qlike": 1,
    }
    assert cov.loc["b"].to_dict() == {
        "rows": 2,
        "missing_actual": 1,
        "zero_actual": 0,
        "nonpositive_forecast": 1,
        "scored_qlike": 0,
    }


def test_mincer_zarnowitz_and_oos_r2():
    rng = np.random.default_rng(1)
    f = rng.uniform(1, 2, 200)
    t = pd.date_range("2024-01-01", periods=200, freq="h", tz="UTC")
    rows = pd.DataFrame(
        {
            "strategy": "m",
            "issued_at": t,
            "target_time": t,
            "horizon": 1,
            "model_version": 1,
            "forecast": f,
            "actual": 0.5 + 2 * f,
        }
    )
    mz = mincer_zarnowitz(rows).iloc[0]
    assert (mz.mz_intercept, mz.mz_slope, mz.mz_r2) == pytest.approx((0.5, 2.0, 1.0))
    both = pd.concat([rows, rows.assign(strategy="bench", forecast=rows["actual"] + 0.1)])
    r2 = oos_r2(loss_table(both), "bench").set_index("strategy")["oos_r2"]
    want = 1 - np.mean((f - (0.5 + 2 * f)) ** 2) / 0.01
    assert r2["bench"] == pytest.approx(0.0) and r2["m"] == pytest.approx(want)


def dm_by_hand(d, h):
    """Diebold–Mariano with rectangular HAC (lag h-1) and the HLN correction, written out long-hand."""
    T = len(d)
    mean = sum(d) / T

    def gamma(k):
        return sum((d[t] - mean) * (d[t - k] - mean) for t in range(k, T)) / T

    v = gamma(0) + 2 * sum(gamma(k) for k in range(1, h))
    dm = mean / math.sqrt(v / T)
    corrected = dm * math.sqrt((T + 1 - 2 * h + h * (h - 1) / T) / T)
    return corrected, 2 * (1 - stats.t.cdf(abs(corrected), T - 1))


@pytest.mark.parametrize("h", [1, 3, 6])
def test_diebold_mariano_against_a_worked_example(h):
    rng = np.random.default_rng(h)
    e = rng.normal(size=300)
    ma = np.convolve(e, np.ones(h), mode="valid")[:250]  # an MA(h-1) loss differential, as h-step errors give
    l_bench = rng.gamma(2.0, 1.0, 250)
    l_model = l_bench + 0.15 + 0.3 * ma
    res = diebold_mariano(l_model, l_bench, h)
    want_stat, want_p = dm_by_hand(list(l_model - l_bench), h)
    assert res.statistic == pytest.approx(want_stat, rel=1e-10)
    assert res.pvalue == pytest.approx(want_p, rel=1e-8)
    assert res.n == 250 and res.note == "rectangular"


def test_diebold_mariano_with_too_few_rows_is_not_computed():
    res = diebold_mariano(np.ones(5), np.zeros(5), 1)
    assert np.isnan(res.statistic) and res.note == "not computed: 5 common rows"
    res = diebold_mariano(np.ones(50), np.ones(50), 1)
    assert res.note == "not computed: the loss differential has no variance"


def test_mcs_excludes_the_clearly_worse_model_and_keeps_two_equal_ones():
    rng = np.random.default_rng(7)
    base = rng.gamma(2.0, 0.5, 600)
    losses = pd.DataFrame(
        {
            "good": base + rng.normal(0, 0.05, 600),
            "twin": base + rng.normal(0, 0.05, 600),
            "bad": base + 0.8 + rng.normal(0, 0.05, 600),
        }
    )
    first = model_confidence_set(losses, sizes=(0.10, 0.25), reps=500, seed=3)
    again = model_confidence_set(losses, sizes=(0.10, 0.25), reps=500, seed=3)
    pd.testing.assert_frame_equal(first, again)
    inside = first.pivot(index="strategy", columns="size", values="in_set")
    assert inside.loc["bad"].tolist() == [False, False]
    assert inside.loc["good"].tolist() == [True, True] and inside.loc["twin"].tolist() == [True, True]
    few = model_confidence_set(losses.iloc[:5], sizes=(0.1,))
    assert few["note"].str.startswith("not computed").all()


def test_dm_table_has_benchmark_pairs_per_horizon_and_averaged():
    rng = np.random.default_rng(0)
    t = pd.date_range("2024-01-01", periods=120, freq="h", tz="UTC")
    parts = []
    for name, bias in (("har", 0.0), ("x", 0.3), ("y", 0.0)):
        for h in (1, 2):
            a = rng.uniform(1, 2, 120)
            parts.append(
                pd.DataFrame(
                    {
                        "strategy": name,
                        "issued_at": t,
                        "target_time": t + pd.Timedelta(hours=h),
                        "horizon": h,
                        "model_version": 1,
                        "actual": a,
                        "forecast": a * rng.uniform(0.8, 1.2, 120) + bias,
                    }
                )
            )
    table = loss_table(pd.concat(parts, ignore_index=True))
    dm = dm_table(table, "qlike", "har")
    assert set(zip(dm["model"], dm["against"])) == {("x", "har"), ("y", "har"), ("x", "y")}
    assert sorted(dm["horizon"].unique()) == [0, 1, 2]
    worse = dm[(dm["model"] == "x") & (dm["against"] == "har") & (dm["horizon"] == 0)].iloc[0]
    assert worse.statistic > 3 and worse.pvalue < 0.01


def test_a_run_writes_losses_and_tests_and_checks_the_benchmark(minute_file, tmp_path):
    raw = base_config(minute_file, tmp_path, har={"type": "har"}, naive={}, ewma={"type": "ewma"})
    raw["evaluation"] = {"mcs_reps": 200}
    res = run(parse_config(raw))
    assert not (res.out_dir / "losses.parquet").exists()  # not stored: rebuilt from the forecast rows
    losses = loss_table(pd.read_parquet(res.out_dir / "forecasts.parquet"))
    tests = pd.read_parquet(res.out_dir / "tests.parquet")
    assert set(losses["loss"]) == {"mse", "mae", "mse_var", "qlike", "mse_log"}
    dm = tests[tests["test"] == "dm"]
    assert set(dm.loc[dm["against"] == "har", "model"]) == {"naive", "ewma"}
    assert set(tests.loc[tests["test"] == "mcs", "model"]) == {"har", "naive", "ewma"}
    scores = pd.read_parquet(res.out_dir / "scores.parquet")
    assert {"qlike", "n_qlike", "mse_log", "mz_intercept", "mz_slope", "mz_r2", "oos_r2"} <= set(scores.columns)
    assert (scores.loc[scores["strategy"] == "har", "oos_r2"] == 0).all()
    br = pd.read_parquet(res.out_dir / "breakdowns.parquet")
    assert set(br["by"]) == {"segment", "hour", "weekday"} and set(br.loc[br["by"] == "hour", "key"]) == set(range(24))
    cost = pd.read_parquet(res.out_dir / "cost.parquet").set_index("strategy")
    assert cost.loc["har", "gain_vs_har"] == 0 and cost.loc["naive", "retrains"] == 3
    assert cost.loc["har", "artifact_bytes"] > 0 and cost.loc["har", "train_seconds"] > 0
    report = (res.out_dir / "report.md").read_text()
    assert "## Cost and accuracy" in report
    assert "## Diebold–Mariano against `har`" in report and "## Model Confidence Set" in report
    raw["evaluation"] = {"benchmark": "garch"}
    with pytest.raises(
        ConfigError, match=r"evaluation.benchmark: 'garch' is not a strategy of this run; use one of har, naive, ewma"
    ):
        parse_config(raw)
    del raw["evaluation"]
    raw["strategies"] = {"naive": {}, "ewma": {}}
    assert parse_config(raw).evaluation.benchmark is None  # the default har, absent: pairwise only


def test_html_report_embeds_every_figure_and_renders_offline(minute_file, tmp_path):
    import shutil
    import subprocess

    from click.testing import CliRunner

    from backtester.cli import main

    raw = base_config(minute_file, tmp_path, har={"type": "har"}, naive={}, ewma={"type": "ewma"})
    raw["output"]["plots"] = True
    raw["evaluation"] = {"mcs_reps": 200}
    res = run(parse_config(raw))
    pngs = sorted(p.name for p in res.out_dir.glob("*.png"))
    assert len(pngs) == 11  # 7, and issue 29's VaR exceedances, target volatility, equity and "when"
    page = (res.out_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(pngs)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "<h2>The answer</h2>" in page and "Lowest qlike" in page
    assert "<h2>What it is worth</h2>" in page and "<h2>The tests referees ask for</h2>" in page
    (res.out_dir / "report.html").unlink()
    out = CliRunner().invoke(main, ["report", str(res.out_dir)], catch_exceptions=False)
    assert out.exit_code == 0 and (res.out_dir / "report.html").read_text() == page
    bad = CliRunner().invoke(main, ["report", str(tmp_path)], catch_exceptions=False)
    assert bad.exit_code == 2 and "not a finished run" in bad.output
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1200,2400",
            f"--screenshot={shot}",
            (res.out_dir / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    from matplotlib.image import imread

    img = imread(shot)
    assert img.shape[0] >= 2000 and img.std() > 0.05  # a page with content, not a blank one


def test_repeats_run_seed_members_and_their_ensemble(minute_file, tmp_path):
    from .conftest import TINY_LSTM

    raw = base_config(minute_file, tmp_path, lstm={**TINY_LSTM, "repeats": 2}, har={"type": "har"})
    raw["backtest"]["end"] = "2024-01-16 00:00"
    raw["evaluation"] = {"mcs_reps": 200}
    cfg = parse_config(raw)
    assert list(cfg.run_strategies()) == ["lstm#1", "lstm#2", "har"] and cfg.ensembles() == {
        "lstm": ["lstm#1", "lstm#2"]
    }
    assert (
        parse_config(cfg.resolved()).config_id() == cfg.config_id()
        and cfg.resolved()["strategies"]["lstm"]["repeats"] == 2
    )
    res = run(cfg)
    f = res.forecasts
    a, b, ens = (
        f[f["strategy"] == s].set_index(["issued_at", "horizon"])["forecast"] for s in ("lstm#1", "lstm#2", "lstm")
    )
    assert not np.array_equal(a.to_numpy(), b.to_numpy())  # different seeds
    np.testing.assert_allclose(ens.to_numpy(), ((a + b) / 2).to_numpy(), rtol=1e-12)
    assert {p.name for p in (res.out_dir / "models").iterdir()} == {"lstm#1", "lstm#2", "har"}
    seeds = pd.read_parquet(res.out_dir / "seeds.parquet").set_index("loss")
    assert seeds.loc["qlike", "seeds"] == 2 and seeds.loc["qlike", "std"] > 0
    scores = pd.read_parquet(res.out_dir / "scores.parquet").groupby("strategy")["qlike"].mean()
    gap = scores["lstm"] - scores["har"]  # the ensemble's gap to the benchmark, and the seeds it needs
    assert seeds.loc["qlike", "gap"] == pytest.approx(gap)
    assert seeds.loc["qlike", "seeds_needed"] == max(1, np.ceil((2 * seeds.loc["qlike", "std"] / abs(gap)) ** 2))
    report = (res.out_dir / "report.md").read_text()
    assert "## Seed spread" in report and f"- Seeds: `lstm`'s gap to `har` ({gap:+.4g}) is " in report
    cost = pd.read_parquet(res.out_dir / "cost.parquet").set_index("strategy")
    # retrains per seed in every table; an ensemble's fits and seconds are all its seeds'
    assert cost.loc["lstm", "retrains"] == cost.loc["lstm#1", "retrains"] and cost.loc["lstm", "seeds"] == 2
    assert cost.loc["lstm", "fits"] == cost.loc["lstm#1", "fits"] + cost.loc["lstm#2", "fits"]
    for bad, pattern in (({"repeats": 0}, r"strategies.lstm.repeats: must be a whole number"),):
        raw2 = base_config(minute_file, tmp_path, lstm={**TINY_LSTM, **bad})
        with pytest.raises(ConfigError, match=pattern):
            parse_config(raw2)
    with pytest.raises(ConfigError, match=r"'#' is reserved for seed members"):
        parse_config(base_config(minute_file, tmp_path, **{"a#1": {"type": "naive"}}))
