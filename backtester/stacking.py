"""Stacked training: a run's compatible cold fits trained together, several per compiled program.

``execution.stack`` (``auto``, ``off`` or a number N) groups the segments whose strategy can stack
(``Params.stacks()``: a Keras strategy without a warm start, one model per asset) and whose params
are equal (one architecture, one training loop): the retrains of a strategy, its seed members and
its assets. Each group, ordered by training-window length and cut into runs of at most N, is one
:class:`StackJob`: its members' windows are prepared one by one, trained together
(``fit_stacked`` of the strategy class; :mod:`strategies.keras_stack`), and then each member issues
its forecasts and is written as a segment of its own (:func:`backtester.segment.run_segment` with
its ``prefit``), under its own store key, exactly as if it had run alone.

A stacked model equals the model trained alone up to float32 rounding (``tests/test_stack.py``), so
the groups are a matter of speed, never of results beyond that rounding. They depend only on the
plan and N, not on the number of workers. A resumed run trains only a group's unfinished members
(together), so those may differ from an uninterrupted run's by that rounding. A member whose
preparation fails fails alone; if the group's program fails (out of memory), each member trains alone.

Examples
--------
>>> split_even(list(range(7)), 3)
[[0, 1, 2], [3, 4], [5, 6]]
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from typing import Any

from .errors import BacktestError, FailedRetrain
from .interrupt import check as check_interrupt
from .segment import ChainDone, Prefit, call, read_segment, retrain_seed, run_segment, write_segment
from .store import is_stored


@dataclass(frozen=True)
class StackJob:
    """Cold fits of one architecture, trained together: each member a chain of one segment."""

    members: tuple[Any, ...]  # ChainJob, one segment each

    @property
    def segments(self) -> tuple:
        return tuple(m.segments[0] for m in self.members)


def split_even(items: list, parts: int) -> list[list]:
    """``items`` in ``parts`` consecutive runs whose lengths differ by at most one."""
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for k in range(parts):
        stop = start + size + (1 if k < extra else 0)
        out.append(items[start:stop])
        start = stop
    return out


def stack_jobs(jobs: list, size: int) -> list:
    """``jobs`` with every chain of one stackable segment gathered into :class:`StackJob` groups of at most
    ``size`` members of equal params and horizon (ordered by training-window length, so a group's windows
    are alike and few of its steps are masked). A group of one stays as it was; other jobs keep their place."""
    if size <= 1:
        return list(jobs)
    groups: dict[tuple, list] = {}
    out: list = []
    for job in jobs:
        if type(job).__name__ == "ChainJob" and len(job.segments) == 1 and job.params[0].stacks():
            params, seg = job.params[0], job.segments[0]
            key = (type(params).__module__, type(params).__name__, params.model_dump_json(), seg.horizon)
            if key not in groups:
                groups[key] = []
                out.append(key)
            groups[key].append(job)
        else:
            out.append(job)
    result = []
    for item in out:
        if not isinstance(item, tuple):
            result.append(item)
            continue
        members = sorted(groups[item], key=lambda j: (j.segments[0].window.stop - j.segments[0].window.start,
                                                      j.segments[0].key))
        for part in split_even(members, math.ceil(len(members) / size)):
            result.append(part[0] if len(part) == 1 else StackJob(tuple(part)))
    return result


def fit_together(members: list) -> list[Prefit | None]:
    """Each member's strategy built and fitted, all trained together; None where the window is too short
    (:func:`run_segment` then fails that retrain as it would alone)."""
    out: list[Prefit | None] = [None] * len(members)
    strategies, trains, where = [], [], []
    for k, m in enumerate(members):
        seg, params = m.segments[0], m.params[0]
        train = m.series.upto(seg.stop).slice(seg.window.start, seg.window.stop)
        if len(train) < params.min_train_bars(seg.horizon):
            continue
        seed = retrain_seed(m.settings.run_seed, seg.owner, seg.retrain_time)
        strategies.append(call(seg.strategy, "build()", params.build, seed))
        trains.append(train)
        where.append(k)
    if not strategies:
        return out
    t0 = time.perf_counter()
    try:
        infos = type(strategies[0]).fit_stacked(strategies, trains, members[0].segments[0].horizon)
    except (FailedRetrain, BacktestError, KeyboardInterrupt):
        raise
    except Exception as exc:  # what a lone fit would record as a failed retrain, for every member
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        infos = [FailedRetrain(f"fit() raised {type(exc).__name__}: {text}" if text else f"fit() raised "
                               f"{type(exc).__name__}")] * len(strategies)
    each = (time.perf_counter() - t0) / len(strategies)  # the group's training, shared out
    for k, strategy, info in zip(where, strategies, infos):
        out[k] = Prefit(strategy, info, each)
    return out


def run_stack(job: StackJob):
    """Train the group's members that the store does not hold, together; forecast and write each."""
    done: dict[str, tuple] = {}
    todo = []
    for m in job.members:
        seg, key = m.segments[0], (m.keys[0] if m.keys else None)
        need = m.settings.save_models and m.context is not None
        if key is not None and is_stored(m.stage, seg, key, need):
            done[seg.key] = (seg.key, 0.0, read_segment(m.stage, seg).record.status, True)
        else:
            todo.append(m)
    check_interrupt()
    for m, prefit in zip(todo, fit_together(todo) if todo else []):
        seg, params = m.segments[0], m.params[0]
        res = run_segment(seg, params, m.series, m.bars, m.settings.run_seed, batched=m.settings.batched,
                          prefit=prefit)
        write_segment(m.stage, res, replace(m.spec, params=params), m.context, m.settings.save_models,
                      m.keys[0] if m.keys else None)
        done[seg.key] = (seg.key, res.fit_seconds + res.predict_seconds, res.record.status, False)
    return ChainDone(f"{os.uname().nodename}:{os.getpid()}", tuple(done[s.key] for s in job.segments))
