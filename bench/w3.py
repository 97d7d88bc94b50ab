"""Workload W3 (issue 30): a universe of many synthetic assets on one machine.

    python bench/w3.py [--sizes 10,50,200] [--days 60] [--jobs 2]

Each size N: ``backtest data synth --assets N --days D`` (volatilities sharing a market factor), then
``backtest run`` of one universe over them with HAR, GARCH, EWMA, naive and a tiny LSTM (4 units, 1 epoch,
lookback 24), horizon 24, weekly retrains on a 14-day rolling window, ``--jobs J``, in a fresh process.
Prints per N: wall seconds, seconds per asset, the run's own seconds preparing, in the engine and evaluating, peak resident MiB of the largest process (the parent, where
the evaluation runs), MiB per asset, the results folder's size (MiB, with the store's segments and models),
its tables alone, and MB per asset × strategy × quarter of the whole folder.
Goals (issue 30): peak memory under 3 GB at 200 assets and at most 5 MiB more per added asset; wall time
linear in assets (seconds per asset within 1.2x from 10 to 200); results under 2 MB per asset-strategy-quarter.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from universe import BACKTEST, ROOT, peak_run, write_config  # noqa: E402

STRATEGIES = {
    "lstm": {"type": "lstm", "memory": 24, "layers": [{"units": 4}], "epochs": 1},
    "har": {"type": "har", "lags": ["1h", "1D"]},
    "garch": {"type": "garch"},
    "ewma": {"type": "ewma"},
    "naive": {"type": "naive"},
}


def config(data: Path, out: Path, days: int) -> dict:
    start = "2024-01-15 00:00"  # two weeks of training first
    return {
        "name": "w3",
        "seed": 1,
        "data": {"assets": f"{data}/*.parquet", "bar": "1h", "cache_dir": str(out / "cache")},
        "backtest": {
            "start": start,
            "horizon": 24,
            "retrain": {"rule": "weekly", "weekday": "mon"},
            "window": {"kind": "rolling", "length": "14D"},
        },
        "strategies": STRATEGIES,
        "evaluation": {"benchmark": "har", "mcs_reps": 200},
        "output": {"dir": str(out / "results"), "plots": False},
    }


def size_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,50,200")
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    quarters = (args.days - 14) / 91.3
    print(
        "assets  wall_s  s/asset  prepare_s  engine_s  evaluate_s  peak_MiB  MiB/asset  results_MiB  tables_MiB  "
        "MB/asset-strategy-quarter"
    )
    for n in (int(x) for x in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            subprocess.run(
                [BACKTEST, "data", "synth", "--out", str(tmp / "data"), "--assets", str(n), "--days", str(args.days)],
                check=True, capture_output=True, cwd=ROOT,
            )  # fmt: skip
            path = write_config(config(tmp / "data", tmp, args.days), tmp, "w3")
            wall, peak = peak_run([BACKTEST, "run", str(path), "-qq", "--jobs", str(args.jobs)])
            results = tmp / "results" / "w3"
            total = size_mib(results)  # with the store's segments and models
            kept = total - size_mib(results / "segments") - size_mib(results / "models")  # the evaluation's tables
            per = total * 2**20 / 1e6 / (n * len(STRATEGIES) * quarters)
            t = json.loads((results / "manifest.json").read_text())["seconds"]
            print(
                f"{n:6d}  {wall:6.1f}  {wall / n:7.2f}  {t['prepare']:9.1f}  {t['engine']:8.1f}  {t['evaluate']:10.1f}  "
                f"{peak:8.0f}  {peak / n:9.1f}  {total:11.1f}  {kept:10.1f}  {per:10.3f}"
            )


if __name__ == "__main__":
    main()
