"""Where the audit recomputes a run: sampled segments and issue times, poisoned bars, and each
recomputation run through the engine's own chain loop (:func:`backtester.chain.run_chains`), its rows
compared with the run's (:func:`compare_rows`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..chain import Chain, alone, pooled, previous_good, run_chains
from ..core.series import BarSeries
from ..recorder import COLUMNS
from ..segment import issue_forecasts
from ..stacking import stack_groups, stacked
from ..work import LiveModel, Segment, SegmentResult
from .run import AuditedRun


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
    measures = {}
    for name, values in series.measures.items():  # every realized measure poisoned alike
        junk = values.copy()
        junk[at + 1 :] = float(np.nanmax(np.abs(values[: at + 1]), initial=1.0)) * rng.uniform(-1000.0, 1000.0, n)
        measures[name] = junk
    return BarSeries(series.time, rv, ret, observed, measures)


@dataclass
class Recomputed:
    rows: pd.DataFrame
    model: LiveModel | None
    stacked: bool = False  # recomputed in the stacked group the run trained it in (then held exactly)
    ok: bool = True  # its fit succeeded


def recompute(run: AuditedRun, seg: Segment, at: int, series: BarSeries, batched: bool | None = None) -> Recomputed:
    """Segment ``seg`` cut to end at bar ``at`` (inclusive), fitted and forecast on ``series`` by the engine's
    chain loop as the run did (``batched``: the run's ``execution.batched`` unless given): a warm chain from
    its first segment on, a global model on every asset, a fit the run trained stacked in the same stacked
    group, a failed fit with the previous good model's forecasts (refitted as the run fitted it)."""
    target = replace(seg, stop=at + 1)
    params = run.params[seg.key]
    batched = run.cfg.execution.batched if batched is None else batched
    if params.pools_assets() and run.asset:
        return _recompute_pooled(run, target, series, batched)
    earlier = tuple(s for s in run.plan.segments(seg.strategy) if s.model_version < seg.model_version)
    res = _recompute_stacked(run, seg, target, series, batched) or _recompute_alone(
        run, earlier, target, series, batched
    )
    if params.chains() or res.ok or len(res.rows):
        return res
    live = _previous_good(run, earlier, series, batched)
    rows = issue_forecasts(target, live, series.upto(target.stop), run.bars, batched) if live else res.rows
    return Recomputed(rows, live, res.stacked)


def _recompute_alone(
    run: AuditedRun, earlier: tuple[Segment, ...], target: Segment, series: BarSeries, batched: bool
) -> Recomputed:
    """``target`` (after the warm chain's ``earlier`` segments) through the chain loop's step alone."""
    params = run.params[target.key]
    links = (*earlier, target) if params.chains() else (target,)
    chain = Chain(links, tuple(run.params[s.key] for s in links), series, run.bars, run.cfg.seed, batched)
    last: list[SegmentResult] = []
    run_chains([chain], alone, lambda k, i, res: last.append(res))
    return Recomputed(last[-1].rows, last[-1].model, ok=last[-1].ok)


def _previous_good(run: AuditedRun, earlier: tuple[Segment, ...], series: BarSeries, batched: bool) -> LiveModel | None:
    """The model a failed fit keeps: the latest earlier fit that succeeds, refitted as the run fitted it (in
    its stacked group where it trained in one; :func:`backtester.chain.previous_good` otherwise)."""
    for s in reversed(earlier):
        together = _recompute_stacked(run, s, s, series, batched)
        if together is None:
            break
        if together.ok:
            return together.model
    return previous_good([(s, run.params[s.key]) for s in earlier], series, run.bars, run.cfg.seed)


def _recompute_pooled(run: AuditedRun, target: Segment, series: BarSeries, batched: bool) -> Recomputed:
    """A global model's retrain recomputed on every asset's bars treated as ``series`` treats this asset's:
    cut at the same time T (the last issue time of ``target``), or junk after T (the bars after T differ
    from the run's), or whole. Only this asset's rows are compared."""
    t, cut, junk = cut_point(run, target, series)
    params, chains = run.params[target.key], []
    for peer in run.peers:
        mine = [s for s in peer.plan.segments(target.strategy) if s.model_version == target.model_version]
        if not mine:
            continue
        if peer is run:
            chains.append(Chain((target,), (params,), series, run.bars, run.cfg.seed, batched))
            continue
        upto = int(peer.bars.searchsorted(t, side="right"))  # the peer's bars closed at or before T
        seg = replace(mine[0], stop=max(min(mine[0].stop, upto), mine[0].window.stop))
        peer_series = peer.series.upto(upto) if cut else poisoned(peer.series, upto - 1) if junk else peer.series
        chains.append(Chain((seg,), (params,), peer_series, peer.bars, run.cfg.seed, batched))
    got: list = []
    run_chains(chains, pooled, lambda k, i, res: got.append(res))
    mine = next(r for r in got if r.segment.asset == run.asset)
    return Recomputed(mine.rows, mine.model)


def _recompute_stacked(
    run: AuditedRun, seg: Segment, target: Segment, series: BarSeries, batched: bool
) -> Recomputed | None:
    """``target`` recomputed as the run trained it: in its stacked group (:func:`backtester.stacking.stack_groups`
    with the run's ``execution`` settings), every member through the engine's stacked step. The other
    members see their bars as ``series`` treats the target's (cut at T, junk after T, or whole); a member
    whose window reaches past T gets junk after T instead (its program keeps its shape, and the target's
    fit must not depend on it). None if the run put it in no group (it trained alone)."""
    execution = run.manifest.raw.get("execution", {})
    entries = [
        (peer, segs, tuple(peer.params[s.key] for s in segs))
        for peer in run.peers or [run]
        for name, spec in peer.specs.items()
        if not spec.params.pools_assets()
        for segs in _chains_of(peer, name, spec.params.chains())
    ]
    groups = stack_groups(
        [(e[1], e[2]) for e in entries], int(execution.get("stack", 1)), bool(execution.get("stack_equal_windows"))
    )
    group = next((g for g in groups if isinstance(g, list) and any(seg in entries[k][1] for k in g)), None)
    if group is None or len(group) != run.program_sizes(seg.strategy).get(seg.model_version):
        return None  # trained alone, or in another group than the run's plan makes (a resumed run's remainder)
    index = next(entries[k][1].index(seg) for k in group if seg in entries[k][1])  # the target's segment
    t, cut, junk = cut_point(run, target, series)
    chains, mine = [], -1
    for k in group:
        peer, segs, params = entries[k]
        links = segs[: index + 1]
        if seg in segs:
            mine = len(chains)
            chains.append(Chain((*links[:-1], target), params[: index + 1], series, run.bars, run.cfg.seed, batched))
            continue
        upto = int(peer.bars.searchsorted(t, side="right"))  # the member's bars closed at or before T
        last = links[-1]
        if (cut or junk) and last.window.stop > upto:
            member, links = poisoned(peer.series, upto - 1), segs[: index + 1]
        elif cut:
            member = peer.series.upto(upto)
            links = (*links[:-1], replace(last, stop=max(min(last.stop, upto), last.window.stop)))
        else:
            member = poisoned(peer.series, upto - 1) if junk else peer.series
        chains.append(Chain(links, params[: index + 1], member, peer.bars, run.cfg.seed, batched))
    got: dict[int, SegmentResult] = {}
    run_chains(chains, stacked, lambda k, i, res: got.__setitem__(k, res) if i == index else None)
    res = got[mine]
    return Recomputed(res.rows, res.model, stacked=True, ok=res.ok)


def cut_point(run: AuditedRun, target: Segment, series: BarSeries) -> tuple[pd.Timestamp, bool, bool]:
    """(T, cut, junk): how ``series`` differs from the run's bars, for the other assets or members of a
    recomputation to see theirs alike: cut after T (the target's last bar), junk after T (T: the last bar
    before the first that differs), or neither (T: the target's last bar)."""
    if len(series) < len(run.series):
        return run.bars[len(series) - 1], True, False
    differ = np.flatnonzero(~np.isclose(series.rv, run.series.rv, rtol=0, atol=0, equal_nan=True))
    if len(differ):
        return run.bars[int(differ[0]) - 1], False, True
    return run.bars[target.stop - 1], False, False


def _chains_of(run: AuditedRun, name: str, chains: bool) -> list[tuple[Segment, ...]]:
    """A strategy's chains as the engine makes them (:func:`backtester.engine.chains`): all its segments in
    one for a warm start, else each segment alone."""
    segs = tuple(run.plan.segments(name))
    return [segs] if chains else [(s,) for s in segs]


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
