"""Retrain calendars: property tests across DST changes and month ends, carry policy, windows."""

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtester.core.schedule import (
    DailyRule,
    DatesRule,
    EveryNBarsRule,
    MonthlyRule,
    NeverRule,
    WeeklyRule,
    WindowConfig,
    retrain_times,
    training_window,
)

ZONES = ["UTC", "Europe/London", "America/New_York", "Australia/Sydney", "Asia/Kolkata"]
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def hourly(start, days):
    start = pd.Timestamp(start, tz="UTC")
    return pd.date_range(start + pd.Timedelta("1h"), start + pd.Timedelta(days=days), freq="h")


starts = st.dates(min_value=pd.Timestamp("2022-01-01").date(), max_value=pd.Timestamp("2025-12-01").date())
clock_times = st.sampled_from(["00:00", "01:30", "02:30", "09:15", "16:00", "23:45"])


@settings(max_examples=60, deadline=None)
@given(
    start=starts, span=st.integers(15, 200), weekday=st.sampled_from(DAYS), at=clock_times, tz=st.sampled_from(ZONES)
)
def test_weekly_rule_fires_on_its_local_weekday_and_time(start, span, weekday, at, tz):
    bars = hourly(start, span)
    rule = WeeklyRule(weekday=weekday, time=at, timezone=tz)
    nominal = rule.times(bars, bars[0], bars[-1])
    local = nominal.tz_convert(tz)
    hh, mm = (int(x) for x in at.split(":"))
    for t in local:
        if (t.hour, t.minute) == (hh, mm):
            assert t.dayofweek == DAYS.index(weekday)
        else:  # only a local time that did not exist (spring forward) may move, and only forward
            assert t.dayofweek == DAYS.index(weekday)
            assert (t.hour * 60 + t.minute) > hh * 60 + mm
    gaps = pd.Series(nominal).diff().dropna()
    assert ((gaps >= pd.Timedelta("167h")) & (gaps <= pd.Timedelta("169h"))).all()
    # consecutive weeks, none skipped
    assert len(nominal) >= span // 7 - 1


@settings(max_examples=60, deadline=None)
@given(start=starts, span=st.integers(40, 400), day=st.integers(1, 31), at=clock_times, tz=st.sampled_from(ZONES))
def test_monthly_rule_clips_to_month_end(start, span, day, at, tz):
    bars = hourly(start, span)
    rule = MonthlyRule(rule="monthly", day=day, time=at, timezone=tz)
    nominal = rule.times(bars, bars[0], bars[-1])
    local = nominal.tz_convert(tz)
    months = local.tz_localize(None).to_period("M")
    assert months.is_unique
    for t in local:
        assert t.day == min(day, t.days_in_month)
    # every month wholly inside the span has its retrain
    inner = pd.period_range(
        bars[0].tz_convert(tz).tz_localize(None).to_period("M") + 1,
        bars[-1].tz_convert(tz).tz_localize(None).to_period("M") - 1,
        freq="M",
    )
    assert set(inner) <= set(months)


@settings(max_examples=40, deadline=None)
@given(start=starts, span=st.integers(40, 300), which=st.sampled_from(["first", "last"]))
def test_monthly_first_and_last_trading_day(start, span, which):
    bars = hourly(start, span)
    bars = bars[bars.dayofweek < 5]  # a weekday-only market
    rule = MonthlyRule(rule="monthly", day=which, time="12:00")
    nominal = rule.times(bars, bars[0], bars[-1])
    for t in nominal:
        month_days = bars[(bars.year == t.year) & (bars.month == t.month)].normalize().unique()
        target = month_days.min() if which == "first" else month_days.max()
        assert t.normalize() == target
        assert t.dayofweek < 5


@settings(max_examples=40, deadline=None)
@given(
    start=starts,
    span=st.integers(15, 120),
    weekday=st.sampled_from(DAYS),
    at=clock_times,
    tz=st.sampled_from(ZONES),
    holes=st.lists(st.integers(0, 2000), max_size=40),
)
def test_retrains_are_bars_carried_from_nominal_times(start, span, weekday, at, tz, holes):
    bars = hourly(start, span)
    bars = bars.delete([h for h in set(holes) if h < len(bars) - 1])
    begin = bars[len(bars) // 4]
    rule = WeeklyRule(weekday=weekday, time=at, timezone=tz)
    times = retrain_times(rule, bars, begin)
    assert times[0] == begin  # the initial fit
    assert times.isin(bars).all() and times.is_monotonic_increasing and times.is_unique
    nominal = rule.times(bars, begin, bars[-1])
    for n in nominal:  # each nominal time is carried to the first bar at or after it (but never to the last bar)
        carried = bars[bars.searchsorted(n)]
        assert (carried in times) == (carried != bars[-1] or carried == begin)


def test_missing_bar_carries_to_next_bar():
    bars = hourly("2024-01-01", 20)
    monday_noon = pd.Timestamp("2024-01-08 12:00", tz="UTC")
    bars = bars.delete(bars.get_indexer([monday_noon, monday_noon + pd.Timedelta("1h")]))
    times = retrain_times(WeeklyRule(weekday="mon", time="12:00"), bars, pd.Timestamp("2024-01-03", tz="UTC"))
    assert list(times) == [
        pd.Timestamp("2024-01-03 00:00", tz="UTC"),
        pd.Timestamp("2024-01-08 14:00", tz="UTC"),
        pd.Timestamp("2024-01-15 12:00", tz="UTC"),
    ]


def test_no_retrain_on_the_last_bar_of_the_data():
    bars = hourly("2024-01-01", 10)  # the last bar closes 2024-01-11 00:00, where a daily 00:00 retrain would fall
    begin = pd.Timestamp("2024-01-05", tz="UTC")
    daily = retrain_times(DailyRule(rule="daily", time="00:00"), bars, begin)
    assert daily[-1] == pd.Timestamp("2024-01-10", tz="UTC") and bars[-1] not in daily
    # a test period that ends earlier keeps its last day: forecasts can follow it
    cut = retrain_times(DailyRule(rule="daily", time="00:00"), bars, begin, pd.Timestamp("2024-01-09", tz="UTC"))
    assert cut[-1] == pd.Timestamp("2024-01-09", tz="UTC")


def test_other_rules():
    bars = hourly("2024-01-01", 10)
    begin = pd.Timestamp("2024-01-05", tz="UTC")
    assert list(retrain_times(NeverRule(rule="never"), bars, begin)) == [begin]
    daily = retrain_times(DailyRule(rule="daily", time="06:00"), bars, begin)
    assert list(daily.hour) == [0] + [6] * 6
    every = retrain_times(EveryNBarsRule(rule="every_n_bars", n=48), bars, begin)
    every_48 = bars[bars >= begin][::48]
    assert every_48[-1] == bars[-1] and list(every) == list(every_48[:-1])  # none on the data's last bar
    dates = retrain_times(DatesRule(rule="dates", dates=["2024-01-07 10:30", "2024-01-20"]), bars, begin)
    assert list(dates) == [begin, pd.Timestamp("2024-01-07 11:00", tz="UTC")]


def test_dst_weekly_in_new_york_keeps_local_time():
    bars = hourly("2024-03-01", 20)  # DST starts 2024-03-10 in New York
    times = WeeklyRule(weekday="mon", time="09:00", timezone="America/New_York").times(bars, bars[0], bars[-1])
    assert [t.hour for t in times] == [14, 13, 13]  # UTC hour moves, local time does not


@pytest.mark.parametrize(
    "window, expected",
    [
        (WindowConfig(), (0, 51)),
        (WindowConfig(kind="rolling", bars=10), (41, 51)),
        (WindowConfig(kind="rolling", length="1D"), (27, 51)),
        (WindowConfig(start="2024-01-02 00:00"), (23, 51)),
    ],
)
def test_training_windows_end_at_retrain_time(window, expected):
    bars = hourly("2024-01-01", 5)
    w = training_window(window, bars, bars[50])
    assert (w.start, w.stop) == expected
    assert bars[w.stop - 1] == bars[50]


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(5, 500),
    at=st.integers(0, 499),
    kind=st.sampled_from(["expanding", "length", "bars"]),
    size=st.integers(2, 300),
    holes=st.lists(st.integers(0, 499), max_size=50),
)
def test_training_window_property(n, at, kind, size, holes):
    bars = hourly("2024-01-01", 30)[:n]
    bars = bars.delete(sorted({h for h in holes if h < len(bars) - 1}))
    at_time = bars[min(at, len(bars) - 1)] + pd.Timedelta("10min")  # between bars: only earlier closes count
    window = {
        "expanding": WindowConfig(),
        "length": WindowConfig(kind="rolling", length=pd.Timedelta(hours=size)),
        "bars": WindowConfig(kind="rolling", bars=size),
    }[kind]
    w = training_window(window, bars, at_time)
    chosen = bars[w.start : w.stop]
    assert (chosen <= at_time).all()
    assert w.stop == len(bars) or bars[w.stop] > at_time  # nothing known is left out at the end
    if kind == "expanding":
        assert w.start == 0
    elif kind == "length":
        assert (chosen > at_time - pd.Timedelta(hours=size)).all()
        assert w.start == 0 or bars[w.start - 1] <= at_time - pd.Timedelta(hours=size)
    else:
        assert len(chosen) == min(size, w.stop)
