"""A finished run rebuilt for the audit: its config, bars (sha256 checked against the manifest), plan,
stored rows, fit records and each segment's params (:func:`load_run`), one :class:`AuditedRun` per asset."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.errors import AuditError, RunError
from ..core.names import base_name
from ..core.series import BarSeries
from ..layout import BEST, CONFIG, FORECASTS, RETRAINS, Manifest, RunDir
from ..layout import read_manifest as read_run_manifest
from ..tuning import TuneResult, params_by_segment, tune_segment, tuning_dir
from ..work import ALONE


@dataclass
class AuditedRun:
    """A finished run, rebuilt: its config, bars, plan, stored rows and fit records."""

    path: Path
    cfg: Any
    manifest: Manifest
    series: BarSeries
    bars: pd.DatetimeIndex
    plan: Any
    forecasts: pd.DataFrame
    retrains: pd.DataFrame
    specs: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)  # segment key -> params (tuned values fixed)
    asset: str = ""  # the asset of a universe this part of the run is ("" for a run on one data.path)
    peers: list[AuditedRun] = field(
        default_factory=list
    )  # every asset's part of the run (a global model's recomputation)

    @property
    def models(self) -> Path:
        """Where this asset's artifact folders are: ``models/`` (``models/<asset>/`` in a universe)."""
        return RunDir(self.path).models_of(self.asset)

    def program_sizes(self, strategy: str) -> dict[int, int]:
        """Per model version of ``strategy``: how many models the program that trained it held
        (:attr:`FitRecord.stacked <backtester.work.FitRecord.stacked>`; ``ALONE`` for a fit alone). A run
        written before that field says it in each record's ``details`` JSON (``"stacked"``)."""
        mine = self.retrains[self.retrains["strategy"] == strategy]
        if "stacked" in mine:
            sizes = mine["stacked"].astype(int)
        else:
            sizes = mine["details"].map(lambda d: int(json.loads(d or "{}").get("stacked", ALONE)))
        return dict(zip(mine["model_version"].astype(int), sizes))

    def trained_stacked(self, strategy: str) -> bool:
        """Whether a fit record of ``strategy`` says it trained in a stacked program."""
        return any(size > ALONE for size in self.program_sizes(strategy).values())

    def rows(self, strategy: str) -> pd.DataFrame:
        f = self.forecasts
        return f[f["strategy"] == strategy]


def _need(path: Path, what: str) -> Path:
    if not path.is_file():
        raise AuditError(
            f"{path}: missing, so {path.parent} is not a finished run ({what}); "
            "pass results/<name> of a finished `backtest run`"
        )
    return path


def read_manifest(run_dir: Path) -> Manifest:
    """The manifest of a complete run in ``run_dir`` (else an :class:`AuditError` that says why)."""
    if not run_dir.is_dir():
        raise AuditError(f"{run_dir}: no such directory; pass results/<name> of a finished `backtest run`")
    manifest_path = _need(RunDir(run_dir).manifest, "no manifest.json")
    try:
        manifest = read_run_manifest(run_dir)
    except RunError as exc:
        raise AuditError(str(exc)) from None
    if not manifest.complete:
        raise AuditError(
            f"{manifest_path}: not the manifest of a complete run (status {manifest.status!r}); run the backtest again"
        )
    return manifest


def load_run(run_dir: Path, backend: str | None = None, only: Iterable[str] = ()) -> list[AuditedRun]:
    """The run's config, bars (sha256 checked against the manifest), plan, rows and fit records: one
    :class:`AuditedRun` per asset (one for a run on one ``data.path``)."""
    from ..config import load_config
    from ..process import choose_backend, setup
    from ..runner import plan_universe

    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    folder = RunDir(run_dir)
    for name in (CONFIG, FORECASTS, RETRAINS):
        _need(folder.file(name), f"no {name}")
    _known_names(folder.config, only)  # before the data is read
    cfg = load_config(folder.config, [f"backend={backend}"] if backend else [], before_strategies=choose_backend)
    forecasts = folder.read_table(FORECASTS)
    forecasts["strategy"] = forecasts["strategy"].astype("string")
    retrains = folder.read_table(RETRAINS)
    for asset in cfg.universe():
        if not Path(asset.cfg.data.path).is_file():
            where = f"data.assets.{asset.name}.path" if asset.name else "data.path"
            raise AuditError(
                f"{asset.cfg.data.path}: the run's data file ({where} in {folder.config}) is "
                "missing; put the original file back at that path"
            )
    runs = []
    for r in plan_universe(cfg):  # the run's plans, a global model's retrains on the schedule it followed
        recorded = manifest.data_of(r.asset.name).sha256
        if r.prepared.fingerprint != recorded:
            raise AuditError(
                f"{r.cfg.data.path}: not the data this run used (sha256 {r.prepared.fingerprint[:12]} vs "
                f"the manifest's {recorded[:12]}); put the run's original data file back at that path"
            )
        mine = lambda f: f[f["asset"] == r.asset.label].drop(columns="asset") if "asset" in f else f  # noqa: E731
        runs.append(
            AuditedRun(
                run_dir,
                r.cfg,
                manifest,
                r.series,
                r.prepared.bars.index,
                r.plan,
                mine(forecasts),
                mine(retrains),
                r.cfg.run_strategies(),
                asset=r.asset.name,
            )
        )
    setup(cfg)  # Keras (where a strategy uses it) on the run's backend, once the input is known to be good
    for run in runs:
        run.peers = runs
        for name, spec in run.specs.items():
            run.params.update(params_by_segment(spec.params, run.plan.segments(name), _tunings(run, name)))
    return runs


def _tunings(run: AuditedRun, name: str) -> dict[str, TuneResult]:
    """A strategy's tunings as the run found them (``best.json``), searched again where none is recorded."""
    out = {}
    for seg in run.plan.segments(name):
        if not seg.tune:
            continue
        path = tuning_dir(run.path, seg) / BEST
        if path.is_file():
            rec = json.loads(path.read_text())
            out[seg.key] = TuneResult(
                seg, rec.get("best"), pd.DataFrame(), float(rec.get("seconds", 0.0)), str(rec.get("status", "ok"))
            )
        else:
            out[seg.key] = tune_segment(seg, run.specs[name].params, run.series, run.cfg.seed, None)
    return out


def _known_names(config: Path, only: list[str]) -> None:
    """Refuse a ``--strategy`` that is not in the run's config (nor a seed member ``name#k`` of one)."""
    import yaml

    if not only:
        return
    try:
        names = list((yaml.safe_load(config.read_text()) or {}).get("strategies") or {})
    except yaml.YAMLError:
        return  # load_config names the problem
    for name in only:
        if name not in names and base_name(name) not in names:
            raise AuditError(
                f"--strategy {name}: no such strategy in {config} (its strategies: {', '.join(names)}); "
                "pass one of those"
            )


def select(run: AuditedRun, only: list[str]) -> list[str]:
    """The strategies to audit, in config order (an ensemble's name stands for its members)."""
    if not only:
        return list(run.specs)
    ensembles = run.cfg.ensembles()
    chosen: list[str] = []
    for name in only:
        if name in run.specs:
            chosen.append(name)
        elif name in ensembles:
            chosen.extend(ensembles[name])
        else:
            known = ", ".join(list(run.cfg.strategies))
            raise AuditError(
                f"--strategy {name}: no such strategy in {RunDir(run.path).config} (its strategies: "
                f"{known}); pass one of those"
            )
    return [n for n in run.specs if n in chosen]
