"""Workload W1 (../shared/bench/W1.md): the weekly-retrained LSTM walk-forward on BTCUSDT 2023 H1.

    python bench/run_w1.py [--reps 3] [--variants jax,jax-2,tf,...] [--baseline jax]

Stacked against unstacked training (``execution.stack``), the default variants: ``jax-2-alone`` (each
fit alone) beside ``jax-2-stack9`` (two programs of 9 fits); ``jax-2`` is the default config, whose
``stack: auto`` trains alone on a CPU.

Each run is ``backtest run bench/w1.yaml ... -qq`` in a fresh process, so the wall time is
what a user waits for, start-up included. Variants run interleaved, round by round.
Prints per run and as medians: wall seconds, training, prediction, engine overhead
(engine wall minus the busiest worker's fit and forecast time), data preparation,
evaluation, MSE of volatility and QLIKE of variance (rows with actual and forecast > 0),
and each variant's median wall as a ratio to the baseline's. ``floor-jax`` / ``floor-tf``
run ``bench/fit_floor.py`` (the same fits with nothing around them; train seconds only).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared/data/real/btcusdt_1m_2022_2023.parquet"
TUNE_LR = (
    "{tuner: random, max_trials: 8, epochs: 3, space: {num_layers: 1, units: 32, dropout: 0.1, "
    "learning_rate: {min: 0.001, max: 0.01, sampling: log}}}"
)
TUNE_NB = "{tuner: random, max_trials: 8, epochs: 3}"
VARIANTS = {
    "jax": ["backend=jax"],  # execution.stack: auto, the default (alone on a CPU, 32 per program on a GPU)
    "jax-2": ["backend=jax", "execution.jobs=2"],
    "jax-alone": ["backend=jax", "execution.stack=off"],  # each fit alone: the path before stacking
    "jax-2-alone": ["backend=jax", "execution.jobs=2", "execution.stack=off"],
    "jax-2-stack9": ["backend=jax", "execution.jobs=2", "execution.stack=9"],
    "jax-2-stack2": ["backend=jax", "execution.jobs=2", "execution.stack=2"],
    "jax-2-stack4": ["backend=jax", "execution.jobs=2", "execution.stack=4"],
    "jax-stack18": ["backend=jax", "execution.stack=18"],  # all 18 fits in one program, one process
    "jax-stack9": ["backend=jax", "execution.stack=9"],
    # W1's LSTM as three seeds of warm-start chains (each retrain continues the last model for 1 epoch)
    "warm3-alone": [
        "backend=jax",
        "execution.stack=off",
        "strategies.lstm.repeats=3",
        "strategies.lstm.warm_start.epochs=1",
    ],
    "warm3-stack3": [
        "backend=jax",
        "execution.stack=3",
        "strategies.lstm.repeats=3",
        "strategies.lstm.warm_start.epochs=1",
    ],
    # W1 plus a random search of 8 trials (3 epochs each) at the first retrain: over the learning rate only (one
    # architecture: the trials can share a program), or over the notebook's space (1-2 layers, units, dropout, lr)
    "tune-lr-alone": ["backend=jax", "execution.stack=off", f"strategies.lstm.tuning={TUNE_LR}"],
    "tune-lr-stack8": ["backend=jax", "execution.stack=8", f"strategies.lstm.tuning={TUNE_LR}"],
    "tune-nb-alone": ["backend=jax", "execution.stack=off", f"strategies.lstm.tuning={TUNE_NB}"],
    "tune-nb-stack8": ["backend=jax", "execution.stack=8", f"strategies.lstm.tuning={TUNE_NB}"],
    "tf": ["backend=tensorflow"],
    "tf-2": ["backend=tensorflow", "execution.jobs=2"],
    "tf-xla": ["backend=tensorflow", "strategies.lstm.jit_compile=true"],
    "jax-per-bar": ["backend=jax", "execution.batched=false", "strategies.lstm.reuse_compiled=false"],
    "tf-per-bar": ["backend=tensorflow", "execution.batched=false", "strategies.lstm.reuse_compiled=false"],
    "naive-year": [],  # bench/naive_year.yaml: engine overhead alone
}


def qlike(a: np.ndarray, f: np.ndarray) -> float:
    ok = (a > 0) & (f > 0)
    r = a[ok] ** 2 / f[ok] ** 2
    return float(np.mean(r - np.log(r) - 1))


def run_once(variant: str, out: Path, config: Path | None = None, data: list[str] | None = None) -> dict:
    if variant.startswith("floor-"):
        env = {**os.environ, "KERAS_BACKEND": {"floor-jax": "jax", "floor-tf": "tensorflow"}[variant]}
        t0 = time.perf_counter()
        line = (
            subprocess.run(
                [sys.executable, str(ROOT / "bench/fit_floor.py")], env=env, check=True, capture_output=True, text=True
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        return {"wall": time.perf_counter() - t0, **json.loads(line)}
    sets = [
        f"output.dir={out}",
        "output.plots=false",
        *(data if data is not None else [f"data.path={DATA}"]),
        f"name={variant}",
        *VARIANTS[variant],
    ]
    config = config or ROOT / ("bench/naive_year.yaml" if variant == "naive-year" else "bench/w1.yaml")
    cmd = [str(Path(sys.executable).parent / "backtest"), "run", str(config), "--force", "--fresh", "-qq"]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    run_dir = out / variant
    s = json.loads((run_dir / "manifest.json").read_text())["seconds"]
    f = pd.read_parquet(run_dir / "forecasts.parquet").dropna(subset=["actual"])
    a, fc = f["actual"].to_numpy(), f["forecast"].to_numpy()
    return {
        "wall": wall,
        "prepare": s["prepare"],
        "train": s["train"],
        "predict": s["predict"],
        "overhead": s["engine_overhead"],
        "engine": s["engine"],
        "evaluate": s["evaluate"],
        "tuning": s.get("tuning", 0.0),
        "mse": float(np.mean((fc - a) ** 2)),
        "qlike": qlike(a, fc),
        "rows": len(f),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--variants", default="jax-2-alone,jax-2-stack9")
    ap.add_argument("--baseline", default=None, help="variant the ratios are against (default: the first)")
    args = ap.parse_args()
    rounds(args.variants.split(","), args.reps, lambda v, tmp: run_once(v, tmp), args.baseline)


def rounds(variants: list[str], reps: int, once, baseline: str | None = None) -> None:
    """``reps`` rounds of every variant (``once(variant, tmp_dir) -> figures``), printed as they finish, then
    each variant's medians and its median wall as a ratio to ``baseline``'s (default: the first variant's)."""
    rows: dict[str, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(reps):
            for v in variants:
                r = once(v, Path(tmp))
                rows[v].append(r)
                print(
                    json.dumps(
                        {
                            "variant": v,
                            "rep": rep + 1,
                            **{k: round(x, 6) if isinstance(x, float) else x for k, x in r.items()},
                        }
                    ),
                    flush=True,
                )
    base = baseline or variants[0]
    med = {
        v: {k: statistics.median(r[k] for r in rs) for k in rs[0] if isinstance(rs[0][k], (int, float))}
        for v, rs in rows.items()
    }
    print(f"\nmedians of {reps} (ratio: median wall / {base}'s)")
    for v, m in med.items():
        print(
            json.dumps(
                {
                    "variant": v,
                    **{k: round(x, 6) for k, x in m.items()},
                    "ratio": round(m["wall"] / med[base]["wall"], 3),
                }
            )
        )


if __name__ == "__main__":
    main()
