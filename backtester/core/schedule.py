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

The rules are the config's ``retrain`` blocks: strict pydantic models, one per
``rule`` name, listed once in :data:`RULES`. Each gives its nominal times
(``times``) and a one-line description (``label``); :data:`RetrainRule` (the
config's field type) and the keys each rule takes (:data:`KEYS_BY_RULE`, used by
``--set``) are derived from that list.

Examples
--------
>>> import pandas as pd
>>> from backtester.core.schedule import WeeklyRule
>>> bars = pd.date_range("2024-01-01 01:00", "2024-01-31", freq="h", tz="UTC")
>>> times = retrain_times(WeeklyRule(weekday="wed", time="12:00"), bars, pd.Timestamp("2024-01-08", tz="UTC"))
>>> [str(t) for t in times[:3]]
['2024-01-08 00:00:00+00:00', '2024-01-10 12:00:00+00:00', '2024-01-17 12:00:00+00:00']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Union, get_args

import numpy as np
import pandas as pd
from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .types import ClockTime, Duration, Strict, Timestamp, TimeZone, fmt_duration
from .validation import did_you_mean

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


def _within(times: pd.DatetimeIndex, first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
    return times[(times >= first) & (times <= last)]


# --------------------------------------------------------------------------- retrain rules
# Each rule's ``times(bars, first, last)`` gives its nominal times between ``first`` and ``last``
# (inclusive), before :func:`retrain_times` carries them to bars; ``label()`` describes it in one line.


class WeeklyRule(Strict):
    """Every week on ``weekday`` at ``time`` in ``timezone``; a time without a bar retrains at the next bar."""

    rule: Literal["weekly"] = "weekly"
    weekday: Literal[WEEKDAYS] = "mon"  # type: ignore[valid-type]
    time: ClockTime = "00:00"
    timezone: TimeZone = "UTC"

    def times(self, bars: pd.DatetimeIndex, first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
        days = _local_days(first, last, self.timezone)
        days = days[days.dayofweek == WEEKDAYS.index(self.weekday)]
        return _within(_at_time(days, self.time, self.timezone), first, last)

    def label(self) -> str:
        return f"weekly {self.weekday} {self.time} {self.timezone}"


class MonthlyRule(Strict):
    """Every month on calendar ``day`` (past the month's end: its last day), or its ``first`` / ``last``
    trading day (the first / last local date holding a bar), at ``time`` in ``timezone``.

    >>> MonthlyRule(rule="monthly", day="last", time="16:00", timezone="America/New_York").label()
    'monthly day last 16:00 America/New_York'
    """

    rule: Literal["monthly"]
    day: Union[int, Literal["first", "last"]] = 1
    time: ClockTime = "00:00"
    timezone: TimeZone = "UTC"

    @field_validator("day")
    @classmethod
    def _day_range(cls, v: Any) -> Any:
        if isinstance(v, int) and not 1 <= v <= 31:
            raise ValueError("day must be 1..31, 'first' or 'last' (first/last trading day)")
        return v

    def times(self, bars: pd.DatetimeIndex, first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
        return _within(_at_time(self._days(bars, first, last), self.time, self.timezone), first, last)

    def _days(self, bars: pd.DatetimeIndex, first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
        tz = self.timezone
        if self.day in ("first", "last"):
            # trading days: local dates that hold at least one bar
            local_days = pd.DatetimeIndex(bars.tz_convert(tz).tz_localize(None).normalize().unique())
            months = local_days.to_period("M")
            frame = pd.Series(local_days, index=months)
            pick = frame.groupby(level=0).min() if self.day == "first" else frame.groupby(level=0).max()
            return pd.DatetimeIndex(pick.to_numpy())
        days = _local_days(first, last, tz)
        month_starts = days[days.day == 1]
        if len(month_starts) == 0 or month_starts[0] > days[0]:
            month_starts = month_starts.insert(0, days[0].replace(day=1))
        offsets = np.minimum(self.day, month_starts.days_in_month) - 1
        return month_starts + pd.to_timedelta(offsets, unit="D")

    def label(self) -> str:
        return f"monthly day {self.day} {self.time} {self.timezone}"


class DailyRule(Strict):
    """Every day at ``time`` in ``timezone``; a time without a bar retrains at the next bar."""

    rule: Literal["daily"]
    time: ClockTime = "00:00"
    timezone: TimeZone = "UTC"

    def times(self, bars: pd.DatetimeIndex, first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
        days = _local_days(first, last, self.timezone)
        return _within(_at_time(days, self.time, self.timezone), first, last)

    def label(self) -> str:
        return f"daily {self.time} {self.timezone}"


class EveryNBarsRule(Strict):
    """Every ``n`` bars, counted from the first bar at or after the start (missing bars are not counted)."""

    rule: Literal["every_n_bars"]
    n: int = Field(ge=1)

    def times(self, bars: pd.DatetimeIndex, first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
        return _within(bars[bars >= first][:: self.n], first, last)

    def label(self) -> str:
        return f"every {self.n} bars"


class DatesRule(Strict):
    """At the given ``dates`` (UTC unless they name a zone); a date without a bar retrains at the next bar."""

    rule: Literal["dates"]
    dates: list[Timestamp] = Field(min_length=1)

    def times(self, bars: pd.DatetimeIndex, first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
        return _within(pd.DatetimeIndex(self.dates).tz_convert("UTC"), first, last)

    def label(self) -> str:
        return f"{len(self.dates)} dates"


class NeverRule(Strict):
    """Never after the initial fit at the first bar of the test period."""

    rule: Literal["never"]

    def times(self, bars: pd.DatetimeIndex, first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
        return pd.DatetimeIndex([], tz="UTC")

    def label(self) -> str:
        return "never: trained once at the start"


RULES = (WeeklyRule, MonthlyRule, DailyRule, EveryNBarsRule, DatesRule, NeverRule)
"""The retrain rules: a new rule is a class above with ``times`` and ``label``, added here."""

KEYS_BY_RULE: dict[str, frozenset[str]] = {
    get_args(r.model_fields["rule"].annotation)[0]: frozenset(r.model_fields) for r in RULES
}
"""Rule name -> the keys a ``retrain`` block of that rule takes (``'never'`` -> ``{'rule'}``)."""


def _known_rule(value: Any) -> Any:
    """Name an unknown ``rule`` with the valid ones (pydantic's own message lists tags, not a fix)."""
    if not isinstance(value, dict) or "rule" not in value:
        return value
    rule = value["rule"]
    if not (isinstance(rule, str) and rule in KEYS_BY_RULE):
        raise PydanticCustomError(
            "unknown_rule",
            "unknown retrain rule {rule}{hint}; valid rules: {valid}",
            {"rule": repr(rule), "hint": did_you_mean(str(rule), list(KEYS_BY_RULE)), "valid": ", ".join(KEYS_BY_RULE)},
        )
    return value


RetrainRule = Annotated[
    Union[WeeklyRule, MonthlyRule, DailyRule, EveryNBarsRule, DatesRule, NeverRule],  # RULES
    Field(discriminator="rule"),
    BeforeValidator(_known_rule),
]
"""Any one of :data:`RULES`, chosen by its ``rule`` key."""


# --------------------------------------------------------------------------- training windows


class WindowConfig(Strict):
    """Training window: expanding, or rolling by time (``length``) or bar count (``bars``).

    >>> WindowConfig(kind="rolling", length="30D").label(), WindowConfig().label()
    ('rolling 30D', 'expanding')
    """

    KEYS_BY_KIND: ClassVar[dict[str, frozenset[str]]] = {
        "expanding": frozenset({"kind", "start"}),
        "rolling": frozenset({"kind", "start", "length", "bars"}),
    }

    kind: Literal["expanding", "rolling"] = "expanding"
    start: Timestamp | None = None
    length: Duration | None = None
    bars: int | None = Field(default=None, ge=2)

    @model_validator(mode="after")
    def _rolling_needs_size(self) -> WindowConfig:
        if self.kind == "rolling" and (self.length is None) == (self.bars is None):
            raise ValueError("a rolling window needs exactly one of 'length' (e.g. 30D) or 'bars' (e.g. 2000)")
        if self.kind == "expanding" and (self.length is not None or self.bars is not None):
            raise ValueError("'length' and 'bars' are for kind: rolling; remove them or set kind: rolling")
        return self

    def label(self) -> str:
        if self.kind == "expanding":
            return self.kind
        return (
            f"{self.kind} {fmt_duration(self.length)}" if self.length is not None else f"{self.kind} {self.bars} bars"
        )


# --------------------------------------------------------------------------- from rules and windows to bars


def carry_to_bars(nominal: pd.DatetimeIndex, bars: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Map each nominal time to the first bar closing at or after it (dropping those past the last bar)."""
    pos = bars.searchsorted(nominal, side="left")
    pos = pos[pos < len(bars)]
    return bars[np.unique(pos)]


def retrain_times(
    rule: RetrainRule, bars: pd.DatetimeIndex, start: pd.Timestamp, end: pd.Timestamp | None = None
) -> pd.DatetimeIndex:
    """Bar close times at which retrains happen, for bars in ``[start, end]``.

    The first bar at or after ``start`` always retrains (the initial fit). No retrain is
    scheduled on the last bar of the data: nothing could be forecast after it.
    """
    test = bars[(bars >= start) & ((bars <= end) if end is not None else True)]
    if len(test) == 0:
        return pd.DatetimeIndex([], tz="UTC")
    nominal = rule.times(bars, start, test[-1])
    carried = carry_to_bars(nominal, test)
    carried = carried[carried != bars[-1]]  # on the data's last bar a retrain could serve no forecast: skip it
    return carried.union(test[:1])


@dataclass(frozen=True)
class TrainWindow:
    """Bars ``start`` .. ``stop - 1`` (positions in the bar grid) train the model retrained at ``time``."""

    time: pd.Timestamp
    start: int
    stop: int


def training_window(window: WindowConfig, bars: pd.DatetimeIndex, at: pd.Timestamp) -> TrainWindow:
    """Positions of the bars a retrain at ``at`` trains on: bars closed at or before ``at``.

    >>> import pandas as pd
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
        assert window.bars is not None  # a rolling window has a length or a bar count (WindowConfig checks)
        start = max(0, stop - window.bars)
    return TrainWindow(at, min(start, stop), stop)
