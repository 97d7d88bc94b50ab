"""The audit itself: every sampled issue time's recomputations, in order of T across strategies, and
each strategy's checks (:func:`audit`; see :mod:`backtester.audit`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from strategies.base import BatchForecaster

from ..core.names import base_name
from ..core.series import BarSeries
from ..work import ALONE, Segment
from .checks import economic_check, rows_check, window_checks
from .recompute import Probe, Recomputed, compare_rows, poisoned, recompute, sample_issues, sample_segments
from .report import BATCH_RTOL, BATCH_RTOL_FLOAT64, RECOMPUTE_RTOL, STACK_RTOL, AuditReport, Check
from .run import AuditedRun, load_run, select


def audit(
    run_dir: Path,
    sample: int = 3,
    only: Iterable[str] = (),
    backend: str | None = None,
    log: Callable[[str], None] = lambda msg: None,
) -> AuditReport:
    """Audit the finished run in ``run_dir``; see the module docstring. Raises :class:`AuditError`
    (a :class:`~backtester.core.errors.BacktestError`) for a directory that cannot be audited. In a universe
    every asset is audited in turn, its checks named ``<asset>/<strategy>``."""
    only = list(only)
    report = AuditReport(Path(run_dir))
    for run in load_run(Path(run_dir), backend, only):
        mine = [n for n in only if n in run.specs or n in run.cfg.ensembles()] if run.asset else only
        if only and not mine:
            continue  # a strategy of the universe that does not run on this asset
        names = select(run, mine)
        checks = audit_part(run, names, sample, report, log)
        report.checks.extend(replace(c, strategy=f"{run.asset}/{c.strategy}") if run.asset else c for c in checks)
    for c in report.checks:
        if not c.ok:
            log(f"audit: FAIL {c.strategy} {c.check}: {c.detail}")
    return report


def audit_part(
    run: AuditedRun, names: list[str], sample: int, report: AuditReport, log: Callable[[str], None]
) -> list[Check]:
    """The checks of the strategies ``names`` of one asset's run (counting recomputations in ``report``)."""
    order = {name: k for k, name in enumerate(run.specs)}
    probes = [
        Probe(i, order[name], seg)
        for name in names
        for seg in sample_segments(run.plan.segments(name), sample)
        for i in sample_issues(seg, run.cfg.seed)
    ]
    report.issue_times += len({p.at for p in probes})
    who = f"{run.asset}: " if run.asset else ""
    log(
        f"audit: {who}{len(names)} strategies, {len(probes)} sampled issue times in "
        f"{len({p.segment.key for p in probes})} segments, each recomputed on data cut there and poisoned after"
    )
    found = Findings()
    for at in sorted({p.at for p in probes}):
        probe_at(run, at, sorted((p for p in probes if p.at == at), key=lambda p: p.order), found, report, log)
    checks = []
    for name in names:
        for kind in ("truncation", "poison", "batch"):
            checks.append(
                _recompute_check(
                    run,
                    name,
                    kind,
                    found.failures.get((name, kind), []),
                    name in found.batching,
                    found.worst.get((name, kind), 0.0),
                    found.counts.get((name, kind), 0),
                    found.allowed.get((name, kind), 0.0),
                )
            )
        checks.extend(window_checks(run, name))
        checks.append(rows_check(run, name))
    times = sorted({run.plan.bars[p.at] for p in probes})
    for name in dict.fromkeys(base_name(n) for n in names):  # a seed ensemble's VaR is its mean forecast's
        eco = economic_check(run, name, times)
        if eco is not None:
            checks.append(eco)
    return checks


@dataclass
class Findings:
    """What the recomputations found, by (strategy, check): failures, the largest difference, how many
    issue times were compared; and the strategies whose fitted models forecast in batches."""

    failures: dict[tuple[str, str], list[tuple[pd.Timestamp, float, str]]] = field(default_factory=dict)
    worst: dict[tuple[str, str], float] = field(default_factory=dict)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    batching: set[str] = field(default_factory=set)
    allowed: dict[tuple[str, str], float] = field(default_factory=dict)  # the loosest tolerance applied

    def add(self, key: tuple[str, str], diff: float, first: pd.Timestamp | None, why: str, n: int, rtol: float) -> None:
        self.worst[key] = max(self.worst.get(key, 0.0), diff)
        self.allowed[key] = max(self.allowed.get(key, 0.0), rtol)
        self.counts[key] = self.counts.get(key, 0) + n
        if first is not None:
            self.failures.setdefault(key, []).append((first, diff, why))


def probe_at(
    run: AuditedRun, at: int, here: list[Probe], found: Findings, report: AuditReport, log: Callable[[str], None]
) -> None:
    """Every recomputation at issue bar ``at``: each probe's truncation (in config order), then each one's
    poisoning, then the per-bar references of the strategies that forecast in batches."""
    who = f"{run.asset}: " if run.asset else ""
    junk = None
    for kind in ("truncation", "poison", "batch"):
        for p in here:
            name, seg = p.segment.strategy, p.segment
            last = at == seg.stop - 1  # poisoned after the segment's last bar: the truncation's input again
            if (kind == "batch" and not (last and name in found.batching)) or (kind == "poison" and last):
                continue
            log(f"audit: {who}{run.bars[at]} {name} model {seg.model_version}: {kind}")
            if kind == "poison" and junk is None:
                junk = poisoned(run.series, at)
            res, diff, first, why, n, rtol = _probe(run, seg, at, kind, junk)
            report.recomputations += 1
            found.add((name, kind), diff, first, why, n, rtol)
            if (
                kind == "truncation"
                and last
                and run.cfg.execution.batched
                and res.model is not None
                and isinstance(res.model.strategy, BatchForecaster)
            ):
                found.batching.add(name)  # check its batches against per-bar forecasts


def _probe(run: AuditedRun, seg: Segment, at: int, kind: str, junk: BarSeries | None):
    """One recomputation of ``seg`` at bar ``at`` and its comparison with the run's rows issued from the
    segment's start up to ``at``: (result, max difference, first offending issue time, why, issue times)."""
    t = run.bars[at]
    if kind == "truncation":  # the segment cut at T, on the bars up to T
        res = recompute(run, seg, at, run.series.upto(at + 1))
        rtol = tolerance(run, seg, RECOMPUTE_RTOL, res)
    elif kind == "poison":  # the whole segment on junk after T (its rows after T are not compared)
        res = recompute(run, seg, seg.stop - 1, junk)
        rtol = tolerance(run, seg, RECOMPUTE_RTOL, res)
    else:  # the per-bar reference path over the whole segment
        res = recompute(run, seg, at, run.series, batched=False)
        rtol = tolerance(run, seg, _batch_rtol(run, seg.strategy), res)
    got = res.rows[res.rows["issued_at"] <= t]
    want = run.rows(seg.strategy)
    want = want[(want["issued_at"] >= run.bars[seg.first]) & (want["issued_at"] <= t)]
    diff, first, why = compare_rows(got, want, rtol)
    return res, diff, first, why, (want["issued_at"].nunique() if kind == "batch" else 1), rtol


def tolerance(run: AuditedRun, seg: Segment, rtol: float, res: Recomputed) -> float:
    """The tolerance for a recomputation: ``rtol``, unless the run trained the fit stacked and the
    recomputation could not rebuild its group (a resumed run's remainder trained in a smaller group, a
    group halved to fit in memory) and so trained it alone: float32 rounding over training, :data:`STACK_RTOL`."""
    stacked = run.program_sizes(seg.strategy).get(seg.model_version, ALONE) > ALONE
    return max(rtol, STACK_RTOL) if stacked and not res.stacked else rtol


def _batch_rtol(run: AuditedRun, name: str) -> float:
    return BATCH_RTOL if run.specs[name].params.needs_backend() else BATCH_RTOL_FLOAT64


def _recompute_check(
    run: AuditedRun, name: str, kind: str, failures: list, batching: bool, worst: float, count: int, allowed: float
) -> Check:
    if kind == "batch" and not batching:
        why = (
            "the run forecast bar by bar (execution.batched: false)"
            if not run.cfg.execution.batched
            else "no forecast_batch (forecasts are per bar)"
        )
        return Check(name, kind, True, why, skipped=True)
    if not failures:
        allowed = max(allowed, _batch_rtol(run, name) if kind == "batch" else RECOMPUTE_RTOL)
        what = {
            "truncation": f"data cut at each of {count} sampled issue times",
            "poison": f"junk after each of {count} sampled issue times",
            "batch": f"per-bar forecast() at all {count} issue times of the sampled segments",
        }[kind]
        return Check(
            name, kind, True, f"{what}: the run's rows reproduced (max rel diff {worst:.3g}, allowed {allowed:g})"
        )
    first, diff, why = min(failures, key=lambda f: f[0])
    where = {
        "truncation": "data cut at the sampled issue time",
        "poison": "junk after the sampled issue time",
        "batch": "per-bar forecast() vs the run's forecast_batch",
    }[kind]
    return Check(name, kind, False, f"forecasts issued at {first} {why}, {where} (first offending issue time)", first)
