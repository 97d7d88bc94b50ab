"""Scoring: actuals joined target-aligned, losses per strategy and horizon, plots.

Forecasts are stored origin-aligned (one row per issue time and horizon) and
scored target-aligned: ``actual`` is the RV of the bar that closes at
``target_time`` (NaN where that bar is missing; such rows are not scored).

Losses: squared and absolute error of volatility; QLIKE of variance,
``a/f - ln(a/f) - 1`` with ``a = actual**2`` and ``f = forecast**2`` over rows
with both positive.

Examples
--------
>>> import numpy as np
>>> qlike(np.array([2.0, 1.0]), np.array([2.0, 0.0])).tolist()
[0.0, nan]
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def qlike(actual_vol: np.ndarray, forecast_vol: np.ndarray) -> np.ndarray:
    """QLIKE loss of variance per row (NaN where actual or forecast is not positive)."""
    from .losses import row_losses

    return row_losses(actual_vol, forecast_vol)["qlike"]


def join_actuals(forecasts: pd.DataFrame, bars: pd.DataFrame) -> pd.DataFrame:
    """Add ``actual`` (RV at ``target_time``) to origin-aligned forecast rows."""
    actual = bars["rv"]
    out = forecasts.copy()
    out["actual"] = actual.reindex(pd.DatetimeIndex(out["target_time"])).to_numpy()
    return out


def loss_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Per-row losses: se, ae (volatility) and qlike (variance)."""
    err = rows["forecast"] - rows["actual"]
    return rows.assign(se=err**2, ae=err.abs(), qlike=qlike(rows["actual"], rows["forecast"]))


def metrics(rows: pd.DataFrame) -> pd.DataFrame:
    """MSE, MAE (volatility) and QLIKE (variance) per strategy and horizon."""
    scored = loss_frame(rows[rows["actual"].notna()])
    g = scored.groupby(["strategy", "horizon"], observed=True)
    out = g.agg(n=("se", "size"), mse=("se", "mean"), mae=("ae", "mean"), qlike=("qlike", "mean")).reset_index()
    out["strategy"] = out["strategy"].astype("string")
    return out


def summary(metric_rows: pd.DataFrame) -> pd.DataFrame:
    """Mean of each loss over horizons, per strategy, best QLIKE first."""
    s = metric_rows.groupby("strategy", observed=True)[["mse", "mae", "qlike"]].mean()
    return s.sort_values("qlike")


def loss_matrix(rows: pd.DataFrame, loss: str = "qlike", horizon: int = 1) -> pd.DataFrame:
    """Time x strategy loss matrix at one horizon (the shape MCS / DM tests take)."""
    scored = loss_frame(rows[(rows["horizon"] == horizon) & rows["actual"].notna()])
    return scored.pivot(index="target_time", columns="strategy", values=loss)


