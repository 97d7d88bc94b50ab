"""``backtest compare``: strategies and retraining schemes from one or more runs, side by side.

Runs are compared on their **common forecast rows**: the (issued_at, target_time,
horizon) that every strategy of every run forecast. Runs must share their data
(same sha256). A strategy name used by several runs is labelled ``<run>:<strategy>``.

Writes ``<out>/``: ``comparison.parquet`` (mean losses per strategy and horizon),
``losses.parquet``, ``tests.parquet`` (DM against the benchmark and pairwise, MCS),
``cost.parquet``, ``loss_by_horizon.png``, ``cost_vs_accuracy.png``, ``compare.md`` and ``report.html``.

Examples
--------
>>> result = compare(["results/weekly", "results/monthly"], "results/compare")   # doctest: +SKIP
>>> result.tests.query("test == 'mcs'")                                            # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import BacktestError
from .evaluation.accuracy import dm_table, model_confidence_set
from .evaluation.losses import LOSSES, cost_table, loss_table, mean_losses
from .evaluation.plots import plot_cost_vs_accuracy, plot_loss_by_horizon
from .evaluation.report import write_html

KEYS = ["issued_at", "target_time", "horizon"]


class CompareError(BacktestError):
    """Runs that cannot be compared."""


@dataclass
class RunData:
    name: str
    path: Path
    manifest: dict
    forecasts: pd.DataFrame
    retrains: pd.DataFrame


@dataclass
class CompareResult:
    out_dir: Path
    comparison: pd.DataFrame
    tests: pd.DataFrame
    cost: pd.DataFrame
    rows: int


def read_run(path: str | Path) -> RunData:
    path = Path(path)
    if not path.is_dir():
        raise CompareError(f"{path}: no such run directory; pass results/<name> of a finished run, or a config to run")
    manifest = path / "manifest.json"
    if not manifest.is_file():
        raise CompareError(f"{path}: not a finished run (no manifest.json); run it again with backtest run --force")
    meta = json.loads(manifest.read_text())
    return RunData(meta["name"], path, meta, pd.read_parquet(path / "forecasts.parquet"),
                   pd.read_parquet(path / "retrains.parquet"))


def labelled(runs: list[RunData]) -> list[pd.DataFrame]:
    """Each run's forecasts and retrains with strategies labelled uniquely across runs."""
    seen: dict[str, int] = {}
    for r in runs:
        for s in r.forecasts["strategy"].unique():
            seen[s] = seen.get(s, 0) + 1
    out = []
    for r in runs:
        label = {s: (f"{r.name}:{s}" if seen[s] > 1 and len(runs) > 1 else s) for s in r.forecasts["strategy"].unique()}
        f = r.forecasts.assign(strategy=r.forecasts["strategy"].map(label).astype("string"))
        t = r.retrains.assign(strategy=r.retrains["strategy"].map(label).astype("string"))
        out.append((f, t))
    return out


def common_rows(forecasts: pd.DataFrame) -> pd.DataFrame:
    """The rows of the (issued_at, target_time, horizon) keys that every strategy forecast."""
    n = forecasts["strategy"].nunique()
    counts = forecasts.groupby(KEYS, observed=True)["strategy"].nunique()
    keep = counts[counts == n].index
    return forecasts.set_index(KEYS).loc[keep].reset_index()


def default_out(run_dirs: list[str | Path]) -> Path:
    """``RUN/comparison`` for one run; ``<parent>/compare_<a>_<b>...`` for several."""
    dirs = [Path(d) for d in run_dirs]
    if len(dirs) == 1:
        return dirs[0] / "comparison"
    return dirs[0].parent / ("compare_" + "_".join(d.name for d in dirs))


def compare(run_dirs: list[str | Path], out_dir: str | Path, benchmark: str | None = None, loss: str = "qlike",
            seed: int = 0, mcs_reps: int = 1000, force: bool = False) -> CompareResult:
    """Compare finished runs; see the module docstring."""
    if loss not in LOSSES:
        raise CompareError(f"--loss: unknown loss {loss!r}; use one of {', '.join(LOSSES)}")
    runs = [read_run(p) for p in run_dirs]
    shas = {r.manifest["data"]["sha256"] for r in runs}
    if len(shas) > 1:
        what = ", ".join(f"{r.path} ({r.manifest['data']['path']}, sha256 {r.manifest['data']['sha256'][:12]})" for r in runs)
        raise CompareError(f"runs used different data: {what}; compare runs of the same data file")
    parts = labelled(runs)
    forecasts = pd.concat([f for f, _ in parts], ignore_index=True)
    retrains = pd.concat([t for _, t in parts], ignore_index=True)
    strategies = list(dict.fromkeys(forecasts["strategy"]))
    if benchmark is not None and benchmark not in strategies:
        raise CompareError(f"--benchmark: {benchmark!r} is not among the compared strategies: {', '.join(strategies)}")
    if benchmark is None and "har" in strategies:
        benchmark = "har"
    rows = common_rows(forecasts)
    if rows.empty:
        spans = "; ".join(f"{r.path}: {r.forecasts['issued_at'].min()} .. {r.forecasts['issued_at'].max()}" for r in runs)
        raise CompareError(f"the runs share no forecast rows (same issue time, target and horizon): {spans}")
    out = Path(out_dir)
    for r in runs:  # never replace a run with its comparison
        if out.resolve() == r.path.resolve() or out.resolve() in r.path.resolve().parents:
            raise CompareError(f"--out {out}: would replace the run in {r.path}; choose another folder")
    if out.exists() and not force:
        raise CompareError(f"{out}: already there; pass --force to replace it or choose another --out")
    table = loss_table(rows)
    comparison = mean_losses(table)
    tests = dm_table(table, loss, benchmark).assign(test="dm")
    per_issue = table[table["loss"] == loss].pivot_table(index="issued_at", columns="strategy", values="value",
                                                          aggfunc="mean", observed=True)
    mcs = model_confidence_set(per_issue, (0.10, 0.25), mcs_reps, None, seed=seed)
    tests = pd.concat([tests, mcs.rename(columns={"strategy": "model"}).assign(test="mcs", loss=loss, horizon=0)],
                      ignore_index=True)
    cost = cost_table(retrains, table, loss, benchmark)
    stage = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        comparison.to_parquet(stage / "comparison.parquet", index=False)
        table.to_parquet(stage / "losses.parquet", index=False)
        tests.to_parquet(stage / "tests.parquet", index=False)
        cost.to_parquet(stage / "cost.parquet", index=False)
        plot_loss_by_horizon(comparison, loss, stage / "loss_by_horizon.png")
        plot_cost_vs_accuracy(cost, loss, stage / "cost_vs_accuracy.png")
        (stage / "compare.md").write_text(markdown(runs, rows, comparison, tests, cost, loss, benchmark))
        write_html(stage, "compare.md", {"loss_by_horizon.png": f"Mean {loss} by horizon on the common rows",
                                         "cost_vs_accuracy.png": "Accuracy against training cost"})
        if out.exists():
            shutil.rmtree(out)
        os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return CompareResult(out, comparison, tests, cost, len(rows))


def markdown(runs, rows, comparison, tests, cost, loss, benchmark) -> str:
    per = comparison.groupby("strategy")[[loss]].mean().sort_values(loss)
    lines = [
        "# Comparison",
        "",
        *[f"- run `{r.name}` ({r.path}): {r.forecasts['strategy'].nunique()} strategies, {len(r.forecasts):,} rows"
          for r in runs],
        f"- common rows: {len(rows):,} ({rows['issued_at'].nunique():,} issue times x horizons "
        f"{rows['horizon'].min()}..{rows['horizon'].max()}, every strategy)",
        "",
        f"## Mean {loss}, averaged over horizons (best first)",
        "",
        f"| strategy | {loss} | h=1 | h={comparison['horizon'].max()} |",
        "|---|---|---|---|",
    ]
    hmax = comparison["horizon"].max()
    wide = comparison.pivot(index="strategy", columns="horizon", values=loss)
    for name, row in per.iterrows():
        lines.append(f"| {name} | {row[loss]:.4f} | {wide.loc[name, 1]:.4f} | {wide.loc[name, hmax]:.4f} |")
    dm = tests[(tests["test"] == "dm") & (tests["horizon"] == 0)]
    dm = dm[~dm["model"].astype(str).str.contains("#") & ~dm["against"].astype(str).str.contains("#")]
    lines += ["", f"## Diebold–Mariano, {loss} averaged over horizons (HLN-corrected; negative = model has the lower loss; "
                  "seed members' tests are in tests.parquet)",
              "", "| model | against | DM | p-value | n |", "|---|---|---|---|---|"]
    for r in dm.itertuples():
        stat = f"{r.statistic:.2f}" if np.isfinite(r.statistic) else r.note
        p = f"{r.pvalue:.3g}" if np.isfinite(r.pvalue) else ""
        lines.append(f"| {r.model} | {r.against} | {stat} | {p} | {int(r.n)} |")
    mcs = tests[tests["test"] == "mcs"].pivot(index="model", columns="size", values="in_set")
    pv = tests[tests["test"] == "mcs"].groupby("model")["mcs_pvalue"].first()
    lines += ["", "## Model Confidence Set", "", "| strategy | MCS p-value | in 90 % set | in 75 % set |", "|---|---|---|---|"]
    for name in mcs.index:
        marks = ["**yes**" if mcs.loc[name, s] is True else "no" if mcs.loc[name, s] is False else "–" for s in (0.10, 0.25)]
        p = f"{pv[name]:.3f}" if np.isfinite(pv[name]) else "not computed"
        lines.append(f"| {name} | {p} | {marks[0]} | {marks[1]} |")
    lines += ["", "## Cost", "", "| strategy | retrains | training s | s per retrain |", "|---|---|---|---|"]
    for r in cost.itertuples():
        lines.append(f"| {r.strategy} | {r.retrains} | {r.train_seconds:.1f} | {r.seconds_per_retrain:.2f} |")
    lines += ["", "Plots: `loss_by_horizon.png`, `cost_vs_accuracy.png`.", ""]
    return "\n".join(lines)
