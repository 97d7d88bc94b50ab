"""One asset of a run, prepared: what the engine, the evaluation and the report share about it.

A run on one ``data.path`` has one :class:`AssetRun` (its asset named ``""``); a universe
(``data.assets``) has one per asset (:func:`backtester.prepare.plan_universe`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Asset
from .core.series import BarSeries
from .plan import Plan
from .rv import PreparedBars


@dataclass
class AssetRun:
    """One asset of a run, prepared: the config as it sees it, its bars and its plan."""

    asset: Asset
    prepared: PreparedBars
    plan: Plan
    series: BarSeries

    @property
    def cfg(self):
        return self.asset.cfg
