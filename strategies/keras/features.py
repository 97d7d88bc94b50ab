"""Input features of Keras strategies: ``features: [rv, log_rv, {rv_mean: [1D, 7D, 30D]}, hour_of_day, weekday]``.

Each feature is one or more input channels, computed at every bar from the bars closed by then (a
trailing mean includes the bar itself; nothing reads a later bar), so a window ending at the issue time
sees nothing after it:

- ``rv``: RV as the model learns it (its ``target``: RV, log RV or variance), scaled by the target's
  scaler: today's single input, and the default (``features: [rv]`` is the notebook's model exactly);
- ``log_rv``: log RV (floored at the training window's smallest positive RV);
- ``rv_mean: [k1, k2, ...]``: the mean RV over the last ``k`` bars, one channel per ``k`` (HAR's daily,
  weekly and monthly components; durations such as ``1D``, ``7D`` are whole numbers of bars);
- ``hour_of_day``, ``weekday``: sine and cosine of the bar's close time in its session's time zone (the
  data calendar's: New York for ``fx``), two channels each;
- ``asset``: for a global model (``scope: global``), a one-hot code of the asset, one channel per asset
  the model was trained on (an asset embedding the first layer learns);
- ``garch_variance``: the log of the variance a seasonal GARCH(1,1) forecasts for the next bar, issued at
  each bar from the bars closed by then, with its parameters and intraday profile fitted on the training
  window (what the seasonal GARCH baseline knows);
- ``seasonal_profile``: that GARCH's intraday volatility profile (mean RV² by bar of day on the training
  window, normalised) at the next bar: the time of day as the data's own volatility pattern;
- the realized measures of :mod:`backtester.measures`, each one channel at its bar (known at its close):
  ``rs_plus``, ``rs_minus``, ``bpv``, ``medrv``, ``trv``, ``rv_ss`` as log variances, ``rq``, ``tpq`` as
  log quarticities, ``sj`` relative to the bar's variance, ``jump_z`` and ``jump`` as they are.

``log_rv``, the ``rv_mean``, the two GARCH channels and the measures (but ``jump``) are min-max scaled on the
training window (one scaler per channel, saved with the model); the time and asset codes and the jump
indicator are bounded already and pass as they are.

Examples
--------
>>> channels(["rv", {"rv_mean": [24, 168]}, "hour_of_day"])
['rv', 'rv_mean_24', 'rv_mean_168', 'hour_sin', 'hour_cos']
>>> trailing_mean(np.array([1.0, 2.0, 3.0, 4.0]), 2).tolist()
[1.0, 1.5, 2.5, 3.5]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from backtester.core.series import MEASURES
from backtester.core.targets import to_target

NAMES = (
    "rv",
    "log_rv",
    "rv_mean",
    "hour_of_day",
    "weekday",
    "asset",
    "garch_variance",
    "seasonal_profile",
    *MEASURES,
)
FITTED = ("garch_variance", "seasonal_profile")  # channels from a GARCH fitted on the training window
LOG_VARIANCE = ("rs_plus", "rs_minus", "bpv", "medrv", "trv", "rv_ss")  # realized variances: as logs
LOG_QUARTICITY = ("rq", "tpq")
SCALED = ("log_rv", "rv_mean", *FITTED, *(m for m in MEASURES if m != "jump"))  # min-max scaled on the window


def check_features(items: list[Any]) -> list[Any]:
    """Validate a ``features`` list (durations already bar counts); returns it as given."""
    from backtester.core.validation import did_you_mean

    if not items:
        raise ValueError("give at least one feature, e.g. [rv]")
    seen = set()
    for item in items:
        if isinstance(item, dict):
            if list(item) != ["rv_mean"]:
                raise ValueError(f"{item!r}: a feature with settings is {{rv_mean: [1D, 7D, 30D]}}")
            lags = item["rv_mean"]
            if not isinstance(lags, list) or not lags or not all(isinstance(k, int) and k >= 1 for k in lags):
                raise ValueError(f"rv_mean: give the spans to average over, e.g. [1D, 7D, 30D] (got {lags!r})")
            name = "rv_mean"
        elif isinstance(item, str):
            name = item
            if name not in NAMES:
                raise ValueError(
                    f"unknown feature {name!r}{did_you_mean(name, list(NAMES))}; valid: {', '.join(NAMES)}"
                )
            if name == "rv_mean":
                raise ValueError("rv_mean: give the spans to average over, e.g. {rv_mean: [1D, 7D, 30D]}")
        else:
            raise ValueError(f"{item!r}: a feature is a name such as rv or hour_of_day, or {{rv_mean: [1D, 7D]}}")
        if name in seen:
            raise ValueError(f"{name} is listed twice")
        seen.add(name)
    return items


def channels(items: list[Any], assets: list[str] | None = None) -> list[str]:
    """The input channels of a ``features`` list, in order."""
    out: list[str] = []
    for item in items:
        if isinstance(item, dict):
            out += [f"rv_mean_{k}" for k in item["rv_mean"]]
        elif item == "hour_of_day":
            out += ["hour_sin", "hour_cos"]
        elif item == "weekday":
            out += ["weekday_sin", "weekday_cos"]
        elif item == "asset":
            out += [f"asset_{a}" for a in (assets or [])]
        else:
            out.append(item)
    return out


def trailing_mean(values: np.ndarray, k: int) -> np.ndarray:
    """Mean of the last ``k`` values up to and including each one (fewer at the start)."""
    c = np.concatenate([[0.0], np.cumsum(values, dtype="float64")])
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - k, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def needs_garch(items: list[Any]) -> bool:
    """Whether a ``features`` list has a channel computed by a GARCH fitted on the training window."""
    return any(item in FITTED for item in items)


def garch_channels(garch, series, floor: float) -> dict[str, np.ndarray]:
    """The GARCH channels of ``series`` from a fitted :class:`strategies.garch.Garch`: at each bar, the log of
    the variance it forecasts for the next bar (from the bars closed by then) and its profile at the next bar."""
    ends = np.arange(1, len(series) + 1)
    vol = np.asarray(garch.forecast_batch(series, ends, 1), dtype="float64")[:, 0] if len(series) else np.empty(0)
    nxt = series.time.astype("int64") + int(garch.bar_ns)
    return {"garch_variance": 2 * np.log(np.maximum(vol, floor)), "seasonal_profile": garch._season(nxt)}


def raw_channels(
    items: list[Any],
    rv: np.ndarray,
    time_ns: np.ndarray,
    target: str,
    floor: float,
    timezone: str = "UTC",
    assets: list[str] | None = None,
    asset: str | None = None,
    fitted: dict[str, np.ndarray] | None = None,
    measures: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """The unscaled channels (bars x channels) of a window of bars: ``rv`` (filled RV), ``time_ns`` (close
    times, UTC ns); ``floor``: the training window's smallest positive RV; ``fitted``: the GARCH channels
    (:func:`garch_channels`) where the list has them."""
    cols: list[np.ndarray] = []
    local = None
    for item in items:
        if isinstance(item, dict):
            cols += [trailing_mean(rv, k) for k in item["rv_mean"]]
        elif item == "rv":
            cols.append(to_target(rv, target, floor))
        elif item == "log_rv":
            cols.append(np.log(np.maximum(rv, floor)))
        elif item in ("hour_of_day", "weekday"):
            if local is None:
                local = pd.DatetimeIndex(time_ns.astype("int64"), tz="UTC").tz_convert(timezone)
            if item == "hour_of_day":
                angle = 2 * np.pi * (local.hour.to_numpy() + local.minute.to_numpy() / 60.0) / 24.0
            else:
                angle = 2 * np.pi * (local.dayofweek.to_numpy() + local.hour.to_numpy() / 24.0) / 7.0
            cols += [np.sin(angle), np.cos(angle)]
        elif item == "asset":
            for a in assets or []:
                cols.append(np.full(len(rv), 1.0 if a == asset else 0.0))
        elif item in FITTED:
            cols.append(np.asarray(fitted[item], dtype="float64"))
        elif item in MEASURES:
            cols.append(measure_channel(item, (measures or {})[item], rv, floor))
    return np.column_stack(cols) if cols else np.empty((len(rv), 0))


def measure_channel(name: str, values: np.ndarray, rv: np.ndarray, floor: float) -> np.ndarray:
    """A realized measure as an input channel: a variance as its log (floored at the window's smallest
    positive variance), a quarticity as its log, the signed jump variation relative to the bar's variance
    (in -1 .. 1), the jump statistic and indicator as they are.

    >>> measure_channel("sj", np.array([0.5, -1.0]), np.array([1.0, 1.0]), 0.1).tolist()
    [0.5, -1.0]
    """
    x = np.asarray(values, dtype="float64")
    if name in LOG_VARIANCE:
        return np.log(np.maximum(x, floor**2))
    if name in LOG_QUARTICITY:
        return np.log(np.maximum(x, floor**4))
    if name == "sj":
        return x / np.maximum(rv**2, floor**2)
    return np.nan_to_num(x)


def scaled_columns(items: list[Any], assets: list[str] | None = None) -> np.ndarray:
    """Indices of the channels min-max scaled by the feature scaler (``log_rv``, ``rv_mean``, the GARCH ones)."""
    names = channels(items, assets)
    return np.array([k for k, n in enumerate(names) if n in SCALED or n.startswith("rv_mean_")], dtype=int)


def rv_column(items: list[Any], assets: list[str] | None = None) -> int | None:
    """The channel of ``rv`` (scaled by the target's scaler), if listed."""
    names = channels(items, assets)
    return names.index("rv") if "rv" in names else None
