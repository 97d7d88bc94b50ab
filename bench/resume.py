"""What resuming saves: a run killed (SIGKILL) half-way and run again, a finished run run again, and a
finished run with one strategy added, against the run from scratch, each a fresh ``backtest run``.

    python bench/resume.py bench/w1.yaml --set backend=jax
    python bench/resume.py configs/compare.yaml

Prints wall seconds and the "reused N of M" line of each case; the results go to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BACKTEST = str(Path(sys.executable).with_name("backtest"))


def backtest(config: str, out: Path, *extra: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(
        [BACKTEST, "run", config, "--force", "--set", f"output.dir={out}", *extra], capture_output=True, text=True
    )
    if res.returncode != 0:
        raise SystemExit(res.stderr)
    line = next((ln for ln in res.stderr.splitlines() if "reused" in ln), "reused nothing")
    return time.perf_counter() - t0, line.split("\r")[-1].strip()


def killed_half_way(config: str, out: Path, name: str, total: int, *extra: str) -> tuple[float, int]:
    proc = subprocess.Popen(
        [BACKTEST, "run", config, "--force", "-qq", "--set", f"output.dir={out}", *extra], start_new_session=True
    )
    stage = out / f".{name}.partial" / "segments"
    t0 = time.perf_counter()
    while len(list(stage.glob("*/*.json"))) < total // 2 and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return time.perf_counter() - t0, len(list(stage.glob("*/*.json")))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--add", default="extra_ewma={type: ewma, lam: 0.9}", help="strategy to add: NAME={...}")
    args = ap.parse_args()
    import yaml

    name = yaml.safe_load(Path(args.config).read_text())["name"]
    extra = [a for s in args.sets for a in ("--set", s)]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        full, _ = backtest(args.config, out, "--fresh", *extra)
        import json

        total = json.loads((out / name / "manifest.json").read_text())["segments"]["total"]
        again, line_again = backtest(args.config, out, *extra)
        added_name, added = args.add.split("=", 1)
        add, line_add = backtest(args.config, out, *extra, "--set", f"strategies.{added_name}={added}")
        (out / name).rename(out / "moved")  # so that only the killed run's own segments can be reused
        killed_after, kept = killed_half_way(args.config, out, name, total, *extra)
        resumed, line_resumed = backtest(args.config, out, *extra)
    print(f"{args.config}: {total} segments")
    print(f"  from scratch:                 {full:6.1f} s")
    print(f"  the same command again:       {again:6.1f} s  ({line_again})")
    print(f"  one strategy added:           {add:6.1f} s  ({line_add})")
    print(
        f"  killed after {killed_after:5.1f} s with {kept} segments finished; the same command: "
        f"{resumed:6.1f} s  ({line_resumed})"
    )


if __name__ == "__main__":
    main()
