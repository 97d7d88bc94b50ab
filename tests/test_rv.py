"""Realized volatility against hand-computed values, session breaks, a brute-force oracle and the cache."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtester.config import DataConfig
from backtester.core.errors import ConfigError
from backtester.rv import prepare_bars, realized_volatility

MIN = pd.Timedelta("1min")


def prices(stamps, values):
    return pd.Series(np.asarray(values, dtype=float), index=pd.DatetimeIndex(pd.to_datetime(stamps), tz="UTC"))


def test_hand_computed_rv_and_gap_policy():
    p = prices(
        [
            "2024-01-01 00:00",
            "2024-01-01 00:01",
            "2024-01-01 00:02",
            "2024-01-01 00:03",
            "2024-01-01 00:04",
            "2024-01-01 00:05",
            "2024-01-01 00:08",
            "2024-01-01 00:09",
        ],
        [100, 101, 100, 102, 102, 103, 110, 111],
    )
    bars = realized_volatility(p, MIN, pd.Timedelta("5min"), min_returns=1, max_gap=pd.Timedelta("2min"))
    r1 = [math.log(101 / 100), math.log(100 / 101), math.log(102 / 100), 0.0]
    r2 = [math.log(103 / 102), math.log(111 / 110)]  # 00:05 -> 00:08 spans a 3-minute gap: dropped
    expected = pd.DataFrame(
        {
            "rv": [math.sqrt(sum(r * r for r in r1)), math.sqrt(sum(r * r for r in r2))],
            "ret": [sum(r1), sum(r2)],
            "n_returns": [4, 2],
        },
        index=pd.DatetimeIndex(["2024-01-01 00:05", "2024-01-01 00:10"], tz="UTC", name="time"),
    )
    pd.testing.assert_frame_equal(bars[["rv", "ret", "n_returns"]], expected)


def test_fx_weekend_return_is_never_counted():
    fri = pd.date_range("2024-01-05 21:55", periods=5, freq="min", tz="UTC")  # 16:55..16:59 New York
    sun = pd.date_range("2024-01-07 22:00", periods=5, freq="min", tz="UTC")  # 17:00.. New York
    p = pd.Series([1.10, 1.11, 1.10, 1.12, 1.12, 1.30, 1.31, 1.30, 1.32, 1.32], index=fri.append(sun))
    bars = realized_volatility(p, MIN, pd.Timedelta("5min"), calendar="fx", min_returns=1, max_gap=pd.Timedelta("7D"))
    assert list(bars.index) == [pd.Timestamp("2024-01-05 22:00", tz="UTC"), pd.Timestamp("2024-01-07 22:05", tz="UTC")]
    assert bars["n_returns"].tolist() == [4, 4]
    fri_r = np.diff(np.log([1.10, 1.11, 1.10, 1.12, 1.12]))
    sun_r = np.diff(np.log([1.30, 1.31, 1.30, 1.32, 1.32]))
    np.testing.assert_allclose(bars["rv"], [np.sqrt((fri_r**2).sum()), np.sqrt((sun_r**2).sum())])
    # the same data on a 24/7 calendar would count the weekend jump and list every weekend bar
    naive = realized_volatility(
        p, MIN, pd.Timedelta("5min"), calendar="24/7", min_returns=1, max_gap=pd.Timedelta("7D")
    )
    assert naive["rv"].max() > 0.1 and naive["rv"].isna().sum() > 500


def test_fx_summer_session_in_utc():
    # in July New York is UTC-4: the week opens Sunday 21:00 UTC
    p = prices(["2024-07-07 20:58", "2024-07-07 20:59", "2024-07-07 21:00", "2024-07-07 21:01"], [1, 1.1, 1.2, 1.3])
    bars = realized_volatility(p, MIN, pd.Timedelta("1h"), calendar="fx", min_returns=1)
    assert list(bars.index) == [pd.Timestamp("2024-07-07 22:00", tz="UTC")]
    assert bars["n_returns"].tolist() == [1]


def test_exchange_overnight_return_is_never_counted():
    p = prices(["2024-01-02 20:58", "2024-01-02 20:59", "2024-01-03 14:30", "2024-01-03 14:31"], [100, 101, 120, 121])
    bars = realized_volatility(p, MIN, pd.Timedelta("1h"), calendar="XNYS", min_returns=1, max_gap=pd.Timedelta("3D"))
    day1, day2 = bars.loc["2024-01-02"], bars.loc["2024-01-03"]
    assert day1.index[-1] == pd.Timestamp("2024-01-02 21:00", tz="UTC")
    assert day2.index[0] == pd.Timestamp("2024-01-03 15:00", tz="UTC")
    assert len(bars) == 1 + 1  # bars with no session minute between the two data points are not on the grid
    np.testing.assert_allclose(bars["rv"], [math.log(101 / 100), math.log(121 / 120)])


def test_bar_with_too_few_returns_is_missing_not_zero():
    t = pd.date_range("2024-01-01 00:00", periods=180, freq="min", tz="UTC")
    keep = ~((t >= "2024-01-01 01:05") & (t < "2024-01-01 01:50"))
    p = pd.Series(np.exp(np.sin(np.arange(180))), index=t)[keep]
    bars = realized_volatility(p, MIN, pd.Timedelta("1h"))
    assert bars["rv"].isna().tolist() == [False, True, False]
    assert bars["n_returns"].tolist() == [59, 14, 60]


def brute_force(p: pd.Series, bar: pd.Timedelta, min_returns: int, max_gap: pd.Timedelta) -> pd.DataFrame:
    acc: dict = {}
    for (t0, p0), (t1, p1) in zip(p.items(), list(p.items())[1:]):
        if t1 - t0 > max_gap:
            continue
        end = t1 + MIN
        close = end.ceil(bar)
        acc.setdefault(close, []).append(math.log(p1 / p0))
    first, last = p.index[0].floor(bar) + bar, p.index[-1].floor(bar) + bar
    grid = pd.date_range(first, last, freq=bar)
    rows = []
    for c in grid:
        r = acc.get(c, [])
        ok = len(r) >= min_returns
        rows.append((math.sqrt(sum(x * x for x in r)) if ok else np.nan, sum(r) if ok else np.nan, len(r)))
    return pd.DataFrame(rows, columns=["rv", "ret", "n_returns"], index=pd.DatetimeIndex(grid, name="time"))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(5, 400),
    seed=st.integers(0, 10**6),
    drop=st.floats(0, 0.5),
    bar=st.sampled_from(["5min", "15min", "1h"]),
)
def test_matches_brute_force(n, seed, drop, bar):
    rng = np.random.default_rng(seed)
    t = pd.date_range("2024-03-01 00:00", periods=n, freq="min", tz="UTC")
    keep = rng.random(n) >= drop
    keep[0] = keep[-1] = True
    p = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n))), index=t)[keep]
    bar = pd.Timedelta(bar)
    got = realized_volatility(p, MIN, bar, min_returns=2, max_gap=pd.Timedelta("3min"))
    want = brute_force(p, bar, 2, pd.Timedelta("3min"))
    want["n_returns"] = want["n_returns"].astype("int64")
    pd.testing.assert_frame_equal(got[["rv", "ret", "n_returns"]], want, check_freq=False, rtol=1e-12)


def test_prepare_bars_caches_by_content(tmp_path, minute_bars):
    path = tmp_path / "m.csv"
    minute_bars.to_csv(path, index=False)
    cfg = DataConfig(path=path, cache_dir=tmp_path / "cache")
    first = prepare_bars(cfg)
    again = prepare_bars(cfg)
    assert not first.from_cache and again.from_cache
    pd.testing.assert_frame_equal(first.bars, again.bars, check_freq=False)
    minute_bars.iloc[:-60].to_csv(path, index=False)  # edit the file: the cache must not answer
    edited = prepare_bars(cfg)
    assert not edited.from_cache and len(edited.bars) == len(first.bars) - 1
    four = prepare_bars(DataConfig(path=path, cache_dir=tmp_path / "cache", bar="4h"))
    assert not four.from_cache and (four.bars.index.hour % 4 == 0).all()


def test_unknown_calendar_lists_options(tmp_path, minute_file):
    with pytest.raises(ConfigError, match=r"data.calendar: unknown calendar 'NYSEE'.*'24/7', 'fx'"):
        prepare_bars(DataConfig(path=minute_file, calendar="NYSEE", cache_dir=None))


def test_default_min_returns_is_relative_to_the_session_part_of_the_bar():
    # XNYS opens 14:30 UTC in January: the bar closing 15:00 spans 30 session minutes (29 returns)
    t = pd.date_range("2024-01-03 14:30", "2024-01-03 20:59", freq="min", tz="UTC")
    p = pd.Series(np.exp(np.sin(np.arange(len(t)) / 7.0) * 0.01), index=t)
    bars = realized_volatility(p, MIN, pd.Timedelta("1h"), calendar="XNYS")
    assert bars.index[0] == pd.Timestamp("2024-01-03 15:00", tz="UTC") and len(bars) == 7
    assert bars["n_returns"].tolist() == [29] + [60] * 6
    assert bars["rv"].notna().all()
    strict = realized_volatility(p, MIN, pd.Timedelta("1h"), calendar="XNYS", min_returns=30)
    assert strict["rv"].isna().tolist() == [True] + [False] * 6


@pytest.mark.parametrize("calendar", ["24/7", "fx"])
def test_long_series_keeps_its_last_bar(calendar):
    # regression: a float-sized np.arange dropped the last bar of two years of minute data
    t = pd.DatetimeIndex(["2022-01-03 00:00", "2022-01-03 00:01", "2023-12-29 20:58", "2023-12-29 20:59"], tz="UTC")
    bars = realized_volatility(
        pd.Series([1.0, 1.1, 1.2, 1.3], index=t), MIN, pd.Timedelta("1h"), calendar=calendar, min_returns=1
    )
    assert bars.index[-1] == pd.Timestamp("2023-12-29 21:00", tz="UTC")
    assert bars.index[0] == pd.Timestamp("2022-01-03 01:00", tz="UTC")
    assert bars["rv"].notna().sum() == 2


def test_five_minute_close_stamped_local_time_csv(tmp_path, minute_bars):
    # the same prices as 5-minute bars, stamped by their close in naive New York time
    five = minute_bars.set_index("timestamp")["close"].resample("5min", label="left").last().dropna()
    local_close = (five.index + pd.Timedelta("5min")).tz_convert("America/New_York").tz_localize(None)
    path = tmp_path / "five.csv"
    pd.DataFrame({"time": local_close.strftime("%Y-%m-%d %H:%M"), "px": five.to_numpy()}).to_csv(path, index=False)
    cfg = DataConfig(
        path=path,
        timestamp_column="time",
        price_column="px",
        timezone="America/New_York",
        timestamp_is="close",
        interval="5min",
        cache_dir=None,
    )
    got = prepare_bars(cfg).bars
    want = realized_volatility(five, pd.Timedelta("5min"), pd.Timedelta("1h"))
    want = want.iloc[np.flatnonzero(want["rv"].notna())[0] :]
    pd.testing.assert_frame_equal(got, want, check_freq=False)
    assert got["n_returns"].max() == 12 and got.index[0].minute == 0
