"""Benchmark: hourly RV bars from one year of 1-minute bars (BTCUSDT 2023, 525,600 rows).

    python bench/bench_rv.py [--reps 7]

Times `realized_volatility` alone (prices already in memory) and the whole
`prepare_bars` path without cache (read Parquet + validate + RV), median of reps.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backtester.config import DataConfig  # noqa: E402
from backtester.rv import prepare_bars, realized_volatility  # noqa: E402

SOURCE = ROOT.parent / "shared/data/real/btcusdt_1m_2022_2023.parquet"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    frame = pd.read_parquet(SOURCE, columns=["timestamp", "close"])
    year = frame[(frame["timestamp"] >= "2023-01-01") & (frame["timestamp"] < "2024-01-01")]
    prices = year.set_index("timestamp")["close"]
    print(f"rows: {len(prices):,}")
    rv_times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        bars = realized_volatility(prices, pd.Timedelta("1min"), pd.Timedelta("1h"))
        rv_times.append(time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "btc2023.parquet"
        year.to_parquet(path, index=False)
        full_times = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            prepare_bars(DataConfig(path=path, cache_dir=None))
            full_times.append(time.perf_counter() - t0)
    print(f"hourly bars: {len(bars):,}, missing: {int(bars['rv'].isna().sum())}")
    print(f"realized_volatility: median {statistics.median(rv_times):.3f}s over {args.reps} runs")
    print(f"prepare_bars (read + validate + RV, no cache): median {statistics.median(full_times):.3f}s")


if __name__ == "__main__":
    main()
