import pandas as pd

from .clock import Event, clock

BARS = pd.date_range("2024-01-01 01:00", periods=6, freq="h", tz="UTC")


def test_exact_event_sequence_retrain_before_forecast():
    events = list(clock(BARS, BARS[1], BARS[[1, 4]], end=BARS[4]))
    assert events == [
        Event(BARS[1], "retrain", 1),
        Event(BARS[1], "forecast", 1),
        Event(BARS[2], "forecast", 2),
        Event(BARS[3], "forecast", 3),
        Event(BARS[4], "retrain", 4),
        Event(BARS[4], "forecast", 4),
    ]


def test_events_are_frozen_and_ordered():
    events = list(clock(BARS, BARS[0], BARS[[0]]))
    times = [e.time for e in events]
    assert times == sorted(times)
    try:
        events[0].kind = "forecast"
    except Exception as exc:  # dataclasses.FrozenInstanceError
        assert "cannot assign" in str(exc)
    else:
        raise AssertionError("events must be frozen")


def test_start_between_bars_begins_at_next_bar():
    events = list(clock(BARS, BARS[2] - pd.Timedelta("30min"), BARS[[2]]))
    assert events[0] == Event(BARS[2], "retrain", 2)
    assert len([e for e in events if e.kind == "forecast"]) == 4
