"""Workload W1 (../shared/bench/W1.md): time the weekly-retrained LSTM walk-forward on BTCUSDT 2023 H1.

    python bench/run_w1.py [--reps 3] [--set key=value ...]

Prints, per run and as medians: wall seconds, training, prediction, engine overhead
(everything else in the event loop), data preparation, MSE of volatility and QLIKE of
variance over all rows with actual and forecast > 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backtester.config import load_config  # noqa: E402
from backtester.evaluation import qlike  # noqa: E402
from backtester.runner import run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            cfg = load_config(ROOT / "bench/w1.yaml", [f"output.dir={tmp}", "output.plots=false",
                                                       f"data.path={ROOT.parent / 'shared/data/real/btcusdt_1m_2022_2023.parquet'}",
                                                       *args.overrides])
            t0 = time.perf_counter()
            res = run(cfg, force=True)
            wall = time.perf_counter() - t0
            f = res.forecasts.dropna(subset=["actual"])
            s = res.manifest["seconds"]
            rows.append({
                "wall": wall, "prepare": s["prepare"], "train": s["train"], "predict": s["predict"],
                "overhead": s["engine_overhead"], "evaluate": s["evaluate"],
                "mse": float(np.mean((f["forecast"] - f["actual"]) ** 2)),
                "qlike": float(np.nanmean(qlike(f["actual"], f["forecast"]))),
                "rows": len(res.forecasts), "retrains": int(len(res.retrains)),
            })
            print(json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in rows[-1].items()}), flush=True)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print("median:", json.dumps({k: round(v, 6) for k, v in med.items()}))


if __name__ == "__main__":
    main()
