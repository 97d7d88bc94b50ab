"""Test helpers over the engine: one plan on one series (:func:`run_engine`), and the fit records a run
wrote (:func:`read_records`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backtester.core.series import BarSeries
from backtester.engine import EngineResult, Leg, Settings, run_universe
from backtester.executors import Executor
from backtester.plan import Plan
from backtester.work import RunContext, Segment


def run_engine(
    plan: Plan,
    specs: dict[str, Any],
    series: BarSeries,
    settings: Settings,
    stage: Path | None = None,
    context: RunContext | None = None,
    executor: Executor | None = None,
    on_segment: Callable[[Segment, bool], None] | None = None,
    resume: bool = False,
    previous: Path | None = None,
) -> EngineResult:
    """:func:`backtester.engine.run_universe` of one leg: ``plan`` on ``series``."""
    return run_universe([Leg(plan, specs, series, context)], settings, stage, executor, on_segment, resume, previous)


def read_records(stage: Path) -> list[dict[str, Any]]:
    """The fit records of every finished segment under ``stage``, in key order."""
    return [json.loads(p.read_text()) for p in sorted((Path(stage) / "segments").rglob("*.json"))]
