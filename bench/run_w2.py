"""Workload W2 (issue 18): a universe of BTC, ETH and ARB x W1's weekly local LSTM x 3 seeds + HAR (``bench/w2.yaml``).

    python bench/run_w2.py [--reps 2] [--variants jax-2-alone,jax-2-stack9] [--weeks 4]

Each run is ``backtest run bench/w2.yaml ... --fresh -qq`` in a fresh process, variants interleaved round
by round (the variants and the columns are :mod:`run_w1`'s). ``--weeks N`` ends the test period N weeks
after the first retrain (the whole of 2023 H2 with ``--weeks 0``). At each retrain the 3 seeds of the 3
assets train on windows of one length, so a stack of 9 has no masked steps.
"""

from __future__ import annotations

import argparse

import pandas as pd
from run_w1 import ROOT, rounds, run_once


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--variants", default="jax-2-alone,jax-2-stack9")
    ap.add_argument("--weeks", type=int, default=4)
    args = ap.parse_args()
    data = []
    if args.weeks:
        data.append(f"backtest.end={pd.Timestamp('2023-07-03') + pd.Timedelta(weeks=args.weeks)}")
    rounds(args.variants.split(","), args.reps, lambda v, tmp: run_once(v, tmp, ROOT / "bench/w2.yaml", data))


if __name__ == "__main__":
    main()
