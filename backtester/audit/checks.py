"""The audit's checks of what a run wrote: training windows and scalers (``windows``, ``scaler``: from
the artifacts, else ``retrains.parquet``) and every forecast row's model (``rows``)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from ..core.targets import to_target
from ..layout import ARTIFACT, read_artifact_json
from ..work import Segment
from .report import Check, outcome
from .run import AuditedRun


def _models(run: AuditedRun, name: str) -> dict[int, dict[str, Any]] | None:
    """A strategy's models by version: each artifact's ``artifact.json`` (None: the run saved none)."""
    folder = run.models / name
    if not run.cfg.output.save_models:
        return None
    out: dict[int, dict[str, Any]] = {}  # a missing folder: every fit of the strategy lacks its artifact
    for meta_path in sorted(folder.glob(f"*/{ARTIFACT}")):
        meta = read_artifact_json(meta_path.parent)
        meta["_folder"] = meta_path.parent
        out[int(meta["model_version"])] = meta
    return out


def window_checks(run: AuditedRun, name: str) -> list[Check]:
    """``windows`` (and ``scaler`` where an artifact holds a fitted scaler) of strategy ``name``."""
    segs = {s.model_version: s for s in run.plan.segments(name)}
    models = _models(run, name)
    problems: list[tuple[pd.Timestamp, str]] = []
    scaler: list[tuple[pd.Timestamp, str]] = []
    fits = run.retrains[(run.retrains["strategy"] == name) & (run.retrains["status"] == "ok")]
    if models is not None:
        for v in sorted(set(fits["model_version"]) - set(models)):
            problems.append((segs[v].retrain_time, f"model {v} fitted but has no artifact"))
        scalers_checked = _artifact_problems(run, segs, models, problems, scaler)
        where = f"{len(models)} artifacts"
    else:
        scalers_checked = 0
        for rec in fits.itertuples():
            seg = segs[int(rec.model_version)]
            problems += _window_problems(
                run,
                seg,
                pd.Timestamp(rec.window_start),
                pd.Timestamp(rec.window_end),
                pd.Timestamp(rec.window_end),
                int(rec.train_bars),
                f"fit {rec.model_version}",
            )
        where = f"{len(fits)} fits in retrains.parquet (no artifacts)"
    out = [
        outcome(
            name,
            "windows",
            problems,
            f"{where}: training windows are the plan's and end at or before their retrain times",
        )
    ]
    if scalers_checked:
        out.append(outcome(name, "scaler", scaler, f"{scalers_checked} scalers saw exactly their training windows"))
    return out


def _artifact_problems(
    run: AuditedRun,
    segs: dict[int, Segment],
    models: dict[int, dict[str, Any]],
    problems: list[tuple[pd.Timestamp, str]],
    scaler: list[tuple[pd.Timestamp, str]],
) -> int:
    """Add each artifact's window problems to ``problems`` and its scaler's to ``scaler``; returns how many
    scalers were checked."""
    sha = run.manifest.data_of(run.asset).sha256
    checked = 0
    for v, meta in models.items():
        seg = segs.get(v)
        retrain = pd.Timestamp(meta["retrain_time"])
        if seg is None or seg.retrain_time != retrain:
            problems.append((retrain, f"artifact {v} is not a retrain of the plan"))
            continue
        end, through = pd.Timestamp(meta["window"]["end"]), pd.Timestamp(meta["trained_through"])
        start, bars = pd.Timestamp(meta["window"]["start"]), int(meta["window"]["bars"])
        problems += _window_problems(run, seg, start, end, through, bars, f"artifact {v}")
        if meta.get("data", {}).get("sha256") != sha:
            problems.append((retrain, f"artifact {v} was trained on other data (sha256)"))
        if (meta["_folder"] / "scaler.json").is_file() and not meta.get("params", {}).get("scaler"):
            checked += 1
            why = _scaler_problem(run, seg, json.loads((meta["_folder"] / "scaler.json").read_text()))
            if why:
                scaler.append((retrain, f"artifact {v}: {why}"))
    return checked


def _window_problems(
    run: AuditedRun, seg: Segment, start, end, through, bars: int, what: str
) -> list[tuple[pd.Timestamp, str]]:
    out = []
    w = seg.window
    if end > seg.retrain_time or through > seg.retrain_time:
        out.append(
            (seg.retrain_time, f"{what} trained through {max(end, through)}, after its retrain time {seg.retrain_time}")
        )
    if (start, end, bars) != (run.bars[w.start], run.bars[w.stop - 1], w.stop - w.start):
        out.append(
            (
                seg.retrain_time,
                f"{what} window {start} .. {end} ({bars} bars) is not the plan's "
                f"{run.bars[w.start]} .. {run.bars[w.stop - 1]} ({w.stop - w.start} bars)",
            )
        )
    return out


def _scaler_problem(run: AuditedRun, seg: Segment, state: dict) -> str | None:
    """Why a saved scaler did not see exactly the training window's bars (None: it did)."""
    train = run.series.slice(seg.window.start, seg.window.stop)
    floor = float(state.get("output_floor", 1e-12))
    values = to_target(train.rv, state.get("target", "rv"), floor)
    seen = int(state.get("n_samples_seen", -1))
    if seen != len(values):
        return f"scaler saw {seen} bars, its training window has {len(values)}"
    if state.get("kind") == "MinMaxScaler":
        pairs = [("data_min", values.min()), ("data_max", values.max())]
    elif state.get("kind") == "StandardScaler":
        pairs = [("mean", values.mean()), ("var", values.var())]
    else:
        return None
    for key, expected in pairs:
        got = state.get(key)
        if got is not None and not np.isclose(float(np.ravel(got)[0]), expected, rtol=1e-9, atol=0.0):
            return f"scaler {key} {float(np.ravel(got)[0]):.6g} is not its training window's {expected:.6g}"
    return None


def rows_check(run: AuditedRun, name: str) -> Check:
    rows = run.rows(name)
    models = _models(run, name)
    segs = {s.model_version: s for s in run.plan.segments(name)}
    if models is not None:
        known = {v: (pd.Timestamp(m["retrain_time"]), pd.Timestamp(m["trained_through"])) for v, m in models.items()}
        source = "artifacts"
    else:
        fits = run.retrains[(run.retrains["strategy"] == name) & (run.retrains["status"] == "ok")]
        known = {
            int(r.model_version): (segs[int(r.model_version)].retrain_time, pd.Timestamp(r.window_end))
            for r in fits.itertuples()
        }
        source = "retrains.parquet"
    problems: list[tuple[pd.Timestamp, str]] = []
    versions = rows["model_version"].astype("int64").to_numpy()
    unknown = ~np.isin(versions, list(known))
    if unknown.any():
        first = rows["issued_at"][unknown].min()
        problems.append((first, f"rows name model {int(versions[unknown][0])}, which the {source} do not have"))
    ok = ~unknown

    def per_row(k: int) -> pd.Series:
        return pd.Series(
            pd.to_datetime([known[v][k] if v in known else pd.NaT for v in versions], utc=True), index=rows.index
        )

    retrain, through = per_row(0), per_row(1)
    for mask, why in (
        (ok & (rows["trained_through"] != through).to_numpy(), "trained_through is not its model's"),
        (ok & (through > rows["issued_at"]).to_numpy(), "its model was trained after it was issued"),
        (ok & (retrain > rows["issued_at"]).to_numpy(), "its model was retrained after it was issued"),
    ):
        if mask.any():
            problems.append((rows["issued_at"][mask].min(), f"a row's {why}"))
    issuing = run.plan.bars[run.plan.first : min(run.plan.stop, len(run.plan.bars) - 1)]  # with a target in the data
    missing = issuing.difference(pd.DatetimeIndex(rows["issued_at"].unique()))
    if len(missing):
        problems.append((missing[0], f"{len(missing)} issue times have no rows"))
    return outcome(
        name,
        "rows",
        problems,
        f"{len(rows):,} rows: model versions and trained_through agree with the "
        f"{source}, none trained after its issue time",
    )


def economic_check(run: AuditedRun, name: str, times: list[pd.Timestamp]) -> Check | None:
    """The run's VaR and ES (``var.parquet``) and targeted positions of ``name`` issued up to each T in ``times``,
    recomputed (:func:`~backtester.evaluation.worth.worth_of`) from its forecasts issued by T on the bars cut at T,
    then poisoned after T: both must equal the run's. None where the run has no ``var.parquet``."""
    from ..evaluation.worth import worth_of

    path = run.path / "var.parquet"
    if not path.is_file():
        return None
    stored = pd.read_parquet(path)
    if "asset" in stored:
        stored = stored[stored["asset"] == (run.asset or stored["asset"].iloc[0])].drop(columns="asset")
    stored = stored[stored["strategy"] == name]
    if not len(stored):
        return None
    ev = run.cfg.evaluation.model_copy(update={"benchmark": None, "mcs_reps": 100})
    ev = ev.model_copy(update={"economic": ev.economic.model_copy(update={"sims": 100})})
    s = run.series
    bars = pd.DataFrame(
        {"rv": np.where(s.observed, s.rv, np.nan), "ret": np.where(s.observed, s.ret, np.nan)}, index=run.bars
    )
    rows = run.rows(name)
    problems: list[tuple[pd.Timestamp, str]] = []
    checked = 0
    for t in times:
        if int((rows["issued_at"] < t).sum()) < 20 * rows["horizon"].nunique():
            continue  # VaR needs 20 one-bar rows (a run's first hours)
        checked += 1
        cut = bars[bars.index <= t]
        junk = bars.copy()
        junk.loc[junk.index > t, ["rv", "ret"]] = np.random.default_rng(0).normal(
            0, 5, (int((junk.index > t).sum()), 2)
        )
        for kind, frame in (("cut", cut), ("poisoned", junk)):
            _, _, _, _, var = worth_of(rows[rows["issued_at"] <= t], frame, ev, run.cfg.backtest.horizon, run.cfg.seed)
            mine = stored[stored["time"] <= t].reset_index(drop=True)  # the bars forecast before T (issued < T)
            got = var[var["time"] <= t].reset_index(drop=True)
            if len(got) != len(mine) or not np.allclose(got[["var", "es"]], mine[["var", "es"]], rtol=1e-12, atol=0):
                problems.append((t, f"VaR/ES issued before T differ when the data are {kind} at T"))
    passed = f"VaR and ES before {checked} issue times equal on data cut and poisoned there"
    return outcome(name, "economic", problems, passed)
