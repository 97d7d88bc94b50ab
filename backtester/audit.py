"""``backtest audit RUN_DIR``: prove, strategy by strategy, that no forecast of a finished run saw the future.

The audit rebuilds the run's bars from its ``config.yaml`` (refusing data whose sha256 is not the
manifest's) and its plan, then checks every strategy that ran (seed members of ``repeats`` one by
one; users' own strategies like the built-ins):

``truncation``
    A sample of each strategy's segments (``sample``: always its first and last, the rest evenly
    spaced) is recomputed with :func:`~backtester.segment.run_segment` at three issue times T each
    (the segment's first and last, and one in between drawn from the run's seed, so a strategy
    cannot know which): the segment cut to end at T, on the bars up to T. Every row issued from the
    segment's start up to T must equal the run's ``forecasts.parquet``.
``poison``
    The same segments and issue times (but the last, where it would repeat the truncation), on the
    whole bar series with every bar after T overwritten with junk (huge random rv and returns,
    every junk bar observed): the rows issued up to T must again equal the run's.
``batch``
    Where the run forecast in batches and the fitted strategy has ``forecast_batch``
    (:class:`strategies.base.BatchForecaster`): each sampled segment recomputed on the per-bar
    reference path (``run_segment(..., batched=False)``, one ``forecast`` per issue time, on a freshly
    fitted model) must give the run's rows at every issue time of the segment.
``windows``
    With artifacts (``output.save_models``): every ``artifact.json``'s training window is the plan's
    and ends, like its ``trained_through``, at or before its retrain time, on the run's data; every
    ok fit has its artifact. Without artifacts, the same of every ok fit in ``retrains.parquet``.
``scaler``
    Artifacts holding a ``scaler.json`` (Keras strategies; any strategy may write one in the same
    form): the scaler saw exactly the training window (its sample count, and min/max or mean/variance,
    equal to those of the window's bars in the model's target unit). A scaler the config loads from a
    file (``scaler:``, an imported model's own) is not fitted in the run and is left out.
``rows``
    Every row of ``forecasts.parquet``: its ``model_version`` exists (an artifact, else an ok fit in
    ``retrains.parquet``), its ``trained_through`` is that model's, and both the model's retrain
    time and ``trained_through`` are at or before ``issued_at``; every issue time has its rows.

Recomputations run in this one process in order of T across all strategies (at each T: every
truncation in config order, then every poisoning, then the per-bar references), so a strategy that
leaks through state left by another (a module global) only ever finds the data up to the current T
and its recomputed forecasts differ from the run's. Run the audit in a fresh process (the CLI does):
state left by the run itself in the same process could hide such a leak.

Tolerances, measured on honest runs (tests/test_audit.py). Truncated and poisoned recomputations
must equal the run's rows to a relative ``RECOMPUTE_RTOL`` = 1e-12: Keras models reproduce them
bit for bit on TensorFlow and JAX (their batches are padded to one shape, so a shorter segment
gives the same bits), GARCH, naive and the medians too, but HAR's vectorised forecasts of a
segment cut to a few issue times go through another BLAS kernel and differ by up to 5e-15
relative. ``batch`` allows a relative ``BATCH_RTOL`` = 1e-5 for strategies that run on a Keras
backend (float32: one-row and batched predictions differ by up to 4e-7 relative on CPU) and
``BATCH_RTOL_FLOAT64`` = 1e-9 for the others (HAR: 7e-14). Forecasts are compared on the model's
version and ``trained_through`` as well as their values.

Warm-start chains (``Params.chains()``): each sampled segment's chain is recomputed from its first
segment up to the sampled one, on the same truncated or poisoned bars. Tuned strategies: each
segment gets the hyperparameters of the latest tuning at or before it (:func:`params_by_segment`),
read from the run (``tuning/<strategy>/<NNNN>/best.json``; a tuning with no record is searched
again on its window); the searches themselves are not re-run on cut data. A fit that failed in the
run takes the forecasts of the previous good model, refitted, as in the run.

Examples
--------
>>> report = audit(Path("results/weekly"), sample=3)  # doctest: +SKIP
>>> report.ok, report.lines()[-1]                      # doctest: +SKIP
(True, 'audit: PASS, 30 checks on 6 strategies (36 recomputations at 18 issue times)')
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtester.core.errors import AuditError
from strategies.base import BatchForecaster

from .core.series import BarSeries
from .core.targets import to_target
from .pooled import run_pooled_segment
from .recorder import COLUMNS
from .segment import LiveModel, Segment, issue_forecasts, run_segment
from .tuning import TuneResult, params_by_segment, tune_segment, tuning_dir

BATCH_RTOL = 1e-5  # float32 (Keras) models: batched vs one-row predictions
BATCH_RTOL_FLOAT64 = 1e-9  # everything else: vectorised vs per-bar float64 arithmetic
RECOMPUTE_RTOL = 1e-12  # truncated and poisoned recomputations vs the run's rows (float64 rounding only)
STACK_RTOL = 1e-4  # a model trained alone vs its stacked twin in the run (float32 rounding over training)
CHECKS = ("truncation", "poison", "batch", "windows", "scaler", "rows")


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


# --------------------------------------------------------------------------- the run


@dataclass
class _Run:
    """A finished run, rebuilt: its config, bars, plan, stored rows and fit records."""

    path: Path
    cfg: Any
    manifest: dict
    series: BarSeries
    bars: pd.DatetimeIndex
    plan: Any
    forecasts: pd.DataFrame
    retrains: pd.DataFrame
    specs: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)  # segment key -> params (tuned values fixed)
    asset: str = ""  # the asset of a universe this part of the run is ("" for a run on one data.path)
    peers: list[_Run] = field(default_factory=list)  # every asset's part of the run (a global model's recomputation)

    @property
    def models(self) -> Path:
        """Where this asset's artifact folders are: ``models/`` (``models/<asset>/`` in a universe)."""
        return self.path / "models" / self.asset if self.asset else self.path / "models"

    def rows(self, strategy: str) -> pd.DataFrame:
        f = self.forecasts
        return f[f["strategy"] == strategy]


def _need(path: Path, what: str) -> Path:
    if not path.is_file():
        raise AuditError(
            f"{path}: missing, so {path.parent} is not a finished run ({what}); "
            "pass results/<name> of a finished `backtest run`"
        )
    return path


def load_run(run_dir: Path, backend: str | None = None, only: Iterable[str] = ()) -> list[_Run]:
    """The run's config, bars (sha256 checked against the manifest), plan, rows and fit records: one
    :class:`_Run` per asset (one for a run on one ``data.path``)."""
    from .config import load_config
    from .process import choose_backend, setup
    from .runner import plan_universe

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AuditError(f"{run_dir}: no such directory; pass results/<name> of a finished `backtest run`")
    manifest_path = _need(run_dir / "manifest.json", "no manifest.json")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise AuditError(
            f"{manifest_path}: not valid JSON ({exc.msg}, line {exc.lineno}); the run is damaged, run it again"
        ) from None
    data = manifest.get("data", {})
    if manifest.get("status") != "complete" or not ("sha256" in data or "assets" in data):
        raise AuditError(
            f"{manifest_path}: not the manifest of a complete run (status {manifest.get('status')!r}); "
            "run the backtest again"
        )
    for name in ("config.yaml", "forecasts.parquet", "retrains.parquet"):
        _need(run_dir / name, f"no {name}")
    _known_names(run_dir / "config.yaml", only)  # before the data is read
    cfg = load_config(
        run_dir / "config.yaml", [f"backend={backend}"] if backend else [], before_strategies=choose_backend
    )
    forecasts = pd.read_parquet(run_dir / "forecasts.parquet")
    forecasts["strategy"] = forecasts["strategy"].astype("string")
    retrains = pd.read_parquet(run_dir / "retrains.parquet")
    for asset in cfg.universe():
        if not Path(asset.cfg.data.path).is_file():
            where = f"data.assets.{asset.name}.path" if asset.name else "data.path"
            raise AuditError(
                f"{asset.cfg.data.path}: the run's data file ({where} in {run_dir / 'config.yaml'}) is "
                "missing; put the original file back at that path"
            )
    runs = []
    for r in plan_universe(cfg):  # the run's plans, a global model's retrains on the schedule it followed
        recorded = data["assets"][r.asset.name]["sha256"] if r.asset.name else data["sha256"]
        if r.prepared.fingerprint != recorded:
            raise AuditError(
                f"{r.cfg.data.path}: not the data this run used (sha256 {r.prepared.fingerprint[:12]} vs "
                f"the manifest's {recorded[:12]}); put the run's original data file back at that path"
            )
        mine = lambda f: f[f["asset"] == r.asset.label].drop(columns="asset") if "asset" in f else f  # noqa: E731
        runs.append(
            _Run(
                run_dir,
                r.cfg,
                manifest,
                r.series,
                r.prepared.bars.index,
                r.plan,
                mine(forecasts),
                mine(retrains),
                r.cfg.run_strategies(),
                asset=r.asset.name,
            )
        )
    setup(cfg)  # Keras (where a strategy uses it) on the run's backend, once the input is known to be good
    for run in runs:
        run.peers = runs
        for name, spec in run.specs.items():
            run.params.update(params_by_segment(spec.params, run.plan.segments(name), _tunings(run, name)))
    return runs


def _tunings(run: _Run, name: str) -> dict[str, TuneResult]:
    """A strategy's tunings as the run found them (``best.json``), searched again where none is recorded."""
    out = {}
    for seg in run.plan.segments(name):
        if not seg.tune:
            continue
        path = tuning_dir(run.path, seg) / "best.json"
        if path.is_file():
            rec = json.loads(path.read_text())
            out[seg.key] = TuneResult(
                seg, rec.get("best"), pd.DataFrame(), float(rec.get("seconds", 0.0)), str(rec.get("status", "ok"))
            )
        else:
            out[seg.key] = tune_segment(seg, run.specs[name].params, run.series, run.cfg.seed, None)
    return out


def _known_names(config: Path, only: list[str]) -> None:
    """Refuse a ``--strategy`` that is not in the run's config (nor a seed member ``name#k`` of one)."""
    import yaml

    if not only:
        return
    try:
        names = list((yaml.safe_load(config.read_text()) or {}).get("strategies") or {})
    except yaml.YAMLError:
        return  # load_config names the problem
    for name in only:
        if name not in names and name.split("#")[0] not in names:
            raise AuditError(
                f"--strategy {name}: no such strategy in {config} (its strategies: {', '.join(names)}); "
                "pass one of those"
            )


def _select(run: _Run, only: list[str]) -> list[str]:
    """The strategies to audit, in config order (an ensemble's name stands for its members)."""
    if not only:
        return list(run.specs)
    ensembles = run.cfg.ensembles()
    chosen: list[str] = []
    for name in only:
        if name in run.specs:
            chosen.append(name)
        elif name in ensembles:
            chosen.extend(ensembles[name])
        else:
            known = ", ".join(list(run.cfg.strategies))
            raise AuditError(
                f"--strategy {name}: no such strategy in {run.path / 'config.yaml'} (its strategies: "
                f"{known}); pass one of those"
            )
    return [n for n in run.specs if n in chosen]


# --------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class Probe:
    """One sampled issue time: bar ``at`` of segment ``segment``."""

    at: int
    order: int  # the strategy's position in the config
    segment: Segment


def sample_segments(segments: list[Segment], sample: int) -> list[Segment]:
    """``sample`` of the segments that issue forecasts: always the first and the last, the rest evenly spaced.

    >>> from backtester.core.schedule import TrainWindow
    >>> segs = [Segment("x", k, pd.Timestamp(0), TrainWindow(pd.Timestamp(0), 0, 1), k, k + 1, 1) for k in range(1, 8)]
    >>> [s.model_version for s in sample_segments(segs, 3)], [s.model_version for s in sample_segments(segs, 1)]
    ([1, 4, 7], [1, 7])
    """
    issuing = [s for s in segments if s.issues > 0]
    if len(issuing) <= max(sample, 2):
        return issuing
    picks = {int(round(k)) for k in np.linspace(0, len(issuing) - 1, max(sample, 2))}
    return [issuing[k] for k in sorted(picks)]


def sample_issues(seg: Segment, seed: int = 0) -> list[int]:
    """A segment's first and last issue bar and one in between, drawn from (``seed``, the segment), so that
    a strategy cannot know in advance which of its issue times are checked.

    >>> from backtester.core.schedule import TrainWindow
    >>> seg = Segment("x", 1, pd.Timestamp(0), TrainWindow(pd.Timestamp(0), 0, 10), 10, 20, 1)
    >>> picks = sample_issues(seg); picks[0], picks[-1], len(picks), picks == sample_issues(seg)
    (10, 19, 3, True)
    """
    if seg.issues <= 2:
        return list(range(seg.first, seg.stop))
    rng = np.random.default_rng([seed, seg.model_version, *seg.strategy.encode()])
    return [seg.first, int(rng.integers(seg.first + 1, seg.stop - 1)), seg.stop - 1]


def poisoned(series: BarSeries, at: int) -> BarSeries:
    """The series with every bar after ``at`` overwritten with junk (huge random rv and returns, all observed)."""
    rng = np.random.default_rng(at)
    n = len(series) - at - 1
    scale = float(np.nanmax(np.abs(series.rv[: at + 1]))) or 1.0
    rv, ret, observed = series.rv.copy(), series.ret.copy(), series.observed.copy()
    rv[at + 1 :] = scale * rng.uniform(10.0, 1000.0, n)
    ret[at + 1 :] = scale * rng.normal(0.0, 100.0, n)
    observed[at + 1 :] = True
    return BarSeries(series.time, rv, ret, observed)


# --------------------------------------------------------------------------- recomputing


@dataclass
class _Recomputed:
    rows: pd.DataFrame
    model: LiveModel | None


def recompute(run: _Run, seg: Segment, at: int, series: BarSeries, batched: bool | None = None) -> _Recomputed:
    """Segment ``seg`` cut to end at bar ``at`` (inclusive), fitted and forecast on ``series`` as the run did
    (``batched``: the run's ``execution.batched`` unless given): a warm chain from its first segment on,
    a failed fit with the previous good model's forecasts."""
    target = replace(seg, stop=at + 1)
    params = run.params[seg.key]
    batched = run.cfg.execution.batched if batched is None else batched
    seed = run.cfg.seed
    if params.pools_assets() and run.asset:
        return _recompute_pooled(run, target, series, batched)
    live: LiveModel | None = None
    if params.chains():
        for prev in run.plan.segments(seg.strategy):
            if prev.model_version >= seg.model_version:
                break
            p = run.params[prev.key]
            res = run_segment(prev, p, series, run.bars, seed, fallback=live, batched=batched, start_from=live)
            if res.ok:
                live = res.model
        res = run_segment(target, params, series, run.bars, seed, fallback=live, batched=batched, start_from=live)
        return _Recomputed(res.rows, res.model)
    res = run_segment(target, params, series, run.bars, seed, batched=batched)
    if res.ok or len(res.rows):
        return _Recomputed(res.rows, res.model)
    live = _previous_good(run, seg, series)
    rows = issue_forecasts(target, live, series.upto(target.stop), run.bars, batched) if live else res.rows
    return _Recomputed(rows, live)


def _recompute_pooled(run: _Run, target: Segment, series: BarSeries, batched: bool) -> _Recomputed:
    """A global model's retrain recomputed on every asset's bars treated as ``series`` treats this asset's:
    cut at the same time T (the last issue time of ``target``), or junk after T (the bars after T differ
    from the run's), or whole. Only this asset's rows are compared."""
    t = run.bars[target.stop - 1]
    cut = len(series) < len(run.series)
    junk = not cut and not np.array_equal(series.rv, run.series.rv, equal_nan=True)
    members, data, grids = [], [], []
    for peer in run.peers:
        mine = [s for s in peer.plan.segments(target.strategy) if s.model_version == target.model_version]
        if not mine:
            continue
        if peer is run:
            members.append(target), data.append(series), grids.append(run.bars)
            continue
        upto = int(peer.bars.searchsorted(t, side="right"))  # the peer's bars closed at or before T
        seg = replace(mine[0], stop=max(min(mine[0].stop, upto), mine[0].window.stop))
        peer_series = peer.series.upto(upto) if cut else poisoned(peer.series, upto - 1) if junk else peer.series
        members.append(seg), data.append(peer_series), grids.append(peer.bars)
    results = run_pooled_segment(
        tuple(members), run.params[target.key], tuple(data), tuple(grids), run.cfg.seed, batched
    )
    mine = next(r for r in results if r.segment.asset == run.asset)
    return _Recomputed(mine.rows, mine.model)


def _previous_good(run: _Run, seg: Segment, series: BarSeries) -> LiveModel | None:
    """The latest model before ``seg`` whose fit succeeds, refitted on its own window (what a failed fit keeps)."""
    earlier = [s for s in run.plan.segments(seg.strategy) if s.model_version < seg.model_version]
    for prev in reversed(earlier):
        fit_only = replace(prev, first=prev.window.stop, stop=prev.window.stop)
        res = run_segment(fit_only, run.params[prev.key], series, run.bars, run.cfg.seed)
        if res.ok:
            return res.model
    return None


def compare_rows(got: pd.DataFrame, want: pd.DataFrame, rtol: float = 0.0) -> tuple[float, pd.Timestamp | None, str]:
    """(max difference, first issue time whose rows differ, why) of recomputed vs recorded rows; the
    difference is absolute for ``rtol`` 0 (exact), else relative to the recorded forecast.

    >>> t = pd.date_range("2024-01-01", periods=2, freq="h", tz="UTC")
    >>> a = pd.DataFrame({"issued_at": t, "horizon": 1, "target_time": t, "forecast": [1.0, 2.0],
    ...                   "model_version": 1, "trained_through": t[0]})
    >>> compare_rows(a, a.assign(forecast=[1.0, 2.5]))[:2]
    (0.5, Timestamp('2024-01-01 01:00:00+0000', tz='UTC'))
    """
    keys = ["issued_at", "horizon"]
    m = got[COLUMNS[1:]].merge(want[COLUMNS[1:]], on=keys, how="outer", suffixes=("", "_run"), indicator=True)
    both = (m["_merge"] == "both").to_numpy()
    diff = (m["forecast"] - m["forecast_run"]).abs().to_numpy()
    if rtol > 0:
        diff = diff / np.maximum(np.abs(m["forecast_run"].to_numpy()), np.finfo(float).tiny)
    same = (diff <= rtol) | (m["forecast"].isna() & m["forecast_run"].isna()).to_numpy()
    bad_meta = (
        both
        & (
            (m["target_time"] != m["target_time_run"])
            | (m["model_version"] != m["model_version_run"])
            | (m["trained_through"] != m["trained_through_run"])
        ).to_numpy()
    )
    bad = (both & ~same) | bad_meta | ~both
    worst = float(np.nanmax(diff[both])) if both.any() else 0.0
    if not bad.any():
        return worst, None, ""
    first = m.loc[bad, "issued_at"].min()
    k = int(np.flatnonzero(bad & (m["issued_at"] == first).to_numpy())[0])
    row = m.iloc[k]
    if not both[k]:
        why = "have a row the run does not have" if row["_merge"] == "left_only" else "lack a row the run has"
    elif bad_meta[k]:
        why = (
            f"come from model {row['model_version']} trained through {row['trained_through']}, the run's from "
            f"model {row['model_version_run']} trained through {row['trained_through_run']}"
        )
    else:
        what = "relative" if rtol > 0 else "abs"
        why = f"differ from the run's by {diff[k]:.3g} ({what}, max {worst:.3g}, allowed {rtol:g})"
    return worst, first, why


# --------------------------------------------------------------------------- the audit


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
        names = _select(run, mine)
        checks = audit_part(run, names, sample, report, log)
        report.checks.extend(replace(c, strategy=f"{run.asset}/{c.strategy}") if run.asset else c for c in checks)
    for c in report.checks:
        if not c.ok:
            log(f"audit: FAIL {c.strategy} {c.check}: {c.detail}")
    return report


def audit_part(
    run: _Run, names: list[str], sample: int, report: AuditReport, log: Callable[[str], None]
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
    found: dict[tuple[str, str], list[tuple[pd.Timestamp, float, str]]] = {}  # (strategy, check) -> failures
    worst: dict[tuple[str, str], float] = {}
    counts: dict[tuple[str, str], int] = {}
    batching: set[str] = set()  # strategies whose fitted models forecast in batches
    for at in sorted({p.at for p in probes}):
        here = sorted((p for p in probes if p.at == at), key=lambda p: p.order)
        junk = None
        for kind in ("truncation", "poison", "batch"):
            for p in here:
                name, seg = p.segment.strategy, p.segment
                last = at == seg.stop - 1  # poisoned after the segment's last bar: the truncation's input again
                if (kind == "batch" and not (last and name in batching)) or (kind == "poison" and last):
                    continue
                log(f"audit: {who}{run.bars[at]} {name} model {seg.model_version}: {kind}")
                if kind == "poison" and junk is None:
                    junk = poisoned(run.series, at)
                res, diff, first, why, n = _probe(run, seg, at, kind, junk)
                report.recomputations += 1
                key = (name, kind)
                worst[key] = max(worst.get(key, 0.0), diff)
                counts[key] = counts.get(key, 0) + n
                if first is not None:
                    found.setdefault(key, []).append((first, diff, why))
                if (
                    kind == "truncation"
                    and last
                    and run.cfg.execution.batched
                    and res.model is not None
                    and isinstance(res.model.strategy, BatchForecaster)
                ):
                    batching.add(name)  # check its batches against per-bar forecasts
    checks = []
    for name in names:
        for kind in ("truncation", "poison", "batch"):
            checks.append(
                _recompute_check(
                    run,
                    name,
                    kind,
                    found.get((name, kind), []),
                    name in batching,
                    worst.get((name, kind), 0.0),
                    counts.get((name, kind), 0),
                )
            )
        checks.extend(_window_checks(run, name))
        checks.append(_rows_check(run, name))
    return checks


def _probe(run: _Run, seg: Segment, at: int, kind: str, junk: BarSeries | None):
    """One recomputation of ``seg`` at bar ``at`` and its comparison with the run's rows issued from the
    segment's start up to ``at``: (result, max difference, first offending issue time, why, issue times)."""
    t = run.bars[at]
    if kind == "truncation":  # the segment cut at T, on the bars up to T
        res, rtol = recompute(run, seg, at, run.series.upto(at + 1)), _stacked(run, seg.strategy, RECOMPUTE_RTOL)
    elif kind == "poison":  # the whole segment on junk after T (its rows after T are not compared)
        res, rtol = recompute(run, seg, seg.stop - 1, junk), _stacked(run, seg.strategy, RECOMPUTE_RTOL)
    else:  # the per-bar reference path over the whole segment
        res, rtol = (
            recompute(run, seg, at, run.series, batched=False),
            _stacked(run, seg.strategy, _batch_rtol(run, seg.strategy)),
        )
    got = res.rows[res.rows["issued_at"] <= t]
    want = run.rows(seg.strategy)
    want = want[(want["issued_at"] >= run.bars[seg.first]) & (want["issued_at"] <= t)]
    diff, first, why = compare_rows(got, want, rtol)
    return res, diff, first, why, (want["issued_at"].nunique() if kind == "batch" else 1)


def _stacked(run: _Run, name: str, rtol: float) -> float:
    """The tolerance for a recomputation (trained alone) of a strategy the run may have trained stacked
    (``execution.stack``): float32 rounding over training, :data:`STACK_RTOL`; else ``rtol``."""
    execution = run.manifest.get("execution", {})
    size = execution.get("stack", 1)  # the run's resolved execution.stack
    mine = run.retrains[run.retrains["strategy"] == name]["details"] if "details" in run.retrains else []
    stacked = any('"stacked"' in str(d) for d in mine) or (  # a fit record says so; or a run that may have
        size > 1 and run.specs[name].params.stacks() and not execution.get("stack_equal_windows")
    )  # (older)
    return max(rtol, STACK_RTOL) if stacked else rtol


def _batch_rtol(run: _Run, name: str) -> float:
    return BATCH_RTOL if run.specs[name].params.needs_backend() else BATCH_RTOL_FLOAT64


def _recompute_check(
    run: _Run, name: str, kind: str, failures: list, batching: bool, worst: float, count: int
) -> Check:
    if kind == "batch" and not batching:
        why = (
            "the run forecast bar by bar (execution.batched: false)"
            if not run.cfg.execution.batched
            else "no forecast_batch (forecasts are per bar)"
        )
        return Check(name, kind, True, why, skipped=True)
    if not failures:
        allowed = _stacked(run, name, _batch_rtol(run, name) if kind == "batch" else RECOMPUTE_RTOL)
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


# --------------------------------------------------------------------------- windows, scalers, rows


def _models(run: _Run, name: str) -> dict[int, dict[str, Any]] | None:
    """A strategy's models by version: each artifact's ``artifact.json`` (None: the run saved none)."""
    folder = run.models / name
    if not run.cfg.output.save_models:
        return None
    out: dict[int, dict[str, Any]] = {}  # a missing folder: every fit of the strategy lacks its artifact
    for meta_path in sorted(folder.glob("*/artifact.json")):
        meta = json.loads(meta_path.read_text())
        meta["_folder"] = meta_path.parent
        out[int(meta["model_version"])] = meta
    return out


def _window_checks(run: _Run, name: str) -> list[Check]:
    segs = {s.model_version: s for s in run.plan.segments(name)}
    models = _models(run, name)
    data = run.manifest["data"]
    sha = data["assets"][run.asset]["sha256"] if run.asset else data["sha256"]
    problems: list[tuple[pd.Timestamp, str]] = []
    scaler: list[tuple[pd.Timestamp, str]] = []
    scalers_checked = 0
    fits = run.retrains[(run.retrains["strategy"] == name) & (run.retrains["status"] == "ok")]
    if models is not None:
        for v in sorted(set(fits["model_version"]) - set(models)):
            problems.append((segs[v].retrain_time, f"model {v} fitted but has no artifact"))
        for v, meta in models.items():
            seg = segs.get(v)
            retrain = pd.Timestamp(meta["retrain_time"])
            if seg is None or seg.retrain_time != retrain:
                problems.append((retrain, f"artifact {v} is not a retrain of the plan"))
                continue
            end, through = pd.Timestamp(meta["window"]["end"]), pd.Timestamp(meta["trained_through"])
            problems += _window_problems(
                run,
                seg,
                pd.Timestamp(meta["window"]["start"]),
                end,
                through,
                int(meta["window"]["bars"]),
                f"artifact {v}",
            )
            if meta.get("data", {}).get("sha256") != sha:
                problems.append((retrain, f"artifact {v} was trained on other data (sha256)"))
            if (meta["_folder"] / "scaler.json").is_file() and not meta.get("params", {}).get("scaler"):
                scalers_checked += 1
                why = _scaler_problem(run, seg, json.loads((meta["_folder"] / "scaler.json").read_text()))
                if why:
                    scaler.append((retrain, f"artifact {v}: {why}"))
        where = f"{len(models)} artifacts"
    else:
        for rec in fits.itertuples():
            seg = segs[int(rec.model_version)]
            problems += _window_problems(
                run,
                seg,
                pd.Timestamp(rec.window_start),
                pd.Timestamp(rec.window_end),
                pd.Timestamp(rec.window_end),
                int(rec.train_bars),
                f"fit {rec.model_version}",
            )
        where = f"{len(fits)} fits in retrains.parquet (no artifacts)"
    out = [
        _check(
            name,
            "windows",
            problems,
            f"{where}: training windows are the plan's and end at or before their retrain times",
        )
    ]
    if scalers_checked:
        out.append(_check(name, "scaler", scaler, f"{scalers_checked} scalers saw exactly their training windows"))
    return out


def _window_problems(
    run: _Run, seg: Segment, start, end, through, bars: int, what: str
) -> list[tuple[pd.Timestamp, str]]:
    out = []
    w = seg.window
    if end > seg.retrain_time or through > seg.retrain_time:
        out.append(
            (seg.retrain_time, f"{what} trained through {max(end, through)}, after its retrain time {seg.retrain_time}")
        )
    if (start, end, bars) != (run.bars[w.start], run.bars[w.stop - 1], w.stop - w.start):
        out.append(
            (
                seg.retrain_time,
                f"{what} window {start} .. {end} ({bars} bars) is not the plan's "
                f"{run.bars[w.start]} .. {run.bars[w.stop - 1]} ({w.stop - w.start} bars)",
            )
        )
    return out


def _scaler_problem(run: _Run, seg: Segment, state: dict) -> str | None:
    """Why a saved scaler did not see exactly the training window's bars (None: it did)."""
    train = run.series.slice(seg.window.start, seg.window.stop)
    floor = float(state.get("output_floor", 1e-12))
    values = to_target(train.rv, state.get("target", "rv"), floor)
    seen = int(state.get("n_samples_seen", -1))
    if seen != len(values):
        return f"scaler saw {seen} bars, its training window has {len(values)}"
    if state.get("kind") == "MinMaxScaler":
        pairs = [("data_min", values.min()), ("data_max", values.max())]
    elif state.get("kind") == "StandardScaler":
        pairs = [("mean", values.mean()), ("var", values.var())]
    else:
        return None
    for key, expected in pairs:
        got = state.get(key)
        if got is not None and not np.isclose(float(np.ravel(got)[0]), expected, rtol=1e-9, atol=0.0):
            return f"scaler {key} {float(np.ravel(got)[0]):.6g} is not its training window's {expected:.6g}"
    return None


def _rows_check(run: _Run, name: str) -> Check:
    rows = run.rows(name)
    models = _models(run, name)
    segs = {s.model_version: s for s in run.plan.segments(name)}
    if models is not None:
        known = {v: (pd.Timestamp(m["retrain_time"]), pd.Timestamp(m["trained_through"])) for v, m in models.items()}
        source = "artifacts"
    else:
        fits = run.retrains[(run.retrains["strategy"] == name) & (run.retrains["status"] == "ok")]
        known = {
            int(r.model_version): (segs[int(r.model_version)].retrain_time, pd.Timestamp(r.window_end))
            for r in fits.itertuples()
        }
        source = "retrains.parquet"
    problems: list[tuple[pd.Timestamp, str]] = []
    versions = rows["model_version"].astype("int64").to_numpy()
    unknown = ~np.isin(versions, list(known))
    if unknown.any():
        first = rows["issued_at"][unknown].min()
        problems.append((first, f"rows name model {int(versions[unknown][0])}, which the {source} do not have"))
    ok = ~unknown

    def per_row(k: int) -> pd.Series:
        return pd.Series(
            pd.to_datetime([known[v][k] if v in known else pd.NaT for v in versions], utc=True), index=rows.index
        )

    retrain, through = per_row(0), per_row(1)
    for mask, why in (
        (ok & (rows["trained_through"] != through).to_numpy(), "trained_through is not its model's"),
        (ok & (through > rows["issued_at"]).to_numpy(), "its model was trained after it was issued"),
        (ok & (retrain > rows["issued_at"]).to_numpy(), "its model was retrained after it was issued"),
    ):
        if mask.any():
            problems.append((rows["issued_at"][mask].min(), f"a row's {why}"))
    issuing = run.plan.bars[run.plan.first : min(run.plan.stop, len(run.plan.bars) - 1)]  # with a target in the data
    missing = issuing.difference(pd.DatetimeIndex(rows["issued_at"].unique()))
    if len(missing):
        problems.append((missing[0], f"{len(missing)} issue times have no rows"))
    return _check(
        name,
        "rows",
        problems,
        f"{len(rows):,} rows: model versions and trained_through agree with the "
        f"{source}, none trained after its issue time",
    )


def _check(name: str, check: str, problems: list[tuple[pd.Timestamp, str]], passed: str) -> Check:
    if not problems:
        return Check(name, check, True, passed)
    first = min(problems, key=lambda p: p[0])
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return Check(name, check, False, f"{first[1]} (at {first[0]}){more}", first[0])
