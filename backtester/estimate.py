"""What a plan will cost: per strategy its retrains, tunings, training samples and an estimated run time.

The time comes from an earlier run of the same config when there is one (its recorded
fit and tuning seconds), else, with ``estimate=True``, from a quick timing: each
strategy is fitted on slices of its largest training window (Keras models for one epoch
on two sizes after a warm-up, so that the one-off compile, the per-retrain cost and the
per-sample cost are told apart) and the result is
scaled to every retrain's samples and epochs. Timings are of this machine as it is now: a busy
machine gives a high estimate.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from .core.series import BarSeries
from .layout import RETRAINS, TUNING_TABLE, RunDir, peek_manifest

SLICE = 3000  # bars beyond the strategy's minimum in the larger timing fit


def earlier_run(cfg) -> dict[str, float] | None:
    """Seconds per strategy (fits + tuning) of the last finished run of this very config, if any."""
    run = RunDir(Path(cfg.output.dir) / cfg.name)
    manifest = peek_manifest(run.path)
    if manifest is None or manifest.config_id != cfg.config_id():
        return None
    try:
        retrains = run.read_table(RETRAINS)
    except (OSError, ValueError):
        return None
    out = retrains.groupby("strategy")["seconds"].sum().astype(float).to_dict()
    tuning = run.file(TUNING_TABLE)
    if tuning.is_file():
        t = pd.read_parquet(tuning).drop_duplicates(["strategy", "model_version"])
        for name, secs in t.groupby("strategy")["tuning_seconds"].sum().items():
            out[name] = out.get(name, 0.0) + float(secs)
    return out


def _fit_seconds(params, series: BarSeries, start: int, stop: int, horizon: int) -> float:
    t0 = time.perf_counter()
    params.build(0).fit(series.slice(start, stop), horizon)
    return time.perf_counter() - t0


def estimate_table(cfg, plan, series: BarSeries, estimate: bool = False) -> pd.DataFrame:
    """One row per strategy: retrains, tunings, training samples, estimated seconds and where the figure comes from:
    a timing of small fits now (``estimate``), else the last finished run of the same config, else none."""
    past = earlier_run(cfg)
    rows = []
    for name, spec in cfg.run_strategies().items():
        sched = plan.schedules[name]
        n_samples = [spec.params.train_samples(w.stop - w.start, plan.horizon) for w in sched.windows]
        row = {
            "strategy": name,
            "retrains": len(sched.retrains),
            "tunings": int(sum(sched.tunes)),
            "samples": int(sum(n_samples)),
            "seconds": float("nan"),
            "from": "",
        }
        if estimate:  # asked for: a timing now, whatever an earlier run took
            try:
                row["seconds"], row["from"] = (
                    _quick_estimate(spec.params, sched, n_samples, series, plan.horizon),
                    "timing",
                )
            except Exception as exc:  # a fit that fails here fails in the run too; the plan still prints
                row["from"] = f"no estimate: the timing fit failed ({type(exc).__name__})"
        elif past is not None and name in past:
            row["seconds"], row["from"] = past[name], "last run"
        rows.append(row)
    return pd.DataFrame(rows)


def _quick_estimate(params, sched, n_samples: list[int], series: BarSeries, horizon: int) -> float:
    """Seconds for every fit (and tuning) of one strategy, scaled from timed fits on its first window."""
    w = max(sched.windows, key=lambda x: x.stop - x.start)  # the largest window: the steadiest timing
    need = params.min_train_bars(horizon)
    epochs = params.fit_epochs()
    if epochs is None:  # one warm-up (imports), one timed fit; cost grows about linearly with the window
        _fit_seconds(params, series, w.start, w.stop, horizon)
        t = _fit_seconds(params, series, w.start, w.stop, horizon)
        return t * sum(n_samples) / max(w.stop - w.start, 1)
    one = params.timing_copy()
    big = min(w.stop - w.start, need + SLICE)
    small = need + (big - need) // 4
    warm = _fit_seconds(one, series, w.stop - small, w.stop, horizon)  # imports and the compile, once
    t_small = _fit_seconds(one, series, w.stop - small, w.stop, horizon)
    t_big = _fit_seconds(one, series, w.stop - big, w.stop, horizon)
    n_small, n_big = params.train_samples(small, horizon), params.train_samples(big, horizon)
    rate = max((t_big - t_small) / max(n_big - n_small, 1), 0.0)  # seconds per sample and epoch
    fixed = max(t_small - rate * n_small, 0.0)  # per retrain: build the model, copy weights, start fitting
    compile_once = max(warm - t_small, 0.0)
    total = compile_once + sum(fixed + epochs * rate * n for n in n_samples)
    trials, trial_epochs = params.tuning_budget()
    tuned = [n for n, t in zip(n_samples, sched.tunes) if t]
    total += sum(trials * (compile_once + fixed + trial_epochs * rate * n) for n in tuned)
    return total


def format_table(table: pd.DataFrame) -> str:
    """The table as text, one format per column; the total time at the bottom."""
    lines = [f"  {'strategy':<16} {'retrains':>8} {'tunings':>7} {'training samples':>16} {'est. time':>10}"]
    for r in table.itertuples():
        secs = "" if np.isnan(r.seconds) else f"{_duration(r.seconds)}"
        lines.append(
            f"  {r.strategy:<16} {r.retrains:>8,} {r.tunings:>7,} {r.samples:>16,} {secs:>10}"
            + (f"  ({r._6})" if r._6 else "")
        )
    known = table["seconds"].dropna()
    if len(known):
        part = "" if len(known) == len(table) else f" (for {len(known)} of {len(table)} strategies)"
        lines.append(
            f"  estimated fit time in one process: {_duration(float(known.sum()))}{part}; "
            "training samples = windows x (1 - validation_split), summed over retrains"
        )
    else:
        lines.append("  run time: `backtest plan --estimate` times one small fit per strategy")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    """
    >>> _duration(4.2), _duration(95), _duration(4000)
    ('4.2 s', '1 min 35 s', '1 h 06 min')
    """
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
