"""Tuning jobs: a hyperparameter search at a tuning retrain, and the params every later retrain uses.

Which retrains tune, and how, is the strategy's to say (``Params.tuning_points`` and
``Params.tune``; a Keras strategy with a ``tuning`` block runs keras-tuner). A tuning at
retrain time T is, like a segment, a pure job: it sees the bars of that retrain's training
window (all closed at or before T) and nothing else, and writes its state and trials under
``<run>/tuning/<strategy>/<version>/``. The best values then fix the strategy's
hyperparameters for that retrain and every later one until the next tuning
(:func:`params_by_segment`).
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .core.atomic import atomic_write_bytes, atomic_write_text
from .core.errors import FailedRetrain
from .core.series import BarSeries
from .layout import BEST, TRIALS, RunDir
from .work import Segment, retrain_seed

TRIAL_COLUMNS = [
    "strategy",
    "model_version",
    "tuned_at",
    "trial",
    "status",
    "score",
    "best",
    "hyperparameters",
    "tuning_seconds",
]  # tuning_seconds: the whole search's


@dataclass
class TuneResult:
    segment: Segment
    best: dict[str, Any] | None  # None: the search failed (the retrain keeps the hyperparameters it had)
    trials: pd.DataFrame
    seconds: float
    status: str
    reused: bool = False  # read back from a finished search with the same key


def tuning_dir(stage: Path, seg: Segment) -> Path:
    """``tuning/[<asset>/]<strategy>/<version>/`` under ``stage`` (:meth:`backtester.layout.RunDir.tuning_dir`)."""
    return RunDir(stage).tuning_dir(seg.key)


@dataclass(frozen=True)
class TuneJob:
    """One tuning retrain's search, as a unit of work for an executor."""

    segment: Segment
    params: Any
    series: BarSeries
    run_seed: int
    stage: Path | None
    key: str | None = None  # the store key (backtester.store): a finished search with this key is read back
    stack: int = 1  # the most trials trained together (execution.stack); the same trials and scores either way


def run_tuning(job: TuneJob) -> TuneResult:
    """A :class:`TuneJob` wherever it runs (see :func:`tune_segment`); a search already finished under
    the same key is read back instead."""
    if job.stage is not None and job.key is not None:
        done = read_tuning(job.stage, job.segment, job.key)
        if done is not None:
            return done
    return tune_segment(job.segment, job.params, job.series, job.run_seed, job.stage, job.key, job.stack)


def read_tuning(stage: Path, seg: Segment, key: str) -> TuneResult | None:
    """The finished search of ``seg`` under ``stage`` if its key is ``key``, else None."""
    folder = tuning_dir(stage, seg)
    try:
        done = json.loads((folder / BEST).read_text())
    except (OSError, ValueError):
        return None
    if done.get("key") != key or not (folder / TRIALS).is_file():
        return None
    trials = pd.read_parquet(folder / TRIALS)
    return TuneResult(
        seg,
        done["best"],
        trials if len(trials) else pd.DataFrame(columns=TRIAL_COLUMNS),
        done["seconds"],
        done["status"],
        reused=True,
    )


def tune_segment(
    seg: Segment, params, series: BarSeries, run_seed: int, stage: Path | None, key: str | None = None, stack: int = 1
) -> TuneResult:
    """Run the search of ``seg`` (a tuning retrain) on its training window; write it under ``stage``
    (``best.json`` last, with ``key``)."""
    train = series.upto(seg.window.stop).slice(seg.window.start, seg.window.stop)
    seed = retrain_seed(run_seed, f"{seg.owner}/tuning", seg.retrain_time)
    folder = tuning_dir(stage, seg) if stage is not None else Path(tempfile.mkdtemp(prefix="backtester-tune-"))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    try:
        need = params.min_train_bars(seg.horizon)
        if len(train) < need:
            raise FailedRetrain(f"{len(train)} training bars, need {need}")
        best, trials = params.tune(train, seg.horizon, seed, folder, stack)
        status = "ok"
    except FailedRetrain as exc:
        best, trials, status = None, pd.DataFrame(columns=TRIAL_COLUMNS[3:-1]), f"failed: {exc}"
    seconds = time.perf_counter() - t0
    trials = (
        trials.assign(
            strategy=seg.strategy, model_version=seg.model_version, tuned_at=seg.retrain_time, tuning_seconds=seconds
        )[TRIAL_COLUMNS]
        if len(trials)
        else pd.DataFrame(columns=TRIAL_COLUMNS)
    )
    if stage is not None:
        buffer = io.BytesIO()
        trials.to_parquet(buffer, index=False)
        atomic_write_bytes(folder / TRIALS, buffer.getvalue())
        atomic_write_text(
            folder / BEST,
            json.dumps({"status": status, "best": best, "seconds": seconds, "key": key}, indent=2, default=str),
        )
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return TuneResult(seg, best, trials, seconds, status)


def params_by_segment(params, segments: list[Segment], tunings: dict[str, TuneResult]) -> dict[str, Any]:
    """Each segment's params: those of the latest tuning at or before it (the config's before any)."""
    out, current = {}, params
    for seg in segments:
        t = tunings.get(seg.key)
        if t is not None and t.best is not None:
            current = params.with_hyperparameters(t.best)
        out[seg.key] = current
    return out


def read_trials(stage: Path) -> pd.DataFrame:
    """Every tuning's trials under a run directory, in (strategy, version, trial) order."""
    root = RunDir(stage).tuning
    parts = []
    for path in sorted(root.rglob(TRIALS)):
        rel = path.relative_to(root).parts  # <strategy>/<NNNN>/ or <asset>/<strategy>/<NNNN>/
        frame = pd.read_parquet(path)
        if len(frame):
            parts.append(frame.assign(asset=rel[0] if len(rel) == 4 else "")[["asset"] + TRIAL_COLUMNS])
    if not parts:
        return pd.DataFrame(columns=["asset"] + TRIAL_COLUMNS)
    return pd.concat(parts, ignore_index=True)
