"""The smoke run's baseline forecasts equal the golden file (rebuild: python tests/golden/rebuild.py)."""

import pandas as pd

from .golden.rebuild import GOLDEN, baseline_forecasts


def test_smoke_baselines_match_golden(tmp_path):
    got = baseline_forecasts(tmp_path)
    want = pd.read_parquet(GOLDEN)
    assert (got.pop("asset") == "sample_1m").all()  # a run on one file is a universe of one, named after the file
    assert set(want["strategy"]) == {"har", "garch", "ewma", "naive", "rolling_mean"}
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-7, atol=0)
