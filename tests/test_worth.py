"""What a forecast is worth (issue 29): GW, MZ with HAC and Patton's losses against their written-out forms,
volatility targeting and realized utility long-hand, the tails leak-free, and the config's bad input."""

import math

import numpy as np
import pandas as pd
import pytest

from backtester.config import parse_config
from backtester.config.sections import EconomicConfig, EvaluationConfig
from backtester.core.scores import row_losses
from backtester.evaluation.economic import fit_tail, one_step, tails, targeted, utility
from backtester.evaluation.referee import giacomini_white, mincer_zarnowitz, patton_loss
from backtester.evaluation.worth import worth_of

from .conftest import assert_run_refused, base_config


def test_gw_is_n_r2_of_the_artificial_regression_of_one_on_z():
    # Giacomini & White (2006, p. 1553): for one-step forecasts the statistic is n R² (uncentred) of 1 on h d
    rng = np.random.default_rng(1)
    d = rng.normal(0.05, 1, 600) + 0.3 * np.r_[0, rng.normal(0, 1, 599)]
    regime = (rng.random(600) < 0.4).astype(float)
    got = giacomini_white(d, 1, conditional=True, regime=regime)
    z = np.column_stack([np.ones(599), d[:-1], regime[1:]]) * d[1:, None]
    fitted = z @ np.linalg.lstsq(z, np.ones(599), rcond=None)[0]
    assert got.statistic == pytest.approx(599 * (fitted @ fitted) / 599, rel=1e-9) and got.df == 3 and got.n == 599
    unconditional = giacomini_white(d, 1)
    assert unconditional.statistic == pytest.approx(600 * d.mean() ** 2 / np.mean(d**2))
    # several steps: Newey-West with tau - 1 lags, written out
    tau = 3
    got = giacomini_white(d, tau)
    gamma = [np.sum(d[j:] * d[: len(d) - j]) / len(d) for j in range(tau)]
    omega = gamma[0] + 2 * sum((1 - j / tau) * gamma[j] for j in range(1, tau))
    assert got.statistic == pytest.approx(len(d) * d.mean() ** 2 / omega)
    assert giacomini_white(rng.normal(0, 1, 2000), 1).pvalue > 0.01
    assert giacomini_white(rng.normal(0.2, 1, 2000), 1).pvalue < 0.001


def test_mincer_zarnowitz_hac_wald_written_out():
    rng = np.random.default_rng(2)
    f = np.exp(rng.normal(-4.5, 0.4, 800))
    a = 0.001 + 0.8 * f + f * 0.3 * rng.standard_normal(800)
    got = mincer_zarnowitz(a, f, tau=1)
    x = np.column_stack([np.ones(800), f])
    xtx_inv = np.linalg.inv(x.T @ x)
    beta = xtx_inv @ x.T @ a
    u = x * (a - x @ beta)[:, None]
    lags = int(4 * (800 / 100) ** (2 / 9))
    s = u.T @ u
    for j in range(1, lags + 1):
        g = u[j:].T @ u[:-j]
        s += (1 - j / (lags + 1)) * (g + g.T)
    v = xtx_inv @ s @ xtx_inv
    r = beta - np.array([0.0, 1.0])
    assert got.intercept == pytest.approx(beta[0]) and got.slope == pytest.approx(beta[1])
    assert got.statistic == pytest.approx(r @ np.linalg.solve(v, r), rel=1e-6) and got.pvalue < 0.01
    unbiased = mincer_zarnowitz(f * np.exp(0.1 * rng.standard_normal(800) - 0.005), f, logs=False)
    assert unbiased.pvalue > 0.01
    # and statsmodels' HAC Wald test (installed with arch), in levels and logs
    import statsmodels.api as sm

    keep = a > 0
    for logs in (False, True):
        y, z = (np.log(a[keep]), np.log(f[keep])) if logs else (a, f)
        hac = {"maxlags": int(4 * (len(y) / 100) ** (2 / 9))}
        fit = sm.OLS(y, sm.add_constant(z)).fit(cov_type="HAC", cov_kwds=hac)
        wald = fit.wald_test((np.eye(2), np.array([0.0, 1.0])), scalar=True, use_f=False)
        mine = mincer_zarnowitz(a, f, logs=logs)
        assert mine.statistic == pytest.approx(float(wald.statistic), rel=1e-9) and mine.slope == pytest.approx(
            fit.params[1]
        )


def test_patton_family_contains_qlike_and_mse_and_is_robust_to_a_noisy_proxy():
    rng = np.random.default_rng(3)
    s, h = np.exp(rng.normal(0, 0.5, 50)), np.exp(rng.normal(0, 0.5, 50))
    assert np.allclose(patton_loss(s, h, -2), row_losses(np.sqrt(s), np.sqrt(h))["qlike"])
    assert np.allclose(patton_loss(s, h, 0), (s - h) ** 2 / 2)
    assert np.allclose(patton_loss(s, h, -1), h - s + s * np.log(s / h))
    assert np.allclose(patton_loss(s, h, 1), (s**3 - h**3) / 6 - h**2 * (s - h) / 2)
    # robust: with a noisy unbiased proxy of a variance of 2, every member's mean loss is lowest at 2
    proxy = 2 * rng.chisquare(1, 200_000)
    grid = np.linspace(1.5, 2.5, 21)
    for b in (-2, -1, 0, 1):
        means = [np.mean(patton_loss(proxy, np.full(len(proxy), g), b)) for g in grid]
        assert grid[int(np.argmin(means))] == pytest.approx(2.0, abs=0.11), b


def test_realized_utility_peaks_at_the_realized_volatility():
    eco = EconomicConfig(sharpe=0.4, gamma=2)
    forecasts = np.linspace(0.5, 2, 31)
    gained, short = utility(np.ones(31), forecasts, eco)
    assert forecasts[int(np.argmax(gained))] == pytest.approx(1.0) and gained.max() == pytest.approx(4.0)
    assert np.allclose(gained + short, 4.0)  # shortfall: from the perfect forecast's SR²/(2 gamma), in %


def _rows(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """One strategy's forecasts at horizons 1..3 and hourly returns with that volatility."""
    rng = np.random.default_rng(seed)
    t = pd.date_range("2024-01-01 01:00", periods=n + 4, freq="h", tz="UTC")
    sigma = 0.01 * np.exp(0.3 * np.sin(np.arange(n + 4) / 20))
    ret = pd.Series(sigma * rng.standard_t(5, n + 4) * math.sqrt(3 / 5), index=t)
    rows = pd.DataFrame(
        [
            {"strategy": "m", "issued_at": t[i], "target_time": t[i + h], "horizon": h, "model_version": 1,
             "forecast": sigma[i + h] * 1.05, "actual": abs(ret.iloc[i + h]) + 1e-4}
            for i in range(n) for h in (1, 2, 3)
        ]
    )  # fmt: skip
    return rows, ret


def test_volatility_targeting_long_hand():
    rows, ret = _rows(50)
    eco = EconomicConfig(target_vol=0.10, max_leverage=1.5, cost_bp=5)
    pos = targeted(rows, ret, eco, 8766.0)
    one = rows[rows["horizon"] == 1]
    w = np.minimum(0.10 / math.sqrt(8766) / one["forecast"].to_numpy(), 1.5)
    r = np.expm1(ret.reindex(pd.DatetimeIndex(one["target_time"])).to_numpy())
    want = pd.DataFrame(
        {
            "time": pd.DatetimeIndex(one["target_time"]),
            "w": w,
            "gross": w * r,
            "net": w * r - np.abs(np.diff(np.r_[0, w])) * 5e-4,
            "trade": np.abs(np.diff(np.r_[0, w])),
        }
    )
    pd.testing.assert_frame_equal(pos, want)
    # every 3 bars: sized from the root mean variance of the three forecasts, held three bars
    pos3 = targeted(rows, ret, EconomicConfig(rebalance=3, cost_bp=0), 8766.0)
    first = rows[rows["issued_at"] == rows["issued_at"].iloc[0]]["forecast"].to_numpy()
    assert pos3["w"].iloc[:3].tolist() == [0.10 / math.sqrt(8766) / math.sqrt(np.mean(first**2))] * 3
    assert (pos3["time"].diff().dropna() == pd.Timedelta("1h")).all()  # blocks do not overlap


def test_tails_use_only_returns_known_at_the_refit():
    rows, ret = _rows(900)
    one = one_step(rows, ret)
    group, fitted = tails(one, "fhs", 100, 250)
    assert fitted[0].dist == "normal" and fitted[1].dist == "normal" and fitted[3].dist == "fhs"
    # the fourth refit (issue time of row 300) holds the z of the rows whose bar closed by then: 300 of them
    assert len(fitted[3].pool) == 300
    nu = fit_tail(np.random.default_rng(0).standard_t(6, 20000) * math.sqrt(4 / 6), "t", 250).nu
    assert nu == pytest.approx(6, rel=0.15)


def test_var_and_positions_issued_by_t_ignore_everything_after_t():
    rows, ret = _rows(700)
    ev = EvaluationConfig(
        benchmark=None, mcs_reps=100, economic=EconomicConfig(min_history=100, refit=50, dist=["fhs"])
    )
    cut = rows["issued_at"].iloc[3 * 500]
    bars = pd.DataFrame({"rv": ret.abs(), "ret": ret})
    poisoned_rows = rows.copy()
    later = poisoned_rows["issued_at"] > cut
    poisoned_rows.loc[later, "forecast"] *= 7
    poisoned_bars = bars.copy()
    poisoned_bars.loc[poisoned_bars.index > cut + pd.Timedelta("1h"), "ret"] *= -30  # after the bar forecast at T
    _, _, _, pos, var = worth_of(rows, bars, ev, 3, 0)
    _, _, _, pos2, var2 = worth_of(poisoned_rows, poisoned_bars, ev, 3, 0)
    known = var["time"] <= cut + pd.Timedelta("1h")  # issued at or before T
    cols = ["strategy", "time", "level", "var", "es"]
    pd.testing.assert_frame_equal(var.loc[known, cols], var2.loc[known, cols])
    assert not np.allclose(var.loc[~known, "var"], var2.loc[~known, "var"])  # the poison did reach later VaRs
    held = pos["m"]["time"] <= cut + pd.Timedelta("1h")
    pd.testing.assert_series_equal(pos["m"].loc[held, "w"], pos2["m"].loc[held, "w"])


@pytest.mark.parametrize(
    "economic, message",
    [
        ({"levels": [0.01, 0.6]}, "evaluation.economic.levels: levels are tail probabilities between 0 and 0.5"),
        ({"target_vol": 0}, "evaluation.economic.target_vol: 0.0 is no volatility target"),
        ({"cost_bp": -1}, "evaluation.economic.cost_bp: -1.0 bp: costs cannot be negative"),
        ({"dist": "normall"}, "unknown distribution 'normall' (did you mean 'normal'?)"),
        ({"rebalance": 9}, "evaluation.economic.rebalance: 9 bars is beyond backtest.horizon (4)"),
    ],
)
def test_bad_economic_settings_are_refused_in_one_line(minute_file, tmp_path, economic, message):
    raw = base_config(minute_file, tmp_path, naive={})
    raw["evaluation"] = {"economic": economic}
    assert_run_refused(raw, tmp_path, message)


def test_economic_evaluation_of_rv_bars_is_refused_and_off_by_default(tmp_path):
    t = pd.date_range("2024-01-01 01:00", periods=600, freq="h", tz="UTC")
    path = tmp_path / "rv.parquet"
    pd.DataFrame({"timestamp": t, "rv": np.full(600, 0.01)}).to_parquet(path)
    raw = base_config(path, tmp_path, naive={})
    raw["data"].update({"kind": "rv", "timestamp_is": "close"})
    assert parse_config(raw).evaluation.economic.enabled is None  # auto: off where the bars give no returns
    raw["evaluation"] = {"economic": {"enabled": True}}
    assert_run_refused(
        raw, tmp_path, "evaluation.economic.enabled: VaR, ES and volatility targeting need the bars' returns"
    )


def test_gw_finds_a_model_better_only_when_volatility_is_high():
    from backtester.evaluation.worth import gw_tests

    rng = np.random.default_rng(5)
    t = pd.date_range("2024-01-01 01:00", periods=800, freq="h", tz="UTC")
    rv = pd.Series(np.exp(np.sin(np.arange(800) / 40) + 0.1 * rng.standard_normal(800)), index=t)
    high = (rv > rv.expanding().median()).to_numpy()
    d = np.where(high, -0.5, 0.5) + 0.3 * rng.standard_normal(800)  # better when volatile, worse when calm
    d -= d.mean()  # on average no better: DM and the unconditional GW see nothing
    losses = pd.concat(
        [
            pd.DataFrame({"strategy": "a", "issued_at": t, "horizon": 1, "loss": "qlike", "value": 1 + d}),
            pd.DataFrame({"strategy": "b", "issued_at": t, "horizon": 1, "loss": "qlike", "value": np.ones(800)}),
        ]
    )
    bars = pd.DataFrame({"rv": rv})
    got = {(r["test"], "regime" in r["note"]): r for r in gw_tests(losses, bars, "qlike", "b", ["a", "b"], True)}
    assert got["gw_unconditional", False]["pvalue"] > 0.5 and got["gw_conditional", True]["pvalue"] < 1e-6
    assert "windows expand" in got["gw_unconditional", False]["note"]
    plain = gw_tests(losses, bars, "qlike", "b", ["a", "b"], False, regime=False)
    assert all("regime" not in r["note"] and "expand" not in r["note"] for r in plain)
