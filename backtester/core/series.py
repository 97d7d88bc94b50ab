"""The bar series handed to strategies: plain numpy arrays keyed by bar close time.

Strategies never see a DataFrame with future rows: a segment slices a
:class:`BarSeries` to the bars that closed at or before the time in question.

Examples
--------
>>> import numpy as np, pandas as pd
>>> t = pd.date_range("2024-01-01 01:00", periods=3, freq="h", tz="UTC")
>>> s = BarSeries.from_frame(pd.DataFrame({"rv": [1.0, np.nan, 3.0], "ret": [0.1, np.nan, -0.2]}, index=t))
>>> s.rv.tolist(), s.ret.tolist(), len(s.upto(2))
([1.0, 1.0, 3.0], [0.1, 0.0, -0.2], 2)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MEASURES = ("rs_plus", "rs_minus", "sj", "bpv", "medrv", "trv", "rq", "tpq", "rv_ss", "jump_z", "jump")
"""The realized measures a bar carries besides ``rv`` and ``ret`` (:mod:`backtester.measures`; variances per bar)."""
PROXIES = ("rv", "bpv", "medrv", "trv", "rv_ss")
"""What forecasts of volatility can be scored against: RV, or the square root of a robust realized variance."""
NEEDS_RETURNS = {"bpv": 2, "medrv": 3, "tpq": 3, "trv": 2, "jump_z": 3, "jump": 3, "rv_ss": 2}
"""Intrabar returns a bar must hold for a measure to exist (one return a bar gives none of these)."""


@dataclass(frozen=True)
class BarSeries:
    """Realized-volatility bars as arrays.

    Attributes
    ----------
    time : int64 nanoseconds since the epoch (UTC) of each bar's close.
    rv : realized volatility; a missing bar carries the last known value (a causal fill).
    ret : the bar's log return (sum of its intrabar returns); 0 for a missing bar.
    observed : False where the bar was missing in the data.
    """

    time: np.ndarray
    rv: np.ndarray
    ret: np.ndarray
    observed: np.ndarray
    measures: Mapping[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_frame(cls, bars: pd.DataFrame) -> BarSeries:
        """The arrays of a bar frame (``rv``, ``ret`` and any realized measures, e.g. ``bpv``); a missing bar
        carries every measure's last known value, as ``rv``'s."""
        rv = bars["rv"].to_numpy(dtype="float64")
        observed = np.isfinite(rv)
        filled = pd.Series(rv).ffill().to_numpy()
        ret = bars["ret"].to_numpy(dtype="float64") if "ret" in bars else np.full(len(bars), np.nan)
        ret = np.where(observed, ret, 0.0)
        time = bars.index.asi8 if isinstance(bars.index, pd.DatetimeIndex) else np.asarray(bars.index, dtype="int64")
        measures = {
            str(c): pd.Series(np.where(observed, bars[c].to_numpy(dtype="float64"), np.nan)).ffill().to_numpy()
            for c in bars.columns
            if c not in ("rv", "ret", "n_returns")
        }
        return cls(time=np.asarray(time, dtype="int64"), rv=filled, ret=ret, observed=observed, measures=measures)

    def __len__(self) -> int:
        return len(self.time)

    def measure(self, name: str) -> np.ndarray:
        """One realized measure's values (``rv`` too), e.g. ``bpv``; a clear error where the bars lack it."""
        if name == "rv":
            return self.rv
        if name not in self.measures:
            have = ", ".join(["rv", *self.measures]) or "rv"
            raise KeyError(f"the bars have no realized measure {name!r} (they have: {have})")
        return self.measures[name]

    def slice(self, start: int, stop: int) -> BarSeries:
        """Bars ``start`` .. ``stop - 1`` (views, no copies)."""
        return BarSeries(
            self.time[start:stop],
            self.rv[start:stop],
            self.ret[start:stop],
            self.observed[start:stop],
            {k: v[start:stop] for k, v in self.measures.items()},
        )

    def upto(self, stop: int) -> BarSeries:
        """The first ``stop`` bars: what is known once bar ``stop - 1`` has closed."""
        return self.slice(0, stop)

    @property
    def last_time(self) -> pd.Timestamp:
        return pd.Timestamp(int(self.time[-1]), tz="UTC")
