"""Synthetic 1-minute OHLCV bars with realistic volatility dynamics.

The log-volatility is a sum of three Ornstein-Uhlenbeck components with
half-lives of about 30 minutes, 1 day and 3 weeks (a standard approximation of
long memory), times an hour-of-day pattern (quiet Asian night, busy US open),
with Student-t(4) innovations (fat tails), Poisson jumps (about two a day) and a
few missing minutes and one 50-minute outage. Deterministic for a given seed.

Examples
--------
>>> bars = synth_bars(days=1, seed=1)
>>> list(bars.columns), len(bars) <= 1440
(['timestamp', 'open', 'high', 'low', 'close', 'volume'], True)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .core.filters import lfilter


def intraday_pattern(hours: np.ndarray) -> np.ndarray:
    """Multiplier of volatility by UTC hour of day (mean about 1)."""
    base = 0.75 + 0.25 * np.cos((hours - 15.0) / 24.0 * 2 * np.pi)  # peak around 15:00 UTC
    bump = 0.35 * np.exp(-0.5 * ((hours - 13.5) / 0.75) ** 2)  # US open / data releases
    return base + bump


HALF_LIVES = np.array([30.0, 1440.0, 30240.0])  # of the log-volatility components, in minutes
WEIGHTS = np.array([0.25, 0.35, 0.45])  # stationary std of each component


def vol_components(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` minutes of the three Ornstein-Uhlenbeck log-volatility components (a long-memory approximation),
    drawn from ``rng`` (shocks, then the starting state)."""
    phi = np.exp(-np.log(2) / HALF_LIVES)
    shocks = rng.standard_normal((n, 3)) * WEIGHTS * np.sqrt(1 - phi**2)
    state = rng.standard_normal(3) * WEIGHTS
    comp = np.empty((n, 3))
    for k in range(3):  # x[i] = phi * x[i-1] + shock[i] as a linear filter: same arithmetic, no Python loop
        comp[:, k] = lfilter([1.0], [1.0, -phi[k]], shocks[:, k], zi=[phi[k] * state[k]])[0]
    return comp


def kept_minutes(rng: np.random.Generator, n: int, days: int, missing: int, outage: int) -> np.ndarray:
    """Which of ``n`` minutes are kept: all but ``missing`` at random and one ``outage``-minute halt mid-way."""
    keep = np.ones(n, dtype=bool)
    if missing:
        keep[rng.choice(np.arange(1, n - 1), size=min(missing, n - 2), replace=False)] = False
    if outage and days > 2:  # an exchange-style halt: one hour ends up missing
        at = (int(days) * 1440) // 2 + 13 * 60 + 5
        keep[at : at + outage] = False
    return keep


def synth_bars(
    start: str = "2024-01-01",
    days: int = 90,
    seed: int = 7,
    price0: float = 40000.0,
    daily_vol: float = 0.025,
    missing_minutes: int = 20,
    outage_minutes: int = 50,
    market_seed: int | None = None,
    market_share: float = 0.6,
) -> pd.DataFrame:
    """Generate ``days`` days of 1-minute bars starting at ``start`` (UTC).

    ``market_seed``: assets made with the same market seed share a market volatility factor: a share
    ``market_share`` of the variance of each log-volatility component is common to them (the rest is
    the asset's own, from ``seed``), so their volatilities move together as real assets' do.

    >>> a, b = (synth_bars(days=20, seed=s, market_seed=0) for s in (1, 2))
    >>> ra, rb = (np.log(f["close"]).diff().abs().rolling(1440).mean() for f in (a, b))
    >>> bool(ra.corr(rb) > 0.5)
    True
    """
    rng = np.random.default_rng(seed)
    n = int(days) * 1440
    t = pd.date_range(pd.Timestamp(start, tz="UTC"), periods=n, freq="min")

    comp = vol_components(rng, n)
    if market_seed is not None:  # a stream of its own: the asset's own draws are those of a lone asset
        common = vol_components(np.random.default_rng([int(market_seed), 1]), n)
        comp = np.sqrt(1 - market_share) * comp + np.sqrt(market_share) * common
    log_vol = comp.sum(axis=1) - 0.5 * (WEIGHTS**2).sum()

    minute_vol = (
        daily_vol / np.sqrt(1440) * np.exp(log_vol) * intraday_pattern(t.hour.to_numpy() + t.minute.to_numpy() / 60)
    )
    df_t = 4.0
    eps = rng.standard_t(df_t, n) / np.sqrt(df_t / (df_t - 2))
    r = minute_vol * eps
    jumps = rng.random(n) < 2.0 / 1440
    r[jumps] += rng.standard_t(3, jumps.sum()) * minute_vol[jumps] * 8
    close = price0 * np.exp(np.cumsum(r))
    open_ = np.concatenate([[price0], close[:-1]])
    wick = np.abs(rng.standard_normal((n, 2))) * minute_vol[:, None] * 0.5
    high = np.maximum(open_, close) * np.exp(wick[:, 0])
    low = np.minimum(open_, close) * np.exp(-wick[:, 1])
    volume = np.exp(rng.normal(0, 0.5, n)) * 5.0 * (minute_vol / minute_vol.mean())

    keep = kept_minutes(rng, n, days, missing_minutes, outage_minutes)
    frame = pd.DataFrame(
        {
            "timestamp": t,
            "open": np.round(open_, 2),
            "high": np.round(high, 2),
            "low": np.round(low, 2),
            "close": np.round(close, 2),
            "volume": np.round(volume, 4),
        }
    )
    return frame[keep].reset_index(drop=True)
