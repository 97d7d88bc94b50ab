"""Realized measures of a bar from its intrabar returns, beside RV: what the HAR family and a referee need.

Every measure of a bar uses the returns that end inside it (the returns :mod:`backtester.rv` counts for its
RV) and nothing else, so it is known at the bar's close. Variances are per bar (not annualized):

========== ======================================================================================
``rv``     realized volatility, ``sqrt(sum r^2)`` (the bar column every strategy uses)
``rs_plus`` ``rs_minus`` realized semivariances: ``sum r^2`` over positive / negative returns
           (Barndorff-Nielsen, Kinnebrock & Shephard 2010); ``rs_plus + rs_minus = rv^2``
``sj``     signed jump variation ``rs_plus - rs_minus`` (Patton & Sheppard 2015)
``bpv``    bipower variation ``(pi/2) sum |r_i||r_{i-1}|`` (Barndorff-Nielsen & Shephard 2004): robust
           to jumps
``medrv``  MedRV ``pi/(6 - 4 sqrt 3 + pi) n/(n-2) sum med(|r_{i-2}|,|r_{i-1}|,|r_i|)^2`` (Andersen,
           Dobrev & Schaumburg 2012)
``trv``    truncated (threshold) RV: ``sum r^2`` over returns within :data:`TRUNCATION` local standard
           deviations, ``sqrt(bpv / n)`` (Mancini 2009)
``rq``     realized quarticity ``(n/3) sum r^4`` (for HARQ: Bollerslev, Patton & Quaedvlieg 2016)
``tpq``    tri-power quarticity ``n mu_{4/3}^-3 n/(n-2) sum |r_i r_{i-1} r_{i-2}|^{4/3}``: robust to jumps
``rv_ss``  subsampled RV: the mean over the offsets of a coarser grid (5 minutes) of the sum of squared
           coarse returns (Zhang, Mykland & Aït-Sahalia 2005): robust to microstructure noise
``jump_z`` the ratio jump statistic of Huang & Tauchen (2005) / Barndorff-Nielsen & Shephard (2006),
           ``((rv^2 - bpv)/rv^2) / sqrt(((pi/2)^2 + pi - 5) max(1, tpq/bpv^2) / n)``, and
``jump``   1 where it exceeds the standard normal quantile of ``jump_level`` (0.999 by default; Andersen,
           Bollerslev & Diebold 2007), else 0
========== ======================================================================================

Products of neighbouring returns (``bpv``, ``medrv``, ``tpq``) take returns that are neighbours in time
within one bar; where a gap drops one, the sum is scaled up by the pairs (triples) a full bar holds over
those it has. A bar with fewer than two returns has no bipower measures (NaN), with fewer than three no
``medrv`` or ``tpq``.

Examples
--------
>>> r = np.array([0.01, -0.02, 0.03, -0.01])
>>> sums = bar_sums(r, np.zeros(4, "int64"), np.ones(4, bool), np.arange(4), coarse=2)
>>> m = measures_frame(sums, 0.999)
>>> round(float(m["rs_plus"][0] + m["rs_minus"][0]), 6), round(float((r ** 2).sum()), 6)
(0.0015, 0.0015)
>>> round(float(m["bpv"][0]), 8), round(float(np.pi / 2 * (0.0002 + 0.0006 + 0.0003)), 8)
(0.00172788, 0.00172788)
"""

from __future__ import annotations

import math

import numpy as np

from .core.series import MEASURES, NEEDS_RETURNS

__all__ = ["MEASURES", "NEEDS_RETURNS", "bar_sums", "measures_frame"]

TRUNCATION = 4.0  # truncated RV keeps returns within this many local standard deviations
COARSE = "5min"  # the subsampled RV's grid
MU43 = 2 ** (2 / 3) * math.gamma(7 / 6) / math.gamma(1 / 2)  # E|Z|^{4/3}
MEDRV = math.pi / (6 - 4 * math.sqrt(3) + math.pi)
JUMP_VAR = (math.pi / 2) ** 2 + math.pi - 5


def bar_sums(
    r: np.ndarray, close: np.ndarray, keep: np.ndarray, slot: np.ndarray, coarse: int
) -> dict[str, np.ndarray]:
    """Per distinct bar close (sorted): the sums every measure is made of, from the returns ``r`` in time
    order, the close of the bar each ends in (``close``), whether it counts (``keep``), its input-bar slot
    within its bar (``slot``: 0 for the first) and the coarse grid in input bars (``coarse``).

    Returns a dict of arrays, one entry per bar close: ``close``, ``n``, ``ss`` (sum r^2), ``total``
    (sum r), ``pos`` (sum r^2 of positive r), ``quart`` (sum r^4), ``bp``/``n2`` (sum of neighbour
    products and their count), ``tp``/``med``/``n3`` (tri-power and MedRV sums and their count), ``trunc``
    (truncated sum r^2) and ``coarse`` (the subsampled sum of squared coarse returns)."""
    ck = close[keep]  # in time order, so each bar's returns are one run: no sort needed
    new_bar = np.r_[True, ck[1:] != ck[:-1]] if len(ck) else np.zeros(0, bool)
    closes = ck[new_bar]
    idx_all = np.cumsum(new_bar) - 1
    m = len(closes)
    rk = r[keep]

    def per_bar(values: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        if where is None:
            return np.bincount(idx_all, weights=values, minlength=m)
        return np.bincount(idx_all[where], weights=values[where], minlength=m)

    sq = rk * rk
    out = {
        "close": closes,
        "n": np.bincount(idx_all, minlength=m),
        "ss": per_bar(sq),
        "total": per_bar(rk),
        "pos": per_bar(np.where(rk > 0, sq, 0.0)),
        "quart": per_bar(sq * sq),
    }
    out.update(_neighbours(r, close, keep, idx_all, m))
    # truncated RV: each return against its bar's local scale sqrt(bpv / n)
    bpv = _scaled(out["bp"], out["n2"], out["n"] - 1) * (math.pi / 2)
    scale = np.sqrt(np.where(out["n"] > 0, bpv / np.maximum(out["n"], 1), 0.0))
    small = np.abs(rk) <= TRUNCATION * np.nan_to_num(scale)[idx_all]
    out["trunc"] = per_bar(np.where(small, sq, 0.0))
    out["coarse"] = _subsampled(rk, idx_all, slot[keep], coarse, m)
    return out


def _neighbours(r: np.ndarray, close: np.ndarray, keep: np.ndarray, idx_all: np.ndarray, m: int) -> dict:
    """Per bar: the sums of products of neighbouring returns (consecutive, both counted, in one bar) that
    bipower variation, tri-power quarticity and MedRV are made of, and how many pairs and triples there are."""
    out = {}
    # shifted views, no gathers
    a = np.abs(r)
    n_all = len(r)
    pair = np.zeros(n_all, bool)  # return i and i - 1
    pair[1:] = (close[1:] == close[:-1]) & keep[1:] & keep[:-1]
    triple = np.zeros(n_all, bool)  # returns i, i - 1 and i - 2
    triple[1:] = pair[1:] & pair[:-1]
    bar_of = np.zeros(n_all, dtype="int64")  # each counted return's bar (weight 0 where not counted)
    bar_of[keep] = idx_all
    prod2 = np.zeros(n_all)
    prod2[1:] = a[1:] * a[:-1]
    out["bp"] = np.bincount(bar_of, weights=np.where(pair, prod2, 0.0), minlength=m)
    out["n2"] = np.bincount(bar_of[pair], minlength=m)
    prod3 = np.zeros(n_all)
    prod3[2:] = prod2[2:] * a[:-2]
    out["tp"] = np.bincount(bar_of, weights=np.where(triple, prod3 * np.cbrt(prod3), 0.0), minlength=m)
    med = np.zeros(n_all)  # the middle of three: their sum less the largest and the smallest
    x1, x2, x3 = a[2:], a[1:-1], a[:-2]
    med[2:] = x1 + x2 + x3 - np.maximum(np.maximum(x1, x2), x3) - np.minimum(np.minimum(x1, x2), x3)
    out["med"] = np.bincount(bar_of, weights=np.where(triple, med * med, 0.0), minlength=m)
    out["n3"] = np.bincount(bar_of[triple], minlength=m)
    return out


def _subsampled(rk: np.ndarray, idx_all: np.ndarray, slot_k: np.ndarray, coarse: int, m: int) -> np.ndarray:
    """Per bar: the mean over the coarse grid's offsets of the sum of squared coarse returns."""
    width = int(slot_k.max(initial=0)) // coarse + 2  # coarse blocks a bar can hold, and one to spare
    base = idx_all * width + slot_k // coarse  # each return's (bar, block) cell on offset 0
    rem = slot_k % coarse
    sub = np.zeros(m)
    for k in range(coarse):  # on offset k a return moves one block on where rem + k reaches the next block
        cells = np.bincount(base + (rem >= coarse - k), weights=rk, minlength=m * width)
        sub += (cells * cells).reshape(m, width).sum(axis=1)
    return sub / coarse


def _scaled(total: np.ndarray, have: np.ndarray, full: np.ndarray) -> np.ndarray:
    """``total`` scaled from the ``have`` neighbour products a bar holds to the ``full`` it would (NaN: none)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(have > 0, total * np.maximum(full, 1) / np.maximum(have, 1), np.nan)


def measures_frame(sums: dict[str, np.ndarray], jump_level: float) -> dict[str, np.ndarray]:
    """The measures (:data:`MEASURES`) of each bar from its :func:`bar_sums` (a bar whose returns are too
    few for a measure gets NaN)."""
    from statistics import NormalDist

    n = sums["n"].astype("float64")
    ss = sums["ss"]
    with np.errstate(divide="ignore", invalid="ignore"):
        bpv = (math.pi / 2) * _scaled(sums["bp"], sums["n2"], n - 1)
        tpq = n * MU43**-3 * (n / np.maximum(n - 2, 1)) * _scaled(sums["tp"], sums["n3"], n - 2)
        medrv = MEDRV * (n / np.maximum(n - 2, 1)) * _scaled(sums["med"], sums["n3"], n - 2)
        ratio = (ss - bpv) / ss
        z = ratio / np.sqrt(JUMP_VAR * np.maximum(1.0, tpq / (bpv * bpv)) / n)
    z = np.where((n >= 3) & np.isfinite(z), z, np.nan)
    out = {
        "rs_plus": sums["pos"],
        "rs_minus": ss - sums["pos"],
        "sj": 2 * sums["pos"] - ss,
        "bpv": np.where(n >= 2, bpv, np.nan),
        "medrv": np.where(n >= 3, medrv, np.nan),
        "trv": np.where(n >= 2, sums["trunc"], np.nan),
        "rq": n / 3 * sums["quart"],
        "tpq": np.where(n >= 3, tpq, np.nan),
        "rv_ss": np.where(n >= 2, sums["coarse"], np.nan),
        "jump_z": z,
        "jump": np.where(np.isfinite(z), (z > NormalDist().inv_cdf(jump_level)).astype("float64"), np.nan),
    }
    return out
