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
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from .core.errors import ConfigError, DataError
from .data import file_fingerprint, load_prices, load_rv_bars, price_batches, source_format
from .measures import COARSE, bar_sums, measures_frame

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
    try:  # whole decades, so that the batches of one file share one cached calendar
        cal = _exchange(calendar, f"{first.year // 10 * 10}-01-01", f"{last.year // 10 * 10 + 9}-12-31")
    except ValueError:  # the calendar is defined for part of the decade only
        cal = _exchange(calendar, first.strftime("%Y-%m-%d"), last.strftime("%Y-%m-%d"))
    minutes = cal.minutes.asi8  # sorted
    floor = ns - ns % NS_MIN
    at = np.minimum(np.searchsorted(minutes, floor), len(minutes) - 1)
    inside = minutes[at] == floor
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
    anchor: tuple[str, int] | None = None,
    jump_level: float = 0.999,
) -> pd.DataFrame:
    """Build RV bars from prices keyed by input-bar open time (UTC).

    ``anchor``: ``(timezone, offset_ns)``: bars close at that local time of day (FX daily
    bars at 17:00 New York, see :func:`bar_anchor`) instead of on the UTC grid.

    Returns a frame indexed by bar close time (``time``) with columns ``rv``,
    ``ret`` (sum of the bar's returns), ``n_returns`` and the realized measures of
    :mod:`backtester.measures` (``jump_level``: the jump test's); missing bars have NaN
    in every column but ``n_returns``.
    """
    t, logp, keys = _in_session(prices, calendar)
    if len(t) < 2:
        raise DataError(TOO_FEW)
    r, close, keep, slot = _returns(t, logp, keys, interval, bar, max_gap, anchor)
    grid, expected = _bar_grid(t, interval, bar, calendar, anchor)
    return _frame(grid, expected, bar_sums(r, close, keep, slot, _coarse(interval)), min_returns, jump_level)


def realized_volatility_batches(
    batches: Iterable[pd.Series],
    interval: pd.Timedelta,
    bar: pd.Timedelta,
    calendar: str = "24/7",
    min_returns: int | None = None,
    max_gap: pd.Timedelta = pd.Timedelta("15min"),
    anchor: tuple[str, int] | None = None,
    jump_level: float = 0.999,
) -> pd.DataFrame:
    """:func:`realized_volatility` of prices that arrive in time-ordered batches: the same frame, bit for bit.

    Only one batch and the running per-bar sums are held in memory. Each bar's returns are summed
    by one ``bincount`` in time order, as in the one-piece path: the input bars of a batch's last
    (perhaps unfinished) bar are carried over to the next batch, which also gives the return that
    crosses the batch boundary.
    """
    t = np.zeros(0, dtype="int64")
    logp = np.zeros(0)
    keys = np.zeros(0, dtype="int64")
    first = None
    parts: list[dict[str, np.ndarray]] = []  # per batch: the per-bar sums of its finished bars
    coarse = _coarse(interval)
    for prices in batches:
        bt, blogp, bkeys = _in_session(prices, calendar)
        t, logp, keys = np.concatenate([t, bt]), np.concatenate([logp, blogp]), np.concatenate([keys, bkeys])
        if len(t) < 2:
            continue
        first = t[0] if first is None else first
        r, close, keep, slot = _returns(t, logp, keys, interval, bar, max_gap, anchor)
        done = int(np.searchsorted(close, close[-1]))  # returns before the last bar's first one
        parts.append(bar_sums(r[:done], close[:done], keep[:done], slot[:done], coarse))
        t, logp, keys = t[done:], logp[done:], keys[done:]  # row done starts return done
    if first is None:
        raise DataError(TOO_FEW)
    r, close, keep, slot = _returns(t, logp, keys, interval, bar, max_gap, anchor)
    parts.append(bar_sums(r, close, keep, slot, coarse))

    grid, expected = _bar_grid(np.array([first, t[-1]]), interval, bar, calendar, anchor)
    sums = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return _frame(grid, expected, sums, min_returns, jump_level)


TOO_FEW = "fewer than two input bars fall inside the calendar's sessions; check data.calendar"


def _in_session(prices: pd.Series, calendar: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Open times (ns), log prices and session keys of the input bars that lie in a session."""
    t = prices.index.asi8
    logp = np.log(prices.to_numpy(dtype="float64"))
    keys = session_keys(t, calendar)
    ok_row = keys >= 0
    return t[ok_row], logp[ok_row], keys[ok_row]


def bar_anchor(calendar: str, bar: pd.Timedelta, anchor: str = "session") -> tuple[str, int] | None:
    """Where daily bars close: FX days end at 17:00 New York (the market's roll), so ``bar: 1d`` (or
    any whole number of days) on ``calendar: fx`` is anchored there unless ``anchor`` is ``utc``.

    >>> bar_anchor("fx", pd.Timedelta("1D")), bar_anchor("fx", pd.Timedelta("1h")), bar_anchor("24/7", pd.Timedelta("1D"))
    (('America/New_York', 61200000000000), None, None)
    """
    day = pd.Timedelta("1D")
    if anchor == "session" and calendar == "fx" and bar >= day and bar % day == pd.Timedelta(0):
        return ("America/New_York", 17 * 3600 * 10**9)
    return None


def bar_close(end: np.ndarray, bar_ns: int, anchor: tuple[str, int] | None = None) -> np.ndarray:
    """The close (ns) of the bar each time ``end`` (ns, a return's end) falls in: ceil to the grid.

    >>> h = 3600 * 10**9
    >>> t = pd.DatetimeIndex(["2024-01-08 21:30", "2024-01-08 22:00", "2024-07-08 21:30"], tz="UTC").asi8
    >>> pd.DatetimeIndex(bar_close(t, 24 * h, ("America/New_York", 17 * h)), tz="UTC").strftime("%m-%d %H:%M").tolist()
    ['01-08 22:00', '01-08 22:00', '07-09 21:00']
    """
    if anchor is None:
        return -(-end // bar_ns) * bar_ns
    tz, offset = anchor
    local = pd.DatetimeIndex(end, tz="UTC").tz_convert(tz).tz_localize(None).asi8
    close_local = -(-(local - offset) // bar_ns) * bar_ns + offset
    return (
        pd.DatetimeIndex(close_local)
        .tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
        .tz_convert("UTC")
        .asi8
    )


def _returns(
    t,
    logp,
    keys,
    interval: pd.Timedelta,
    bar: pd.Timedelta,
    max_gap: pd.Timedelta,
    anchor: tuple[str, int] | None = None,
):
    """Log returns between consecutive input bars, the close of the bar each ends in, whether it counts, and
    its input-bar slot within that bar (0 for a return that ends at the bar's first input bar)."""
    r = np.diff(logp)
    keep = (keys[1:] == keys[:-1]) & (np.diff(t) <= max_gap.value)
    end = t[1:] + interval.value  # a return ends at the close of its later bar
    close = bar_close(end, bar.value, anchor)
    slot = np.maximum((end - (close - bar.value)) // interval.value - 1, 0)
    return r, close, keep, slot


def _coarse(interval: pd.Timedelta) -> int:
    """Input bars per step of the subsampled RV's coarse grid (:data:`~backtester.measures.COARSE`)."""
    return max(1, int(pd.Timedelta(COARSE) // interval))


def _on_grid(grid: np.ndarray, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos = np.searchsorted(grid, close)
    inside = (pos < len(grid)) & (grid[np.minimum(pos, len(grid) - 1)] == close)
    return pos, inside


def _frame(grid, expected, sums: dict[str, np.ndarray], min_returns: int | None, jump_level: float) -> pd.DataFrame:
    """The bars on ``grid``: RV, return, count and every realized measure from the per-bar ``sums``
    (:func:`~backtester.measures.bar_sums`); a bar with fewer returns than the threshold is missing."""
    pos, inside = _on_grid(grid, sums["close"])
    on_grid = {}
    for k, v in sums.items():
        if k != "close":
            full = np.zeros(len(grid), dtype=v.dtype)
            full[pos[inside]] = v[inside]
            on_grid[k] = full
    n = on_grid["n"]
    threshold = np.maximum(1, expected // 2) if min_returns is None else min_returns
    missing = n < threshold
    columns = {
        "rv": np.sqrt(on_grid["ss"]),
        "ret": on_grid["total"],
        **measures_frame(on_grid, jump_level),
    }
    out = pd.DataFrame(
        {k: np.where(missing, np.nan, v) for k, v in columns.items()},
        index=pd.DatetimeIndex(grid, tz="UTC", name="time"),
    )
    out.insert(2, "n_returns", n.astype("int64"))
    return out


def _bar_grid(
    t: np.ndarray, interval: pd.Timedelta, bar: pd.Timedelta, calendar: str, anchor: tuple[str, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Close times of every bar from the first to the last input bar that overlaps a session,
    and how many input bars each would hold if none were missing."""
    bar_ns = bar.value
    if anchor is not None:  # closes at a local time of day: count the session's input-bar slots per close
        first_close, last_close = bar_close(np.array([t[0] + interval.value, t[-1] + interval.value]), bar_ns, anchor)
        closes, counts = [], []
        step = (1 << 20) * interval.value
        for s0 in range(int(first_close - bar_ns - 2 * 3600 * 10**9), int(last_close), step):
            slots = s0 + interval.value * np.arange(1 << 20, dtype="int64")
            slots = slots[slots < last_close]
            live = session_keys(slots, calendar) >= 0
            c = bar_close(slots[live] + interval.value, bar_ns, anchor)
            c = c[(c >= first_close) & (c <= last_close)]
            u, n = np.unique(c, return_counts=True)
            closes.append(u)
            counts.append(n)
        grid, idx = np.unique(np.concatenate(closes), return_inverse=True)
        total = np.bincount(idx, weights=np.concatenate(counts).astype("float64"), minlength=len(grid))
        return grid, total.astype("int64")
    first = (t[0] // bar_ns) * bar_ns + bar_ns
    last = (t[-1] // bar_ns) * bar_ns + bar_ns
    # integer steps: np.arange(start, stop, step) sizes itself in floating point and can drop the
    # last bar when the nanosecond numbers are large (it did, on two years of 1-minute data)
    n_bars = (last - first) // bar_ns + 1
    if calendar == "24/7":
        grid = first + bar_ns * np.arange(n_bars, dtype="int64")
        return grid, np.full(len(grid), bar_ns // interval.value, dtype="int64")
    per_bar = bar_ns // interval.value
    step = max(1, (1 << 20) // per_bar)  # bars per block of about a million input-bar slots
    grids, counts = [], []
    for b0 in range(0, n_bars, step):
        b1 = min(b0 + step, n_bars)
        slots = (first - bar_ns) + interval.value * np.arange(b0 * per_bar, b1 * per_bar, dtype="int64")
        live = session_keys(slots, calendar) >= 0
        slot_close = (slots[live] // bar_ns) * bar_ns + bar_ns
        block_grid, block_counts = np.unique(slot_close, return_counts=True)
        grids.append(block_grid)
        counts.append(block_counts)
    return np.concatenate(grids), np.concatenate(counts).astype("int64")


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
        "version": 2,  # 2: every realized measure beside RV
        "jump_level": getattr(cfg, "jump_level", 0.999),
        **(
            {"anchor": list(bar_anchor(cfg.calendar, cfg.bar, cfg.anchor))}
            if bar_anchor(cfg.calendar, cfg.bar, cfg.anchor)
            else {}
        ),
        **(
            {
                "timestamp_format": cfg.timestamp_format,
                "epoch_unit": cfg.epoch_unit,
                "separator": cfg.separator,
                "header": cfg.header,
            }
            if (cfg.timestamp_format, cfg.epoch_unit, cfg.separator, cfg.header) != (None, None, ",", True)
            else {}
        ),  # CSV dialect options (absent when default: old keys stay valid)
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
            bars = minute_rv_bars(cfg)
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


def minute_rv_bars(cfg, batch_rows: int = 1 << 16) -> pd.DataFrame:
    """RV bars of ``cfg``'s minute bars: Parquet streamed in batches of ``batch_rows`` rows, CSV read whole.

    A problem found while streaming is reported as the one-piece path words it (row numbers over the
    whole file), by reading the file again whole.
    """
    args = (
        cfg.interval,
        cfg.bar,
        cfg.calendar,
        cfg.min_returns,
        cfg.max_gap,
        bar_anchor(cfg.calendar, cfg.bar, cfg.anchor),
        getattr(cfg, "jump_level", 0.999),
    )
    if source_format(cfg.path, cfg.format) == "parquet":
        try:
            return realized_volatility_batches(price_batches(cfg, batch_rows), *args)
        except DataError:
            pass
    return realized_volatility(load_prices(cfg), *args)


def _write_atomic(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    frame.to_parquet(tmp)
    os.replace(tmp, path)
