"""Panel tests of equal predictive accuracy against long-hand versions, their size and power under a
common shock, the table across assets, and the win counts."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from backtester.evaluation.accuracy import dm_table
from backtester.evaluation.panel import cluster_dm, panel_dm_table, pooled_dm, win_table


def averaged_by_hand(diff: pd.DataFrame) -> list[float]:
    """dbar_t over the assets observed at t, time order, times with no asset left out."""
    out = []
    for t in sorted(diff.index):
        row = [float(x) for x in diff.loc[t] if not math.isnan(x)]
        if row:
            out.append(sum(row) / len(row))
    return out


def pooled_by_hand(diff: pd.DataFrame, lags: int) -> tuple[float, float, int]:
    d = averaged_by_hand(diff)
    T = len(d)
    mean = sum(d) / T
    bandwidth = max(lags, math.floor(4 * (T / 100) ** (2 / 9)))
    v = 0.0
    for k in range(bandwidth + 1):
        gamma = 0.0
        for t in range(k, T):
            gamma += (d[t] - mean) * (d[t - k] - mean)
        gamma /= T
        v += gamma if k == 0 else 2 * (1 - k / (bandwidth + 1)) * gamma
    s = mean / math.sqrt(v / T)
    return s, math.erfc(abs(s) / math.sqrt(2)), bandwidth  # erfc(|z|/sqrt 2) = 2 * (1 - Phi(|z|))


def cluster_by_hand(diff: pd.DataFrame, K: int) -> tuple[float, float]:
    d = averaged_by_hand(diff)
    T = len(d)
    means, start = [], 0
    for k in range(K):
        size = T // K + (1 if k < T % K else 0)  # the longer blocks first
        means.append(sum(d[start : start + size]) / size)
        start += size
    assert start == T
    m = sum(means) / K
    sd = math.sqrt(sum((x - m) ** 2 for x in means) / (K - 1))
    s = math.sqrt(K) * m / sd
    return s, 2 * stats.t.sf(abs(s), K - 1)


def unbalanced_panel(seed: int, T: int = 70, N: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    times = pd.date_range("2024-01-01", periods=T, freq="h", tz="UTC")
    values = 0.1 + rng.normal(size=(T, 1)) + rng.normal(size=(T, N))
    values[rng.uniform(size=(T, N)) < 0.25] = np.nan  # assets trade on different calendars
    values[5] = np.nan  # a bar no asset has
    frame = pd.DataFrame(values, index=times, columns=[f"A{i}" for i in range(N)])
    return frame.sample(frac=1.0, random_state=seed)  # shuffled rows: the tests sort by time


@pytest.mark.parametrize("lags", [0, 2, 9])
def test_pooled_dm_equals_the_long_hand_version_on_an_unbalanced_panel(lags):
    diff = unbalanced_panel(lags)
    want_stat, want_p, bandwidth = pooled_by_hand(diff, lags)
    r = pooled_dm(diff, lags)
    assert abs(r.statistic - want_stat) < 1e-12 and abs(r.pvalue - want_p) < 1e-12
    assert r.n == len(averaged_by_hand(diff)) <= 69 and abs(r.mean_diff - np.mean(averaged_by_hand(diff))) < 1e-12
    assert r.note == f"pooled over 4 assets, Bartlett lag {bandwidth}"
    assert bandwidth == max(lags, 3)  # floor(4 * 0.69 ** (2/9)) = 3


@pytest.mark.parametrize("K", [2, 5, 8])
def test_cluster_dm_equals_the_long_hand_version_on_an_unbalanced_panel(K):
    diff = unbalanced_panel(10 + K)
    want_stat, want_p = cluster_by_hand(diff, K)
    r = cluster_dm(diff, K)
    assert abs(r.statistic - want_stat) < 1e-12 and abs(r.pvalue - want_p) < 1e-12
    assert r.n == len(averaged_by_hand(diff)) <= 69 and abs(r.mean_diff - np.mean(averaged_by_hand(diff))) < 1e-12
    assert r.note.startswith(f"pooled over 4 assets, {K} time clusters of ") and r.note.endswith(f"t({K - 1})")


def test_one_asset_pooled_statistic_is_the_single_series_one_without_hln():
    """No Harvey–Leybourne–Newbold correction in the pooled test: normal p-value, Bartlett HAC."""
    rng = np.random.default_rng(3)
    d = 0.2 + np.convolve(rng.normal(size=203), np.ones(3), mode="valid")  # MA(2), as 3-step errors give
    T, L = len(d), max(2, math.floor(4 * (201 / 100) ** (2 / 9)))
    mean = sum(d) / T
    v = sum((x - mean) ** 2 for x in d) / T
    for k in range(1, L + 1):
        v += 2 * (1 - k / (L + 1)) * sum((d[t] - mean) * (d[t - k] - mean) for t in range(k, T)) / T
    r = pooled_dm(pd.DataFrame({"BTC": d}), lags=2)
    assert r.statistic == pytest.approx(mean / math.sqrt(v / T), rel=1e-12)
    assert r.pvalue == pytest.approx(2 * stats.norm.sf(abs(r.statistic)), rel=1e-12)
    assert r.note == f"pooled over 1 assets, Bartlett lag {L}"


def test_too_few_rows_or_no_variance_is_not_computed():
    r = pooled_dm(pd.DataFrame({"A": np.ones(9), "B": np.nan}), lags=0)
    assert np.isnan(r.statistic) and r.n == 9 and r.note == "not computed: 9 rows with an asset observed"
    r = pooled_dm(pd.DataFrame({"A": np.arange(12.0)}), lags=5)  # a 6-step test needs 2 * 5 + 3 rows
    assert np.isnan(r.pvalue) and r.note == "not computed: 12 rows with an asset observed"
    r = pooled_dm(pd.DataFrame({"A": np.ones(50), "B": np.ones(50)}), lags=0)
    assert np.isnan(r.statistic) and r.mean_diff == 1.0 and "no variance" in r.note
    assert pooled_dm(pd.DataFrame({"A": [np.nan] * 20}), lags=0).note.startswith("not computed: 0 rows")
    few = cluster_dm(pd.DataFrame({"A": np.arange(15.0)}), clusters=8)  # 8 blocks need 16 rows
    assert np.isnan(few.statistic) and few.note == "not computed: 15 rows for 8 time clusters"
    assert np.isnan(cluster_dm(pd.DataFrame({"A": np.arange(40.0)}), clusters=1).statistic)
    assert "no variance" in cluster_dm(pd.DataFrame({"A": np.tile([1.0, 2.0], 8)}), clusters=4).note


def common_shock_panels(mean: float, reps: int = 200, T: int = 300, N: int = 4):
    """Four assets whose unit-variance differentials share an MA(1) common shock (correlation 0.3), seeded."""
    rng = np.random.default_rng(2024)
    for _ in range(reps):
        e = rng.normal(size=T + 1)
        common = ((e[1:] + 0.5 * e[:-1]) / math.sqrt(1.25))[:, None]
        own = rng.normal(size=(T, N))
        yield pd.DataFrame(mean + math.sqrt(0.3) * common + math.sqrt(0.7) * own, columns=["A", "B", "C", "D"])


def test_pooled_and_cluster_dm_keep_their_size_under_a_common_shock_where_a_naive_pooled_test_does_not():
    pooled, clustered, naive = [], [], []
    for diff in common_shock_panels(0.0):
        pooled.append(pooled_dm(diff, lags=1).pvalue < 0.05)
        clustered.append(cluster_dm(diff).pvalue < 0.05)
        x = diff.to_numpy().ravel()  # every cell as an independent observation: ignores the common shock
        naive.append(abs(x.mean() / (x.std(ddof=1) / math.sqrt(len(x)))) > 1.96)
    assert 0.02 <= np.mean(pooled) <= 0.12 and 0.02 <= np.mean(clustered) <= 0.12
    assert np.mean(naive) > 0.15  # about 0.2: treating N x T cells as independent over-rejects


def test_pooled_and_cluster_dm_reject_a_mean_differential_of_a_fifth_of_a_standard_deviation():
    results = [(pooled_dm(diff, lags=1), cluster_dm(diff)) for diff in common_shock_panels(-0.2, reps=100)]
    pooled = np.array([p.statistic for p, _ in results])
    assert (pooled < 0).all() and np.mean([p.pvalue < 0.05 for p, _ in results]) >= 0.95
    assert np.mean([c.statistic for _, c in results]) < 0 and np.mean([c.pvalue < 0.05 for _, c in results]) > 0.8


def loss_rows(seed: int = 0, T: int = 48) -> pd.DataFrame:
    """A tidy loss table: assets BTC and ETH, strategies har / lstm / naive, horizons 1..3; lstm has no ETH."""
    rng = np.random.default_rng(seed)
    issued = pd.date_range("2024-01-01", periods=T, freq="h", tz="UTC")
    parts = []
    for asset in ("BTC", "ETH"):
        for strategy, bias in (("har", 0.0), ("lstm", -0.15), ("naive", 0.4)):
            if strategy == "lstm" and asset == "ETH":
                continue
            for h in (1, 2, 3):
                parts.append(
                    pd.DataFrame(
                        {
                            "strategy": strategy,
                            "issued_at": issued,
                            "target_time": issued + pd.Timedelta(hours=h),
                            "horizon": h,
                            "model_version": 1,
                            "loss": "qlike",
                            "asset": asset,
                            "value": 1.0 + bias + rng.gamma(2.0, 0.25, T),
                        }
                    )
                )
    table = pd.concat(parts, ignore_index=True)
    table = table.drop(
        index=table.index[(table["strategy"] == "naive") & (table["asset"] == "BTC") & (table["horizon"] == 2)][:5]
    )  # five issue times not complete
    table["strategy"] = table["strategy"].astype("string")
    table["asset"] = table["asset"].astype("string")
    table["loss"] = pd.Categorical(table["loss"], categories=["mse", "qlike"])
    return table.reset_index(drop=True)


def by_strategy(table: pd.DataFrame, strategy: str, index: str) -> pd.DataFrame:
    part = table[table["strategy"] == strategy]
    return part.pivot_table(index=index, columns="asset", values="value", aggfunc="mean", observed=True)


def test_panel_dm_table_rows_columns_and_the_pooled_statistic_by_hand():
    table = loss_rows()
    out = panel_dm_table(table, "qlike", "har", clusters=4)
    assert out.columns.tolist() == [
        "test",
        "loss",
        "horizon",
        "model",
        "against",
        "statistic",
        "pvalue",
        "mean_diff",
        "n",
        "assets",
        "note",
    ]
    pairs = list(dict.fromkeys(zip(out["model"], out["against"])))
    assert pairs == list(dict.fromkeys(zip(*dm_table(table, "qlike", "har")[["model", "against"]].T.values)))
    assert pairs == [("lstm", "har"), ("naive", "har"), ("lstm", "naive")]
    assert len(out) == 3 * 4 * 2 and (out["loss"] == "qlike").all()
    assert out.groupby(["model", "against"], sort=False)["horizon"].agg(list).tolist() == [[1, 1, 2, 2, 3, 3, 0, 0]] * 3
    assert out["test"].tolist() == ["pooled_dm", "cluster_dm"] * 12
    assets = out.drop_duplicates(["model", "against"]).set_index(["model", "against"])["assets"]
    assert assets.to_dict() == {("lstm", "har"): 1, ("naive", "har"): 2, ("lstm", "naive"): 1}  # lstm has no ETH

    h2 = table[table["horizon"] == 2]
    diff = by_strategy(h2, "naive", "target_time") - by_strategy(h2, "har", "target_time")
    want = pooled_dm(diff, lags=1)
    got = out[(out["test"] == "pooled_dm") & (out["model"] == "naive") & (out["horizon"] == 2)].iloc[0]
    assert got.statistic == want.statistic and got.pvalue == want.pvalue and got.n == want.n == 48
    assert got.note == want.note == "pooled over 2 assets, Bartlett lag 3" and got.statistic > 5
    clustered = out[(out["test"] == "cluster_dm") & (out["model"] == "naive") & (out["horizon"] == 2)].iloc[0]
    assert clustered.statistic == cluster_dm(diff, 4).statistic


def test_panel_dm_table_horizon_zero_averages_complete_issue_times_per_asset():
    table = loss_rows()
    out = panel_dm_table(table, "qlike", "har", clusters=4)
    complete = table.groupby(["strategy", "asset", "issued_at"], observed=True)["horizon"].transform("size") == 3
    full = table[complete]
    diff = by_strategy(full, "naive", "issued_at") - by_strategy(full, "har", "issued_at")
    want = pooled_dm(diff, lags=2)
    got = out[(out["test"] == "pooled_dm") & (out["model"] == "naive") & (out["horizon"] == 0)].iloc[0]
    assert got.statistic == pytest.approx(want.statistic, rel=1e-12) and got.n == 48 and got.assets == 2
    assert diff["BTC"].notna().sum() == 43 and diff["ETH"].notna().sum() == 48  # BTC lost five issue times
    lstm = out[(out["model"] == "lstm") & (out["against"] == "har") & (out["horizon"] == 0)]
    assert lstm["assets"].tolist() == [1, 1] and (lstm["statistic"] < 0).all()


def test_win_table_counts_wins_and_significant_wins_per_comparison():
    dm = pd.DataFrame(
        {
            "asset": ["BTC", "ETH", "SOL", "XRP", "ADA", "BTC", "ETH"],
            "loss": ["qlike"] * 5 + ["mse"] * 2,
            "horizon": [1] * 5 + [0] * 2,
            "model": ["lstm"] * 7,
            "against": ["har"] * 7,
            "statistic": [-3.0, -0.5, 2.5, 0.4, np.nan, -2.2, -2.1],
            "pvalue": [0.003, 0.6, 0.01, 0.7, np.nan, 0.03, 0.04],
            "mean_diff": [-0.2, -0.1, 0.3, 0.05, -0.4, -0.1, -0.1],
        }
    )
    got = win_table(dm)
    want = pd.DataFrame(
        {
            "loss": ["qlike", "mse"],
            "horizon": [1, 0],
            "model": "lstm",
            "against": "har",
            "assets": [4, 2],
            "wins": [2, 2],
            "significant_wins": [1, 2],
            "losses": [2, 0],
            "significant_losses": [1, 0],
        }
    )
    pd.testing.assert_frame_equal(got, want)
    strict = win_table(dm, alpha=0.01)
    assert strict["significant_wins"].tolist() == [1, 0] and strict["significant_losses"].tolist() == [0, 0]
