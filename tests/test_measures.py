"""Realized measures beside RV: long-hand formulas, identities, known sampling error on simulated paths,
jumps, and no look-ahead (a bar's measures are known at its close)."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from backtester.measures import MEASURES, MU43
from backtester.rv import realized_volatility

MIN = pd.Timedelta("1min")


def prices_of(returns: np.ndarray, start="2024-01-01 00:00") -> pd.Series:
    """Minute prices (bar open times) whose log returns are ``returns`` (one more price than returns)."""
    t = pd.date_range(start, periods=len(returns) + 1, freq="min", tz="UTC")
    return pd.Series(100 * np.exp(np.r_[0.0, np.cumsum(returns)]), index=t)


def long_hand(r: list[float], first_slot: int = 0, level: float = 0.999) -> dict[str, float]:
    """Every measure of one bar from its returns, written out loop by loop (the textbook formulas);
    ``first_slot``: the minute of the bar its first return ends in (0: the bar's first minute)."""
    n = len(r)
    a = [abs(x) for x in r]
    rv2 = sum(x * x for x in r)
    bpv = (math.pi / 2) * sum(a[i] * a[i - 1] for i in range(1, n))
    med = sum(sorted([a[i], a[i - 1], a[i - 2]])[1] ** 2 for i in range(2, n))
    medrv = math.pi / (6 - 4 * math.sqrt(3) + math.pi) * n / (n - 2) * med
    tp = sum((a[i] * a[i - 1] * a[i - 2]) ** (4 / 3) for i in range(2, n))
    tpq = n * MU43**-3 * n / (n - 2) * tp
    threshold = 4 * math.sqrt(bpv / n)
    z = ((rv2 - bpv) / rv2) / math.sqrt(((math.pi / 2) ** 2 + math.pi - 5) * max(1.0, tpq / bpv**2) / n)
    coarse = []
    for k in range(5):  # 5-minute returns on each offset grid: blocks of (slot + k) // 5
        blocks: dict[int, float] = {}
        for slot, x in enumerate(r, start=first_slot):
            blocks[(slot + k) // 5] = blocks.get((slot + k) // 5, 0.0) + x
        coarse.append(sum(v * v for v in blocks.values()))
    return {
        "rv": math.sqrt(rv2),
        "rs_plus": sum(x * x for x in r if x > 0),
        "rs_minus": sum(x * x for x in r if x < 0),
        "sj": sum(x * x for x in r if x > 0) - sum(x * x for x in r if x < 0),
        "bpv": bpv,
        "medrv": medrv,
        "trv": sum(x * x for x in r if abs(x) <= threshold),
        "rq": n / 3 * sum(x**4 for x in r),
        "tpq": tpq,
        "rv_ss": sum(coarse) / 5,
        "jump_z": z,
        "jump": float(z > norm.ppf(level)),
    }


def test_every_measure_equals_its_long_hand_formula_on_hand_made_bars():
    rng = np.random.default_rng(7)
    r = rng.normal(0, 1e-3, 120)
    r[70] = 0.02  # a jump in the second hour
    bars = realized_volatility(prices_of(r), MIN, pd.Timedelta("1h"))
    assert list(bars.columns) == ["rv", "ret", "n_returns", *MEASURES]
    # a return ends at the close of its later minute bar: the bar closing 01:00 holds the 59 returns that
    # end 00:02 .. 01:00 (its first minute's return would start before the data), the next one 60
    for k, (part, first) in enumerate(((r[:59], 1), (r[59:119], 0))):
        want = long_hand(list(part), first)
        got = bars.iloc[k]
        for name, value in want.items():
            assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-15), (k, name)
    assert bars["jump"].tolist()[:2] == [0.0, 1.0]  # (a third bar holds one return: missing)


def test_identities_hold_on_every_bar():
    rng = np.random.default_rng(1)
    bars = realized_volatility(prices_of(rng.standard_t(4, 3000) * 1e-3), MIN, pd.Timedelta("15min"))
    np.testing.assert_allclose(bars["rs_plus"] + bars["rs_minus"], bars["rv"] ** 2, rtol=1e-12)
    np.testing.assert_allclose(bars["sj"], bars["rs_plus"] - bars["rs_minus"], rtol=1e-9, atol=1e-18)
    bars = bars.dropna(subset=["rv"])
    assert (bars["trv"] <= bars["rv"] ** 2 * (1 + 1e-12)).all()
    assert set(bars["jump"].unique()) <= {0.0, 1.0}


def simulate(bars: int, n: int, iv: float, jumps: float = 0.0, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """``bars`` hourly bars of ``n`` minute returns each with integrated variance ``iv`` per bar (Brownian),
    plus one jump of size ``jumps`` in every other bar (where ``jumps`` > 0); returns the bars and which
    bars jumped."""
    rng = np.random.default_rng(seed)
    r = rng.normal(0, math.sqrt(iv / n), bars * n)
    jumped = np.zeros(bars, bool)
    if jumps:
        jumped[::2] = True
        at = np.flatnonzero(jumped) * n + rng.integers(5, n - 5, jumped.sum())
        r[at] += jumps * rng.choice([-1.0, 1.0], len(at))
    out = realized_volatility(prices_of(r), MIN, pd.Timedelta(minutes=n))
    return out.iloc[:bars], jumped


@pytest.mark.parametrize("name", ["rv", "bpv", "medrv", "trv", "rv_ss"])
def test_variance_estimators_hit_the_integrated_variance_within_their_sampling_error(name):
    iv, n, bars = 1e-4, 60, 2000
    sim, _ = simulate(bars, n, iv, seed=3)
    est = sim["rv"] ** 2 if name == "rv" else sim[name]
    # the standard error of the mean over bars, from the estimator's own spread
    se = est.std(ddof=1) / math.sqrt(bars)
    assert abs(est.mean() - iv) < 4 * se + 0.01 * iv, (name, est.mean(), iv, se)
    # and the jump-free estimators' spread is what their asymptotic variance says: 2 IQ / n for RV (and
    # truncated RV, which drops nothing here), (pi^2/4 + pi - 3) IQ / n = 2.61 for BPV (Barndorff-Nielsen &
    # Shephard 2004), 2.96 for MedRV (Andersen, Dobrev & Schaumburg 2012); subsampling on a 5-minute grid
    # costs precision without noise (it is for noisy prices), so it is bounded, not pinned
    ratio = {"rv": 2.0, "bpv": math.pi**2 / 4 + math.pi - 3, "medrv": 2.96, "trv": 2.0}.get(name)
    if ratio is not None:
        assert est.var(ddof=1) == pytest.approx(ratio * iv**2 / n, rel=0.2), name
    else:
        assert 2.0 * iv**2 / n < est.var(ddof=1) < 10 * 2.0 * iv**2 / n


@pytest.mark.parametrize("name", ["rq", "tpq"])
def test_quarticity_estimators_hit_the_integrated_quarticity(name):
    iv, n, bars = 1e-4, 60, 3000
    sim, _ = simulate(bars, n, iv, seed=4)
    est = sim[name]
    se = est.std(ddof=1) / math.sqrt(bars)
    assert abs(est.mean() - iv**2) < 4 * se + 0.02 * iv**2, (name, est.mean(), iv**2)


def test_with_jumps_bpv_and_truncated_rv_stay_near_the_continuous_part_and_the_test_finds_them():
    iv, n, bars = 1e-4, 60, 1000
    sim, jumped = simulate(bars, n, iv, jumps=0.02, seed=5)  # a jump of 2 % against 0.13 % a minute
    rv2 = sim["rv"] ** 2
    assert rv2[jumped].mean() > 4 * iv  # RV takes the jump in
    for name in ("medrv", "trv"):  # built to ignore jumps: near the continuous part either way
        assert sim[name][jumped].mean() == pytest.approx(iv, rel=0.1), name
        assert sim[name][~jumped].mean() == pytest.approx(iv, rel=0.1), name
    # BPV keeps the jump's products with its neighbours (|J| (|r_-| + |r_+|) pi/2, its known finite-sample
    # bias): far below RV, near the continuous part
    assert sim["bpv"][jumped].mean() < 0.4 * rv2[jumped].mean()
    assert sim["bpv"][jumped].mean() == pytest.approx(iv, rel=0.8)
    assert sim["bpv"][~jumped].mean() == pytest.approx(iv, rel=0.1)
    assert sim["jump"][jumped].mean() > 0.95  # found where they are
    assert sim["jump"][~jumped].mean() < 0.02  # and rarely where there are none (level 0.999)
    assert (sim["rv_ss"][jumped] > 2 * iv).mean() > 0.95  # subsampling is for noise, not jumps


def test_a_bars_measures_are_known_at_its_close_truncating_later_prices_changes_none():
    rng = np.random.default_rng(9)
    p = prices_of(rng.standard_t(3, 24 * 60 * 3) * 1e-3)
    whole = realized_volatility(p, MIN, pd.Timedelta("1h"))
    for cut in ("2024-01-01 10:00", "2024-01-02 07:00", "2024-01-03 23:00"):
        # the prices of bars opening before the cut: every return ends at or before it
        early = realized_volatility(p[p.index < pd.Timestamp(cut, tz="UTC")], MIN, pd.Timedelta("1h"))
        pd.testing.assert_frame_equal(early, whole.loc[early.index], check_freq=False)
        # and poisoning the later prices changes no bar that closed by then
        junk = p.copy()
        later = junk.index >= pd.Timestamp(cut, tz="UTC")
        junk[later] = junk[later] * np.exp(rng.normal(0, 0.5, later.sum()))
        bad = realized_volatility(junk, MIN, pd.Timedelta("1h"))
        done = bad.index <= pd.Timestamp(cut, tz="UTC")
        pd.testing.assert_frame_equal(bad[done], whole[done], check_freq=False)


def test_a_bar_of_one_return_has_no_bipower_measures():
    bars = realized_volatility(prices_of(np.array([0.01, -0.02, 0.005])), MIN, MIN, min_returns=1)
    bars = bars.dropna(subset=["rv"])
    assert len(bars) == 3 and bars[["bpv", "medrv", "tpq", "jump"]].isna().all().all()


def test_the_proxy_chooses_what_forecasts_are_scored_against(minute_file, tmp_path):
    from backtester.config import parse_config
    from backtester.core.errors import ConfigError
    from backtester.runner import run
    from backtester.rv import prepare_bars

    from .conftest import base_config

    raw = base_config(minute_file, tmp_path, har={"type": "har"}, naive={})
    raw["evaluation"] = {"proxy": "bpv", "mcs_reps": 100}
    cfg = parse_config(raw)
    rows = run(cfg).forecasts
    bpv = prepare_bars(cfg.data).bars["bpv"]
    want = np.sqrt(bpv.reindex(pd.DatetimeIndex(rows["target_time"])).to_numpy())
    np.testing.assert_array_equal(rows["actual"].to_numpy(), want)
    assert not np.allclose(rows["actual"], prepare_bars(cfg.data).bars["rv"].reindex(rows["target_time"]))
    for proxy, pattern in (("bvp", r"evaluation.proxy: unknown proxy 'bvp' \(did you mean 'bpv'\?\)"),):
        raw["evaluation"] = {"proxy": proxy}
        with pytest.raises(ConfigError, match=pattern):
            parse_config(raw)
    raw["evaluation"] = {"proxy": "medrv"}
    raw["data"]["bar"] = "2min"
    with pytest.raises(ConfigError, match=r"evaluation.proxy: the proxy reads 'medrv', which needs 3 or more returns"):
        parse_config(raw)
