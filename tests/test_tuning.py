"""keras-tuner inside the walk-forward and warm starts.

Tuning picks only from the configured space, is repeatable with its seed, never sees a bar
after the retrain time (truncate and poison), runs on its own cadence and writes every
trial to tuning.parquet; a warm start continues the previous retrain's weights; bad tuning
blocks are one-line errors."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from backtester.cli import main
from backtester.compare import compare
from backtester.config import parse_config
from backtester.core.series import BarSeries
from backtester.engine import Settings
from backtester.plan import make_plan
from backtester.runner import run
from backtester.rv import prepare_bars
from strategies.keras.search import tune
from strategies.keras.tuning import TuningConfig, tuning_points
from strategies.lstm import LstmParams

from .conftest import TINY_LSTM, base_config
from .harness import run_engine

SPACE = {
    "units": {"values": [3, 5]},
    "num_layers": 1,
    "dropout": 0.0,
    "learning_rate": {"min": 1e-3, "max": 1e-2, "sampling": "log"},
}
TUNED = {**TINY_LSTM, "tuning": {"max_trials": 3, "epochs": 1, "space": SPACE}}
TUNED_2 = {**TINY_LSTM, "tuning": {"max_trials": 2, "epochs": 1, "space": SPACE}}
WARM = {**TINY_LSTM, "warm_start": {"epochs": 1}}


def series_of(n=400, seed=0):
    rng = np.random.default_rng(seed)
    rv = np.abs(rng.normal(0.01, 0.003, n)) + 0.002
    times = pd.date_range("2024-01-01 01:00", periods=n, freq="h", tz="UTC")
    return BarSeries(times.asi8, rv, np.zeros(n), np.ones(n, bool))


def test_tuning_picks_only_from_the_configured_space_and_repeats_with_its_seed(tmp_path):
    params = LstmParams.model_validate(TUNED)
    best, trials = tune(params, series_of(300), 4, seed=5, directory=tmp_path / "a")
    assert len(trials) == 3 and trials["best"].sum() == 1
    for values in [json.loads(h) for h in trials["hyperparameters"]] + [best]:
        assert values["units_0"] in (3, 5) and values["num_layers"] == 1 and values["dropout_0"] == 0.0
        assert 1e-3 <= values["learning_rate"] <= 1e-2
    chosen = json.loads(trials.loc[trials["best"], "hyperparameters"].iloc[0])
    assert chosen == best and trials.loc[trials["best"], "score"].iloc[0] == trials["score"].min()
    again_best, again = tune(params, series_of(300), 4, seed=5, directory=tmp_path / "b")
    assert again_best == best
    pd.testing.assert_frame_equal(again, trials, check_exact=True)


def test_memory_can_be_searched_and_the_objective_can_be_qlike(tmp_path):
    raw = {
        **TUNED,
        "tuning": {
            "max_trials": 2,
            "epochs": 1,
            "objective": "val_qlike",
            "space": {**SPACE, "memory": {"values": [6, 12]}},
        },
    }
    best, trials = tune(LstmParams.model_validate(raw), series_of(), 4, seed=1, directory=tmp_path)
    assert best["memory"] in (6, 12) and (trials["score"] > 0).all() and np.isfinite(trials["score"]).all()
    assert LstmParams.model_validate(raw).with_hyperparameters(best).memory == best["memory"]


def test_tuning_cadence_first_each_k_and_a_calendar_rule():
    retrains = pd.date_range("2024-01-01", periods=9, freq="W-MON", tz="UTC")
    assert tuning_points("first", list(retrains)) == [True] + [False] * 8
    assert tuning_points("each", list(retrains)) == [True] * 9
    assert tuning_points(4, list(retrains)) == [True, False, False, False, True, False, False, False, True]
    months = pd.DatetimeIndex(["2024-02-01", "2024-03-01"], tz="UTC")  # first retrain at or after each
    assert tuning_points({"rule": "monthly"}, list(retrains), months) == [
        True,
        False,
        False,
        False,
        False,
        True,
        False,
        False,
        False,
    ]


def engine_run(minute, tmp_path, strategies, name="x"):
    path = tmp_path / f"{name}.parquet"
    minute.to_parquet(path, index=False)
    cfg = parse_config(base_config(path, tmp_path, **strategies))
    bars = prepare_bars(cfg.data).bars
    plan = make_plan(cfg, bars.index)
    return plan, run_engine(plan, cfg.strategies, BarSeries.from_frame(bars), Settings(cfg.seed))


def test_tuning_never_sees_bars_after_the_retrain_time(minute_bars, tmp_path):
    """The tuning at the 3rd retrain (every 2 retrains) sees only its window: poisoning every bar after
    that retrain, or cutting the data off soon after it, leaves its trials and its choice unchanged
    (and, poisoned, every forecast issued up to it)."""
    tuned = {"lstm": {**TUNED, "tuning": {**TUNED["tuning"], "every": 2, "max_trials": 2}}}
    plan, full = engine_run(minute_bars, tmp_path, tuned, "full")
    segs = plan.segments("lstm")
    assert [s.tune for s in segs] == [True, False, True]
    cut = segs[2].retrain_time
    known = minute_bars["timestamp"] + pd.Timedelta("1min") <= cut
    poisoned = minute_bars.copy()
    junk = np.random.default_rng(0).uniform(1, 1e6, (~known).sum())
    for col in ("open", "high", "low", "close"):
        poisoned.loc[~known, col] = junk
    _, bad = engine_run(poisoned, tmp_path, tuned, "poisoned")
    # the data cut off right after the retrain: the same two searches, run on their own
    from backtester.tuning import tune_segment

    path = tmp_path / "cut.parquet"
    minute_bars[known].to_parquet(path, index=False)
    cfg = parse_config(base_config(path, tmp_path, **tuned))
    series = BarSeries.from_frame(prepare_bars(cfg.data).bars)
    cut_off = {
        s.key: tune_segment(s, cfg.strategies["lstm"].params, series, cfg.seed, None) for s in (segs[0], segs[2])
    }
    for key in (segs[0].key, segs[2].key):
        for other in (bad.tunings[key], cut_off[key]):
            pd.testing.assert_frame_equal(
                other.trials.drop(columns="tuning_seconds"),
                full.tunings[key].trials.drop(columns="tuning_seconds"),
                check_exact=True,
            )
    upto = lambda f: f[f["issued_at"] <= cut].reset_index(drop=True)
    pd.testing.assert_frame_equal(upto(bad.forecasts), upto(full.forecasts), check_exact=True)
    assert not np.allclose(bad.forecasts["forecast"], full.forecasts["forecast"])  # the poison did reach later rows


def test_warm_start_continues_from_the_previous_weights(minute_bars, tmp_path, monkeypatch):
    import strategies.keras.forecaster as km

    starts = []
    real = km.train_epochs

    def spy(model, *args, **kwargs):
        starts.append([w.copy() for w in model.get_weights()])
        out = real(model, *args, **kwargs)
        starts[-1] = (starts[-1], [w.copy() for w in model.get_weights()], args[-2])
        return out

    monkeypatch.setattr(km, "train_epochs", spy)
    plan, res = engine_run(minute_bars, tmp_path, {"warm": WARM, "cold": TINY_LSTM})
    warm, cold = starts[:3], starts[3:]
    for (_, after_prev, _), (before, _, epochs) in zip(warm, warm[1:]):
        assert all(np.array_equal(a, b) for a, b in zip(after_prev, before))  # started where the last ended
        assert epochs == 1
    for (_, after_prev, _), (before, _, _) in zip(cold, cold[1:]):
        assert not all(np.array_equal(a, b) for a, b in zip(after_prev, before))  # a fresh model
    started = [json.loads(r.details)["started_from"] for r in res.records if r.strategy == "warm"]
    assert started == [None, 1, 2]


def test_a_run_with_tuning_and_warm_starts_writes_tuning_parquet_and_artifacts(minute_file, tmp_path):
    raw = base_config(minute_file, tmp_path, lstm=TUNED_2, warm=WARM)
    raw["output"]["save_models"] = True
    result = run(parse_config(raw))
    trials = pd.read_parquet(result.out_dir / "tuning.parquet")
    assert list(trials["model_version"].unique()) == [1] and len(trials) == 2
    best = json.loads(trials.loc[trials["best"], "hyperparameters"].iloc[0])
    for version in (1, 2, 3):
        config = json.loads((result.out_dir / "models" / "lstm" / str(version) / "config.json").read_text())
        assert config["hyperparameters"]["units_0"] == best["units_0"]  # later retrains reuse the choice
        assert config["hyperparameters"]["learning_rate"] == pytest.approx(best["learning_rate"])
    assert (result.out_dir / "tuning" / "lstm" / "0001" / "tuner" / "oracle.json").exists()
    warm2 = json.loads((result.out_dir / "models" / "warm" / "2" / "config.json").read_text())
    assert warm2["started_from"] == 1
    # the search's seconds are part of what the strategy cost, in the run and in a comparison
    cost = pd.read_parquet(result.out_dir / "cost.parquet").set_index("strategy")
    assert (
        cost.loc["lstm", "tuning_seconds"] == pytest.approx(trials["tuning_seconds"].iloc[0])
        and trials["tuning_seconds"].iloc[0] > 0
    )
    assert cost.loc["warm", "tuning_seconds"] == 0
    assert "| tuning s |" in (result.out_dir / "report.md").read_text()
    manifest = json.loads((result.out_dir / "manifest.json").read_text())
    assert {k: manifest["strategies"]["lstm"][k] for k in ("type", "seeded", "repeats")} == {
        "type": "lstm",
        "seeded": True,
        "repeats": 1,
    }
    compared = compare([result.out_dir], tmp_path / "cmp", mcs_reps=50)
    assert compared.cost.set_index("strategy").loc["lstm", "tuning_seconds"] == cost.loc["lstm", "tuning_seconds"]
    text = (compared.out_dir / "compare.md").read_text()
    assert "`lstm` ran with one seed" in text and "`warm` ran with one seed" in text


@pytest.mark.parametrize(
    "tuning, message",
    [
        (
            {"space": {"units": {"min": 64, "max": 16}}},
            "strategies.lstm.tuning.space: units: min 64 is above max 16; swap them",
        ),
        ({"max_trials": 0}, "strategies.lstm.tuning.max_trials: Input should be greater than or equal to 1 (got 0)"),
        ({"every": {"rule": "montly"}}, "strategies.lstm.tuning.every"),
        ({"tuner": "grid"}, "strategies.lstm.tuning.tuner"),
    ],
)
def test_a_bad_tuning_block_is_one_line(minute_file, tmp_path, tuning, message):
    import yaml

    raw = base_config(minute_file, tmp_path, lstm={**TINY_LSTM, "tuning": tuning})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = CliRunner().invoke(main, ["run", str(path)])
    assert out.exit_code == 2, out.output
    assert message in out.output and len(out.output.strip().splitlines()) == 1 and "Traceback" not in out.output
    assert not (tmp_path / "results").exists()


def test_tuning_config_defaults_are_the_notebooks_space():
    import keras_tuner as kt

    from strategies.keras.builder import fixed_hyperparameters  # noqa: F401  (keras imported)
    from strategies.keras.tuning import declare_space
    from strategies.lstm import build_lstm

    params = LstmParams(tuning=TuningConfig())
    hp = kt.HyperParameters()
    declare_space(hp, params)
    hp.Fixed("num_layers", 2)  # so the second layer's entries are declared too
    build_lstm(hp, 60, 1)
    spaces = {p.name: p.get_config() for p in hp.space}
    assert (spaces["units_0"]["min_value"], spaces["units_0"]["max_value"], spaces["units_0"]["step"]) == (16, 64, 16)
    assert (spaces["dropout_1"]["min_value"], spaces["dropout_1"]["max_value"]) == (0.0, 0.3)
    assert spaces["learning_rate"]["sampling"] == "log"
    assert (spaces["learning_rate"]["min_value"], spaces["learning_rate"]["max_value"]) == (1e-3, 1e-2)


@pytest.mark.parametrize("loss", [None, "qlike"])
def test_a_tuned_hybrid_searches_the_hybrid_it_trains(tmp_path, loss):
    """The search builds and scores the model the fit trains: for a hybrid (``residual_of``) its objective on a
    trial whose values are all fixed equals the validation loss of the fit with those values (the residual
    targets, the config's loss, the zero start; not a plain MSE model of the plain target)."""
    fixed = {"units": 4, "num_layers": 1, "dropout": 0.0, "learning_rate": 0.003}
    params = LstmParams.model_validate(
        {
            **TINY_LSTM,
            "loss": loss,
            "residual_of": "har",
            "residual_params": {"type": "har", "lags": [1, 6, 24]},
            "tuning": {"max_trials": 1, "epochs": 1, "space": fixed},
        }
    )
    series = series_of(400)
    best, trials = tune(params, series, 1, seed=5, directory=tmp_path / "t")  # horizon 1: no purge gap
    assert len(trials) == 1 and trials["status"].iloc[0] == "COMPLETED"
    info = params.with_hyperparameters(best).build(5).fit(series, 1)
    assert trials["score"].iloc[0] == pytest.approx(info.val_loss, rel=1e-6, abs=0)
