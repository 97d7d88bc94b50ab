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

from dataclasses import dataclass

import numpy as np
import pandas as pd


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

    @classmethod
    def from_frame(cls, bars: pd.DataFrame) -> BarSeries:
        rv = bars["rv"].to_numpy(dtype="float64")
        observed = np.isfinite(rv)
        filled = pd.Series(rv).ffill().to_numpy()
        ret = bars["ret"].to_numpy(dtype="float64") if "ret" in bars else np.full(len(bars), np.nan)
        ret = np.where(observed, ret, 0.0)
        time = bars.index.asi8 if isinstance(bars.index, pd.DatetimeIndex) else np.asarray(bars.index, dtype="int64")
        return cls(time=np.asarray(time, dtype="int64"), rv=filled, ret=ret, observed=observed)

    def __len__(self) -> int:
        return len(self.time)

    def slice(self, start: int, stop: int) -> BarSeries:
        """Bars ``start`` .. ``stop - 1`` (views, no copies)."""
        return BarSeries(self.time[start:stop], self.rv[start:stop], self.ret[start:stop], self.observed[start:stop])

    def upto(self, stop: int) -> BarSeries:
        """The first ``stop`` bars: what is known once bar ``stop - 1`` has closed."""
        return self.slice(0, stop)

    @property
    def last_time(self) -> pd.Timestamp:
        return pd.Timestamp(int(self.time[-1]), tz="UTC")
