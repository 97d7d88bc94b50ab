"""VaR/ES from volatility and their backtests, each against a long-hand implementation on hand-made hits
(issue 29, item 1: the building blocks; not yet wired into a run)."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from backtester.evaluation.risk import christoffersen, dynamic_quantile, fz0, kupiec, traffic_light, var_es


def test_var_and_es_of_a_normal_and_a_unit_variance_t():
    v, e = var_es(np.array([0.02]), 0.01)
    assert v[0] == pytest.approx(0.02 * stats.norm.ppf(0.01))
    # ES is the mean below VaR: integrate the density long-hand
    tail, _ = integrate.quad(lambda x: x * stats.norm.pdf(x, scale=0.02), -np.inf, v[0])
    assert e[0] == pytest.approx(tail / 0.01, rel=1e-6)
    nu = 5.0
    v, e = var_es(np.array([1.0]), 0.05, "t", nu)
    dist = stats.t(nu, scale=math.sqrt((nu - 2) / nu))  # unit variance
    assert dist.var() == pytest.approx(1.0) and v[0] == pytest.approx(dist.ppf(0.05))
    tail, _ = integrate.quad(lambda x: x * dist.pdf(x), -np.inf, v[0])
    assert e[0] == pytest.approx(tail / 0.05, rel=1e-6)
    with pytest.raises(ValueError, match="unknown distribution 'normall'"):
        var_es(1.0, 0.01, "normall")


def test_kupiec_is_the_likelihood_ratio_written_out():
    hits = np.zeros(500, bool)
    hits[[3, 50, 51, 200, 201, 202, 400, 480, 481, 499]] = True  # 10 of 500 against 1 %: too many
    x, n, p = 10, 500, 0.01
    lr = -2 * ((n - x) * math.log(1 - p) + x * math.log(p) - (n - x) * math.log(1 - x / n) - x * math.log(x / n))
    got = kupiec(hits, 0.01)
    assert got.statistic == pytest.approx(lr) and got.pvalue == pytest.approx(stats.chi2.sf(lr, 1))
    assert kupiec(np.zeros(100, bool), 0.01).statistic == pytest.approx(-2 * 100 * math.log(0.99))


def test_christoffersen_counts_transitions_and_clustered_hits_fail():
    hits = np.zeros(500, bool)
    hits[[3, 50, 51, 200, 201, 202, 400, 480, 481, 499]] = True
    prev, now = hits[:-1], hits[1:]
    n = {(a, b): int(((prev == a) & (now == b)).sum()) for a in (0, 1) for b in (0, 1)}
    p01 = n[0, 1] / (n[0, 0] + n[0, 1])
    p11 = n[1, 1] / (n[1, 0] + n[1, 1])
    p = (n[0, 1] + n[1, 1]) / sum(n.values())
    l0 = (n[0, 0] + n[1, 0]) * math.log(1 - p) + (n[0, 1] + n[1, 1]) * math.log(p)
    l1 = n[0, 0] * math.log(1 - p01) + n[0, 1] * math.log(p01) + n[1, 0] * math.log(1 - p11) + n[1, 1] * math.log(p11)
    ind, cc = christoffersen(hits, 0.01)
    assert ind.statistic == pytest.approx(-2 * (l0 - l1)) and ind.pvalue < 0.01  # hits come in clusters
    assert cc.statistic == pytest.approx(kupiec(hits, 0.01).statistic + ind.statistic) and cc.df == 2


def test_dynamic_quantile_regression_written_out():
    rng = np.random.default_rng(0)
    var = -np.abs(rng.normal(2, 0.3, 400))
    hits = rng.random(400) < 0.05
    h = hits - 0.05
    x = np.column_stack([np.ones(396), h[3:399], h[2:398], h[1:397], h[0:396], var[4:]])
    b = np.linalg.lstsq(x, h[4:], rcond=None)[0]
    want = b @ x.T @ x @ b / (0.05 * 0.95)
    got = dynamic_quantile(hits, var, 0.05)
    assert got.statistic == pytest.approx(want) and got.df == 6 and got.pvalue > 0.01  # a correct VaR passes
    clustered = np.zeros(400, bool)
    clustered[100:120] = True  # 20 hits in a row
    assert dynamic_quantile(clustered, var, 0.05).pvalue < 1e-6


def test_basel_traffic_light_zones_for_250_days_at_one_percent():
    assert [traffic_light(k, 250, 0.01) for k in range(12)] == ["green"] * 5 + ["yellow"] * 5 + ["red"] * 2


def test_fz0_is_lowest_at_the_true_var_and_es():
    rng = np.random.default_rng(1)
    r = rng.standard_normal(200_000)
    losses = {}
    for s in (0.8, 1.0, 1.25):
        v, e = var_es(np.full(len(r), s), 0.05)
        losses[s] = float(fz0(r, v, e, 0.05).mean())
    assert losses[1.0] < losses[0.8] and losses[1.0] < losses[1.25]
    # one row long-hand
    v, e = var_es(np.array([1.0]), 0.05)
    y = -2.0
    assert fz0(np.array([y]), v, e, 0.05)[0] == pytest.approx(
        -(v[0] - y) / (0.05 * e[0]) + v[0] / e[0] + math.log(-e[0]) - 1
    )


def test_duration_test_finds_clustered_and_passes_memoryless_hits():
    from backtester.evaluation.risk import duration

    rng = np.random.default_rng(3)
    memoryless = rng.random(4000) < 0.02
    assert duration(memoryless).pvalue > 0.01
    clustered = np.zeros(4000, bool)
    for start in rng.choice(3900, 16, replace=False):
        clustered[start : start + 5] = True  # 80 hits in bursts of five
    got = duration(clustered)
    assert got.pvalue < 1e-6 and got.statistic > 0 and got.df == 1
    # the LR written out: Weibull log-likelihood over (a, b) by a general optimizer, the first and last
    # durations censored (survival), against the exponential (b = 1, a's MLE closed-form)
    from scipy.optimize import minimize

    for hits in (memoryless, clustered):
        at = np.flatnonzero(hits)
        assert not hits[0] and not hits[-1]  # both ends censored (rugarch's convention)
        d = np.r_[at[0] + 1, np.diff(at), len(hits) - at[-1] - 1].astype(float)
        inner = d[1:-1]

        def loglik(a, b, d=d, inner=inner):
            log_f = b * np.log(a) + np.log(b) + (b - 1) * np.log(inner) - (a * inner) ** b
            return log_f.sum() - (a * d[0]) ** b - (a * d[-1]) ** b

        best = minimize(
            lambda x: -loglik(np.exp(x[0]), np.exp(x[1])),
            [np.log(0.05), 0.0],
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000},
        )
        lam = len(inner) / d.sum()
        want = 2 * (-best.fun - loglik(lam, 1.0))
        assert duration(hits).statistic == pytest.approx(want, rel=1e-4, abs=1e-6)


def test_acerbi_szekely_z2_is_near_zero_for_a_correct_es_and_negative_for_a_thin_one():
    from backtester.evaluation.risk import acerbi_szekely

    rng = np.random.default_rng(4)
    sigma = np.full(3000, 0.01)
    v, e = var_es(sigma, 0.025)
    null = sigma * rng.standard_normal((500, 3000))  # returns drawn from the forecast distribution itself
    right = acerbi_szekely(sigma * rng.standard_normal(3000), v, e, 0.025, null)
    assert abs(right.statistic) < 0.2 and right.pvalue > 0.05
    fat = sigma * rng.standard_t(3, 3000)  # fatter tails than the normal ES says
    wrong = acerbi_szekely(fat, v, e, 0.025, null)
    assert wrong.statistic < right.statistic and wrong.pvalue < 0.05
    # Z2 written out
    z2 = np.sum(fat * (fat < v) / (3000 * 0.025 * np.abs(e))) + 1
    assert wrong.statistic == pytest.approx(z2)


def test_kupiec_and_duration_agree_with_vartests():
    vartests = pytest.importorskip("vartests")  # test-only: the published port of rugarch's tests
    from backtester.evaluation.risk import duration

    rng = np.random.default_rng(11)
    for p, n in ((0.01, 800), (0.05, 500), (0.05, 1500)):
        for hits in (rng.random(n) < p * 1.4, np.repeat(rng.random(n // 4) < p * 2, 4)):  # too many; clustered
            want = vartests.kupiec_test(hits.astype(int), risk_conf_level=1 - p)
            assert kupiec(hits, p).statistic == pytest.approx(want["statistic"], rel=1e-9)
            assert kupiec(hits, p).pvalue == pytest.approx(want["p-value"], rel=1e-9)
            want = vartests.duration_test(hits.astype(int))
            assert duration(hits).statistic == pytest.approx(want["statistic"], rel=1e-3, abs=1e-6)
            assert duration(hits).pvalue == pytest.approx(want["p-value"], rel=1e-3, abs=1e-6)


def test_kupiec_non_rejection_region_is_the_published_one():
    # Kupiec (1995)'s non-rejection regions at 5 %, as tabulated by Jorion (Value at Risk, "Model verification"):
    # a 99 % VaR over 510 days: 1 < N < 11; over 1,000 days: 4 < N < 17; a 95 % VaR over 1,000 days: 37 < N < 65
    for n, level, low, high in ((510, 0.01, 1, 11), (1000, 0.01, 4, 17), (1000, 0.05, 37, 65)):
        kept = [x for x in range(0, 100) if kupiec(np.arange(n) < x, level).pvalue > 0.05]
        assert kept == list(range(low + 1, high)), (n, level)
    # 250 days at 99 %: 1 to 6 (Giambiagi, table 10.1, as vartests' documentation quotes it)
    assert [x for x in range(12) if kupiec(np.arange(250) < x, 0.01).pvalue > 0.05] == [1, 2, 3, 4, 5, 6]
