"""Retrain calendars and training windows, as pure functions of the bar grid.

A retrain rule names *nominal* times (every Monday 00:00 Europe/London, the
last trading day of each month at 16:00 America/New_York, ...). Each nominal
time is then carried to the first bar that closes at or after it: **when a
scheduled time has no bar, the next bar carries the retrain** (two nominal times
carried to the same bar make one retrain). A retrain always happens at the
first bar of the test period too, so there is a model from the start.

Local times that do not exist (the spring-forward hour) move forward to the
first valid instant; ambiguous ones (the repeated autumn hour) take the first
occurrence.

Examples
--------
>>> import pandas as pd
>>> from backtester.config import WeeklyRule
>>> bars = pd.date_range("2024-01-01 01:00", "2024-01-31", freq="h", tz="UTC")
>>> times = retrain_times(WeeklyRule(weekday="wed", time="12:00"), bars, pd.Timestamp("2024-01-08", tz="UTC"))
>>> [str(t) for t in times[:3]]
['2024-01-08 00:00:00+00:00', '2024-01-10 12:00:00+00:00', '2024-01-17 12:00:00+00:00']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

DAY = pd.Timedelta("1D")


def _local_days(first: pd.Timestamp, last: pd.Timestamp, tz: str) -> pd.DatetimeIndex:
    lo = first.tz_convert(tz).tz_localize(None).normalize() - DAY
    hi = last.tz_convert(tz).tz_localize(None).normalize() + DAY
    return pd.date_range(lo, hi, freq="D")


def _at_time(days: pd.DatetimeIndex, clock: str, tz: str) -> pd.DatetimeIndex:
    hours, minutes = (int(x) for x in clock.split(":"))
    local = days + pd.Timedelta(hours=hours, minutes=minutes)
    aware = local.tz_localize(tz, ambiguous=np.ones(len(local), dtype=bool), nonexistent="shift_forward")
    return aware.tz_convert("UTC")


def nominal_times(rule, bars: pd.DatetimeIndex, first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
    """The rule's own times between ``first`` and ``last`` (inclusive), before carrying to bars."""
    kind = rule.rule
    if kind in ("weekly", "daily"):
        days = _local_days(first, last, rule.timezone)
        if kind == "weekly":
            days = days[days.dayofweek == WEEKDAYS.index(rule.weekday)]
        times = _at_time(days, rule.time, rule.timezone)
    elif kind == "monthly":
        times = _at_time(_monthly_days(rule, bars, first, last), rule.time, rule.timezone)
    elif kind == "every_n_bars":
        test = bars[bars >= first]
        times = test[:: rule.n]
    elif kind == "dates":
        times = pd.DatetimeIndex(rule.dates).tz_convert("UTC")
    elif kind == "never":
        times = pd.DatetimeIndex([], tz="UTC")
    else:  # pragma: no cover - the config union admits no other rule
        raise ValueError(f"unknown retrain rule {kind!r}")
    return times[(times >= first) & (times <= last)]


def _monthly_days(rule, bars: pd.DatetimeIndex, first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
    tz = rule.timezone
    if rule.day in ("first", "last"):
        # trading days: local dates that hold at least one bar
        local_days = pd.DatetimeIndex(bars.tz_convert(tz).tz_localize(None).normalize().unique())
        months = local_days.to_period("M")
        frame = pd.Series(local_days, index=months)
        pick = frame.groupby(level=0).min() if rule.day == "first" else frame.groupby(level=0).max()
        return pd.DatetimeIndex(pick.to_numpy())
    days = _local_days(first, last, tz)
    month_starts = days[days.day == 1]
    if len(month_starts) == 0 or month_starts[0] > days[0]:
        month_starts = month_starts.insert(0, days[0].replace(day=1))
    offsets = np.minimum(rule.day, month_starts.days_in_month) - 1
    return month_starts + pd.to_timedelta(offsets, unit="D")


def carry_to_bars(nominal: pd.DatetimeIndex, bars: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Map each nominal time to the first bar closing at or after it (dropping those past the last bar)."""
    pos = bars.searchsorted(nominal, side="left")
    pos = pos[pos < len(bars)]
    return bars[np.unique(pos)]


def retrain_times(rule, bars: pd.DatetimeIndex, start: pd.Timestamp, end: pd.Timestamp | None = None) -> pd.DatetimeIndex:
    """Bar close times at which retrains happen, for bars in ``[start, end]``.

    The first bar at or after ``start`` always retrains (the initial fit). No retrain is
    scheduled on the last bar of the data: nothing could be forecast after it.
    """
    test = bars[(bars >= start) & ((bars <= end) if end is not None else True)]
    if len(test) == 0:
        return pd.DatetimeIndex([], tz="UTC")
    nominal = nominal_times(rule, bars, start, test[-1])
    carried = carry_to_bars(nominal, test)
    carried = carried[carried != bars[-1]]  # on the data's last bar a retrain could serve no forecast: skip it
    return carried.union(test[:1])


@dataclass(frozen=True)
class TrainWindow:
    """Bars ``start`` .. ``stop - 1`` (positions in the bar grid) train the model retrained at ``time``."""

    time: pd.Timestamp
    start: int
    stop: int


def training_window(window, bars: pd.DatetimeIndex, at: pd.Timestamp) -> TrainWindow:
    """Positions of the bars a retrain at ``at`` trains on: bars closed at or before ``at``.

    >>> import pandas as pd
    >>> from backtester.config import WindowConfig
    >>> bars = pd.date_range("2024-01-01 01:00", periods=10, freq="h", tz="UTC")
    >>> w = training_window(WindowConfig(kind="rolling", bars=3), bars, bars[5])
    >>> (w.start, w.stop)
    (3, 6)
    """
    stop = int(bars.searchsorted(at, side="right"))
    if window.kind == "expanding":
        start = int(bars.searchsorted(window.start, side="left")) if window.start is not None else 0
    elif window.length is not None:
        start = int(bars.searchsorted(at - window.length, side="right"))
    else:
        start = max(0, stop - window.bars)
    return TrainWindow(at, min(start, stop), stop)
