"""One asset's "what it is worth" and "the tests referees ask for" tables (issue 29), from its forecast rows.

:func:`worth_of` runs :mod:`.economic` for every strategy (seed members aside: their mean forecast is the
strategy); :func:`referee_tests` runs :mod:`.referee` on the run's loss table. Both give

- ``economic``: tidy figures (:data:`~.economic.ECONOMIC_COLUMNS`: ``section`` risk, target, utility, patton,
  mz or when; ``metric``; ``value``);
- ``tests``: rows of ``tests.parquet`` (VaR/ES backtests, DM and MCS on ``fz0`` and ``utility``, GW, MZ, DM on
  Patton's losses).

:func:`portfolio` pools the assets of a universe: an equal-risk portfolio (each asset targeted alike, averaged).

Examples
--------
>>> economic, tests, losses, positions = worth_of(rows, bars, cfg.evaluation, 24, 0)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .accuracy import dm_table, horizon_averaged, model_confidence_set
from .economic import (
    ECONOMIC_COLUMNS,
    TEST_COLUMNS,
    bars_per_year,
    blocks,
    one_step,
    risk_of,
    target_figures,
    targeted,
    utility,
)
from .referee import giacomini_white, mincer_zarnowitz, patton_loss
from .verdict import is_member

if TYPE_CHECKING:
    from ..config.sections import EvaluationConfig

ECONOMIC_LOSSES = ("fz0", "utility")
EXPANDING = "windows expand: GW's theory assumes rolling ones, so read it as a DM test with instruments"


def stack(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The frames one under the other, empty ones left out (the first, if all are empty)."""
    kept = [f for f in frames if len(f)]
    if not kept:
        return frames[0]
    columns = list(dict.fromkeys(c for f in kept for c in f.columns))
    out = pd.concat([f.dropna(axis=1, how="all") for f in kept], ignore_index=True)  # pandas 3's rule, today
    return out.reindex(columns=columns)


def returns_of(bars: pd.DataFrame) -> pd.Series:
    """The bars' returns, NaN where a bar is missing (none at all for RV bars)."""
    if "ret" not in bars:
        return pd.Series(np.nan, index=bars.index)
    return bars["ret"].where(bars["rv"].notna())


def has_returns(bars: pd.DataFrame) -> bool:
    return bool(returns_of(bars).notna().any())


def _tidy(rows: list[tuple]) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=ECONOMIC_COLUMNS)
    return out.astype({c: "string" for c in ("section", "strategy", "against", "dist", "key")})


def worth_of(rows: pd.DataFrame, bars: pd.DataFrame, ev: EvaluationConfig, horizon: int, seed: int):
    """``(economic, tests, losses, positions, var)`` of one asset: the figures, the backtests and the DM/MCS on
    ``fz0`` and ``utility``, those losses per row (loss-table columns, horizon 1), each strategy's targeted
    position (``time, w, gross, net``, for the figures and the portfolio) and its one-bar VaR and ES rows."""
    eco, ret = ev.economic, returns_of(bars)
    per_year = bars_per_year(bars)
    figures: list[tuple] = []
    tests: list[dict] = []
    parts, positions, series = [], {}, []
    names = [s for s in sorted(rows["strategy"].astype(str).unique()) if not is_member(s)]
    for i, name in enumerate(names):
        part = rows[rows["strategy"] == name]
        one = one_step(part, ret)
        if len(one) < 20:
            continue
        block = blocks(part, ret, one, horizon) if horizon > 1 else one.iloc[:0]
        risk, backtests, fz, var_rows = risk_of(one, block, horizon, name, eco, seed + i)
        series += var_rows
        figures += [("risk", r[0], "", *r[1:]) for r in risk]
        tests += backtests
        pos = targeted(part, ret, eco, per_year)
        figures += [
            ("target", name, "", "", np.nan, eco.rebalance, "", m, v)
            for m, v in target_figures(pos, eco, per_year).items()
        ]
        gained, short = utility(one["actual"].to_numpy(), one["forecast"].to_numpy(), eco)
        figures += [
            ("utility", name, "", "", np.nan, 1, "", "utility", float(np.nanmean(gained))),
            ("utility", name, "", "", np.nan, 1, "", "max", eco.sharpe**2 / (2 * eco.gamma) * 100),
        ]
        keys = one[["strategy", "issued_at", "target_time", "horizon", "model_version"]]
        for loss, values in (("fz0", fz), ("utility", short)):
            if values is not None:
                ok = np.isfinite(values)
                parts.append(keys[ok].assign(loss=loss, value=values[ok]))
        positions[name] = pos[["time", "w", "gross", "net"]]
    var = pd.concat(series, ignore_index=True) if series else pd.DataFrame(columns=["strategy", "time", "level"])
    losses = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["strategy", "loss", "value"])
    tests_frame = pd.DataFrame(tests, columns=TEST_COLUMNS)
    if len(losses):
        tests_frame = stack([tests_frame, loss_tests(losses, ev, seed)])
    return _tidy(figures), tests_frame, losses, positions, var


def loss_tests(losses: pd.DataFrame, ev: EvaluationConfig, seed: int) -> pd.DataFrame:
    """DM against the benchmark and the MCS on each economic loss (one-bar rows)."""
    out = []
    for loss in ECONOMIC_LOSSES:
        t = losses[losses["loss"] == loss]
        if not len(t):
            continue
        bench = ev.benchmark if ev.benchmark in set(t["strategy"]) else None
        dm = dm_table(t, loss, bench, pairwise=False)
        out.append(dm[dm["horizon"] == 1].assign(test="dm_economic"))
        mcs = model_confidence_set(horizon_averaged(t), tuple(ev.mcs_sizes), ev.mcs_reps, ev.block_size, seed=seed)
        out.append(mcs.rename(columns={"strategy": "model"}).assign(test="mcs_economic", loss=loss, horizon=1))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=TEST_COLUMNS)


class Book:
    """The equal-risk portfolio, gathered asset by asset: per strategy and bar, the sums over the assets holding
    a position of their net and gross returns, positions and trades (``|Δw|``, each asset on its own bars),
    and how many assets each sum has. :meth:`add` takes one asset's positions; :meth:`figures` the portfolio's.
    """

    COLUMNS = ("net", "gross", "w", "trade")

    def __init__(self):
        self.sums: dict[str, pd.DataFrame] = {}
        self.counts: dict[str, pd.DataFrame] = {}
        self.held: dict[str, int] = {}  # strategy -> assets it ran on
        self.assets = 0

    def add(self, per: dict[str, pd.DataFrame]) -> None:
        """One asset's positions by strategy (each: ``time, w, gross, net``)."""
        self.assets += 1
        for name, p in per.items():
            f = p.set_index("time")[["net", "gross", "w"]].astype("float64")
            f["trade"] = f["w"].diff().abs()
            seen = f.notna().astype("int64")
            if name in self.sums:
                self.sums[name] = self.sums[name].add(f.fillna(0.0), fill_value=0.0)
                self.counts[name] = self.counts[name].add(seen, fill_value=0)
            else:
                self.sums[name], self.counts[name] = f.fillna(0.0), seen
            self.held[name] = self.held.get(name, 0) + 1

    def positions(self, name: str) -> pd.DataFrame:
        """The portfolio of ``name`` per bar (time order): mean net and gross return, position and trade."""
        mean = (self.sums[name] / self.counts[name].where(self.counts[name] > 0)).sort_index()
        mean["trade"] = mean["trade"].fillna(0.0)
        return mean[list(self.COLUMNS)]

    def net(self) -> pd.DataFrame:
        """Time x strategy: the portfolio's net return of every strategy run on every asset."""
        return pd.DataFrame({n: self.positions(n)["net"] for n in sorted(self.sums) if self.held[n] == self.assets})

    def figures(self, ev: EvaluationConfig, per_year: float) -> pd.DataFrame:
        """The portfolio's figures per strategy run on every asset (others would average over other assets),
        as ``section`` portfolio rows."""
        rows = []
        eco = ev.economic
        for name in sorted(self.sums):
            if self.held[name] < self.assets:
                continue
            pos = self.positions(name).reset_index(drop=True)
            for m, v in target_figures(pos, eco, per_year).items():
                rows.append(("portfolio", name, "", "", np.nan, eco.rebalance, f"{self.assets} assets", m, v))
        return _tidy(rows)


def portfolio(positions: dict[str, dict[str, pd.DataFrame]], ev: EvaluationConfig, per_year: float) -> pd.DataFrame:
    """The equal-risk portfolio of a universe per strategy: each asset's targeted net return averaged over the
    assets with a position in that bar; its figures as ``section`` portfolio rows (:class:`Book`)."""
    book = Book()
    for per in positions.values():
        book.add(per)
    return book.figures(ev, per_year)


def referee_tests(
    rows: pd.DataFrame, losses: pd.DataFrame, bars: pd.DataFrame, ev: EvaluationConfig, expanding: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GW (unconditional, conditional) and DM on Patton's losses against the benchmark, MZ with HAC for every
    strategy, and where each wins: ``(economic rows, test rows)``."""
    names = [s for s in sorted(rows["strategy"].astype(str).unique()) if not is_member(s)]
    bench = ev.benchmark if ev.benchmark in names else None
    figures: list[tuple] = []
    tests: list[dict] = []
    for name in names:
        tests += mz_tests(rows[rows["strategy"] == name], name, figures)
    if bench is not None:
        tests += gw_tests(losses, bars, ev.loss, bench, names, expanding, ev.gw_regime)
        figures += when_rows(losses, bars, ev.loss, bench, names)
    patton, patton_dm = patton_tables(rows, ev, bench, names)
    frame = stack([pd.DataFrame(tests, columns=TEST_COLUMNS), patton_dm])
    return stack([_tidy(figures), patton]), frame


def mz_tests(part: pd.DataFrame, name: str, figures: list[tuple]) -> list[dict]:
    """Mincer–Zarnowitz per horizon, in levels and logs (test rows; the coefficients into ``figures``)."""
    out = []
    for h, at in part[part["actual"].notna()].groupby("horizon", observed=True):
        for kind in ("levels", "logs"):
            r = mincer_zarnowitz(at["actual"].to_numpy(), at["forecast"].to_numpy(), int(h), logs=kind == "logs")
            out.append(
                dict(test=f"mz_{kind}", loss="", horizon=int(h), model=name, against=None, statistic=r.statistic,
                     pvalue=r.pvalue, n=r.n, note=f"intercept {r.intercept:.4g}, slope {r.slope:.4g}, R2 {r.r2:.3f}")
            )  # fmt: skip
            figures += [
                ("mz", name, "", "", np.nan, int(h), kind, m, getattr(r, m)) for m in ("intercept", "slope", "r2")
            ]
    return out


def regime_of(bars: pd.DataFrame) -> pd.Series:
    """1 where the RV of the bar closing at a time is above its median so far (known by then), per bar time."""
    rv = bars["rv"].ffill()
    return (rv > rv.expanding().median()).astype(float)


def differentials(losses: pd.DataFrame, loss: str, bench: str) -> dict[tuple[str, int], pd.DataFrame]:
    """Per (strategy, horizon): the ``loss`` differential against ``bench`` by issue time (``issued_at, d``) on
    the rows both scored."""
    t = losses[losses["loss"] == loss]
    wide = t.pivot_table(index=["horizon", "issued_at"], columns="strategy", values="value", observed=True)
    out = {}
    if bench not in wide:
        return out
    for name in (c for c in wide.columns if c != bench):
        d = (wide[name] - wide[bench]).dropna()
        for h, part in d.groupby(level="horizon"):
            out[str(name), int(h)] = pd.DataFrame(
                {"issued_at": part.index.get_level_values("issued_at"), "d": part.to_numpy()}
            )
    return out


def gw_tests(losses, bars, loss: str, bench: str, names: list[str], expanding: bool, regime: bool = True) -> list[dict]:
    """GW against ``bench`` per horizon: unconditional, and conditional on the last known differential and
    (``regime``) the volatility regime."""
    out = []
    diffs = differentials(losses, loss, bench)
    high = regime_of(bars)
    for name in (n for n in names if n != bench):
        for h in sorted(losses["horizon"].unique()):
            d = diffs.get((name, int(h)))
            if d is None:
                continue
            high_now = high.reindex(pd.DatetimeIndex(d["issued_at"])).to_numpy() if regime else None
            for kind, r in (
                ("gw_unconditional", giacomini_white(d["d"].to_numpy(), int(h))),
                ("gw_conditional", giacomini_white(d["d"].to_numpy(), int(h), True, high_now)),
            ):
                share = (
                    f"; instruments: a constant, the last known differential{', the volatility regime' if regime else ''}"
                    f"; the instruments predict {name} better in {r.model_better_share:.0%} of rows"
                )
                note = (EXPANDING if expanding else "") + (share if kind == "gw_conditional" else "")
                out.append(
                    dict(test=kind, loss=loss, horizon=int(h), model=name, against=bench, statistic=r.statistic,
                         pvalue=r.pvalue, n=r.n, note=note.lstrip("; "))
                )  # fmt: skip
    return out


def when_rows(losses, bars, loss: str, bench: str, names: list[str]) -> list[tuple]:
    """The one-bar loss differential against ``bench`` by volatility regime (terciles of the RV at the issue
    time over the test period: calm, normal, turbulent) and by the forecast bar's hour of day (UTC)."""
    out = []
    diffs = differentials(losses[losses["horizon"] == 1], loss, bench)
    for name in (n for n in names if n != bench):
        d = diffs.get((name, 1))
        if d is None or len(d) < 30:
            continue
        rv = bars["rv"].ffill().reindex(pd.DatetimeIndex(d["issued_at"])).to_numpy()
        tercile = pd.qcut(rv, 3, labels=["calm", "normal", "turbulent"], duplicates="drop")
        hour = (pd.DatetimeIndex(d["issued_at"]).tz_convert("UTC").hour + 1) % 24  # the forecast bar's close
        for key, grouped in (("regime", d["d"].groupby(np.asarray(tercile))), ("hour", d["d"].groupby(hour))):
            for label, x in grouped:
                k = f"{label:02d}:00" if key == "hour" else str(label)
                out += [
                    ("when", name, bench, "", np.nan, 1, k, "diff", float(x.mean())),
                    ("when", name, bench, "", np.nan, 1, k, "n", float(len(x))),
                ]
    return out


def patton_tables(rows: pd.DataFrame, ev: EvaluationConfig, bench: str | None, names: list[str]):
    """Per ``b`` of Patton's family: each strategy's loss averaged over horizons (``patton`` rows) and DM against
    the benchmark over all horizons (test rows ``dm``, loss ``patton_b<b>``)."""
    scored = rows[rows["actual"].notna() & rows["strategy"].isin(names)]
    keys = scored[["strategy", "issued_at", "target_time", "horizon", "model_version"]].reset_index(drop=True)
    s, f = scored["actual"].to_numpy() ** 2, scored["forecast"].to_numpy() ** 2
    figures, tests = [], []
    for b in ev.patton_b:
        name = f"patton_b{b:g}"
        values = patton_loss(s, f, b)
        ok = np.isfinite(values)
        table = keys[ok].assign(loss=name, value=values[ok])
        means = table.groupby(["strategy", "horizon"])["value"].mean().groupby(level="strategy").mean()
        figures += [("patton", n, bench or "", "", np.nan, 0, f"{b:g}", "mean", float(v)) for n, v in means.items()]
        if bench is not None and len(table):
            dm = dm_table(table, name, bench, pairwise=False)
            tests.append(dm[dm["horizon"] == 0].assign(test="dm_patton"))
    return _tidy(figures), (pd.concat(tests, ignore_index=True) if tests else pd.DataFrame(columns=TEST_COLUMNS))


__all__ = ["ECONOMIC_LOSSES", "portfolio", "referee_tests", "worth_of"]
