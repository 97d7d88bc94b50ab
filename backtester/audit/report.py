"""What the audit finds: one :class:`Check` per strategy and check, gathered in an :class:`AuditReport`;
the tolerances the recomputations are held to (measured on honest runs: :mod:`backtester.audit`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

BATCH_RTOL = 1e-5  # float32 (Keras) models: batched vs one-row predictions
BATCH_RTOL_FLOAT64 = 1e-9  # everything else: vectorised vs per-bar float64 arithmetic
RECOMPUTE_RTOL = 1e-12  # truncated and poisoned recomputations vs the run's rows (float64 rounding only)
STACK_RTOL = 1e-4  # a model trained alone vs its stacked twin in the run (float32 rounding over training)
CHECKS = ("truncation", "poison", "batch", "windows", "scaler", "rows", "economic")


@dataclass(frozen=True)
class Check:
    """One check of one strategy: passed or not, a short detail, and the first offending issue time."""

    strategy: str
    check: str
    ok: bool
    detail: str
    first_bad: pd.Timestamp | None = None
    skipped: bool = False


@dataclass
class AuditReport:
    run_dir: Path
    checks: list[Check] = field(default_factory=list)
    recomputations: int = 0
    issue_times: int = 0

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def lines(self) -> list[str]:
        """One line per strategy and check (``PASS``, ``FAIL`` or ``SKIP``), then a summary line."""
        width = max([len(c.strategy) for c in self.checks] + [8])
        out = [
            f"{'SKIP' if c.skipped else 'PASS' if c.ok else 'FAIL'}  {c.strategy:<{width}}  {c.check:<11}  {c.detail}"
            for c in self.checks
        ]
        strategies = len({c.strategy for c in self.checks})
        done = [c for c in self.checks if not c.skipped]
        what = (
            f"{len(done)} checks on {strategies} strateg{'y' if strategies == 1 else 'ies'} "
            f"({self.recomputations} recomputations at "
            f"{self.issue_times} issue times)"
        )
        if self.ok:
            out.append(f"audit: PASS, {what}")
        else:
            first = self.failed[0]
            at = f", first offending issue time {first.first_bad}" if first.first_bad is not None else ""
            names = ", ".join(dict.fromkeys(f"{c.strategy} {c.check}" for c in self.failed))
            out.append(f"audit: FAIL, {len(self.failed)} of {what} failed ({names}){at}")
        return out


def outcome(name: str, check: str, problems: list[tuple[pd.Timestamp, str]], passed: str) -> Check:
    if not problems:
        return Check(name, check, True, passed)
    first = min(problems, key=lambda p: p[0])
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return Check(name, check, False, f"{first[1]} (at {first[0]}){more}", first[0])
