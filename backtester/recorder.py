"""Collects forecast rows, origin-aligned, with their provenance.

Each row: strategy, issued_at, target_time, horizon, forecast, model_version and
trained_through (the last bar close the model or its scaler saw). The recorder
refuses a row whose model saw data after the row was issued. :func:`combine_rows`
puts rows from several segments or strategies together in the canonical order.

Examples
--------
>>> import numpy as np, pandas as pd
>>> bars = pd.date_range("2024-01-01 01:00", periods=4, freq="h", tz="UTC")
>>> rec = ForecastRecorder(bars)
>>> rec.add("naive", 1, np.array([1.0, 2.0, 3.0]), model_version=1, trained_through=bars[1].value)
>>> rec.frame()[["horizon", "forecast"]].to_dict("list")
{'horizon': [1, 2], 'forecast': [1.0, 2.0]}
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtester.core.errors import LookAheadError

COLUMNS = ["strategy", "issued_at", "target_time", "horizon", "forecast", "model_version", "trained_through"]


class ForecastRecorder:
    def __init__(self, bars: pd.DatetimeIndex):
        self.bar_ns = bars.asi8
        self._parts: list[tuple] = []

    def add(self, strategy: str, index: int, values: np.ndarray, model_version: int, trained_through: int) -> None:
        """Record forecasts issued at bar ``index``; targets past the last bar are dropped."""
        issued = int(self.bar_ns[index])
        if trained_through > issued:
            raise LookAheadError(
                f"strategy {strategy!r}: model trained through {pd.Timestamp(trained_through, tz='UTC')} "
                f"cannot issue a forecast at {pd.Timestamp(issued, tz='UTC')}"
            )
        h = np.arange(1, len(values) + 1)
        keep = index + h < len(self.bar_ns)
        h = h[keep]
        self._parts.append((strategy, issued, self.bar_ns[index + h], h, values[keep], model_version, trained_through))

    def frame(self) -> pd.DataFrame:
        if not self._parts:
            return pd.DataFrame({c: [] for c in COLUMNS})
        sizes = [len(p[3]) for p in self._parts]
        df = pd.DataFrame(
            {
                "strategy": np.repeat([p[0] for p in self._parts], sizes),
                "issued_at": pd.to_datetime(np.repeat([p[1] for p in self._parts], sizes), utc=True),
                "target_time": pd.to_datetime(np.concatenate([p[2] for p in self._parts]), utc=True),
                "horizon": np.concatenate([p[3] for p in self._parts]).astype("int64"),
                "forecast": np.concatenate([p[4] for p in self._parts]).astype("float64"),
                "model_version": np.repeat([p[5] for p in self._parts], sizes).astype("int64"),
                "trained_through": pd.to_datetime(np.repeat([p[6] for p in self._parts], sizes), utc=True),
            }
        )
        df["strategy"] = df["strategy"].astype("string")
        return df.sort_values(["strategy", "issued_at", "horizon"], kind="stable").reset_index(drop=True)


def combine_rows(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate forecast rows in the canonical order (strategy, issued_at, horizon)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return ForecastRecorder(pd.DatetimeIndex([], tz="UTC")).frame()
    df = pd.concat(parts, ignore_index=True)
    df["strategy"] = df["strategy"].astype("string")
    return df[COLUMNS].sort_values(["strategy", "issued_at", "horizon"], kind="stable").reset_index(drop=True)
