"""What one compute thread per process costs: ``backtest run CONFIG --fresh`` in one process and with
``--jobs 2``, on the code before the pin and on this tree, runs interleaved, median of ``--reps``.

    git archive <commit-before> | tar -x -C /tmp/before
    python bench/pinning.py /tmp/before [--config configs/weekly.yaml] [--reps 3] [--jobs 1,2]

Each tree runs from its own root with its own ``PYTHONPATH`` (and its own compile cache beside its bars):
one unmeasured run per tree first warms the caches. Prints each run's seconds, then per executor the
medians and the ratio after / before (timings on a shared machine are noisy: compare ratios from one
invocation). ``--compare`` also checks that this tree's runs give the same forecasts on every executor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_run(root: Path, config: str, jobs: int, out: Path, name: str) -> float:
    """Seconds of one fresh ``backtest run`` of ``config`` on the code under ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    sets = ["--set", f"output.dir={out}", "--set", f"name={name}", "--set", "output.plots=false"]
    cmd = [str(Path(sys.executable).with_name("backtest")), "run", "-q", config, "--fresh", "--jobs", str(jobs)]
    start = time.perf_counter()
    subprocess.run([*cmd, *sets], cwd=root, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path, help="a checkout of the code before the pin")
    ap.add_argument("--config", default="configs/weekly.yaml")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--jobs", default="1,2")
    ap.add_argument("--compare", action="store_true", help="check this tree's forecasts equal across --jobs")
    args = ap.parse_args()
    trees = {"before": args.before.resolve(), "after": ROOT}
    jobs = [int(j) for j in args.jobs.split(",")]
    out = Path(tempfile.mkdtemp(prefix="pinning-"))
    for label, root in trees.items():  # warm the bars and compile caches, unmeasured
        timed_run(root, args.config, 1, out, f"warm-{label}")
    seconds: dict[tuple[str, int], list[float]] = {}
    for rep in range(args.reps):
        for j in jobs:
            for label, root in trees.items():
                s = timed_run(root, args.config, j, out, f"{label}-j{j}-{rep}")
                seconds.setdefault((label, j), []).append(s)
                print(f"rep {rep} jobs {j} {label}: {s:.1f} s", flush=True)
    for j in jobs:
        before, after = (statistics.median(seconds[(label, j)]) for label in trees)
        print(f"jobs {j}: before {before:.1f} s, after {after:.1f} s, after/before {after / before:.2f}")
    if args.compare:
        import pandas as pd

        runs = [pd.read_parquet(out / f"after-j{j}-0" / "forecasts.parquet") for j in jobs]
        for j, frame in zip(jobs[1:], runs[1:]):
            pd.testing.assert_frame_equal(runs[0], frame, check_exact=True)
            print(f"after: jobs {jobs[0]} and jobs {j} give identical forecasts")


if __name__ == "__main__":
    main()
