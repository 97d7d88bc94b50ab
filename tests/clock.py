"""The simulation clock: a plain generator of small frozen events.

At each bar close ``T`` of the test period the clock yields, in this order:

1. ``Event(T, "retrain", i)`` if a retrain is scheduled at ``T``;
2. ``Event(T, "forecast", i)``.

So a retrain at ``T`` sees exactly the bars closed at or before ``T`` and runs
before the forecast issued at ``T`` (which therefore uses the new model).
``i`` is the bar's position in the grid. The clock knows no calendar logic.

Examples
--------
>>> import pandas as pd
>>> bars = pd.date_range("2024-01-01 01:00", periods=4, freq="h", tz="UTC")
>>> [(e.time.hour, e.kind) for e in clock(bars, bars[1], bars[[1, 3]])]
[(2, 'retrain'), (2, 'forecast'), (3, 'forecast'), (4, 'retrain'), (4, 'forecast')]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import pandas as pd


@dataclass(frozen=True)
class Event:
    time: pd.Timestamp
    kind: Literal["retrain", "forecast"]
    index: int


def clock(
    bars: pd.DatetimeIndex,
    start: pd.Timestamp,
    retrains: pd.DatetimeIndex,
    end: pd.Timestamp | None = None,
) -> Iterator[Event]:
    """Yield events for every bar closing in ``[start, end]``."""
    first = int(bars.searchsorted(start, side="left"))
    last = len(bars) if end is None else int(bars.searchsorted(end, side="right"))
    due = set(retrains.asi8.tolist())
    for i in range(first, last):
        t = bars[i]
        if t.value in due:
            yield Event(t, "retrain", i)
        yield Event(t, "forecast", i)
