"""Value types shared by the config and the retrain rules: durations, timestamps, clock times, time zones.

Each is an annotated pydantic type whose validator names the bad value and the fix. They live
apart from :mod:`backtester.config` so that :mod:`backtester.core.schedule` (the rules) does not
import the config, which imports the strategies.

Examples
--------
>>> class Box(Strict):
...     every: Duration
...     at: Timestamp
...     time: ClockTime = "00:00"
>>> box = Box(every="90min", at="2024-02-05", time="9:05")
>>> box.every, str(box.at), box.time
(Timedelta('0 days 01:30:00'), '2024-02-05 00:00:00+00:00', '09:05')
>>> box.model_dump(mode="json")
{'every': '90min', 'at': '2024-02-05T00:00:00+00:00', 'time': '09:05'}
"""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer


def to_timedelta(value: Any) -> pd.Timedelta:
    """A positive duration from ``'1h'``, ``'15min'``, ``'30D'`` and the like."""
    try:
        td = pd.Timedelta(value)
    except (ValueError, TypeError):
        raise ValueError(f"{value!r} is not a duration; write e.g. '1h', '15min', '30D'") from None
    if td <= pd.Timedelta(0):
        raise ValueError(f"{value!r} must be a positive duration")
    return td


def _to_timestamp(value: Any) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ValueError(f"{value!r} is not a timestamp; write e.g. '2024-02-05 00:00'") from None
    if ts is pd.NaT:
        raise ValueError(f"{value!r} is not a timestamp")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _to_clock_time(value: Any) -> str:
    text = str(value)
    try:
        parsed = pd.Timestamp(f"2000-01-01 {text}")
    except ValueError:
        raise ValueError(f"{value!r} is not a time of day; write e.g. '00:00' or '16:30'") from None
    return parsed.strftime("%H:%M")


def _check_timezone(value: str) -> str:
    try:
        pd.Timestamp("2000-01-01").tz_localize(value)
    except Exception:
        raise ValueError(f"unknown timezone {value!r}; use an IANA name such as 'UTC' or 'America/New_York'") from None
    return value


def fmt_duration(td: pd.Timedelta) -> str:
    """The shortest whole unit: ``30D``, ``1h``, ``15min`` (else seconds)."""
    secs = int(td.total_seconds())
    for unit, size in (("D", 86400), ("h", 3600), ("min", 60)):
        if secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"


Duration = Annotated[pd.Timedelta, BeforeValidator(to_timedelta), PlainSerializer(fmt_duration)]
Timestamp = Annotated[pd.Timestamp, BeforeValidator(_to_timestamp), PlainSerializer(lambda v: v.isoformat())]
ClockTime = Annotated[str, BeforeValidator(_to_clock_time)]
TimeZone = Annotated[str, BeforeValidator(_check_timezone)]


class Strict(BaseModel):
    """A frozen config block that rejects unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
