"""The per-row volatility losses, defined once: the evaluation scores with them and strategies
(a tuning objective) use them, so they live in the kernel.

With ``a`` the realized volatility at the target bar and ``f`` the forecast volatility: ``mse``
(f - a)**2, ``mae`` |f - a|, ``mse_var`` (f**2 - a**2)**2, ``qlike`` a**2/f**2 - ln(a**2/f**2) - 1
and ``mse_log`` (ln f - ln a)**2; the last two only where a > 0 and f > 0 (NaN elsewhere).

Examples
--------
>>> import numpy as np
>>> row_losses(np.array([2.0, 0.0]), np.array([1.0, 1.0]))["qlike"].round(4).tolist()
[1.6137, nan]
>>> qlike(np.array([2.0, 1.0]), np.array([2.0, 0.0])).tolist()
[0.0, nan]
>>> round(mean_qlike(np.array([2.0, 1.0, 0.0]), np.array([1.0, 1.0, 1.0])), 4)
0.8069
"""

from __future__ import annotations

import numpy as np

LOSSES = ("mse", "mae", "mse_var", "qlike", "mse_log")


def row_losses(actual: np.ndarray, forecast: np.ndarray) -> dict[str, np.ndarray]:
    """Each loss per row (NaN where undefined; see the module table)."""
    a = np.asarray(actual, dtype="float64")
    f = np.asarray(forecast, dtype="float64")
    known = np.isfinite(a)
    pos = known & (a > 0) & (f > 0)
    ratio = np.divide(a**2, f**2, out=np.ones_like(a), where=pos)
    logdiff = np.log(np.where(pos, f, 1.0)) - np.log(np.where(pos, a, 1.0))
    return {
        "mse": np.where(known, (f - a) ** 2, np.nan),
        "mae": np.where(known, np.abs(f - a), np.nan),
        "mse_var": np.where(known, (f**2 - a**2) ** 2, np.nan),
        "qlike": np.where(pos, ratio - np.log(ratio) - 1, np.nan),
        "mse_log": np.where(pos, logdiff**2, np.nan),
    }


def qlike(actual_vol: np.ndarray, forecast_vol: np.ndarray) -> np.ndarray:
    """QLIKE of variance per row, from volatilities (NaN where actual or forecast is not positive)."""
    return row_losses(actual_vol, forecast_vol)["qlike"]


def mean_qlike(actual_vol: np.ndarray, forecast_vol: np.ndarray) -> float:
    """Mean QLIKE of variance, from volatilities of any shape, over the rows where it is defined and
    finite (NaN if there is none): a single number, e.g. for a tuning objective."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        values = qlike(np.ravel(actual_vol), np.ravel(forecast_vol))
    values = values[np.isfinite(values)]
    return float(np.mean(values)) if len(values) else float("nan")
