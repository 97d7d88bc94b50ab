"""A universe's evaluation across assets, gathered one asset at a time.

:class:`Across` takes each asset's evaluation tables as they are made (:meth:`Across.share`, :meth:`Across.absorb`) and keeps only
what the tests across assets need, none of it growing with an asset's rows:

- the pooled and time-cluster DM tests (:class:`~.panel.CrossSection`: per time, the sum and count of
  the loss differentials over the assets), on the tests' loss and on the economic losses;
- the MCS on the cross-sectional average loss (per issue time, each strategy's horizon-averaged loss
  summed over the assets, and counted);
- the equal-risk portfolio (:class:`~.worth.Book`);
- the answer's sums (:class:`~.verdict.LossSummary`);
- the per-asset DM rows the win table counts (they are in the asset's tests).

Each asset's rows are let go once it is added, so a universe of hundreds of assets is evaluated in the
memory of one (``bench/README.md``, W3).

Examples
--------
>>> across = Across(cfg)                           # doctest: +SKIP
>>> share = across.share(label, t["losses"], t["economic_losses"], t["positions"])  # where the asset ran  # doctest: +SKIP
>>> across.absorb(share)                           # here, in asset order  # doctest: +SKIP
>>> pooled, wins = across.tests(tests)             # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from .accuracy import horizon_averaged, model_confidence_set
from .panel import CrossSection, win_table
from .verdict import LossSummary
from .worth import ECONOMIC_LOSSES, Book, stack

if TYPE_CHECKING:
    from ..config import RunConfig


def per_year(economic: pd.DataFrame) -> float:
    """Bars a year, the assets' median (from their ``economic`` rows)."""
    if not len(economic):
        return float("nan")
    return float(economic.loc[economic["metric"] == "bars_per_year", "value"].median())


@dataclass
class Share:
    """One asset's share of the tests across assets: its pair differentials for the pooled tests (per horizon)
    on the tests' loss and on each economic loss, its horizon-averaged losses per issue time (the MCS), its
    targeted positions by strategy (the portfolio) and its answer's sums. A few MiB whatever the rows."""

    panel: dict[int, pd.DataFrame]
    economic: dict[str, dict[int, pd.DataFrame]]
    wide: pd.DataFrame
    positions: dict[str, pd.DataFrame]
    summary: LossSummary


class Across:
    """The tests across a universe's assets, gathered asset by asset (see the module)."""

    def __init__(self, cfg: RunConfig):
        ev = cfg.evaluation
        self.cfg = cfg
        self.panel = CrossSection(ev.loss, ev.benchmark)
        self.economic = {loss: CrossSection(loss, ev.benchmark, pairwise=False) for loss in ECONOMIC_LOSSES}
        self.mcs_sum: pd.DataFrame | None = None
        self.mcs_n: pd.DataFrame | None = None
        self.everywhere: set[str] | None = None  # the strategies every asset has
        self.book = Book()
        self.summaries: list[LossSummary] = []

    def share(
        self, asset: str, losses: pd.DataFrame, economic_losses: pd.DataFrame | None, positions: pd.DataFrame | None
    ) -> Share:
        """What one asset adds (:meth:`absorb`), computed where the asset is evaluated (a worker, or here)."""
        ev = self.cfg.evaluation
        eco = economic_losses if economic_losses is not None and len(economic_losses) else None
        return Share(
            self.panel.parts(losses),
            {loss: cs.parts(eco) for loss, cs in self.economic.items()} if eco is not None else {},
            horizon_averaged(losses[losses["loss"] == ev.loss]),  # each asset's DM/MCS rows
            {str(s): p for s, p in positions.groupby("strategy", observed=True)}
            if positions is not None and len(positions)
            else {},
            LossSummary.of(losses.assign(asset=asset), ev.loss),
        )

    def absorb(self, share: Share) -> None:
        """Add one asset's :class:`Share`; the assets in one order give the same sums, to the bit."""
        self.panel.add_parts(share.panel)
        for loss, parts in share.economic.items():
            self.economic[loss].add_parts(parts)
        if share.positions:
            self.book.add(share.positions)
        self.summaries.append(share.summary)
        wide = share.wide
        names = {str(c) for c in wide.columns}
        self.everywhere = names if self.everywhere is None else self.everywhere & names
        n = wide.notna().astype("int64")
        if self.mcs_sum is None or self.mcs_n is None:
            self.mcs_sum, self.mcs_n = wide.fillna(0.0), n
        else:
            self.mcs_sum = self.mcs_sum.add(wide.fillna(0.0), fill_value=0.0)
            self.mcs_n = self.mcs_n.add(n, fill_value=0)

    def summary(self) -> LossSummary:
        """The answer's sums over every asset added."""
        return LossSummary.concat(self.summaries)

    def mcs(self) -> pd.DataFrame:
        """The MCS on the cross-sectional average loss: per issue time, each strategy's loss averaged over
        horizons, then over the assets with a forecast at that time; strategies that do not run on every
        asset are left out (their average would be over other assets)."""
        ev = self.cfg.evaluation
        assert self.mcs_sum is not None and self.mcs_n is not None and self.everywhere is not None
        cols = [c for c in self.mcs_sum.columns if str(c) in self.everywhere]
        wide = (self.mcs_sum[cols] / self.mcs_n[cols].where(self.mcs_n[cols] > 0)).sort_index()
        wide.index.name = "issued_at"
        mcs = model_confidence_set(wide, tuple(ev.mcs_sizes), ev.mcs_reps, ev.block_size, seed=self.cfg.seed)
        return mcs.rename(columns={"strategy": "model"}).assign(test="mcs", loss=ev.loss, horizon=0)

    def tests(self, tests: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The pooled and time-clustered DM tests per horizon and on the horizon-averaged loss, the MCS on the
        cross-sectional average loss (``asset`` = ``all``), and the win table (from the assets' own DM rows
        in ``tests``: on how many assets each strategy beats each other, and significantly)."""
        pooled = pd.concat([self.panel.table(), self.mcs()], ignore_index=True).assign(asset="all")
        wins = win_table(tests[tests["test"] == "dm"])
        wins.insert(0, "asset", "all")
        return pooled, wins

    def finish(self, tables: dict[str, pd.DataFrame]) -> None:
        """Add the tests across assets to the universe's ``tests`` (and the portfolio to its ``economic``), and
        its ``wins``: ``tables`` holds every asset's small tables, with their ``asset`` column."""
        pooled, wins = self.tests(tables["tests"])
        figures, eco_tests = self.worth(per_year(tables["economic"]))
        tables["tests"] = stack([tables["tests"], pooled, eco_tests])
        tables["economic"] = stack([tables["economic"], figures])
        tables["wins"] = wins

    def worth(self, per_year: float) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The equal-risk portfolio's figures (``economic`` rows, asset ``all``) and the pooled DM tests on the
        economic losses (test rows, asset ``all``); empty where no asset had positions."""
        if not self.book.assets:
            return pd.DataFrame(), pd.DataFrame()
        figures = self.book.figures(self.cfg.evaluation, per_year)
        figures.insert(0, "asset", "all")
        parts = [cs.table().assign(test=lambda t: t["test"] + "_economic") for cs in self.economic.values() if cs.sums]
        return figures, pd.concat(parts, ignore_index=True).assign(asset="all") if parts else pd.DataFrame()
