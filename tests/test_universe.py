"""Many assets in one run (``data.assets``): each asset is backtested as if alone (same forecasts as a
run on its file, for deterministic strategies), segments, seeds and artifacts are keyed by asset, no
asset's forecasts see another's data or its own future, and the evaluation adds the pooled answers."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from backtester.config import parse_config
from backtester.core.errors import ConfigError
from backtester.runner import run
from backtester.synth import synth_bars

from .conftest import TINY_LSTM, assert_run_refused, base_config

CUT = pd.Timestamp("2024-01-17 09:00", tz="UTC")  # mid-week, between retrains


@pytest.fixture(scope="module")
def universe_files(tmp_path_factory):
    """Three synthetic assets: aaa and bbb of 26 days, ccc starting two days earlier and ending 3 days earlier."""
    folder = tmp_path_factory.mktemp("universe")
    spans = {"aaa": ("2024-01-01", 26), "bbb": ("2024-01-01", 26), "ccc": ("2023-12-30", 25)}
    for k, (name, (start, days)) in enumerate(spans.items()):
        synth_bars(start=start, days=days, seed=11 + k).to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def universe_config(folder, tmp_path, assets=None, **strategies) -> dict:
    raw = base_config(folder / "aaa.parquet", tmp_path, **(strategies or {"naive": {}, "har": {}}))
    del raw["data"]["path"]
    raw["data"]["assets"] = assets if assets is not None else str(folder / "*.parquet")
    raw["evaluation"] = {"benchmark": "har"} if "har" in raw["strategies"] else {"benchmark": None}
    return raw


def two_assets(folder) -> dict[str, str]:
    return {"aaa": str(folder / "aaa.parquet"), "bbb": str(folder / "bbb.parquet")}


def single_config(path, tmp_path, **strategies) -> dict:
    raw = base_config(path, tmp_path, **(strategies or {"naive": {}, "har": {}}))
    raw["evaluation"] = {"benchmark": "har"} if "har" in raw["strategies"] else {"benchmark": None}
    raw["name"] = f"single_{path.stem}"
    return raw


# --------------------------------------------------------------------------- config


def test_a_glob_names_assets_by_file_and_a_mapping_overrides_data_options(universe_files, tmp_path):
    cfg = parse_config(universe_config(universe_files, tmp_path))
    assert [a.name for a in cfg.universe()] == ["aaa", "bbb", "ccc"]
    raw = universe_config(
        universe_files,
        tmp_path,
        assets={
            "x": str(universe_files / "aaa.parquet"),
            "y": {"path": str(universe_files / "bbb.parquet"), "calendar": "fx", "max_gap": "30min"},
        },
    )
    cfg = parse_config(raw)
    x, y = cfg.universe()
    assert (x.cfg.data.calendar, y.cfg.data.calendar) == ("24/7", "fx")
    assert y.cfg.data.max_gap == pd.Timedelta("30min") and x.cfg.data.max_gap == pd.Timedelta("15min")
    assert cfg.resolved()["data"]["assets"]["y"] == {
        "path": str(universe_files / "bbb.parquet"),
        "calendar": "fx",
        "max_gap": "30min",
    }


def test_a_strategy_can_run_on_some_assets_only(universe_files, tmp_path):
    cfg = parse_config(universe_config(universe_files, tmp_path, naive={}, har={"assets": ["bbb"]}))
    assert {a.name: list(a.cfg.strategies) for a in cfg.universe()} == {
        "aaa": ["naive"],
        "bbb": ["naive", "har"],
        "ccc": ["naive"],
    }


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda raw: raw["data"].update(path="x.parquet"), r"data: give either path .* or assets"),
        (lambda raw: raw["data"].update(assets={}), r"data.assets: is empty"),
        (lambda raw: raw["data"].update(assets="/nowhere/*.parquet"), r"data.assets: no file matches"),
        (lambda raw: raw["data"].update(assets={"a/b": "x.parquet"}), r"data.assets.a/b: an asset name is"),
        (lambda raw: raw["data"].update(assets={"a": {"calendar": "fx"}}), r"data.assets.a: give the asset's file"),
        (lambda raw: raw["data"].update(assets={"a": {"path": "x", "bar": "2h"}, "b": "y"}), r"different bars"),
        (lambda raw: raw["data"].update(assets={"a": {"path": "x", "calendr": "fx"}}), r"data.assets.a.calendr"),
        (lambda raw: raw["strategies"].update(naive={"assets": ["zzz"]}), r"strategies.naive.assets: 'zzz' is not"),
        (lambda raw: raw["strategies"].update(naive={"assets": "aaa"}), r"strategies.naive.assets: must be a list"),
        (
            lambda raw: raw["data"].update(assets=["x.parquet"]),
            r"data.assets: .*a mapping of asset name to file .* or a glob",
        ),
        (
            lambda raw: (raw["data"].pop("assets"), raw["data"].update(path=["a.parquet", "b.parquet"])),
            r"data.path: .*for several assets use data.assets",
        ),
        (
            lambda raw: raw["strategies"].update(naive={"assets": ["aaa"]}, har={"assets": ["aaa"]}),
            r"data.assets.bbb: no strategy runs on this asset",
        ),
        (
            lambda raw: raw["data"].update(assets={"a": {"path": "x", "backtest": {"horizon": 6}}}),
            r"data.assets.a.backtest.horizon: an asset sets only its own test period \(start, end\)",
        ),
        (
            lambda raw: raw["data"].update(
                assets={"a": {"path": "x", "backtest": {"start": "2024-02-01", "end": "2024-01-20"}}}
            ),
            r"data.assets.a.backtest: .*end must be after",
        ),
    ],
)
def test_bad_universe_configs_name_the_field(universe_files, tmp_path, change, message):
    raw = universe_config(universe_files, tmp_path)
    change(raw)
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


def test_a_benchmark_on_some_assets_only_leaves_the_others_with_pairwise_tests(universe_files, tmp_path):
    raw = universe_config(
        universe_files, tmp_path, two_assets(universe_files), naive={}, ewma={}, har={"assets": ["aaa"]}
    )
    res = run(parse_config(raw))
    tests = pd.read_parquet(res.out_dir / "tests.parquet")
    dm = tests[tests["test"] == "dm"]
    assert "har" in set(dm.loc[dm["asset"] == "aaa", "against"])
    assert set(dm.loc[dm["asset"] == "bbb", "model"]) | set(dm.loc[dm["asset"] == "bbb", "against"]) == {
        "naive",
        "ewma",
    }
    pooled = tests[tests["test"] == "pooled_dm"]
    assert (pooled.loc[pooled["against"] == "har", "assets"] == 1).all()


def test_assets_on_a_strategy_of_a_one_file_run_is_refused(universe_files, tmp_path):
    raw = single_config(universe_files / "aaa.parquet", tmp_path, naive={"assets": ["aaa"]})
    with pytest.raises(ConfigError, match=r"strategies.naive.assets: only a universe"):
        parse_config(raw)


# --------------------------------------------------------------------------- the run


@pytest.fixture(scope="module")
def universe_run(universe_files, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("urun")
    raw = universe_config(
        universe_files, tmp, naive={}, har={}, ewma={"assets": ["aaa", "ccc"]}, rolling_mean={"repeats": 2}
    )
    raw["output"]["plots"] = True
    return run(parse_config(raw))


def test_each_asset_forecasts_as_a_run_on_its_own_file(universe_files, universe_run, tmp_path):
    rows = universe_run.forecasts
    assert list(rows.columns[:2]) == ["asset", "strategy"]
    assert set(rows["asset"]) == {"aaa", "bbb", "ccc"}
    for asset in ("aaa", "ccc"):
        alone = run(
            parse_config(
                single_config(
                    universe_files / f"{asset}.parquet",
                    tmp_path,
                    naive={},
                    har={},
                    ewma={},
                    rolling_mean={"repeats": 2},
                )
            )
        ).forecasts
        got = rows[rows["asset"] == asset].drop(columns="asset").reset_index(drop=True)
        want = alone.drop(columns="asset").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want)
    assert "ewma" not in set(rows.loc[rows["asset"] == "bbb", "strategy"])


def test_a_seed_ensemble_averages_within_an_asset_never_across(universe_run):
    rows = universe_run.forecasts.set_index(["asset", "strategy", "issued_at", "horizon"])["forecast"]
    ensemble, member = rows.xs("rolling_mean", level="strategy"), rows.xs("rolling_mean#1", level="strategy")
    pd.testing.assert_series_equal(ensemble, member.loc[ensemble.index])  # deterministic members: their mean is each
    assert set(ensemble.index.get_level_values("asset")) == {"aaa", "bbb", "ccc"}


def test_every_table_has_the_asset_column_and_the_pooled_tests_are_there(universe_run):
    out = universe_run.out_dir
    for name in ("forecasts", "retrains", "metrics", "scores", "breakdowns", "tests", "cost", "wins"):
        frame = pd.read_parquet(out / f"{name}.parquet")
        assert frame.columns[0] == "asset", name
    for name in ("economic", "positions", "var"):  # what the forecasts are worth (issue 29)
        assert pd.read_parquet(out / f"{name}.parquet").columns[0] == "asset", name
    tests = pd.read_parquet(out / "tests.parquet")
    pooled = tests[tests["asset"] == "all"]
    assert set(pooled["test"]) == {"pooled_dm", "cluster_dm", "mcs", "pooled_dm_economic", "cluster_dm_economic"}
    economic = pd.read_parquet(out / "economic.parquet")
    portfolio = economic[economic["section"] == "portfolio"]
    assert (portfolio["asset"] == "all").all() and "ewma" not in set(portfolio["strategy"])  # ewma: on 2 assets of 3
    assert {"har", "naive"} <= set(portfolio["strategy"])
    naive = pooled[(pooled["test"] == "pooled_dm") & (pooled["model"] == "naive") & (pooled["against"] == "har")]
    assert sorted(naive["horizon"]) == [0, 1, 2, 3, 4] and (naive["assets"] == 3).all()
    ewma = pooled[(pooled["test"] == "pooled_dm") & (pooled["model"] == "ewma") & (pooled["against"] == "har")]
    assert (ewma["assets"] == 2).all()  # only where both ran
    assert set(pooled.loc[pooled["test"] == "mcs", "model"]) == {  # ewma is not on every asset
        "naive",
        "har",
        "rolling_mean",
        "rolling_mean#1",
        "rolling_mean#2",
    }
    per_asset = tests[(tests["asset"] != "all") & (tests["test"] == "dm")]
    assert set(per_asset["asset"]) == {"aaa", "bbb", "ccc"}
    for asset in ("aaa", "bbb"):  # the horizon-averaged DM tests and the MCS use the same issue times
        mine = tests[tests["asset"] == asset]
        dm_n = mine[(mine["test"] == "dm") & (mine["horizon"] == 0)]["n"].unique()
        assert list(dm_n) == list(mine[mine["test"] == "mcs"]["n"].unique()), asset
    wins = pd.read_parquet(out / "wins.parquet")
    row = wins[(wins["model"] == "naive") & (wins["against"] == "har") & (wins["horizon"] == 0)].iloc[0]
    dm = per_asset[
        (per_asset["model"] == "naive")
        & (per_asset["against"] == "har")
        & (per_asset["horizon"] == 0)
        & (per_asset["loss"] == "qlike")
    ]
    assert row["assets"] == 3 and row["wins"] == int((dm["mean_diff"] < 0).sum())


def test_the_report_answers_across_assets_first(universe_run):
    out = universe_run.out_dir
    md = (out / "report.md").read_text()
    assert (
        md.index("## The answer, across assets")
        < md.index("## Pooled tests across assets")
        < md.index("## Asset `aaa`")
        < md.index("## Asset `ccc`")
    )
    assert "beats `har` on" in md and "pooled DM" in md
    assert "- Seeds: `rolling_mean` ran with 2; its gap to `har` needs about 1 on `" in md  # no seed: no spread
    for name in ("pooled_differentials.png", "forecast_vs_actual_aaa.png", "forecast_vs_actual_ccc.png"):
        assert (out / name).is_file(), name
    page = (out / "report.html").read_text()
    for caption in (
        "Loss differentials against the benchmark",
        "Forecasts against realized volatility: aaa",
        "Forecasts against realized volatility: ccc",
    ):
        assert f"<figcaption>{caption}" in page, caption  # every figure embedded
    manifest = universe_run.manifest
    assert set(manifest["data"]["assets"]) == {"aaa", "bbb", "ccc"}


def test_segments_seeds_and_artifacts_are_keyed_by_asset(universe_files, tmp_path):
    lstm = {**TINY_LSTM, "retrain": {"rule": "never"}}
    raw = universe_config(universe_files, tmp_path, lstm=lstm)
    raw["output"]["save_models"] = True
    res = run(parse_config(raw))
    models = res.out_dir / "models"
    assert sorted(p.relative_to(models).as_posix() for p in models.glob("*/*/*")) == [
        "aaa/lstm/1",
        "bbb/lstm/1",
        "ccc/lstm/1",
    ]
    seeds = res.retrains.set_index("asset")["seed"]
    assert seeds.nunique() == 3  # each asset's model gets a seed of its own
    # aaa and bbb hold different bars, and their models and forecasts differ
    a = res.forecasts[res.forecasts["asset"] == "aaa"]["forecast"].to_numpy()
    b = res.forecasts[res.forecasts["asset"] == "bbb"]["forecast"].to_numpy()
    assert not np.allclose(a[: len(b)], b[: len(a)])


def test_no_asset_sees_its_future_or_another_assets_data(universe_files, tmp_path):
    """Poison asset aaa after CUT: every forecast of aaa issued up to CUT and every forecast of the other
    assets are unchanged (local models), for a tiny LSTM and HAR."""
    strategies = {"lstm": TINY_LSTM, "har": {}}
    clean = run(parse_config(universe_config(universe_files, tmp_path / "clean", **strategies))).forecasts
    poisoned_dir = tmp_path / "poisoned_files"
    poisoned_dir.mkdir()
    for name in ("aaa", "bbb", "ccc"):
        bars = pd.read_parquet(universe_files / f"{name}.parquet")
        if name == "aaa":
            late = bars["timestamp"] >= CUT
            bars.loc[late, ["open", "high", "low", "close"]] *= np.linspace(1, 50, late.sum())[:, None]
        bars.to_parquet(poisoned_dir / f"{name}.parquet", index=False)
    dirty = run(parse_config(universe_config(poisoned_dir, tmp_path / "dirty", **strategies))).forecasts

    def part(frame, keep):  # the forecasts (their actuals after CUT are poisoned, of course)
        return frame[keep(frame)].drop(columns="actual").reset_index(drop=True)

    early = lambda f: (f["asset"] == "aaa") & (f["issued_at"] <= CUT)  # noqa: E731
    others = lambda f: f["asset"] != "aaa"  # noqa: E731
    pd.testing.assert_frame_equal(part(clean, early), part(dirty, early))
    pd.testing.assert_frame_equal(part(clean, others), part(dirty, others))
    late = lambda f: (f["asset"] == "aaa") & (f["issued_at"] > CUT)  # noqa: E731
    assert not np.allclose(part(clean, late)["forecast"], part(dirty, late)["forecast"])


def test_a_rerun_reuses_every_asset_and_a_new_asset_computes_only_its_own(universe_files, tmp_path):
    two = {"aaa": str(universe_files / "aaa.parquet"), "bbb": str(universe_files / "bbb.parquet")}
    raw = universe_config(universe_files, tmp_path, assets=two)
    first = run(parse_config(raw))
    again = run(parse_config(raw), force=True)
    assert again.manifest["segments"] == {"total": 12, "reused": 12, "computed": 0}  # 3 retrains x 2 x 2
    raw["data"]["assets"] = {**two, "ccc": str(universe_files / "ccc.parquet")}
    more = run(parse_config(raw), force=True)
    assert more.manifest["segments"]["computed"] == 6  # ccc's only
    keep = lambda f: f[f["asset"] != "ccc"].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(keep(first.forecasts), keep(more.forecasts))


def test_a_universe_on_two_workers_equals_one_process(universe_files, tmp_path):
    """The segments and the evaluation (each asset a job on the workers, taken back in asset order) give the
    same forecasts, tests across assets, economics and report on two workers as in one process."""
    raw = universe_config(universe_files, tmp_path, naive={}, har={})
    one = run(parse_config(raw))
    raw["execution"] = {"jobs": 2}
    raw["name"] = "t2"
    two = run(parse_config(raw))
    pd.testing.assert_frame_equal(one.forecasts, two.forecasts)
    for table in ("tests", "economic", "wins", "var", "positions"):
        a, b = (pd.read_parquet(r.out_dir / f"{table}.parquet") for r in (one, two))
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=table)
    timing = re.compile(r"\d+\.\d+ s|\| [\d.]+ \|")  # seconds of training differ between runs
    texts = [timing.sub("", (r.out_dir / "report.md").read_text()).splitlines()[1:] for r in (one, two)]  # not the name
    assert texts[0] == texts[1]
    assert not (two.out_dir / ".parts").exists()


# --------------------------------------------------------------------------- the CLI


def cli(*args):
    from click.testing import CliRunner

    from backtester.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def universe_cli_run(universe_files, tmp_path_factory):
    """Two assets, naive and HAR with saved models, run from a config file through the CLI."""
    import yaml

    tmp = tmp_path_factory.mktemp("ucli")
    raw = universe_config(
        universe_files,
        tmp,
        assets={"aaa": str(universe_files / "aaa.parquet"), "bbb": str(universe_files / "bbb.parquet")},
    )
    raw["name"], raw["output"]["save_models"] = "u", True
    raw["backtest"]["end"] = "2024-01-20 00:00"
    config = tmp / "u.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    res = cli("run", config, "-q")
    assert res.exit_code == 0, res.output
    return config, tmp / "results" / "u"


def test_plan_and_data_prepare_go_asset_by_asset(universe_cli_run, tmp_path):
    config, _ = universe_cli_run
    res = cli("plan", config)
    assert res.exit_code == 0, res.output
    assert "asset aaa (1 of 2)" in res.output and "asset bbb (2 of 2)" in res.output
    res = cli("data", "prepare", config, "--out", tmp_path / "rv.parquet")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "rv_aaa.parquet").is_file() and (tmp_path / "rv_bbb.parquet").is_file()


def test_audit_checks_every_asset(universe_cli_run):
    _, run_dir = universe_cli_run
    res = cli("audit", run_dir, "--sample", "1")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert any(line.startswith("PASS  aaa/har") for line in lines) and any("bbb/naive" in line for line in lines)
    assert lines[-1].startswith("audit: PASS") and "on 4 strategies" in lines[-1]


def test_train_takes_one_asset_of_a_universe(universe_cli_run, tmp_path):
    config, _ = universe_cli_run
    res = cli("train", config, "--strategy", "har", "--out", tmp_path / "m")
    assert res.exit_code == 2 and "pass --asset NAME, one of aaa, bbb" in res.output
    res = cli("train", config, "--asset", "bbb", "--strategy", "har", "--out", tmp_path / "m", "-q")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "m" / "models" / "har" / "1" / "artifact.json").is_file()


def test_compare_aligns_runs_per_asset_by_their_data(universe_cli_run, universe_files, tmp_path):
    """A universe run against a one-file run of one of its assets: compared on that asset only, under
    the universe's name for it; a universe against itself gets pooled tests too."""
    _, run_dir = universe_cli_run
    raw = single_config(universe_files / "bbb.parquet", tmp_path, ewma={})
    raw["backtest"]["end"] = "2024-01-20 00:00"
    alone = run(parse_config(raw)).out_dir
    res = cli("compare", run_dir, alone, "--out", tmp_path / "cmp", "-q")
    assert res.exit_code == 0, res.output
    tests = pd.read_parquet(tmp_path / "cmp" / "tests.parquet")
    assert set(tests["asset"]) == {"bbb"}
    assert {"ewma", "har", "naive"} <= set(tests["model"]) | set(tests["against"])
    res = cli("compare", run_dir, "--out", tmp_path / "self", "-q", "--seed", "7", "--block-size", "5")
    assert res.exit_code == 0, res.output
    tests = pd.read_parquet(tmp_path / "self" / "tests.parquet")
    assert set(tests["asset"]) == {"aaa", "bbb", "all"}
    assert set(tests.loc[tests["asset"] == "all", "test"]) == {"pooled_dm", "cluster_dm"}


# --------------------------------------------------------------------------- global models


GLOBAL_LSTM = {**TINY_LSTM, "scope": "global"}


def poisoned_copy(folder, into, asset="aaa"):
    """The universe's files, with ``asset``'s prices after CUT blown up."""
    into.mkdir()
    for name in ("aaa", "bbb", "ccc"):
        bars = pd.read_parquet(folder / f"{name}.parquet")
        if name == asset:
            late = bars["timestamp"] >= CUT
            bars.loc[late, ["open", "high", "low", "close"]] *= np.linspace(1, 50, late.sum())[:, None]
        bars.to_parquet(into / f"{name}.parquet", index=False)
    return into


def test_a_global_model_is_one_model_per_retrain_trained_on_every_asset(universe_files, tmp_path):
    two = {"aaa": str(universe_files / "aaa.parquet"), "bbb": str(universe_files / "bbb.parquet")}
    raw = universe_config(universe_files, tmp_path, assets=two, g=GLOBAL_LSTM, l=TINY_LSTM)
    raw["output"]["save_models"] = True
    res = run(parse_config(raw))
    r = res.retrains.set_index(["strategy", "asset", "model_version"])
    for version in (1, 2, 3):
        g_a, g_b = r.loc[("g", "aaa", version)], r.loc[("g", "bbb", version)]
        assert g_a["seed"] == g_b["seed"] and g_a["samples"] == g_b["samples"]  # one fit, one model
        assert g_a["samples"] == r.loc[("l", "aaa", version), "samples"] + r.loc[("l", "bbb", version), "samples"]
        history = [
            (res.out_dir / "models" / a / "g" / str(version) / "history.json").read_text() for a in ("aaa", "bbb")
        ]
        assert history[0] == history[1]
        scalers = [
            (res.out_dir / "models" / a / "g" / str(version) / "scaler.json").read_text() for a in ("aaa", "bbb")
        ]
        assert scalers[0] != scalers[1]  # each asset scaled on its own window
    assert r.loc[("l", "aaa", 1), "seed"] != r.loc[("l", "bbb", 1), "seed"]


def test_a_global_model_sees_no_bar_after_the_retrain_time_of_any_asset(universe_files, tmp_path):
    """Poison aaa after CUT: no asset's forecasts issued up to CUT change; bbb's later forecasts do (the model
    that serves them trained on aaa's bars too), unlike a local model's."""
    strategies = {"g": GLOBAL_LSTM, "l": TINY_LSTM}
    clean = run(
        parse_config(universe_config(universe_files, tmp_path / "clean", two_assets(universe_files), **strategies))
    ).forecasts
    dirty_files = poisoned_copy(universe_files, tmp_path / "poisoned")
    dirty = run(
        parse_config(universe_config(dirty_files, tmp_path / "dirty", two_assets(dirty_files), **strategies))
    ).forecasts

    def part(frame, keep):
        return frame[keep(frame)].drop(columns="actual").reset_index(drop=True)

    early = lambda f: f["issued_at"] <= CUT  # noqa: E731
    pd.testing.assert_frame_equal(part(clean, early), part(dirty, early))
    local_bbb = lambda f: (f["asset"] == "bbb") & (f["strategy"] == "l")  # noqa: E731
    pd.testing.assert_frame_equal(part(clean, local_bbb), part(dirty, local_bbb))
    global_bbb_late = lambda f: (f["asset"] == "bbb") & (f["strategy"] == "g") & (f["issued_at"] > CUT)  # noqa: E731
    assert not np.allclose(part(clean, global_bbb_late)["forecast"], part(dirty, global_bbb_late)["forecast"])


def test_a_global_model_needs_one_schedule(universe_files, tmp_path):
    assets = {
        "aaa": str(universe_files / "aaa.parquet"),
        "bbb": {"path": str(universe_files / "bbb.parquet"), "end": "2024-01-20 00:00"},
    }
    raw = universe_config(universe_files, tmp_path, assets=assets, g=GLOBAL_LSTM)
    with pytest.raises(ConfigError, match=r"strategies.g: scope: global .* retrain times differ .* schedule_of: aaa"):
        run(parse_config(raw))
    raw["strategies"]["g"] = {**GLOBAL_LSTM, "schedule_of": "aaa"}
    res = run(parse_config(raw))
    versions = res.retrains.groupby("asset")["model_version"].apply(list).to_dict()
    assert versions == {"aaa": [1, 2, 3], "bbb": [1, 2]}  # bbb's data ends before aaa's third retrain
    raw["strategies"]["g"] = {**GLOBAL_LSTM, "schedule_of": "zzz"}
    with pytest.raises(ConfigError, match=r"strategies.g.schedule_of: 'zzz' is not an asset"):
        parse_config(raw)
    raw["strategies"]["g"] = {**GLOBAL_LSTM, "warm_start": {"epochs": 1}}
    with pytest.raises(ConfigError, match=r"scope: global .* cannot be combined with tuning or warm_start"):
        parse_config(raw)


def test_a_global_model_on_two_workers_equals_one_process_and_resumes(universe_files, tmp_path):
    raw = universe_config(universe_files, tmp_path, two_assets(universe_files), g=GLOBAL_LSTM, har={})
    raw["backtest"]["end"] = "2024-01-20 00:00"  # two retrains
    one = run(parse_config(raw))
    raw["execution"], raw["name"] = {"jobs": 2}, "t2"
    two = run(parse_config(raw))
    pd.testing.assert_frame_equal(one.forecasts, two.forecasts)
    again = run(parse_config(raw), force=True)
    assert again.manifest["segments"]["computed"] == 0
    pd.testing.assert_frame_equal(two.forecasts, again.forecasts)


def test_the_audit_recomputes_a_global_model_on_every_assets_cut_and_poisoned_bars(universe_files, tmp_path):
    import yaml

    two = {"aaa": str(universe_files / "aaa.parquet"), "bbb": str(universe_files / "bbb.parquet")}
    raw = universe_config(universe_files, tmp_path, assets=two, g=GLOBAL_LSTM)
    raw["name"], raw["output"]["save_models"] = "ga", True
    raw["backtest"]["end"] = "2024-01-20 00:00"
    config = tmp_path / "ga.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert cli("run", config, "-q").exit_code == 0
    res = cli("audit", tmp_path / "results" / "ga", "--sample", "1")
    assert res.exit_code == 0, res.output
    for check in ("truncation", "poison", "windows", "scaler", "rows"):
        assert any(line.startswith("PASS  aaa/g") and check in line for line in res.output.splitlines()), check


def test_an_asset_named_twice_is_refused_with_its_line(tmp_path):
    from backtester.config import load_config

    path = tmp_path / "u.yaml"
    path.write_text(
        "name: u\ndata:\n  assets:\n    btc: a.parquet\n    btc: b.parquet\nbacktest: {start: 2024-01-09}\n"
        "strategies: {naive: {}}\n"
    )
    with pytest.raises(ConfigError, match=r"u.yaml \(line 5\): 'btc' appears twice in one mapping"):
        load_config(path)


def test_an_asset_can_have_its_own_test_period(universe_files, tmp_path):
    """An FX asset of another year beside crypto: each asset forecasts over its own period, exactly as a run on
    its file over that period; the pooled tests take the assets forecast at each time; a global model needs
    its assets to share one period."""
    late = pd.Timestamp("2024-01-16 00:00", tz="UTC")
    assets = {
        "aaa": str(universe_files / "aaa.parquet"),
        "bbb": {"path": str(universe_files / "bbb.parquet"), "backtest": {"start": str(late.tz_localize(None))}},
    }
    res = run(parse_config(universe_config(universe_files, tmp_path, assets=assets)))
    first = res.forecasts.groupby("asset")["issued_at"].min()
    assert first["aaa"] == pd.Timestamp("2024-01-09", tz="UTC") and first["bbb"] == late
    alone = single_config(universe_files / "bbb.parquet", tmp_path)
    alone["backtest"]["start"] = str(late.tz_localize(None))
    single = run(parse_config(alone)).forecasts.drop(columns="asset", errors="ignore")
    mine = res.forecasts[res.forecasts["asset"] == "bbb"].drop(columns="asset").reset_index(drop=True)
    pd.testing.assert_frame_equal(mine[single.columns], single.reset_index(drop=True), check_exact=True)
    pooled = pd.read_parquet(res.out_dir / "tests.parquet").query("test == 'pooled_dm'")
    assert len(pooled) and (pooled["assets"] == 2).all() and pooled["statistic"].notna().any()
    raw = universe_config(universe_files, tmp_path, assets=assets, g=GLOBAL_LSTM)
    with pytest.raises(
        ConfigError,
        match=r"strategies.g: scope: global .* bbb has its own test period "
        r"\(2024-01-16 00:00:00\+00:00 \.\. its data end\); .* assets: \[aaa\]",
    ):
        run(parse_config(raw))


def test_a_universe_too_large_for_free_memory_is_refused_before_it_runs(minute_file, tmp_path, monkeypatch):
    raw = base_config(minute_file, tmp_path, har={"type": "har"}, naive={})
    raw["data"] = {"assets": {"a": str(minute_file), "b": str(minute_file)}, "cache_dir": str(tmp_path / "cache")}
    monkeypatch.setattr("backtester.runner.free_memory", lambda: 800 * 2**20)  # 800 MiB free
    assert_run_refused(raw, tmp_path, "data.assets: this run's evaluation needs about 0.8 GiB (2 assets, ")
    raw["execution"] = {"memory_guard": False}  # the user's call: it runs
    assert (run(parse_config(raw)).out_dir / "report.md").is_file()
