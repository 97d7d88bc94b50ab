"""Stacked training (``execution.stack``): models trained together equal each model trained alone."""

import json

import numpy as np
import pandas as pd
import pytest

from backtester.config import parse_config
from backtester.core.errors import ConfigError
from backtester.runner import run
from backtester.stacking import StackJob, split_even, stack_jobs

from .conftest import TINY_LSTM, assert_run_refused, base_config

STACK_ATOL = 1e-5  # forecasts (volatility, ~1e-3 here) of a stacked model vs the model alone; seen: < 1e-7


def _samples(rng, n, memory, steps, n_val):
    x = rng.random((n + n_val, memory), dtype="float32")
    y = rng.random((n + n_val, steps), dtype="float32")
    return x[:n], y[:n], x[n:], y[n:]


def test_each_stacked_model_equals_the_model_trained_alone():
    from strategies.keras.builder import fixed_hyperparameters
    from strategies.keras.runtime import keras_module
    from strategies.keras.runtime import private_python_random as _private_python_random
    from strategies.keras.training import train_epochs, train_stacked
    from strategies.lstm import LstmParams, build_lstm

    keras = keras_module()
    hp = fixed_hyperparameters(LstmParams(layers=[{"units": 4, "dropout": 0.2}]).fixed_values())
    rng = np.random.default_rng(0)
    # unequal windows (one has fewer batches: masked steps), one without validation, a partial last batch
    data = [_samples(rng, n, 8, 3, v) for n, v in ((45, 5), (70, 0), (33, 9))]
    seeds = [11, 12, 13]

    def build(seed):  # as KerasForecaster.build_model seeds a build
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        _private_python_random(seed)
        return build_lstm(hp, 8, 3)

    alone, histories = [], []
    for (xt, yt, xv, yv), seed in zip(data, seeds):
        model = build(seed)
        histories.append(train_epochs(model, xt, yt, xv, yv, 16, 3, seed))
        alone.append(model)
    stacked = [build(seed) for seed in seeds]
    got = train_stacked(stacked, data, 16, 3, seeds, chunk=2)
    probe = rng.random((20, 8, 1), dtype="float32")
    for a, b, h_alone, h_stacked in zip(alone, stacked, histories, got):
        np.testing.assert_allclose(b.predict_on_batch(probe), a.predict_on_batch(probe), atol=1e-6)
        assert h_stacked.keys() == h_alone.keys()
        for k in h_alone:
            np.testing.assert_allclose(h_stacked[k], h_alone[k], rtol=1e-5)
    # and they are not all the same model: each has its own samples and seed
    assert not np.allclose(stacked[0].predict_on_batch(probe), stacked[1].predict_on_batch(probe))


def test_fit_stacked_gives_each_forecaster_the_forecasts_of_its_own_fit():
    """The strategy's own seam, with features, a QLIKE loss (extra target columns) and validation samples."""
    from strategies.keras.stacked import fit_stacked
    from strategies.lstm import LstmParams

    from .test_tuning import series_of

    params = LstmParams.model_validate(
        {
            **TINY_LSTM,
            "features": ["rv", {"rv_mean": [6]}, "hour_of_day"],
            "loss": "qlike",
            "epochs": 2,
            "validation_split": 0.2,
        }
    )
    series = series_of(400, seed=4)
    windows = [series.slice(0, n) for n in (200, 260, 330)]
    alone = [params.build(seed) for seed in (1, 2, 3)]
    infos = [f.fit(w, 4) for f, w in zip(alone, windows)]
    stacked = [params.build(seed) for seed in (1, 2, 3)]
    got = fit_stacked(stacked, windows, 4)
    ends = np.arange(340, 400)
    for a, b, info, info_b in zip(alone, stacked, infos, got):
        np.testing.assert_allclose(b.forecast_batch(series, ends, 4), a.forecast_batch(series, ends, 4), rtol=1e-5)
        assert info_b.samples == info.samples
        np.testing.assert_allclose(info_b.val_loss, info.val_loss, rtol=1e-4)
    short = fit_stacked([params.build(9)], [series.slice(0, 15)], 4)  # too few samples: its own failure
    assert type(short[0]).__name__ == "FailedRetrain"


def test_a_group_too_big_for_memory_is_halved_not_trained_alone(monkeypatch):
    """A stacked program that runs out of memory (XLA's RESOURCE_EXHAUSTED) is split in halves until it fits;
    each model still gets its own fit's forecasts, and its record says the size of the program that trained it."""
    import strategies.keras.training as ks
    from strategies.keras.stacked import fit_stacked
    from strategies.lstm import LstmParams

    from .test_tuning import series_of

    params = LstmParams.model_validate({**TINY_LSTM, "epochs": 2})
    series = series_of(300, seed=2)
    windows = [series.slice(0, n) for n in (150, 170, 190, 210, 230)]
    alone = [params.build(seed) for seed in range(5)]
    for f, w in zip(alone, windows):
        f.fit(w, 4)
    real, tried = ks.train_stacked, []

    def small_device(models, *args, **kwargs):
        tried.append(len(models))
        if len(models) > 2:
            raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1.2GiB")
        return real(models, *args, **kwargs)

    monkeypatch.setattr(ks, "train_stacked", small_device)
    stacked = [params.build(seed) for seed in range(5)]
    got = fit_stacked(stacked, windows, 4)
    assert tried == [5, 2, 3, 1, 2] and [g.extra["stacked"] for g in got] == [2, 2, 1, 2, 2]
    ends = np.arange(240, 300)
    for a, b in zip(alone, stacked):
        np.testing.assert_allclose(b.forecast_batch(series, ends, 4), a.forecast_batch(series, ends, 4), rtol=1e-5)


def test_groups_are_equal_params_in_runs_of_at_most_n_by_window_length(minute_file, tmp_path):
    from backtester.core.series import BarSeries
    from backtester.engine import Settings, Walk, chains
    from backtester.plan import make_plan
    from backtester.rv import prepare_bars

    raw = base_config(
        minute_file, tmp_path, lstm={**TINY_LSTM, "repeats": 2}, wide={**TINY_LSTM, "memory": 14}, har={"type": "har"}
    )
    raw["backtest"]["end"] = "2024-01-31 00:00"
    cfg = parse_config(raw)
    bars = prepare_bars(cfg.data).bars
    plan = make_plan(cfg, bars.index)
    specs = cfg.run_strategies()
    walk = Walk(plan, specs, BarSeries.from_frame(bars), Settings(0), tmp_path)
    params = {s.key: specs[s.strategy].params for s in plan.segments()}
    jobs = chains(walk, params)
    grouped = stack_jobs(jobs, 3)
    stacks = [j for j in grouped if isinstance(j, StackJob)]
    lone = [j for j in grouped if not isinstance(j, StackJob)]
    assert {j.segments[0].strategy for j in lone} >= {"har"}  # a baseline never stacks
    assert sorted(s.key for j in grouped for s in j.segments) == sorted(s.key for s in plan.segments())
    for job in stacks:
        assert 2 <= len(job.members) <= 3
        assert len({m.params[0].model_dump_json() for m in job.members}) == 1  # one architecture per program
        lengths = [s.window.stop - s.window.start for s in job.segments]
        assert lengths == sorted(lengths)
    lstm_members = {s.key for j in stacks for s in j.segments if s.strategy.startswith("lstm#")}
    assert lstm_members == {s.key for s in plan.segments() if s.strategy.startswith("lstm#")}  # seeds stack together
    assert stack_jobs(jobs, 1) == jobs
    equal = [j for j in stack_jobs(jobs, 16, equal_windows=True) if isinstance(j, StackJob)]  # auto on a CPU
    retrains = {s.retrain_time for s in plan.segments() if s.strategy.startswith("lstm#")}
    assert len(equal) == len(retrains) and len(retrains) > 1
    for job in equal:  # a retrain's two seeds, nothing masked; another architecture or retrain never joins
        assert len(job.members) == 2 and all(s.strategy.startswith("lstm#") for s in job.segments)
        assert len({s.window.stop - s.window.start for s in job.segments}) == 1
    from strategies.keras.imported import ImportedParams
    from strategies.lstm import LstmParams

    assert LstmParams().stacks() and not LstmParams(jit_compile=False).stacks()
    assert LstmParams(warm_start={"epochs": 1}).stacks()  # warm chains stack in lockstep (below)
    assert not ImportedParams.model_construct().stacks()  # the notebook's saved model is not retrained here
    assert split_even(list(range(5)), 2) == [[0, 1, 2], [3, 4]]


def test_a_stacked_run_equals_the_unstacked_run_and_does_not_depend_on_workers(minute_file, tmp_path):
    raw = base_config(
        minute_file,
        tmp_path,
        lstm={**TINY_LSTM, "repeats": 2, "epochs": 2, "validation_split": 0.2},
        warm={**TINY_LSTM, "repeats": 2, "epochs": 2, "warm_start": {"epochs": 1}},  # chains in lockstep
        har={"type": "har"},
    )
    raw["backtest"]["end"] = "2024-01-31 00:00"
    raw["execution"] = {"stack": "off"}
    alone = run(parse_config(raw))
    raw["execution"] = {"stack": 3}
    said = []
    stacked = run(parse_config(raw), force=True, fresh=True, log=said.append)  # fresh: not the unstacked run's
    assert "execution: stacked training of lstm, warm: up to 3 fits per compiled program" in said
    assert stacked.manifest["segments"]["computed"] == stacked.manifest["segments"]["total"]
    a, b = alone.forecasts, stacked.forecasts
    pd.testing.assert_frame_equal(a.drop(columns="forecast"), b.drop(columns="forecast"))
    assert np.max(np.abs(a["forecast"].to_numpy() - b["forecast"].to_numpy())) < STACK_ATOL
    assert not a[a["strategy"] == "lstm"]["forecast"].equals(a[a["strategy"] == "lstm#1"]["forecast"])
    cols = ["strategy", "model_version", "status", "samples"]
    pd.testing.assert_frame_equal(alone.retrains[cols], stacked.retrains[cols])
    np.testing.assert_allclose(stacked.retrains["train_loss"], alone.retrains["train_loss"], rtol=1e-4)
    assert stacked.manifest["execution"]["stack"] == 3 and alone.manifest["execution"]["stack"] == 1
    raw["execution"] = {"stack": 3, "jobs": 2}
    raw["name"] = "two"
    two = run(parse_config(raw), fresh=True)
    assert two.manifest["segments"]["reused"] == 0
    pd.testing.assert_frame_equal(two.forecasts, b, check_exact=True)  # the groups do not depend on the workers
    from backtester.audit import audit

    details = stacked.retrains[stacked.retrains["strategy"] == "warm#1"]["details"].map(json.loads)
    assert [d.get("started_from") for d in details] == [None, 1, 2] and all(d["stacked"] == 2 for d in details)
    assert stacked.retrains[stacked.retrains["strategy"] == "warm#1"]["stacked"].tolist() == [2, 2, 2]
    assert (alone.retrains["stacked"] == 0).all() and (
        stacked.retrains[stacked.retrains["strategy"] == "har"]["stacked"] == 0
    ).all()
    report = audit(stacked.out_dir, sample=1, only=["lstm", "warm"])  # recomputed in their stacked groups
    assert report.ok, "\n".join(report.lines())
    exact = [c for c in report.checks if c.check in ("truncation", "poison")]
    assert exact and all("allowed 1e-12" in c.detail for c in exact), "\n".join(report.lines())


def test_the_audit_reads_how_a_fit_was_stacked_from_its_typed_field(tmp_path):
    """FitRecord.stacked, not a search of the JSON details; a run from before the field: its details' "stacked";
    a segment record written before the field reads as alone."""
    from backtester.audit.run import AuditedRun
    from backtester.core.schedule import TrainWindow
    from backtester.segment import read_segment, segment_paths
    from backtester.work import ALONE, Segment

    def run_with(retrains: pd.DataFrame) -> AuditedRun:
        return AuditedRun(tmp_path, None, {}, None, None, None, pd.DataFrame(), retrains, {})

    details = json.dumps({"stacked": 2})
    two = run_with(
        pd.DataFrame({"strategy": ["a", "b"], "model_version": 1, "details": [details] * 2, "stacked": [2, 0]})
    )
    assert two.trained_stacked("a") and two.program_sizes("a") == {1: 2}
    assert not two.trained_stacked("b")  # the typed field, not the details, says how it trained
    older = run_with(pd.DataFrame({"strategy": ["a", "c"], "model_version": 1, "details": [details, "{}"]}))
    assert older.trained_stacked("a") and not older.trained_stacked("c")  # a run from before the field: details
    t = pd.Timestamp("2024-01-01", tz="UTC")
    seg = Segment("a", 1, t, TrainWindow(t, 0, 1), 1, 1, 1)
    rows, record = segment_paths(tmp_path, seg)
    rows.parent.mkdir(parents=True)
    pd.DataFrame({"x": []}).to_parquet(rows)
    old = {
        "strategy": "a",
        "model_version": 1,
        "retrain_time": str(t),
        "window_start": None,
        "window_end": None,
        "train_bars": 0,
        "samples": 0,
        "train_loss": 0.0,
        "val_loss": 0.0,
        "seconds": 0.0,
        "status": "ok",
        "seed": 1,
        "details": details,
        "artifact": None,
        "asset": "",
        "fit_seconds": 0.0,
        "predict_seconds": 0.0,
    }
    record.write_text(json.dumps(old))
    assert read_segment(tmp_path, seg).record.stacked == ALONE


def test_stack_auto_is_measured_per_device_and_threads():
    """auto: 32 of any windows on an accelerator; on a CPU, 16 of one window length on one-thread workers,
    alone on several threads (bench/README.md, "Stacked training"); trials of a search stack on a CPU anyway."""
    from backtester.config import STACK_AUTO_ACCELERATOR, STACK_AUTO_CPU, ExecutionConfig

    auto = ExecutionConfig()
    assert auto.stack_size("jax", accelerator=True, threads=8) == (STACK_AUTO_ACCELERATOR, False)
    assert auto.stack_size("jax", threads=1) == (STACK_AUTO_CPU, True)
    assert auto.stack_size("jax", threads=2)[0] == 1 and auto.trial_stack("jax") == STACK_AUTO_CPU
    assert auto.stack_size("tensorflow", threads=1)[0] == 1 and auto.trial_stack("tensorflow") == 1
    assert ExecutionConfig(stack=5).stack_size("jax", threads=2) == (5, False)
    assert ExecutionConfig(stack="off").trial_stack("jax") == 1


def test_bad_stack_values_are_one_line(minute_file, tmp_path):
    raw = base_config(minute_file, tmp_path, lstm=TINY_LSTM)
    raw["execution"] = {"stack": 0}
    assert_run_refused(raw, tmp_path, "execution.stack")
    raw["execution"] = {"stack": "sometimes"}
    with pytest.raises(ConfigError, match="execution.stack"):
        parse_config(raw)


def test_stacked_warm_chains_resume_each_from_its_own_last_model(minute_file, tmp_path):
    """Warm-start chains of two seeds stack in lockstep; killed with one chain a retrain behind the other,
    the same command trains only what is missing, each chain continuing its own last saved model."""
    import os

    from backtester.rundir import stage_dir

    raw = base_config(minute_file, tmp_path, warm={**TINY_LSTM, "repeats": 2, "epochs": 2, "warm_start": {"epochs": 1}})
    raw["backtest"]["end"] = "2024-01-31 00:00"
    raw["execution"] = {"stack": 2}
    first = run(parse_config(raw))
    reference = first.forecasts.copy()
    stage = stage_dir(first.out_dir)
    os.rename(first.out_dir, stage)  # as if killed just before the swap, with warm#2's last retrain not written
    (stage / "segments" / "warm#2" / "0003.json").unlink()
    resumed = run(parse_config(raw))
    assert resumed.manifest["segments"]["reused"] == 5 and resumed.manifest["segments"]["computed"] == 1
    last = resumed.retrains[(resumed.retrains["strategy"] == "warm#2") & (resumed.retrains["model_version"] == 3)]
    assert json.loads(last["details"].iloc[0])["started_from"] == 2  # from its own version 2, reloaded
    pd.testing.assert_frame_equal(reference.drop(columns="forecast"), resumed.forecasts.drop(columns="forecast"))
    assert np.max(np.abs(reference["forecast"].to_numpy() - resumed.forecasts["forecast"].to_numpy())) < STACK_ATOL


TRIAL_SPACE = {
    "units": {"values": [3, 5]},
    "num_layers": 1,
    "dropout": 0.0,
    "memory": {"values": [6, 12, 296]},
    "learning_rate": {"min": 1e-3, "max": 1e-2, "sampling": "log"},
}  # memory 296: too few samples


@pytest.mark.parametrize("objective", ["val_loss", "val_qlike"])
def test_a_random_search_stacked_gives_the_trials_and_scores_of_one_by_one(tmp_path, objective):
    """Trials of one architecture (units and lookback alike, learning rates apart) train in one program; the
    trials, their statuses, scores and the choice equal the one-by-one search's, a failing trial included."""
    from strategies.keras.search import WindowedHyperModel, tune
    from strategies.lstm import LstmParams

    from .test_tuning import series_of

    params = LstmParams.model_validate(
        {**TINY_LSTM, "tuning": {"max_trials": 8, "epochs": 2, "objective": objective, "space": TRIAL_SPACE}}
    )
    best, alone = tune(params, series_of(300), 4, seed=5, directory=tmp_path / "alone")
    sizes = []
    real = WindowedHyperModel.fit_together
    WindowedHyperModel.fit_together = lambda self, hps, prepared: sizes.append(len(hps)) or real(self, hps, prepared)
    try:
        best_stacked, stacked = tune(params, series_of(300), 4, seed=5, directory=tmp_path / "stacked", stack=3)
    finally:
        WindowedHyperModel.fit_together = real
    assert sizes == [3, 3, 2]
    assert best_stacked == best
    pd.testing.assert_frame_equal(stacked.drop(columns="score"), alone.drop(columns="score"))
    np.testing.assert_allclose(stacked["score"], alone["score"], rtol=1e-5)
    assert "FAILED" in set(alone["status"]) and (alone["status"] == "COMPLETED").sum() >= 4
    shapes = [(v["units_0"], v["memory"]) for v in alone["hyperparameters"].map(json.loads)]
    assert len(set(shapes)) < len(shapes)  # some trials did share a program


def test_a_stacked_search_draws_from_the_space_each_build_adds_to(tmp_path):
    """The notebook's default space: a 2-layer trial's build adds ``units_1`` and ``dropout_1`` to the space,
    and the one-by-one search draws every later trial from the grown space. The stacked search records each
    build before drawing the next trial, so it draws the same trials."""
    from strategies.keras.search import tune
    from strategies.lstm import LstmParams

    from .test_tuning import series_of

    params = LstmParams.model_validate({**TINY_LSTM, "tuning": {"max_trials": 5, "epochs": 1}})
    best, alone = tune(params, series_of(200), 4, seed=3, directory=tmp_path / "a")
    best_stacked, stacked = tune(params, series_of(200), 4, seed=3, directory=tmp_path / "b", stack=5)
    values = alone["hyperparameters"].map(json.loads)
    assert values.map(lambda v: v["num_layers"]).tolist().count(2) >= 1 and "units_1" in values.iloc[-1]
    assert best_stacked == best
    pd.testing.assert_frame_equal(stacked.drop(columns="score"), alone.drop(columns="score"))
    np.testing.assert_allclose(stacked["score"], alone["score"], rtol=1e-5)


@pytest.mark.parametrize("tuner", ["bayesian", "hyperband"])
def test_bayesian_and_hyperband_run_trial_by_trial_under_stack(tmp_path, tuner):
    """Each of their trials depends on the ones before it (scores; checkpoints): asked to stack, they run one by
    one, with the same trials as unstacked."""
    from strategies.keras.search import tune
    from strategies.lstm import LstmParams

    from .test_tuning import series_of

    space = {**TRIAL_SPACE, "memory": 12}
    params = LstmParams.model_validate(
        {**TINY_LSTM, "tuning": {"tuner": tuner, "max_trials": 3, "epochs": 2, "space": space}}
    )
    best, alone = tune(params, series_of(300), 4, seed=5, directory=tmp_path / "a")
    best_stacked, stacked = tune(params, series_of(300), 4, seed=5, directory=tmp_path / "b", stack=4)
    assert best == best_stacked and (alone["status"] == "COMPLETED").all() and len(alone) >= 2
    pd.testing.assert_frame_equal(stacked, alone, check_exact=True)


def test_a_run_stacks_its_tuning_trials_with_the_trials_of_the_unstacked_run(minute_file, tmp_path):
    tuned = {
        **TINY_LSTM,
        "tuning": {"max_trials": 4, "epochs": 1, "space": {**TRIAL_SPACE, "memory": 12, "units": {"values": [3]}}},
    }
    raw = base_config(minute_file, tmp_path, lstm=tuned)
    raw["backtest"]["end"] = "2024-01-24 00:00"
    raw["execution"] = {"stack": "off"}
    alone = run(parse_config(raw))
    raw["execution"] = {"stack": 4}
    stacked = run(parse_config(raw), force=True, fresh=True)
    a, b = (pd.read_parquet(r.out_dir / "tuning.parquet") for r in (alone, stacked))
    cols = ["strategy", "model_version", "trial", "status", "best", "hyperparameters"]
    assert len(a) == 4 and a["best"].sum() == 1
    pd.testing.assert_frame_equal(b[cols], a[cols])
    np.testing.assert_allclose(b["score"], a["score"], rtol=1e-5)
    assert (
        np.max(np.abs(alone.forecasts["forecast"].to_numpy() - stacked.forecasts["forecast"].to_numpy())) < STACK_ATOL
    )


def test_trials_share_a_program_only_where_they_compile_alike():
    """Learning rates apart (optimizer state), the same builder, values and model share one key; another size,
    another key; a model whose config cannot be read (a subclassed model) trains alone."""
    from types import SimpleNamespace

    from strategies.keras.builder import fixed_hyperparameters
    from strategies.keras.runtime import keras_module
    from strategies.keras.search import WindowedHyperModel
    from strategies.lstm import LstmParams, build_lstm

    stub = SimpleNamespace(params=LstmParams())

    def key(k, **values):
        hp = fixed_hyperparameters({**LstmParams(layers=[{"units": 4, "dropout": 0.0}]).fixed_values(), **values})
        keras_module().backend.clear_session()  # as each trial's build (WindowedHyperModel.prepare)
        return WindowedHyperModel.program_key(stub, hp, build_lstm(hp, 12, 4), k)

    assert key(0, learning_rate=0.001) == key(1, learning_rate=0.005)
    assert key(0, units_0=4) != key(1, units_0=8)
    hp = fixed_hyperparameters(LstmParams().fixed_values())
    model = build_lstm(hp, 12, 4)
    model.get_config = lambda: (_ for _ in ()).throw(NotImplementedError("a subclassed model"))
    assert WindowedHyperModel.program_key(stub, hp, model, 3) == "alone:3"
