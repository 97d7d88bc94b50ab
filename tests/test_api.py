"""The public API (``backtester.__all__``): one call loads, sets up and runs a config, and gives the same
forecasts as the steps it stands for; ``import backtester`` alone imports neither pandas nor Keras."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

import backtester

ROOT = Path(__file__).resolve().parent.parent


def test_every_public_name_resolves():
    for name in backtester.__all__:
        assert getattr(backtester, name) is not None
    assert callable(backtester.audit_run) and callable(backtester.compare_runs)


def test_import_backtester_is_cheap():
    code = "import sys, backtester; print(sorted({'pandas', 'keras', 'jax', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_run_config_equals_load_setup_run(tmp_path):
    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["data"]["path"] = str(ROOT / "data" / "sample_1m.parquet")
    raw["strategies"] = {"har": {"type": "har"}, "naive": {"type": "naive"}}
    raw["output"] = {"dir": str(tmp_path / "results"), "plots": False}
    path = tmp_path / "api.yaml"
    path.write_text(yaml.safe_dump(raw))
    one = backtester.run_config(path, ["backtest.horizon=3"], force=True)
    cfg = backtester.load_config(path, ["backtest.horizon=3", "name=steps"])
    backtester.setup(cfg)
    steps = backtester.run(cfg, force=True)
    pd.testing.assert_frame_equal(one.forecasts, steps.forecasts, check_exact=True)
    assert (one.out_dir / "manifest.json").is_file()
