"""Stacked training: a run's compatible fits trained together, several per compiled program.

``execution.stack`` (``auto``, ``off`` or a number N) groups the chains whose strategy can stack
(``Params.stacks()``: a local Keras strategy of ours) and whose params are equal (one architecture, one
training loop): chains of one cold segment (the retrains of a strategy, its seed members and its
assets), and warm-start chains of equally many segments (a strategy's seed members and assets). Each
group, ordered by training-window length and cut into runs of at most N, is one :class:`StackJob`. Its
chains go through their segments in lockstep: at each retrain the members' windows are prepared one by
one (a warm member continuing its own last good model), trained together (the params'
``stacked_fitter()``; :mod:`strategies.keras.stacked`), and then each member issues its forecasts and is
written as a segment of its own (:func:`backtester.segment.run_segment` with its ``prefit``), under its
own store key, exactly as if it had run alone.

A stacked model equals the model trained alone up to float32 rounding (``tests/test_stack.py``), so
the groups are a matter of speed, never of results beyond that rounding. They depend only on the
plan and N, not on the number of workers. A resumed run trains only a group's unfinished members
(together), so those may differ from an uninterrupted run's by that rounding. A member whose
preparation fails fails alone; a group whose program runs out of memory is halved until it fits
(:func:`strategies.keras.training.train_fitting`); if it fails otherwise, each member trains alone.

``stack: auto`` on a CPU groups only chains whose windows have one length (``equal_windows``): there a
stacked program masks no step (bench/README.md, "Stacked training").

Examples
--------
>>> split_even(list(range(7)), 3)
[[0, 1, 2], [3, 4], [5, 6]]
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from strategies.base import WarmStartable
from strategies.capabilities import StackedFit

from .chain import Chain, link
from .core.errors import BacktestError, FailedRetrain, FatalError
from .jobs import ChainJob, run_members
from .segment import call
from .work import ALONE, ChainDone, LiveModel, Prefit, Segment, SegmentResult, retrain_seed


@dataclass(frozen=True)
class StackJob:
    """Fits of one architecture, trained together: each member a chain of one cold segment, or a
    warm-start chain (its members then have as many segments, and go through them in lockstep)."""

    members: tuple[ChainJob, ...]

    @property
    def segments(self) -> tuple:
        return tuple(s for m in self.members for s in m.segments)

    def run(self) -> ChainDone:
        """Run the group's chains in lockstep (:func:`stacked`): at each retrain the members the store does
        not hold are trained together (each warm chain continuing its own last good model), then each issues
        its forecasts and is written as a segment of its own, exactly as its :class:`ChainJob` alone would."""
        return run_members(self.members, stacked)

    def finished(self) -> bool:
        return all(m.finished() for m in self.members)


def split_even(items: list, parts: int) -> list[list]:
    """``items`` in ``parts`` consecutive runs whose lengths differ by at most one."""
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for k in range(parts):
        stop = start + size + (1 if k < extra else 0)
        out.append(items[start:stop])
        start = stop
    return out


def stack_key(segments: Sequence[Segment], params: Sequence[Any], equal_windows: bool) -> tuple | None:
    """What a chain's fits stack with: chains of the same key (equal params, horizon and length; with
    ``equal_windows`` also equal window lengths) train together. None: it trains alone (its strategy does
    not stack, or the chain is several segments of a strategy that does not chain)."""
    first = params[0]
    if not (first.stacks() and (len(segments) == 1 or first.chains())):
        return None
    key: tuple = (type(first), tuple(p.model_dump_json() for p in params), segments[0].horizon, len(segments))
    if equal_windows:
        key += tuple(s.window.stop - s.window.start for s in segments)
    return key


def stack_groups(
    chains: Sequence[tuple[Sequence[Segment], Sequence[Any]] | None], size: int, equal_windows: bool
) -> list:
    """Which of ``chains`` (each its segments and params) train together: a list with, in the order each
    kind first appears, an ``int`` (a chain that trains alone) or a list of ints (a group of at most
    ``size``, ordered by training-window length, so a group's windows are alike and few steps are masked).
    The engine (:func:`stack_jobs`) and the audit's recomputation group with it alike.

    >>> from backtester.core.schedule import TrainWindow
    >>> import pandas as pd
    >>> t = pd.Timestamp(0)
    >>> segs = [(Segment(f"x#{k}", 1, t, TrainWindow(t, 0, 5 + k), 9, 10, 1),) for k in range(3)]
    >>> class P:  # params that stack
    ...     def stacks(self): return True
    ...     def chains(self): return False
    ...     def model_dump_json(self): return "{}"
    >>> stack_groups([(s, (P(),)) for s in segs], 2, False)
    [[0, 1], [2]]
    """
    if size <= 1:
        return list(range(len(chains)))
    groups: dict[tuple, list[int]] = {}
    out: list = []
    for k, chain in enumerate(chains):
        key = stack_key(*chain, equal_windows) if chain is not None else None  # None: a job that is no chain
        if key is None:
            out.append(k)
            continue
        if key not in groups:
            groups[key] = []
            out.append(key)
        groups[key].append(k)
    result: list = []
    for item in out:
        if not isinstance(item, tuple):
            result.append(item)
            continue
        first = {k: chains[k][0][0] for k in groups[item]}  # type: ignore[index]
        members = sorted(groups[item], key=lambda k: (first[k].window.stop - first[k].window.start, first[k].key))
        result.extend(split_even(members, math.ceil(len(members) / size)))
    return result


def stack_jobs(jobs: list, size: int, equal_windows: bool = False) -> list:
    """``jobs`` with every chain whose fits stack gathered into :class:`StackJob` groups of at most ``size``
    members (:func:`stack_groups`): chains of one segment, and warm-start chains of equally many segments
    (seed members and assets of one strategy). With ``equal_windows`` only chains whose windows have the
    same lengths group (no masked steps: seed members and assets at one retrain). A group of one stays as
    it was; other jobs keep their place."""
    chains = [(j.segments, j.params) if isinstance(j, ChainJob) else None for j in jobs]
    out = []
    for item in stack_groups(chains, size, equal_windows):
        if isinstance(item, int):
            out.append(jobs[item])
        else:
            out.append(jobs[item[0]] if len(item) == 1 else StackJob(tuple(jobs[k] for k in item)))
    return out


def stacked(chains: list[Chain], i: int, live: list[LiveModel | None]) -> Iterable[SegmentResult]:
    """The step of :mod:`backtester.chain` that trains segment ``i`` of every chain together
    (:func:`fit_together`), then issues each segment's forecasts alone."""
    for chain, model, prefit in zip(chains, live, fit_together(chains, i, live)):
        yield link(chain, i, model, prefit)


def fit_together(chains: list[Chain], index: int = 0, starts: list | None = None) -> list[Prefit | None]:
    """Each chain's strategy for its segment ``index`` built (continuing its ``starts`` model, for a warm
    start) and fitted, all trained together; None where the window is too short (:func:`run_segment` then
    fails that retrain as it would alone)."""
    out: list[Prefit | None] = [None] * len(chains)
    strategies, trains, where = [], [], []
    for k, c in enumerate(chains):
        seg, params = c.segments[index], c.params[index]
        train = c.series.upto(seg.stop).slice(seg.window.start, seg.window.stop)
        if len(train) < params.min_train_bars(seg.horizon):
            continue
        seed = retrain_seed(c.run_seed, seg.owner, seg.retrain_time)
        strategy = call(seg.strategy, "build()", params.build, seed)
        live = starts[k] if starts is not None else None
        if live is not None and params.chains() and isinstance(strategy, WarmStartable):
            strategy.start_from(live.strategy, live.model_version)
        strategies.append(strategy)
        trains.append(train)
        where.append(k)
    if not strategies:
        return out
    t0 = time.perf_counter()
    fitter = chains[where[0]].params[index].stacked_fitter()
    infos = train_together(fitter, strategies, trains, chains[0].segments[index].horizon)
    each = (time.perf_counter() - t0) / len(strategies)  # the group's training, shared out
    for k, strategy, info in zip(where, strategies, infos):
        out[k] = Prefit(strategy, info, each, program_size(info))
    return out


def train_together(fitter: StackedFit | None, strategies: list, trains: list, horizon: int) -> list:
    """What each strategy's fit returned or raised, trained together by ``fitter`` (their params'
    :meth:`~strategies.base.Params.stacked_fitter`)."""
    if fitter is None:
        raise FatalError(f"{type(strategies[0]).__name__}: stacked, but its params declare no stacked_fitter()")
    try:
        return fitter(strategies, trains, horizon)
    except (FailedRetrain, BacktestError, KeyboardInterrupt):
        raise
    except Exception as exc:  # what a lone fit would record as a failed retrain, for every member
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        return [
            FailedRetrain(
                f"fit() raised {type(exc).__name__}: {text}" if text else f"fit() raised {type(exc).__name__}"
            )
        ] * len(strategies)


def program_size(info) -> int:
    """How many models the program that trained a fit held (:attr:`~backtester.work.FitRecord.stacked`),
    as its ``FitInfo`` reports it (``extra["stacked"]``); :data:`~backtester.work.ALONE` for a fit that
    failed or trained alone (a group whose program failed)."""
    if info is None or isinstance(info, BaseException):
        return ALONE
    return int(info.extra.get("stacked", ALONE))
