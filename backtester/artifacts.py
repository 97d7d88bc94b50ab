"""Reload a retrain's artifact and reproduce its forecasts.

Every retrain of a run with ``output.save_models: true`` leaves
``results/<name>/models/[<asset>/]<strategy>/<model_version>/``: ``artifact.json`` (what it
is, its training window, the data fingerprint, the issue times it served) and
what the strategy saves (a Keras model: ``model.keras``, ``scaler.json``,
``config.json``, ``history.json``, ``summary.txt``; a baseline: ``params.json``).

Examples
--------
>>> art = load_artifact("results/weekly/models/lstm/3")            # doctest: +SKIP
>>> art.strategy.forecast(history, art.horizon)                    # doctest: +SKIP
>>> rows = predict("results/weekly/models/lstm/3")                 # doctest: +SKIP
>>> rows.attrs["max_abs_diff"]                                     # doctest: +SKIP
0.0
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .core.errors import ArtifactError, BacktestError
from .layout import ARTIFACT, ArtifactHome, locate_artifact, read_artifact
from .recorder import ForecastRecorder
from .segment import Segment, segment_forecasts


@dataclass
class Artifact:
    folder: Path
    meta: dict[str, Any]
    strategy: Any  # a fitted strategy, restored
    params: Any

    @property
    def horizon(self) -> int:
        return int(self.meta["horizon"])

    @property
    def home(self) -> ArtifactHome:
        """The run and the owner (asset, strategy) of the artifact (``models/[<asset>/]<strategy>/<version>/``)."""
        return locate_artifact(self.folder)

    @property
    def run_dir(self) -> Path:
        """``results/<name>/`` (the artifact lives in ``models/[<asset>/]<strategy>/<version>/`` under it)."""
        return self.home.run_dir


def read_meta(folder: str | Path) -> dict[str, Any]:
    """``artifact.json`` of ``folder``, checked whole (:func:`backtester.layout.read_artifact`): a field
    missing or of the wrong kind is an :class:`ArtifactError` naming the file."""
    meta = read_artifact(Path(folder)).raw
    for key in ("data", "issued"):
        if not isinstance(meta.get(key), dict):
            raise ArtifactError(f"{Path(folder) / ARTIFACT}: incomplete (no {key!r}); the artifact is damaged")
    return meta


def load_artifact(folder: str | Path) -> Artifact:
    """Rebuild the strategy from the artifact's params and restore its fitted state."""
    from strategies import validate_params

    folder = Path(folder)
    meta = read_meta(folder)
    _, params = validate_params(
        meta["strategy"], {"type": meta["type"], **meta["params"]}, source=str(folder / ARTIFACT)
    )
    if not meta.get("restorable", False):
        raise ArtifactError(
            f"{folder}: strategy {meta['strategy']!r} ({meta['type']}) does not save its fitted state "
            "(it has no save/load methods), so it cannot be reloaded"
        )
    missing = [f for f in meta.get("files", []) if not (folder / f).exists()]
    if missing:
        raise ArtifactError(f"{folder}: artifact is incomplete, missing {', '.join(missing)}; rerun the backtest")
    strategy = params.build(int(meta["seed"]))
    try:
        strategy.load(folder)
    except BacktestError:
        raise
    except Exception as exc:
        raise ArtifactError(f"{folder}: could not load the saved model ({type(exc).__name__}: {exc})") from None
    return Artifact(folder, meta, strategy, params)


def run_bars(home: ArtifactHome, data_path: str | Path | None = None, backend: str | None = None):
    """The RV bars of the artifact's asset, rebuilt from its run's config (``data_path``: that asset's file)."""
    from .config import load_config
    from .rv import prepare_bars

    run, asset = home.run, home.owner.asset
    overrides = [f"data.path={data_path}"] if data_path is not None and not asset else []
    overrides += [f"backend={backend}"] if backend is not None else []
    cfg = load_config(run.config, overrides)
    if not asset:
        return prepare_bars(cfg.data), cfg.data.path
    found = {a.name: a.cfg.data for a in cfg.universe()}
    if asset not in found:
        raise ArtifactError(
            f"{run.config}: the run has no asset {asset!r} (its assets: {', '.join(found)}); "
            "the artifact must stay inside its run directory"
        )
    data = found[asset] if data_path is None else found[asset].model_copy(update={"path": Path(data_path)})
    return prepare_bars(data), data.path


def predict(folder: str | Path, data_path: str | Path | None = None, backend: str | None = None) -> pd.DataFrame:
    """Reload an artifact and forecast at every issue time it served in its run.

    Returns the rows (same columns as ``forecasts.parquet`` without ``actual``);
    ``rows.attrs`` holds ``recorded`` (rows of the run's forecasts.parquet for this
    model and period) and ``max_abs_diff`` against them (0.0 = reproduced exactly).
    """
    from .core.series import BarSeries

    folder = Path(folder)
    read_meta(folder)  # a bad folder is named before any data is read
    home = locate_artifact(folder)
    prepared, path = run_bars(home, data_path, backend)  # the CLI chose the backend before Keras loaded
    art = load_artifact(folder)
    if prepared.fingerprint != art.meta["data"]["sha256"]:
        raise ArtifactError(
            f"{path}: not the data this model was trained on "
            f"(sha256 {prepared.fingerprint[:12]} vs {art.meta['data']['sha256'][:12]}); "
            "pass the original file with --data"
        )
    bars = prepared.bars.index
    series = BarSeries.from_frame(prepared.bars)
    if art.meta["issued"]["count"]:
        first = int(bars.searchsorted(pd.Timestamp(art.meta["issued"]["first"])))
        last = int(bars.searchsorted(pd.Timestamp(art.meta["issued"]["last"])))
    else:  # a model from `backtest train`: its forecast from the bar it was trained at, into the future
        return _future_rows(art, series, bars, int(bars.searchsorted(pd.Timestamp(art.meta["retrain_time"]))))
    trained = pd.Timestamp(art.meta["trained_through"]).value
    recorder = ForecastRecorder(bars)
    seg = Segment(
        art.meta["strategy"],
        int(art.meta["model_version"]),
        pd.Timestamp(art.meta["retrain_time"]),
        None,
        first,
        last + 1,
        art.horizon,
        asset=home.owner.asset,
    )
    for i, values in zip(range(first, last + 1), segment_forecasts(seg, art.strategy, series.upto(last + 1))):
        recorder.add(art.meta["strategy"], i, values, int(art.meta["model_version"]), trained)
    rows = recorder.frame()
    recorded = recorded_rows(art, rows, home)
    rows.attrs["recorded"] = len(recorded)
    rows.attrs["max_abs_diff"] = _max_abs_diff(rows, recorded)
    return rows


def _future_rows(art: Artifact, series, bars: pd.DatetimeIndex, at: int) -> pd.DataFrame:
    """The forecast issued at bar ``at`` for horizons 1..H, targets on the bar grid's step (may lie past the data)."""
    from .recorder import COLUMNS

    issued = bars[at]
    step = pd.Series(bars[1:] - bars[:-1]).median() if len(bars) > 1 else pd.Timedelta("1h")
    values = np.asarray(art.strategy.forecast(series.upto(at + 1), art.horizon), dtype="float64")
    rows = pd.DataFrame(
        {
            "strategy": art.meta["strategy"],
            "issued_at": issued,
            "target_time": [issued + (h + 1) * step for h in range(art.horizon)],
            "horizon": np.arange(1, art.horizon + 1),
            "forecast": values,
            "model_version": int(art.meta["model_version"]),
            "trained_through": pd.Timestamp(art.meta["trained_through"]),
        }
    )[COLUMNS]
    rows.attrs["recorded"], rows.attrs["max_abs_diff"] = 0, 0.0
    return rows


def recorded_rows(art: Artifact, rows: pd.DataFrame, home: ArtifactHome | None = None) -> pd.DataFrame:
    """The rows the run recorded for this model over the period of ``rows`` (of its asset, in a universe)."""
    home = home or art.home
    path = home.run.forecasts
    if not path.is_file() or rows.empty:
        return rows.iloc[:0]
    f = pd.read_parquet(path)
    if home.owner.asset and "asset" in f:
        f = f[f["asset"] == home.owner.asset]
    sel = f[
        (f["strategy"] == art.meta["strategy"])
        & (f["model_version"] == int(art.meta["model_version"]))
        & (f["issued_at"] >= rows["issued_at"].min())
        & (f["issued_at"] <= rows["issued_at"].max())
    ]
    return sel.drop(columns=["actual", "asset"], errors="ignore").reset_index(drop=True)


def _max_abs_diff(rows: pd.DataFrame, recorded: pd.DataFrame) -> float:
    if len(recorded) != len(rows):
        return float("nan")
    keys = ["issued_at", "horizon"]
    a = rows.sort_values(keys)["forecast"].to_numpy()
    b = recorded.sort_values(keys)["forecast"].to_numpy()
    return float(np.max(np.abs(a - b))) if len(a) else 0.0
