"""Rebuild the golden baseline forecasts of the smoke run.

Run from the repository root after a deliberate change to a baseline:

    python tests/golden/rebuild.py

It runs configs/smoke.yaml with the LSTM removed (so the file does not depend on
TensorFlow's numerics) and writes tests/golden/smoke_baselines.parquet.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests/golden/smoke_baselines.parquet"


def baseline_forecasts(out_dir: Path):
    sys.path.insert(0, str(ROOT))
    from backtester.config import load_config
    from backtester.runner import run

    cfg = load_config(
        ROOT / "configs/smoke.yaml",
        [
            f"output.dir={out_dir}",
            "output.plots=false",
            "data.cache_dir=null",
            f"data.path={ROOT / 'data/sample_1m.parquet'}",
        ],
    )
    cfg = cfg.model_copy(update={"strategies": {k: v for k, v in cfg.strategies.items() if v.type != "lstm"}})
    return run(cfg).forecasts  # with the asset column (the golden file predates it; the test drops it)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        frame = baseline_forecasts(Path(tmp))
    frame.to_parquet(GOLDEN, index=False)
    print(f"wrote {len(frame):,} rows to {GOLDEN}")
