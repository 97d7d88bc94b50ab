"""Universe speed and memory (issue 16).

    python bench/universe.py speed [--end 2023-10-02] [--reps 1] [--jobs 2]
    python bench/universe.py memory [--sizes 1,4,16] [--days 60]

``speed``: ``configs/universe.yaml`` (BTC, ETH, ARB from ../shared/data/real/; weekly and monthly local
LSTMs, a weekly global LSTM, HAR, GARCH) as one universe run with ``--jobs N``, against the same config
run one asset at a time, one run after the other (each a universe of one, where the global LSTM is that
asset's own model), on the same machine. Each run is ``backtest run ... -qq`` in a fresh process:
the wall time is what a user waits for, start-up included. Prints each run's wall, training seconds and
the ratio universe / sum of one-asset runs.

``memory``: the peak resident memory of ``backtest run`` (one process, ``--jobs 1``) on a universe of
1, 4 and 16 synthetic assets (``backtest data synth --assets N``, ``--days`` each) with HAR, EWMA and
naive (no Keras: the engine's and the evaluation's own memory), H = 24, weekly retrains.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BACKTEST = str(Path(sys.executable).parent / "backtest")


def peak_run(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of one command, measured in a fresh wrapper process (its
    ``RUSAGE_CHILDREN`` peak is the command's own, workers included)."""
    code = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, cwd=ROOT)
    wall, kib = out.stdout.split()[-2:]
    return float(wall), int(kib) / 1024


def write_config(raw: dict, folder: Path, name: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def training_seconds(run_dir: Path) -> float:
    import pandas as pd

    return float(pd.read_parquet(run_dir / "retrains.parquet")["seconds"].sum())


def speed(end: str, reps: int, jobs: int) -> None:
    base = yaml.safe_load((ROOT / "configs/universe.yaml").read_text())
    base["backtest"]["end"] = end
    base["output"] = {"plots": False}
    assets = {k: str((ROOT / v).resolve()) for k, v in base["data"]["assets"].items()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base["output"]["dir"] = str(tmp / "results")
        configs = {
            "universe": write_config(
                {**base, "name": "universe", "data": {**base["data"], "assets": assets}}, tmp, "universe"
            )
        }
        for name, path in assets.items():
            configs[name] = write_config(
                {**base, "name": f"one_{name}", "data": {**base["data"], "assets": {name: path}}}, tmp, f"one_{name}"
            )
        rows = []
        for rep in range(reps):
            for label, config in configs.items():
                raw = yaml.safe_load(config.read_text())
                wall, mib = peak_run([BACKTEST, "run", str(config), "--force", "--fresh", "-qq", "--jobs", str(jobs)])
                fit = training_seconds(tmp / "results" / raw["name"])
                rows.append({"rep": rep, "run": label, "wall": wall, "train": fit, "peak_mib": mib})
                print(json.dumps(rows[-1]), flush=True)
        import pandas as pd

        table = pd.DataFrame(rows)
        per = table.groupby(["rep", table["run"] == "universe"])[["wall", "train"]].sum().unstack()
        print(table.groupby("run")[["wall", "train", "peak_mib"]].median().round(1).to_string())
        ratio = (per[("wall", True)] / per[("wall", False)]).median()
        print(f"universe wall / sum of one-asset walls (median over {reps} reps): {ratio:.2f}")


def memory(sizes: list[int], days: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for n in sizes:
            folder = tmp / f"u{n}"
            subprocess.run(
                [
                    BACKTEST,
                    "data",
                    "synth",
                    "--out",
                    str(folder),
                    "--assets",
                    str(n),
                    "--days",
                    str(days),
                    "--seed",
                    "1",
                ],
                check=True,
                capture_output=True,
                cwd=ROOT,
            )
            raw = {
                "name": f"mem{n}",
                "seed": 0,
                "data": {"assets": str(folder / "*.parquet"), "bar": "1h", "cache_dir": str(tmp / "cache")},
                "backtest": {
                    "start": "2024-01-15 00:00",
                    "horizon": 24,
                    "retrain": {"rule": "weekly", "weekday": "mon"},
                },
                "strategies": {"har": {}, "ewma": {}, "naive": {}},
                "output": {"dir": str(tmp / "results"), "plots": False},
            }
            config = write_config(raw, tmp, f"mem{n}")
            subprocess.run([BACKTEST, "data", "prepare", str(config), "-q"], capture_output=True, cwd=ROOT)
            t0 = time.perf_counter()
            wall, mib = peak_run([BACKTEST, "run", str(config), "--force", "--fresh", "-qq", "--jobs", "1"])
            manifest = json.loads((tmp / "results" / f"mem{n}" / "manifest.json").read_text())
            print(
                json.dumps(
                    {
                        "assets": n,
                        "days_each": days,
                        "forecast_rows": manifest["rows"],
                        "wall": round(wall, 1),
                        "peak_mib": round(mib),
                        "measured_in": round(time.perf_counter() - t0, 1),
                    }
                ),
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--end", default="2023-10-02 00:00")
    s.add_argument("--reps", type=int, default=1)
    s.add_argument("--jobs", type=int, default=2)
    m = sub.add_parser("memory")
    m.add_argument("--sizes", default="1,4,16")
    m.add_argument("--days", type=int, default=60)
    args = ap.parse_args()
    if args.what == "speed":
        speed(args.end, args.reps, args.jobs)
    else:
        memory([int(x) for x in args.sizes.split(",")], args.days)


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
