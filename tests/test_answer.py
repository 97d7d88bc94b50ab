"""The answer in words: what each strategy is, what its training adds over its untrained start and the
benchmark, which schemes of one model are worth their cost — in the run report and in ``compare``."""

import re

import numpy as np
import pandas as pd
import pytest

from backtester.compare import compare
from backtester.config import parse_config
from backtester.evaluation.accuracy import dm_table
from backtester.evaluation.answer import answer_lines, pairs_table
from backtester.evaluation.panel import panel_dm_table
from backtester.evaluation.profiles import Profile, profiles_of, start_of
from backtester.evaluation.verdict import Answer
from backtester.runner import run

from .conftest import TINY_LSTM, base_config


def loss_table(values: dict[str, np.ndarray], assets=("X",), horizons=(1, 2)) -> pd.DataFrame:
    """A tidy qlike table: each strategy's values repeated over ``assets`` and ``horizons``."""
    n = len(next(iter(values.values())))
    t = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    frames = []
    for asset in assets:
        for h in horizons:
            for name, v in values.items():
                frames.append(
                    pd.DataFrame(
                        {
                            "asset": asset,
                            "strategy": name,
                            "issued_at": t,
                            "target_time": t + pd.Timedelta(hours=h),
                            "horizon": h,
                            "model_version": 1,
                            "loss": "qlike",
                            "value": v + (0.01 * h),
                        }
                    )
                )
    return pd.concat(frames, ignore_index=True)


def answer_of(values, profiles, assets=("X",), retrains=None) -> tuple[Answer, str]:
    table = loss_table(values, assets)
    parts = [dm_table(t, "qlike", "har").assign(test="dm", asset=a) for a, t in table.groupby("asset")]
    if len(assets) > 1:
        parts.append(panel_dm_table(table, "qlike", "har").assign(asset="all"))
    tests = pd.concat(parts, ignore_index=True)
    cost = pd.DataFrame(
        {
            "strategy": list(values),
            "retrains": [(retrains or {}).get(s, 4) for s in values],
            "train_seconds": [30.0 if profiles[s].learned else 0.05 for s in values],
            "tuning_seconds": 0.0,
        }
    )
    ans = Answer(table, tests, cost, "qlike")
    return ans, "\n".join(answer_lines(ans, "har", profiles) + pairs_table(ans, "har", profiles))


def profile(name, learned=False, starts=(), averages=(), model=None, schedule="weekly", seeds=1, about="x"):
    return Profile(name, about, learned, tuple(starts), tuple(averages), model or name, schedule, seeds)


BASE = {
    "har": profile("har", about="HAR-RV"),
    "garch": profile("garch", about="GARCH"),
    "har_garch": profile("har_garch", averages=("har", "garch"), about="the mean of `har` and `garch`"),
}


def noise(seed, n=400, scale=0.3):
    return np.random.default_rng(seed).normal(0, scale, n)


def test_a_hybrid_is_judged_by_what_its_net_adds_over_its_untrained_start():
    hybrid = profile("lstm", True, starts=("har", "garch"), model="A", about="a hybrid: the mean of `har` and `garch`")
    profiles = {**BASE, "lstm": hybrid}
    assert start_of(hybrid, profiles) == "har_garch"
    har = 2.0 + noise(0)
    start = 1.0 + noise(1)
    # the net adds nothing: the same loss as its start, give or take noise; the start beats har
    ans, text = answer_of(
        {"har": har, "garch": 1.1 + noise(2), "har_garch": start, "lstm": start + noise(3, scale=0.5)}, profiles
    )
    assert (
        "- **`lstm`** is a hybrid: the mean of `har` and `garch` (4 retrains, 30.0 s of training and tuning)." in text
    )
    assert re.search(
        r"  - Over its untrained start `har_garch` \(0\.1 s of fitting\): qlike [\d.]+ against [\d.]+", text
    )
    assert re.search(r"  - Over the benchmark `har`: qlike [\d.]+ against [\d.]+ \(-[\d.]+, lower; DM p [=<] ", text)
    assert re.search(
        r"\*\*Not told apart\*\* from its untrained start `har_garch` over all horizons \(p = [\d.]+\): its 30\.0 s of "
        r"training buy no gain DM can tell from noise; what beats `har` is its start, `har_garch`, with no training",
        text,
    )
    assert "| lstm | har_garch | its untrained start |" in text and "| lstm | har | the benchmark |" in text
    # the net helps: significantly below its start, and below har
    _, text = answer_of(
        {"har": har, "garch": 1.1 + noise(2), "har_garch": start, "lstm": start - 0.3 + noise(3, scale=0.05)}, profiles
    )
    assert re.search(
        r"\*\*Worth it\*\*: it has a significantly lower qlike than its untrained start `har_garch` "
        r"\(p [=<] [\de.-]+\) for its 30\.0 s of training, and beats `har`",
        text,
    )
    # the net hurts
    _, text = answer_of(
        {"har": har, "garch": 1.1 + noise(2), "har_garch": start, "lstm": start + 0.3 + noise(3, scale=0.05)}, profiles
    )
    assert "**Not worth it**: it is significantly worse than its untrained start `har_garch`" in text
    # the start is not in the run: the config line that adds it
    _, text = answer_of(
        {"har": har, "garch": 1.1 + noise(2), "lstm": start}, {k: v for k, v in profiles.items() if k != "har_garch"}
    )
    assert (
        "Its untrained start (`har` and `garch`, their mean) is not in the run: add `har_garch: {type: mean_of, of: [har, garch]}`"
        in text
    )


def test_scheme_steps_compare_one_model_under_two_schedules_never_two_models():
    """Four assets' worth of the issue's case: the hybrid weekly and monthly beside the notebook's LSTM."""
    profiles = {
        **BASE,
        "lstm": profile("lstm", True, starts=("har", "garch"), model="hybrid", schedule="weekly", seeds=3),
        "lstm_monthly": profile(
            "lstm_monthly", True, starts=("har", "garch"), model="hybrid", schedule="monthly", seeds=3
        ),
        "lstm_plain": profile("lstm_plain", True, model="plain", schedule="weekly", seeds=3),
    }
    values = {
        "har": 2.0 + noise(0),
        "garch": 1.5 + noise(1),
        "har_garch": 1.4 + noise(2),
        "lstm": 1.2 + noise(3, scale=0.05),
        "lstm_monthly": 1.35 + noise(4, scale=0.05),
        "lstm_plain": 1.9 + noise(5),
    }
    ans, text = answer_of(values, profiles, assets=("a", "b", "c", "d"), retrains={"lstm_monthly": 1})
    assert ans.pooled and "pooled DM p" in text
    schemes = [line for line in text.splitlines() if "(the same model" in line]
    assert len(schemes) == 1 and schemes[0].startswith(
        "- **`lstm` over `lstm_monthly` (the same model, weekly instead of monthly): worth it.** "
        "4 retrains over 4 assets instead of 1 retrain over 4 assets"
    )
    assert "lstm_plain` over" not in text and "over `lstm_plain`" not in text
    assert "| lstm | lstm_monthly | weekly instead of monthly |" in text


def test_every_step_dm_tells_apart_is_said_and_worse_is_said_plainly():
    profiles = {
        "har": profile("har"),
        "once": profile("once", True, model="m", schedule="never", seeds=1),
        "monthly": profile("monthly", True, model="m", schedule="monthly", seeds=1),
        "daily": profile("daily", True, model="m", schedule="daily", seeds=1),
    }
    values = {
        "har": 1.0 + noise(0),
        "once": 1.5 + noise(1, scale=0.05),
        "monthly": 1.45 + noise(2, scale=0.3),
        "daily": 1.8 + noise(3, scale=0.05),  # the dearest is significantly worse than the cheapest
    }
    table = loss_table(values)
    tests = dm_table(table, "qlike", "har").assign(test="dm", asset="X")
    cost = pd.DataFrame({"strategy": list(values), "retrains": [4, 1, 2, 30], "train_seconds": [0.0, 1.0, 2.0, 30.0]})
    text = "\n".join(answer_lines(Answer(table, tests, cost, "qlike"), "har", profiles))
    assert "**`monthly` over `once` (the same model, monthly instead of never)" in text  # a step, said
    assert "**`daily` over `monthly` (the same model, daily instead of monthly)" in text  # a step, said
    assert (
        "**`daily` over `once` (the same model, daily instead of never): not worth it, significantly worse.**" in text
    )
    assert "**Not worth it**: it is significantly worse than `har` (p" in text


@pytest.fixture(scope="module")
def hybrid_runs(minute_bars, tmp_path_factory):
    """Two real runs of one hybrid on the same data: weekly with 2 seeds, and once with 2 seeds."""
    tmp = tmp_path_factory.mktemp("answer")
    path = tmp / "bars.parquet"
    minute_bars.to_parquet(path, index=False)
    hybrid = {**TINY_LSTM, "residual_of": ["har", "garch"], "loss": "qlike", "repeats": 2}
    out = []
    for name, rule in (("w", "weekly"), ("o", "never")):
        raw = base_config(
            path,
            tmp,
            lstm={**hybrid, "retrain": {"rule": rule}} if rule == "never" else hybrid,
            har={"type": "har"},
            garch={"type": "garch"},
            har_garch={"type": "mean_of", "of": ["har", "garch"]},
        )
        raw["name"], raw["evaluation"] = name, {"mcs_reps": 100}
        raw["backtest"]["start"] = "2024-01-15 00:00"  # HAR's week of lags and the lookback first
        out.append(run(parse_config(raw)))
    return tmp, out


def test_the_run_report_opens_with_the_hybrid_what_its_net_adds_and_a_verdict(hybrid_runs):
    tmp, (w, _) = hybrid_runs
    text = (w.out_dir / "report.md").read_text()
    answer = text.split("## The answer", 1)[1].split("\n## ", 1)[0]
    first = answer.strip().splitlines()[0]
    assert first.startswith(
        "- **`lstm`** is a hybrid: the mean of `har` and `garch` plus a learned correction by an LSTM"
    )
    assert re.search(r"\(\d+ retrains x 2 seeds, [\d.]+ s of training and tuning\)\.$", first)
    assert "  - Over its untrained start `har_garch`" in answer and "  - Over the benchmark `har`" in answer
    assert re.search(r"  - \*\*(Worth it|Not worth it|Not told apart)\*\*", answer)
    assert "`lstm#1`..`lstm#2` are single seeds of `lstm`, never candidates for the lowest loss" in answer
    assert "| lstm#1 (one seed) |" in text and "## What the training adds: the pairs that matter" in text
    manifest = (w.out_dir / "manifest.json").read_text()
    assert '"starts_from": [\n        "har",\n        "garch"\n      ]' in manifest


def test_compare_of_two_real_runs_says_nothing_false(hybrid_runs):
    tmp, (w, o) = hybrid_runs
    res = compare([w.out_dir, o.out_dir], tmp / "cmp", mcs_reps=100)
    text = (res.out_dir / "compare.md").read_text()
    # seeds read from each run under its prefix: no false one-seed warning
    assert "`w:lstm#1`..`w:lstm#2` are single seeds of `w:lstm`" in text
    assert "ran with one seed" not in text
    # the benchmark found under the first run's prefix, and gains computed against it
    assert "minus `w:har`" in text and "Over the benchmark `w:har`" in text
    gains = res.cost.set_index("strategy")["gain_vs_w:har"]
    assert gains.notna().all()
    # the start of each hybrid is its own run's combination
    assert "Over its untrained start `w:har_garch`" in text and "Over its untrained start `o:har_garch`" in text
    # one model under two schedules: the scheme step is said
    assert re.search(r"\*\*`w:lstm` over `o:lstm` \(the same model, weekly mon 00:00 UTC instead of never", text)
    # gain per minute only for gains; retrains per seed in every table
    per_min = res.cost["gain_per_train_minute"]
    assert (per_min.isna() | (res.cost["gain_vs_w:har"] > 0)).all()
    cost = res.cost.set_index("strategy")
    assert cost.loc["w:lstm", "retrains"] == cost.loc["w:lstm#1", "retrains"] and cost.loc["w:lstm", "seeds"] == 2
    # the answer's means are the table's
    lowest = re.search(r"\*\*Lowest qlike: `([^`]+)`\*\* \(([\d.]+) on the common rows", text)
    row = re.search(rf"^\| {re.escape(lowest.group(1))} \| ([\d.]+) \|", text, re.M)
    assert lowest.group(2) == row.group(1)


def test_profiles_come_from_the_config_and_name_a_model_apart_from_its_schedule(minute_file, tmp_path):
    raw = base_config(
        minute_file,
        tmp_path,
        weekly={**TINY_LSTM},
        monthly={**TINY_LSTM, "retrain": {"rule": "monthly", "day": 1}},
        wider={**TINY_LSTM, "layers": [{"units": 8, "dropout": 0.0}]},
        har={"type": "har"},
    )
    p = profiles_of(parse_config(raw))
    assert p["weekly"].model == p["monthly"].model != p["wider"].model
    assert p["weekly"].schedule != p["monthly"].schedule and p["weekly"].learned and not p["har"].learned
    assert p["weekly"].about.startswith("the notebook's LSTM: an LSTM of 1 layer of 4 units")


def test_runs_of_one_file_with_bars_built_otherwise_are_named_as_such(hybrid_runs):
    from backtester.core.errors import CompareError

    tmp, (w, _) = hybrid_runs
    raw = base_config(tmp / "bars.parquet", tmp, naive={})
    raw["name"], raw["data"]["bar"], raw["evaluation"] = "two_hour", "2h", {"mcs_reps": 100}
    other = run(parse_config(raw))
    with pytest.raises(CompareError, match=r"the runs read the same data file but built their bars with other data "):
        compare([w.out_dir, other.out_dir], tmp / "cmp2")


def test_compare_takes_the_runs_own_benchmark(hybrid_runs):
    tmp, _ = hybrid_runs
    raw = base_config(tmp / "bars.parquet", tmp, naive={}, har={"type": "har"}, harq={"type": "harq", "periodic": True})
    raw["name"], raw["evaluation"] = "own_benchmark", {"benchmark": "harq", "mcs_reps": 100}
    raw["backtest"]["start"] = "2024-01-15 00:00"
    done = run(parse_config(raw))
    res = compare([done.out_dir], tmp / "cmp_own", mcs_reps=100)
    assert "gain_vs_harq" in res.cost and "minus `harq`" in (res.out_dir / "compare.md").read_text()
