"""Strict config validation: one line naming the key and the fix."""

from pathlib import Path

import pandas as pd
import pytest
import yaml

from backtester.config import load_config, parse_config
from backtester.core.errors import ConfigError
from backtester.overrides import apply_override, with_overrides


def valid() -> dict:
    return {
        "name": "x",
        "data": {"path": "bars.parquet"},
        "backtest": {"start": "2024-02-05", "retrain": {"rule": "weekly", "weekday": "mon"}},
        "strategies": {"har": {}, "net": {"type": "lstm", "layers": [{"units": 8}]}},
    }


def fails(raw, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        parse_config(raw, source="c.yaml")
    assert "\n" not in str(info.value)
    return str(info.value)


def test_valid_config_fills_defaults_and_hashes():
    cfg = parse_config(valid())
    assert cfg.backtest.horizon == 24 and cfg.data.bar.total_seconds() == 3600
    assert cfg.strategies["net"].params.memory == 60 and cfg.strategies["har"].params.lags == [1, 24, 168]
    resolved = cfg.resolved()
    assert resolved["strategies"]["net"]["layers"] == [{"units": 8, "dropout": 0.1}]
    assert parse_config(resolved).config_id() == cfg.config_id()
    yaml.safe_dump(resolved)  # plain data


def test_misspelt_key_names_path_and_valid_keys():
    raw = valid()
    raw["backtest"]["horizn"] = 6
    msg = fails(
        raw, r"c.yaml: backtest.horizn: unknown key \(did you mean 'horizon'\?\); valid keys here: start, end, horizon"
    )
    assert "retrain" in msg


def test_unknown_key_inside_retrain_rule_and_strategy():
    raw = valid()
    raw["backtest"]["retrain"]["weekdy"] = "tue"
    fails(
        raw,
        r"backtest.retrain.weekdy: unknown key \(did you mean 'weekday'\?\); valid keys here: rule, weekday, time, timezone",
    )
    raw = valid()
    raw["backtest"]["retrain"] = {"rule": "monthly", "dya": 3}
    fails(
        raw, r"backtest.retrain.dya: unknown key \(did you mean 'day'\?\); valid keys here: rule, day, time, timezone"
    )
    raw = valid()
    raw["strategies"]["net"]["layers"][0]["unitz"] = 3
    fails(raw, r"strategies.net.layers.0.unitz: unknown key \(did you mean 'units'\?\)")
    raw = valid()
    raw["strategies"]["net"]["epoch"] = 3
    fails(raw, r"strategies.net.epoch: unknown key \(did you mean 'epochs'\?\)")


def test_unknown_retrain_rule_lists_the_rules():
    raw = valid()
    raw["backtest"]["retrain"] = {"rule": "biweekly"}
    fails(
        raw,
        r"^c.yaml: backtest.retrain: unknown retrain rule 'biweekly' \(did you mean 'weekly'\?\); valid rules: weekly, "
        r"monthly, daily, every_n_bars, dates, never$",
    )
    raw = valid()
    raw["strategies"]["har"] = {"retrain": {"rule": "montly", "day": 3}}
    fails(
        raw,
        r"^c.yaml: strategies.har.retrain: unknown retrain rule 'montly' \(did you mean 'monthly'\?\); valid rules: ",
    )


def test_unknown_strategy_lists_names():
    raw = valid()
    raw["strategies"] = {"m": {"type": "lsmt"}}
    fails(
        raw,
        r"strategies.m.type: unknown strategy 'lsmt' \(did you mean 'lstm'\?\); valid names: ewma, garch, har, har_cj, har_j, har_periodic, har_rv, harq, imported, keras, log_har, lstm, mean_of, naive, rolling_mean, shar, wls_har, or a path",
    )


@pytest.mark.parametrize(
    "path, value, pattern",
    [
        (
            ("backtest", "retrain"),
            {"rule": "fortnightly"},
            r"backtest.retrain: unknown retrain rule 'fortnightly'; valid "
            r"rules: weekly, monthly, daily, every_n_bars, dates, never$",
        ),
        (("backtest", "retrain"), {"rule": "weekly", "weekday": "monday"}, r"backtest.retrain.weekday: .*'mon'"),
        (("backtest", "retrain"), {"rule": "weekly", "time": "25:00"}, r"backtest.retrain.time: .*time of day"),
        (
            ("backtest", "retrain"),
            {"rule": "weekly", "timezone": "Mars/Olympus"},
            r"backtest.retrain.timezone: unknown timezone",
        ),
        (("backtest", "retrain"), {"rule": "monthly", "day": 32}, r"backtest.retrain.day: .*1..31"),
        (("backtest", "window"), {"kind": "rolling"}, r"backtest.window: .*exactly one of 'length'"),
        (("backtest", "start"), "yesterday-ish", r"backtest.start: .*not a timestamp"),
        (("backtest", "horizon"), 0, r"backtest.horizon: .*greater than or equal to 1"),
        (("data", "interval"), "7min", r"data: data.bar \(1h\) must be a multiple of data.interval \(7min\)"),
        (("data", "interval"), "soon", r"data.interval: .*not a duration"),
        (("strategies", "net"), {"type": "lstm", "layers": []}, r"strategies.net.layers: .*at least 1"),
        (("strategies", "net"), {"type": "lstm", "layers": [{}, {}, {}]}, r"strategies.net.layers: .*at most 2"),
        (("strategies", "h"), {"type": "har", "lags": [24, 1]}, r"strategies.h.lags: .*increasing"),
    ],
)
def test_bad_values_name_the_key(path, value, pattern):
    raw = valid()
    node = raw
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    fails(raw, pattern)


def test_a_misspelt_section_is_named_not_reported_missing():
    raw = valid()
    raw["strategys"] = raw.pop("strategies")
    fails(raw, r"c.yaml: strategys: unknown key \(did you mean 'strategies'\?\); valid keys here: name, seed")


def test_missing_required_key():
    raw = valid()
    del raw["data"]
    fails(raw, r"c.yaml: data: required key is missing")


def test_overrides_and_load(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(valid()))
    (tmp_path / "bars.parquet").touch()  # data.path: bars.parquet, beside the config
    cfg = load_config(path, ["backtest.horizon=6", "strategies.net.epochs=2", "backtest.retrain={rule: daily}"])
    assert (
        cfg.backtest.horizon == 6 and cfg.strategies["net"].params.epochs == 2 and cfg.backtest.retrain.rule == "daily"
    )
    with pytest.raises(ConfigError, match=r"--set 'horizon': write it as key.path=value"):
        apply_override({}, "horizon")
    with pytest.raises(ConfigError, match=r"^--set backtest.horizn=3: backtest.horizn: unknown key"):
        load_config(path, ["backtest.horizn=3"])
    with pytest.raises(ConfigError, match=r"nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")
    path.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match=r"c.yaml \(line \d+\): not valid YAML"):
        load_config(path)


def test_strategy_schedules_override_the_backtest_ones_and_round_trip():
    raw = valid()
    raw["strategies"]["once"] = {"type": "naive", "retrain": {"rule": "never"}}
    raw["strategies"]["roll"] = {"type": "har", "window": {"kind": "rolling", "length": "30D"}}
    cfg = parse_config(raw)
    once, roll, net = cfg.strategies["once"], cfg.strategies["roll"], cfg.strategies["net"]
    assert (once.retrain.rule, once.window.kind) == ("never", "expanding")
    assert (roll.retrain.rule, roll.window.length) == ("weekly", pd.Timedelta("30D"))
    assert (net.retrain, net.window) == (cfg.backtest.retrain, cfg.backtest.window)
    resolved = cfg.resolved()
    assert (
        resolved["strategies"]["once"]["retrain"] == {"rule": "never"}
        and "retrain" not in resolved["strategies"]["net"]
    )
    assert parse_config(resolved).config_id() == cfg.config_id()
    raw["strategies"]["once"]["retrain"] = {"rule": "monthly", "day": 3}
    assert parse_config(raw).config_id() != cfg.config_id()


def test_switching_a_rule_or_window_kind_drops_the_old_kinds_keys():
    raw = valid()
    raw["backtest"]["retrain"] = {"rule": "weekly", "weekday": "tue", "time": "06:00", "timezone": "Europe/London"}
    raw["backtest"]["window"] = {"kind": "rolling", "length": "30D", "start": "2024-01-01"}
    raw["strategies"]["har"] = {
        "retrain": {"rule": "monthly", "day": "last"},
        "window": {"kind": "rolling", "bars": 500},
    }
    out = with_overrides(
        raw,
        [
            "backtest.retrain.rule=monthly",
            "backtest.window.kind=expanding",
            "strategies.har.retrain.rule=every_n_bars",
            "strategies.har.retrain.n=24",
            "strategies.har.window.kind=expanding",
        ],
    )
    assert out["backtest"]["retrain"] == {"rule": "monthly", "time": "06:00", "timezone": "Europe/London"}
    assert out["backtest"]["window"] == {"kind": "expanding", "start": "2024-01-01"}
    assert out["strategies"]["har"] == {"retrain": {"rule": "every_n_bars", "n": 24}, "window": {"kind": "expanding"}}
    assert raw["backtest"]["retrain"]["weekday"] == "tue"  # the input is left alone
    cfg = parse_config(out)
    assert cfg.backtest.retrain.day == 1 and cfg.strategies["har"].retrain.n == 24
    # a key set by another override stays, whichever comes first; the same kind drops nothing
    out = with_overrides(raw, ["backtest.retrain.day=15", "backtest.retrain.rule=monthly"])
    assert out["backtest"]["retrain"]["day"] == 15 and "weekday" not in out["backtest"]["retrain"]
    assert with_overrides(raw, ["backtest.retrain.rule=weekly"]) == raw
    raw["backtest"]["window"] = {"kind": "expanding"}
    out = with_overrides(raw, ["backtest.window.length=30D", "backtest.window.kind=rolling"])
    assert parse_config(out).backtest.window.length == pd.Timedelta("30D")


def test_override_errors_name_the_override_and_file_errors_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(valid()))
    (tmp_path / "bars.parquet").touch()

    def message(overrides):
        with pytest.raises(ConfigError) as info:
            load_config(path, overrides)
        return str(info.value)

    assert (
        message(["execution.jobs=0"])
        == "--set execution.jobs=0: execution.jobs: Input should be greater than or equal to 1 (got 0)"
    )
    assert (
        message(["backtest.retrain.rule=every_n_bars"])
        == "--set backtest.retrain.rule=every_n_bars: backtest.retrain.n: required key is missing; add it"
    )
    assert (
        message(["backtest.end=2024-01-01"])
        == "--set backtest.end=2024-01-01: backtest: backtest.end must be after backtest.start"
    )
    assert message(["strategies.net.layers=[]"]).startswith("--set strategies.net.layers=[]: strategies.net.layers: ")
    bad = valid()
    bad["backtest"]["horizon"] = 0
    path.write_text(yaml.safe_dump(bad))
    assert message(["backtest.start=2024-03-01"]).startswith(f"{path}: backtest.horizon: ")  # not the override's
    assert message(["backtest.horizon=0"]).startswith(f"{path}: backtest.horizon: ")  # the file says it too


def test_relative_data_path_is_found_beside_the_config(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "data").mkdir()
    path = tmp_path / "configs" / "c.yaml"
    raw = valid()
    raw["data"]["path"] = "data/bars.parquet"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path / "configs")
    with pytest.raises(ConfigError) as info:
        load_config("c.yaml")
    assert str(info.value) == (
        f"c.yaml: data.path: data/bars.parquet not found (looked in {tmp_path}/configs/data/bars.parquet and "
        f"{tmp_path}/data/bars.parquet); paths are relative to the working directory, the config file's folder or its parent"
    )
    (tmp_path / "data" / "bars.parquet").touch()
    assert load_config("c.yaml").data.path == Path("../data/bars.parquet")  # the config file's parent
    (tmp_path / "configs" / "data").mkdir()
    (tmp_path / "configs" / "data" / "bars.parquet").touch()
    assert load_config("c.yaml").data.path == Path("data/bars.parquet")  # the working directory first
    monkeypatch.chdir(tmp_path)
    assert load_config("configs/c.yaml").data.path == Path("data/bars.parquet")
    with pytest.raises(
        ConfigError, match=r"^--set data.path=elsewhere.parquet: data.path: elsewhere.parquet not found"
    ):
        load_config("configs/c.yaml", ["data.path=elsewhere.parquet"])
