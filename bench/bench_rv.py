"""Benchmark: hourly RV bars from 1 year (BTCUSDT 2023) and 10 years (synthetic) of 1-minute bars.

    python bench/bench_rv.py [--reps 5] [--synth PATH]

Times `realized_volatility` alone on the year (prices already in memory), then the whole
`prepare_bars` path without cache (read Parquet + validate + RV; Parquet is streamed in batches) and,
for comparison, the one-piece path (whole file in memory, as CSV is read). Every `prepare_bars`
measurement runs in a fresh subprocess, which reports its wall time and peak RSS (`VmHWM`, which
includes about 180 MB of imports: the `imports only` row). Medians of ``--reps`` runs.

The 10-year file (3,650 days, seed 7, as `backtest data synth --days 3650` writes it) is generated
once into ``--synth`` (default: the temp dir) if it is not there; that takes about two minutes.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backtester.config import DataConfig  # noqa: E402
from backtester.data import load_prices  # noqa: E402
from backtester.rv import prepare_bars, realized_volatility  # noqa: E402

SOURCE = ROOT.parent / "shared/data/real/btcusdt_1m_2022_2023.parquet"
SYNTH = Path(tempfile.gettempdir()) / "backtester-bench" / "synth_1m_3650d_seed7.parquet"


def child(path: str, how: str) -> None:
    """One measurement in this (fresh) process: print wall seconds, peak RSS and bar count as JSON."""
    t0 = time.perf_counter()
    n = 0
    if how == "stream":
        n = len(prepare_bars(DataConfig(path=path, cache_dir=None)).bars)
    elif how == "whole":
        cfg = DataConfig(path=path, cache_dir=None)
        n = len(
            realized_volatility(load_prices(cfg), cfg.interval, cfg.bar, cfg.calendar, cfg.min_returns, cfg.max_gap)
        )
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb(), "bars": n}))


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's VmHWM, not ru_maxrss: ru_maxrss carries over the
    parent's size at fork, which is large here after the 10-year file was generated."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(path: Path, how: str, reps: int) -> tuple[float, float, int]:
    """Median wall seconds and median peak RSS (MB) of ``reps`` fresh subprocesses."""
    runs = []
    for _ in range(reps):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(path), how], check=True, capture_output=True, text=True
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return (
        statistics.median(r["seconds"] for r in runs),
        statistics.median(r["peak_mb"] for r in runs),
        runs[0]["bars"],
    )


def ten_years(path: Path) -> Path:
    if not path.is_file():
        from backtester.synth import synth_bars

        print(f"generating 10 years of synthetic 1-minute bars into {path} ...", flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        synth_bars(days=3650, seed=7).to_parquet(tmp, index=False, compression="zstd", compression_level=19)
        tmp.replace(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--synth", type=Path, default=SYNTH, help="the 10-year file (generated if missing)")
    ap.add_argument("--child", nargs=2, metavar=("PATH", "HOW"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return

    frame = pd.read_parquet(SOURCE, columns=["timestamp", "close"])
    year = frame[(frame["timestamp"] >= "2023-01-01") & (frame["timestamp"] < "2024-01-01")]
    prices = year.set_index("timestamp")["close"]
    rv_times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        bars = realized_volatility(prices, pd.Timedelta("1min"), pd.Timedelta("1h"))
        rv_times.append(time.perf_counter() - t0)
    print(f"1 year: {len(prices):,} rows -> {len(bars):,} hourly bars, {int(bars['rv'].isna().sum())} missing")
    print(
        f"realized_volatility (prices in memory, 1 year): median {statistics.median(rv_times):.3f}s over {args.reps} runs"
    )

    synth = ten_years(args.synth)
    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / "btc2023.parquet"
        year.to_parquet(one, index=False)
        del frame, year, prices
        _, base_mb, _ = measure(one, "none", args.reps)
        print(f"{'prepare_bars, no cache':<34} {'rows':>10} {'bars':>7} {'median s':>9} {'peak RSS MB':>12}")
        print(f"{'imports only':<34} {'':>10} {'':>7} {'':>9} {base_mb:>12.0f}")
        for label, path in [("1 year (BTCUSDT 2023)", one), ("10 years (synthetic)", synth)]:
            rows = pq.ParquetFile(path).metadata.num_rows
            for how in ("stream", "whole"):
                seconds, peak, n = measure(path, how, args.reps)
                name = f"{label}, {'streamed' if how == 'stream' else 'one piece'}"
                print(f"{name:<34} {rows:>10,} {n:>7,} {seconds:>9.3f} {peak:>12.0f}", flush=True)


if __name__ == "__main__":
    main()
