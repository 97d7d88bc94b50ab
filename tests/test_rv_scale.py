"""Streamed (batched) RV preparation equals the one-piece path, bit for bit, and words errors the same."""

import re

import numpy as np
import pandas as pd
import pytest

from backtester.config import DataConfig
from backtester.core.errors import DataError
from backtester.data import load_prices, price_batches
from backtester.rv import minute_rv_bars, prepare_bars, realized_volatility


def one_piece(cfg: DataConfig) -> pd.DataFrame:
    return realized_volatility(load_prices(cfg), cfg.interval, cfg.bar, cfg.calendar, cfg.min_returns, cfg.max_gap)


def write(frame: pd.DataFrame, path, row_group_size: int = 500):
    frame.to_parquet(path, index=False, row_group_size=row_group_size)
    return path


def gappy_frame() -> pd.DataFrame:
    """600 minutes from 00:00 with a 20-minute gap after row 300 (> max_gap: that return is dropped)
    and a 5-minute gap after row 450 (kept)."""
    row = np.arange(600)
    minutes = row + 20 * (row >= 300) + 5 * (row >= 450)
    t = pd.Timestamp("2024-03-01 00:00", tz="UTC") + pd.to_timedelta(minutes, unit="min")
    rng = np.random.default_rng(5)
    return pd.DataFrame({"timestamp": t, "close": 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 600)))})


@pytest.mark.parametrize("batch_rows", [1, 7, 150])
def test_batch_boundaries_inside_an_hour_and_at_gaps(tmp_path, batch_rows):
    # 150-row batches end at 02:30 (inside an hour) and at rows 300 and 450, where the gaps are
    path = write(gappy_frame(), tmp_path / "gappy.parquet", row_group_size=100)
    cfg = DataConfig(path=path, cache_dir=None, min_returns=1)
    batches = list(price_batches(cfg, batch_rows))
    assert len(batches) > 1 and max(len(b) for b in batches) <= batch_rows
    want = one_piece(cfg)
    assert want["n_returns"].tolist()[4:7] == [60, 39, 60]  # the hour of the 20-minute gap lost its crossing return
    pd.testing.assert_frame_equal(minute_rv_bars(cfg, batch_rows), want, check_exact=True)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"calendar": "fx"},
        {"calendar": "XNYS"},
        {"bar": "5min", "max_gap": "2min"},
        {"timestamp_is": "close", "bar": "4h"},
    ],
    ids=["24/7", "fx", "XNYS", "5min-bars", "close-stamped"],
)
def test_streamed_equals_one_piece_on_synthetic_minutes(tmp_path, minute_bars, options):
    path = write(minute_bars, tmp_path / "bars.parquet", row_group_size=4096)
    cfg = DataConfig(path=path, cache_dir=None, **options)
    pd.testing.assert_frame_equal(minute_rv_bars(cfg, 997), one_piece(cfg), check_exact=True)


def test_epoch_seconds_are_read_in_one_unit(tmp_path):
    frame = gappy_frame()
    frame["timestamp"] = frame["timestamp"].astype("int64") // 10**9
    path = write(frame, tmp_path / "epoch.parquet", row_group_size=100)
    cfg = DataConfig(path=path, cache_dir=None, min_returns=1)
    pd.testing.assert_frame_equal(minute_rv_bars(cfg, 64), one_piece(cfg), check_exact=True)


BAD = [
    ("duplicate", lambda f: pd.concat([f.iloc[:200], f.iloc[199:]]), r"duplicate timestamp .* at row 200"),
    (
        "unsorted",
        lambda f: pd.concat([f.iloc[:199], f.iloc[[200, 199]], f.iloc[201:]]),
        r"timestamps are not sorted .* at row 200",
    ),
    (
        "bad price",
        lambda f: f.assign(close=f["close"].where(f.index % 250 != 249, -1.0)),
        r"2 non-finite .* first at row 249",
    ),
]


@pytest.mark.parametrize("label, edit, pattern", BAD, ids=[b[0] for b in BAD])
def test_a_problem_across_a_batch_boundary_is_worded_for_the_whole_file(tmp_path, label, edit, pattern):
    path = write(edit(gappy_frame()), tmp_path / "bad.parquet", row_group_size=100)
    cfg = DataConfig(path=path, cache_dir=None)
    with pytest.raises(DataError):
        list(price_batches(cfg, 200))  # the batch check finds it ...
    with pytest.raises(DataError) as streamed:
        minute_rv_bars(cfg, 200)
    with pytest.raises(DataError) as whole:
        load_prices(cfg)
    message = str(streamed.value)  # ... and the message is the one-piece path's: one line, naming the file
    assert message == str(whole.value) and "\n" not in message and message.startswith(f"{path}: ")
    assert re.search(pattern, message), message


def test_prepare_bars_streams_parquet(tmp_path, minute_bars, monkeypatch):
    path = write(minute_bars, tmp_path / "bars.parquet")
    want = prepare_bars(DataConfig(path=path, cache_dir=None)).bars

    def whole_file(cfg):
        raise AssertionError("a valid Parquet file is not read whole")

    monkeypatch.setattr("backtester.rv.load_prices", whole_file)
    pd.testing.assert_frame_equal(prepare_bars(DataConfig(path=path, cache_dir=None)).bars, want, check_exact=True)


def test_a_damaged_batch_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "damaged.parquet"
    gappy_frame().to_parquet(path, index=False, row_group_size=100, compression="snappy")
    data = bytearray(path.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 400] = b"\xab" * 400  # garbage inside the compressed pages
    path.write_bytes(bytes(data))
    cfg = DataConfig(path=path, cache_dir=None)
    with pytest.raises(DataError, match=r"damaged.parquet: cannot read as parquet: ") as streamed:
        list(price_batches(cfg, 100))
    assert "\n" not in str(streamed.value)
    with pytest.raises(DataError, match=r"damaged.parquet: cannot read as parquet: "):
        prepare_bars(cfg)
