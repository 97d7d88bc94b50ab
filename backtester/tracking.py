"""Experiment tracking (issue 30, item 5): every finished run logged to MLflow, an optional extra
(``pip install -e ".[mlflow]"``; ``tracking: mlflow`` in the config, or ``backtest run --track``).

One MLflow run per backtest, named after the config, in the experiment ``tracking.experiment`` (default: the
config's name), with:

- **parameters**: the resolved config, flattened (``backtest.horizon``, ``strategies.lstm.epochs``, ...);
- **tags**: ``config_id``, ``data_sha256`` (one per asset in a universe: ``data_sha256.<asset>``), ``git_commit``
  (the manifest's), ``backend``, ``results`` (the folder), ``segments`` (computed and reused from the store) and
  ``audit`` (PASS or FAIL, set by ``backtest audit`` on a tracked run: :func:`tag_audit`);
- **metrics**: per strategy its loss averaged over horizons and assets (``qlike.lstm``), and the DM p-value
  against the benchmark over all horizons (``dm_p.lstm``; pooled across assets in a universe);
- **artifacts**: ``report.md``, ``report.html``, the Parquet tables and the figures;
- one **child run** per asset × strategy (``mlflow.parentRunId``) with per-horizon metrics (``qlike_h01`` ...,
  ``mse_h01`` ..., ``mae_h01`` ...) and, where the run has them, what the forecasts are worth (``utility``,
  ``realized_vol``, ``var_exceeded_1pct``).

The default store is a SQLite file beside the results, ``<output.dir>/mlflow.db`` (MLflow's own default
since 3.7 is a local SQLite file too), its artifacts in ``<output.dir>/mlartifacts/``; ``tracking.uri`` names
any other (``http://host:5000``, ``sqlite:///path``). A store that cannot be reached is said in one line and the
run goes on untracked; with ``tracking.strict: true`` the run is refused before it starts instead.

Examples
--------
>>> flatten({"a": {"b": 1, "c": [1, 2]}, "d": None})
{'a.b': '1', 'a.c': '[1, 2]', 'd': 'None'}
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from .core.errors import ConfigError
from .layout import TRACKING

ARTIFACTS = ("report.md", "report.html")


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested mapping as ``a.b`` keys with text values (MLflow's parameters)."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = str(v)
    return out


def store_uri(cfg) -> str:
    """The tracking store: ``tracking.uri``, else ``sqlite:///<output.dir>/mlflow.db``."""
    if cfg.tracking.uri:
        return cfg.tracking.uri
    return f"sqlite:///{(Path(cfg.output.dir) / 'mlflow.db').resolve()}"


def preflight(cfg, log: Callable[[str], None]) -> str | None:
    """Before the run: the store URI where tracking is asked for and can be done, else None (said in one line).
    MLflow missing, or a store that cannot be reached with ``strict``, is a :class:`ConfigError`."""
    if cfg.tracking is None:
        return None
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError("tracking: MLflow is not installed; pip install -e '.[mlflow]', or drop tracking") from None
    quiet()
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")  # a server that is not there: said in seconds
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    uri = store_uri(cfg)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        MlflowClient(uri).search_experiments(max_results=1)
    except Exception as exc:  # any failure to reach the store: MLflow raises many kinds
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        if cfg.tracking.strict:
            raise ConfigError(
                f"tracking.uri: cannot reach the MLflow store at {uri} ({first}); start it, fix the URI, or set "
                "tracking.strict: false to run untracked"
            ) from None
        log(f"tracking skipped: cannot reach the MLflow store at {uri} ({first}); the run goes on untracked")
        return None
    return uri


def track(cfg, out_dir: Path, uri: str, log: Callable[[str], None]) -> str:
    """Log the finished run in ``out_dir`` to the store at ``uri``; returns the parent run's id."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    name = cfg.tracking.experiment or cfg.name
    found = client.get_experiment_by_name(name)
    where = (Path(cfg.output.dir) / "mlartifacts").resolve().as_uri()
    experiment = found.experiment_id if found else client.create_experiment(name, artifact_location=where)
    parent = client.create_run(experiment, run_name=cfg.name, tags=run_tags(cfg, out_dir)).info.run_id
    try:
        from mlflow.entities import Metric, Param

        params = [Param(k, v[:6000]) for k, v in flatten(cfg.resolved()).items()]
        for i in range(0, len(params), 100):
            client.log_batch(parent, params=params[i : i + 100])
        metrics = [Metric(k, v, 0, 0) for k, v in headline(cfg, out_dir).items()]
        client.log_batch(parent, metrics=metrics)
        for path in sorted(out_dir.iterdir()):
            if path.is_file() and (path.name in ARTIFACTS or path.suffix in (".parquet", ".png")):
                client.log_artifact(parent, str(path))
        children = child_metrics(out_dir)
        for (asset, strategy), values in children.items():
            tags = {"mlflow.parentRunId": parent, "asset": asset, "strategy": strategy}
            child = client.create_run(experiment, run_name=f"{asset}/{strategy}" if asset else strategy, tags=tags)
            client.log_batch(child.info.run_id, metrics=[Metric(k, v, 0, 0) for k, v in values.items()])
            client.set_terminated(child.info.run_id)
        client.set_terminated(parent)
    except BaseException:
        client.set_terminated(parent, "FAILED")
        raise
    (out_dir / TRACKING).write_text(json.dumps({"uri": uri, "experiment": name, "run_id": parent}, indent=1))
    log(f"tracked in MLflow: run {parent} (experiment {name!r}, {len(children)} child runs) at {uri}")
    return parent


def run_tags(cfg, out_dir: Path) -> dict[str, str]:
    manifest = json.loads((out_dir / "manifest.json").read_text())
    tags = {"config_id": cfg.config_id(), "backend": cfg.backend, "results": str(out_dir.resolve())}
    data = manifest.get("data", {})
    assets = data.get("assets") if isinstance(data, dict) else None
    if isinstance(assets, dict):
        tags.update({f"data_sha256.{a}": str(v.get("sha256")) for a, v in assets.items() if isinstance(v, dict)})
    elif isinstance(data, dict) and data.get("sha256"):
        tags["data_sha256"] = str(data["sha256"])
    if manifest.get("git_commit"):
        tags["git_commit"] = str(manifest["git_commit"])
    segments = manifest.get("segments", {})
    tags["segments"] = f"{segments.get('computed', '?')} computed, {segments.get('reused', '?')} reused from the store"
    return tags


def tag_audit(run_dir: Path, status: str, log: Callable[[str], None]) -> None:
    """After ``backtest audit``: the run's MLflow run (``tracking.json``, where it was tracked) gets the tag
    ``audit`` = PASS or FAIL; a store that cannot be reached is said in one line."""
    record = run_dir / TRACKING
    if not record.is_file():
        return
    where = json.loads(record.read_text())
    try:
        from mlflow.tracking import MlflowClient

        quiet()
        MlflowClient(where["uri"]).set_tag(where["run_id"], "audit", status)
    except Exception as exc:
        log(f"audit: could not tag the MLflow run {where.get('run_id')} ({type(exc).__name__}: {exc})")
        return
    log(f"audit: tagged MLflow run {where['run_id']} audit={status}")


def quiet() -> None:
    """MLflow's INFO lines (creating its tables) off: the run says what matters in one line."""
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def headline(cfg, out_dir: Path) -> dict[str, float]:
    """Per strategy: each loss averaged over horizons and assets, and the DM p-value against the benchmark over
    all horizons (pooled in a universe)."""
    out: dict[str, float] = {}
    scores = pd.read_parquet(out_dir / "metrics.parquet")
    for strategy, part in scores.groupby("strategy", observed=True):
        for loss in ("qlike", "mse", "mae"):
            out[f"{loss}.{strategy}"] = float(part.groupby("horizon")[loss].mean().mean())
    tests = pd.read_parquet(out_dir / "tests.parquet")
    bench = cfg.evaluation.benchmark
    several = "asset" in tests and (tests["asset"] == "all").any()
    dm = tests[(tests["test"] == ("pooled_dm" if several else "dm")) & (tests["horizon"] == 0)]
    for r in dm[dm["against"] == bench].itertuples():
        out[f"dm_p.{r.model}"] = float(r.pvalue)
    return {k: v for k, v in out.items() if v == v}  # NaN aside


def child_metrics(out_dir: Path) -> dict[tuple[str, str], dict[str, float]]:
    """Per asset and strategy: each loss per horizon (``qlike_h01``) and, where the run has them, utility,
    realized volatility and the first level's VaR exceedance rate."""
    scores = pd.read_parquet(out_dir / "metrics.parquet")
    out: dict[tuple[str, str], dict[str, float]] = {}
    for (asset, strategy), part in scores.groupby(["asset", "strategy"], observed=True):
        values = {
            f"{loss}_h{int(h):02d}": float(v)
            for h, row in part.set_index("horizon").iterrows()
            for loss, v in row[["qlike", "mse", "mae"]].items()
        }
        out[str(asset), str(strategy)] = values
    eco_path = out_dir / "economic.parquet"
    if eco_path.is_file():
        eco = pd.read_parquet(eco_path)
        picks = {("utility", "utility"): "utility", ("target", "realized_vol"): "realized_vol"}
        for r in eco.itertuples():
            key = (str(r.asset), str(r.strategy))
            if key not in out:
                continue
            if (r.section, r.metric) in picks:
                out[key][picks[r.section, r.metric]] = float(r.value)
            elif r.section == "risk" and r.metric == "exceeded" and r.horizon == 1:
                out[key].setdefault(f"var_exceeded_{r.level * 100:g}pct", float(r.value))
    return {k: {m: v for m, v in vals.items() if v == v} for k, vals in out.items()}
