"""Realized-volatility bars from N-minute price bars.

RV of a bar = sqrt(sum of squared intrabar log returns). A bar is keyed by its
**close** time: the hourly bar closing at 10:00 holds the returns that end in
(09:00, 10:00]. Returns are close-to-close between consecutive input bars, and
a return is dropped (never counted) when it crosses a session break or a gap
longer than ``max_gap``. A bar with fewer than ``min_returns`` returns is
*missing* (NaN), not zero; by default ``min_returns`` is half the input bars the
bar holds in session (so the half-hour bar at an exchange's 09:30 open counts). Bars that lie wholly outside the calendar's
sessions (FX weekends, exchange nights) do not exist at all.

Calendars: ``24/7`` (one endless session), ``fx`` (weeks from Sunday 17:00 to
Friday 17:00 New York time), or any exchange code known to
``exchange-calendars`` (``XNYS``, ``XLON``, ...).

Examples
--------
>>> import numpy as np, pandas as pd
>>> t = pd.date_range("2024-01-01 00:00", periods=120, freq="min", tz="UTC")
>>> p = pd.Series(np.exp(np.arange(120) * 0.001), index=t)
>>> bars = realized_volatility(p, pd.Timedelta("1min"), pd.Timedelta("1h"))
>>> bars["n_returns"].tolist(), np.round(bars["rv"].to_numpy(), 6).tolist()
([59, 60], [0.007681, 0.007746])
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from .data import file_fingerprint, load_prices, load_rv_bars
from .errors import ConfigError, DataError

NS_MIN = 60 * 10**9


def _fx_keys(ns: np.ndarray) -> np.ndarray:
    """Session key per timestamp for FX: the trading week, or -1 in the weekend closure."""
    local = pd.DatetimeIndex(ns, tz="UTC").tz_convert("America/New_York").tz_localize(None).asi8
    shifted = local + 7 * 3600 * 10**9  # Sunday 17:00 local -> Monday 00:00
    days = shifted // (86400 * 10**9)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    week = (days + 3) // 7
    return np.where(weekday < 5, week, -1)


@lru_cache(maxsize=8)
def _exchange(name: str, start: str, end: str):
    import exchange_calendars as xcals

    return xcals.get_calendar(name, start=start, end=end, side="left")


def check_calendar(name: str) -> None:
    """Raise ConfigError if ``name`` is not ``24/7``, ``fx`` or an exchange-calendars code."""
    if name in ("24/7", "fx"):
        return
    import exchange_calendars as xcals

    if name not in xcals.get_calendar_names(include_aliases=True):
        raise ConfigError(
            f"data.calendar: unknown calendar {name!r}; use '24/7', 'fx' or an exchange code such as XNYS, XLON, XTKS "
            "(exchange_calendars.get_calendar_names() lists them)"
        )


def session_keys(ns: np.ndarray, calendar: str) -> np.ndarray:
    """An int64 session key per timestamp (bar open time, ns UTC); -1 outside any session.

    Two consecutive bars with the same key lie in the same session, so the return
    between them is counted.
    """
    ns = np.asarray(ns, dtype="int64")
    if calendar == "24/7":
        return np.zeros(len(ns), dtype="int64")
    if calendar == "fx":
        return _fx_keys(ns)
    check_calendar(calendar)
    if len(ns) == 0:
        return np.zeros(0, dtype="int64")
    first = pd.Timestamp(int(ns.min()), tz="UTC").normalize() - pd.Timedelta("7D")
    last = pd.Timestamp(int(ns.max()), tz="UTC").normalize() + pd.Timedelta("7D")
    cal = _exchange(calendar, first.strftime("%Y-%m-%d"), last.strftime("%Y-%m-%d"))
    minutes = cal.minutes
    floor = ns - ns % NS_MIN
    inside = np.isin(floor, minutes.asi8)
    keys = np.full(len(ns), -1, dtype="int64")
    if inside.any():
        sessions = cal.minutes_to_sessions(pd.DatetimeIndex(floor[inside], tz="UTC"))
        keys[inside] = sessions.asi8
    return keys


def realized_volatility(
    prices: pd.Series,
    interval: pd.Timedelta,
    bar: pd.Timedelta,
    calendar: str = "24/7",
    min_returns: int | None = None,
    max_gap: pd.Timedelta = pd.Timedelta("15min"),
) -> pd.DataFrame:
    """Build RV bars from prices keyed by input-bar open time (UTC).

    Returns a frame indexed by bar close time (``time``) with columns ``rv``,
    ``ret`` (sum of the bar's returns) and ``n_returns``; missing bars have NaN
    ``rv`` and ``ret``.
    """
    t = prices.index.asi8
    logp = np.log(prices.to_numpy(dtype="float64"))
    keys = session_keys(t, calendar)
    ok_row = keys >= 0
    t, logp, keys = t[ok_row], logp[ok_row], keys[ok_row]
    if len(t) < 2:
        raise DataError("fewer than two input bars fall inside the calendar's sessions; check data.calendar")
    r = np.diff(logp)
    keep = (keys[1:] == keys[:-1]) & (np.diff(t) <= max_gap.value)
    end = t[1:] + interval.value  # a return ends at the close of its later bar
    bar_ns = bar.value
    close = -(-end // bar_ns) * bar_ns  # ceil to the bar grid
    r, close = r[keep], close[keep]

    grid, expected = _bar_grid(t, interval, bar, calendar)
    pos = np.searchsorted(grid, close)
    inside = (pos < len(grid)) & (grid[np.minimum(pos, len(grid) - 1)] == close)
    pos, r = pos[inside], r[inside]
    n = np.bincount(pos, minlength=len(grid))
    ss = np.bincount(pos, weights=r * r, minlength=len(grid))
    total = np.bincount(pos, weights=r, minlength=len(grid))
    threshold = np.maximum(1, expected // 2) if min_returns is None else min_returns
    missing = n < threshold
    out = pd.DataFrame(
        {
            "rv": np.where(missing, np.nan, np.sqrt(ss)),
            "ret": np.where(missing, np.nan, total),
            "n_returns": n.astype("int64"),
        },
        index=pd.DatetimeIndex(grid, tz="UTC", name="time"),
    )
    return out


def _bar_grid(t: np.ndarray, interval: pd.Timedelta, bar: pd.Timedelta, calendar: str) -> tuple[np.ndarray, np.ndarray]:
    """Close times of every bar from the first to the last input bar that overlaps a session,
    and how many input bars each would hold if none were missing."""
    bar_ns = bar.value
    first = (t[0] // bar_ns) * bar_ns + bar_ns
    last = (t[-1] // bar_ns) * bar_ns + bar_ns
    # integer steps: np.arange(start, stop, step) sizes itself in floating point and can drop the
    # last bar when the nanosecond numbers are large (it did, on two years of 1-minute data)
    n_bars = (last - first) // bar_ns + 1
    if calendar == "24/7":
        grid = first + bar_ns * np.arange(n_bars, dtype="int64")
        return grid, np.full(len(grid), bar_ns // interval.value, dtype="int64")
    slots = (first - bar_ns) + interval.value * np.arange(n_bars * (bar_ns // interval.value), dtype="int64")
    live = session_keys(slots, calendar) >= 0
    slot_close = (slots[live] // bar_ns) * bar_ns + bar_ns
    grid, counts = np.unique(slot_close, return_counts=True)
    return grid, counts.astype("int64")


# --------------------------------------------------------------------------- prepared bars


@dataclass(frozen=True)
class PreparedBars:
    """RV bars plus where they came from."""

    bars: pd.DataFrame
    fingerprint: str  # sha256 of the source file
    cache_key: str
    from_cache: bool

    @property
    def missing(self) -> pd.DatetimeIndex:
        return self.bars.index[self.bars["rv"].isna()]

    def describe(self) -> str:
        n, miss = len(self.bars), self.missing
        shown = ", ".join(str(m) for m in miss[:3]) + (" ..." if len(miss) > 3 else "")
        gaps = f"{len(miss)} missing ({shown})" if len(miss) else "none missing"
        return f"{n:,} bars from {self.bars.index[0]} to {self.bars.index[-1]}, {gaps}"


def _params_key(cfg) -> dict:
    return {
        "kind": cfg.kind,
        "timestamp_column": cfg.timestamp_column,
        "price_column": cfg.price_column,
        "rv_column": cfg.rv_column,
        "timezone": cfg.timezone,
        "timestamp_is": cfg.timestamp_is,
        "interval": str(cfg.interval),
        "calendar": cfg.calendar,
        "bar": str(cfg.bar),
        "min_returns": cfg.min_returns,
        "max_gap": str(cfg.max_gap),
        "version": 1,
    }


def prepare_bars(cfg) -> PreparedBars:
    """Load ``cfg.path`` and build (or read from cache) its RV bars.

    The cache file is named by the sha256 of the source file's bytes and of the
    parameters, so an edited file or a changed parameter never hits a stale entry.
    """
    check_calendar(cfg.calendar)
    path = Path(cfg.path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found; check data.path in the config")
    fingerprint = file_fingerprint(path)
    key = hashlib.sha256((fingerprint + json.dumps(_params_key(cfg), sort_keys=True)).encode()).hexdigest()[:24]
    cache_file = Path(cfg.cache_dir) / f"rv-{key}.parquet" if cfg.cache_dir else None
    bars, from_cache = None, False
    if cache_file is not None and cache_file.is_file():
        try:
            bars, from_cache = pd.read_parquet(cache_file), True
        except Exception:
            bars = None  # a damaged cache entry is rebuilt below
    if bars is None:
        if cfg.kind == "rv":
            bars = load_rv_bars(cfg)
        else:
            bars = realized_volatility(load_prices(cfg), cfg.interval, cfg.bar, cfg.calendar, cfg.min_returns, cfg.max_gap)
        if cache_file is not None:
            _write_atomic(bars, cache_file)
    if cfg.start is not None or cfg.end is not None:
        bars = bars.loc[cfg.start : cfg.end]
    observed = np.flatnonzero(bars["rv"].notna().to_numpy())
    if len(observed) == 0:
        raise DataError(
            f"{path}: no bar with enough returns (between data.start and data.end); "
            "lower data.min_returns or check data.interval and the dates"
        )
    bars = bars.iloc[observed[0] :]  # leading missing bars carry nothing
    return PreparedBars(bars, fingerprint, key, from_cache)


def _write_atomic(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    frame.to_parquet(tmp)
    os.replace(tmp, path)
