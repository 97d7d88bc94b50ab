"""``backtest compare``: strategies and retraining schemes from one or more runs, side by side.

Runs are compared on their **common forecast rows**: the (asset, issued_at, target_time,
horizon) that every strategy of every run forecast. Assets are aligned by their data (sha256): an
asset of one run is the asset of another run with the same bars, under the first run's name, and
only the assets every run has are compared. A strategy name used by several runs is labelled
``<run>:<strategy>``. With several assets, the DM tests and the MCS are per asset, and the pooled
DM tests (:mod:`backtester.evaluation.panel`) are added (``asset`` = ``all``).

Writes ``<out>/``: ``comparison.parquet`` (mean losses per strategy and horizon),
``losses.parquet``, ``tests.parquet`` (DM against the benchmark and pairwise, MCS),
``cost.parquet``, ``loss_by_horizon.png``, ``cost_vs_accuracy.png``, ``compare.md`` and ``report.html``.

Examples
--------
>>> result = compare(["results/weekly", "results/monthly"], "results/compare")   # doctest: +SKIP
>>> result.tests.query("test == 'mcs'")                                            # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .compare_worth import compare_worth
from .core.errors import CompareError, RunError
from .core.names import base_name, is_seed_member
from .evaluation.accuracy import dm_table, horizon_averaged, model_confidence_set
from .evaluation.answer import answer_lines, benchmark_table, pairs_table
from .evaluation.losses import LOSSES, cost_table, loss_table, mean_losses
from .evaluation.markdown import seed_label
from .evaluation.panel import panel_dm_table
from .evaluation.plots import plot_cost_vs_accuracy, plot_loss_by_horizon, strategy_styles
from .evaluation.profiles import Profile, profiles_from_manifest
from .evaluation.report import write_html
from .evaluation.verdict import Answer, is_member, members_of, seed_rows
from .layout import FORECASTS, RETRAINS, TUNING_TABLE, Manifest, RunDir, read_manifest, scratch_dir

KEYS = ["asset", "issued_at", "target_time", "horizon"]


@dataclass
class RunData:
    name: str
    path: Path
    manifest: Manifest
    forecasts: pd.DataFrame
    retrains: pd.DataFrame
    tuning: pd.DataFrame
    seeded: set[str]


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
        raise RunError(f"{path}: no such run directory; pass results/<name> of a finished run, or a config to run")
    meta, run = read_manifest(path), RunDir(path)
    forecasts, retrains = run.read_table(FORECASTS), run.read_table(RETRAINS)
    tuning = (
        run.read_table(TUNING_TABLE)
        if run.file(TUNING_TABLE).is_file()
        else pd.DataFrame({"asset": pd.Series(dtype="string"), "strategy": pd.Series(dtype="string")})
    )
    for frame in (forecasts, retrains, tuning):  # a run from before universes: one asset, named after its file
        if "asset" not in frame:
            frame.insert(0, "asset", Path(meta.data_of("").path).stem)
    if len(forecasts) and (tuning["asset"] == "").any():
        tuning["asset"] = forecasts["asset"].iloc[0]
    return RunData(meta.name, path, meta, forecasts, retrains, tuning, seeded_strategies(path, meta))


def seeded_strategies(path: Path, manifest: Manifest) -> set[str]:
    """The run's strategies whose forecasts depend on the seed, seed members and ensembles included: from
    the manifest, or for a run from before it recorded them, from the strategy types in its config.yaml."""
    seeded = manifest.seeded()
    if seeded is not None:
        return seeded
    from strategies import REGISTRY

    raw = RunDir(path).config_block("strategies")
    kinds = {name: (spec or {}).get("type", name) for name, spec in raw.items()}
    return {name for name, k in kinds.items() if k in REGISTRY and REGISTRY[k].seeded()}


def asset_data(run: RunData) -> dict[str, str]:
    """Each asset of a run (by its name in the tables) and what identifies its bars: the data file's sha256
    and the bars' cache key (the same file read with other options makes other bars)."""
    if run.manifest.universe:
        return {name: d.ident for name, d in run.manifest.data.items()}
    data = run.manifest.data_of("")
    return {str(run.forecasts["asset"].iloc[0]) if len(run.forecasts) else Path(data.path).stem: data.ident}


def align_assets(runs: list[RunData]) -> None:
    """Rename every run's assets after the first run's asset with the same data; drop the assets not
    in every run. Refuses runs that share no asset."""
    first = {sha: name for name, sha in asset_data(runs[0]).items()}
    common = set(first)
    for r in runs[1:]:
        common &= set(asset_data(r).values())
    if not common:
        files = [{ident.split(":")[0] for ident in asset_data(r).values()} for r in runs]
        if set.intersection(*files):  # the same file, bars built otherwise
            what = ", ".join(
                f"{r.path} (bars {', '.join(i.split(':')[1][:12] for i in asset_data(r).values())})" for r in runs
            )
            raise CompareError(
                f"the runs read the same data file but built their bars with other data options or another "
                f"version of backtester: {what}; run the older one again (backtest run CONFIG --force)"
            )
        what = ", ".join(
            f"{r.path} ({', '.join(f'{a} sha256 {s[:12]}' for a, s in asset_data(r).items())})" for r in runs
        )
        raise CompareError(f"runs used different data: {what}; compare runs of the same data files")
    for r in runs:
        names = {name: first[sha] for name, sha in asset_data(r).items() if sha in common}
        for attr in ("forecasts", "retrains", "tuning"):
            frame = getattr(r, attr)
            frame = frame[frame["asset"].isin(names)]
            setattr(r, attr, frame.assign(asset=frame["asset"].map(names).astype("string")))


def labelled(runs: list[RunData]) -> list[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, set[str]]]:
    """Each run's forecasts, retrains, tuning trials and seeded strategies, with strategies labelled uniquely
    across runs (``<run>:<strategy>`` where several runs use a name)."""
    out = []
    for r in runs:
        label = labels_of(runs, r)
        frames = [frame[frame["strategy"].isin(label)] for frame in (r.forecasts, r.retrains, r.tuning)]
        frames = [frame.assign(strategy=frame["strategy"].map(label).astype("string")) for frame in frames]
        seeded = {label[s] for s in label if base_name(s) in r.seeded}
        out.append((*frames, seeded))
    return out


def labels_of(runs: list[RunData], run: RunData) -> dict[str, str]:
    """The labels of ``run``'s strategies: ``<run>:<strategy>`` where another run has a strategy of that
    name, a seed ensemble's members with it (``weekly:lstm#2``), else the name itself."""
    names = {r.name: {base_name(s) for s in r.forecasts["strategy"].unique()} for r in runs}
    for r in runs:
        names[r.name] |= set(r.manifest.strategies or {})
    shared = {b for r in runs for b in names[r.name] if sum(b in names[o.name] for o in runs) > 1}
    return {
        s: (f"{run.name}:{s}" if base_name(s) in shared and len(runs) > 1 else s)
        for s in [*run.forecasts["strategy"].unique(), *(run.manifest.strategies or {})]
    }


def run_profiles(runs: list[RunData]) -> dict[str, Profile]:
    """What each compared strategy is (:mod:`~backtester.evaluation.profiles`), by its label, from each run's
    manifest; links to another strategy of the same run follow its label."""
    out = {}
    for r in runs:
        label = labels_of(runs, r)
        found = profiles_from_manifest(r.manifest.strategies or {})
        for name in {base_name(s) for s in r.forecasts["strategy"].unique()} - set(found):  # a run before profiles
            seeds = sum(base_name(s) == name and is_member(s) for s in r.forecasts["strategy"].unique())
            found[name] = Profile(name, f"a strategy of run `{r.name}`", name in r.seeded, (), (), name, "", seeds or 1)
        for name, p in found.items():
            out[label.get(name, name)] = p.renamed(label)
    return out


def common_rows(forecasts: pd.DataFrame) -> pd.DataFrame:
    """The rows of the (asset, issued_at, target_time, horizon) keys that every strategy of the asset forecast."""
    n = forecasts.groupby("asset", observed=True)["strategy"].nunique()
    counts = forecasts.groupby(KEYS, observed=True)["strategy"].nunique()
    keep = counts[counts.to_numpy() == n.reindex(counts.index.get_level_values("asset")).to_numpy()].index
    return forecasts.set_index(KEYS).loc[keep].reset_index()


def default_out(run_dirs: list[str | Path]) -> Path:
    """``RUN/comparison`` for one run; ``<parent>/compare_<a>_<b>...`` for several."""
    dirs = [Path(d) for d in run_dirs]
    if len(dirs) == 1:
        return dirs[0] / "comparison"
    return dirs[0].parent / ("compare_" + "_".join(d.name for d in dirs))


def compare(
    run_dirs: list[str | Path],
    out_dir: str | Path,
    benchmark: str | None = None,
    loss: str = "qlike",
    seed: int | None = None,
    mcs_reps: int = 1000,
    force: bool = False,
    block_size: int | None = None,
) -> CompareResult:
    """Compare finished runs; see the module docstring. The MCS bootstrap takes ``seed`` and ``block_size``
    (default: the first run's seed and ``evaluation.block_size``)."""
    if loss not in LOSSES:
        raise CompareError(f"--loss: unknown loss {loss!r}; use one of {', '.join(LOSSES)}")
    runs = [read_run(p) for p in run_dirs]
    seed = runs[0].manifest.raw.get("seed", 0) if seed is None else seed
    if block_size is None:
        block_size = run_evaluation(runs[0]).get("block_size")
    align_assets(runs)
    forecasts, retrains, tuning, seeded = combined(runs)
    strategies = list(dict.fromkeys(forecasts["strategy"]))
    default = run_evaluation(runs[0]).get("benchmark") or "har"  # the first run's own benchmark, else har
    benchmark = chosen_benchmark(benchmark, strategies, [r.name for r in runs], default)
    profiles = run_profiles(runs)
    rows = shared_rows(forecasts, runs)
    out = checked_out(Path(out_dir), runs, force)
    table = loss_table(rows)
    comparison = mean_losses(table, ("asset", "strategy", "horizon"))
    tests = compare_tests(table, loss, benchmark, seed, mcs_reps, block_size)
    cost = cost_table(retrains, table, loss, benchmark, ensembles=members_of(strategies), tuning=tuning)
    cost = ensembles_first(cost, strategies)
    answer = Answer(table, tests, cost, loss, retrains)
    words = answer_lines(answer, benchmark, profiles)
    if benchmark is not None and benchmark in answer.means.index:
        words += benchmark_table(answer, answer.means[[s for s in answer.means.index if not is_member(s)]], benchmark)
    words += pairs_table(answer, benchmark, profiles)
    economic, worth_tests, worth = compare_worth(runs[0].path, rows, benchmark, profiles, seed)
    text = markdown(runs, rows, comparison, tests, cost, loss, benchmark, words, answer.spread, seeded)
    text = text.replace("\n## Mean ", "\n".join([*worth, "", "## Mean "]), 1) if worth else text
    tests = pd.concat([tests, worth_tests], ignore_index=True) if len(worth_tests) else tests
    stage = scratch_dir(out, os.getpid())
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        comparison.to_parquet(stage / "comparison.parquet", index=False)
        table.to_parquet(stage / "losses.parquet", index=False)
        tests.to_parquet(stage / "tests.parquet", index=False)
        cost.to_parquet(stage / "cost.parquet", index=False)
        if len(economic):
            economic.to_parquet(stage / "economic.parquet", index=False)
        write_report(stage, comparison, cost, loss, strategy_styles(sorted(map(str, strategies))), text)
        if out.exists():
            shutil.rmtree(out)
        os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return CompareResult(out, comparison, tests, cost, len(rows))


def combined(runs: list[RunData]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, set[str]]:
    """The runs' forecasts, retrains and tuning trials in one frame each (strategies labelled), and their seeded
    strategies."""
    parts = labelled(runs)
    forecasts = pd.concat([p[0] for p in parts], ignore_index=True)
    retrains = pd.concat([p[1] for p in parts], ignore_index=True)
    tuning = pd.concat([p[2] for p in parts], ignore_index=True)
    return forecasts, retrains, tuning, set().union(*(p[3] for p in parts))


def chosen_benchmark(
    benchmark: str | None, strategies: list[str], runs: list[str] | None = None, default: str = "har"
) -> str | None:
    """``--benchmark`` (without it ``default``: the first run's ``evaluation.benchmark``, else ``har``) among the
    compared strategies: the name itself, or where several runs have it, the first run's (``weekly:har``). An
    explicit name that is neither is refused, listing the names that can be chosen; a default that is
    neither falls back to ``har``, then to no benchmark.

    >>> chosen_benchmark(None, ["weekly:har", "custom:har", "lstm"], ["weekly", "custom"])
    'weekly:har'
    >>> chosen_benchmark(None, ["harq_periodic", "har", "lstm"], ["compare"], "harq_periodic")
    'harq_periodic'
    """
    if benchmark is None and default != "har":
        for name in [default, *(f"{r}:{default}" for r in runs or [])]:
            if name in strategies:
                return name
    want = "har" if benchmark is None else benchmark
    if want in strategies:
        return want
    prefixed = [f"{r}:{want}" for r in runs or [] if f"{r}:{want}" in strategies]
    if prefixed:
        return prefixed[0]
    if benchmark is not None:
        names = ", ".join(s for s in strategies if not is_member(s))
        raise CompareError(f"--benchmark: {benchmark!r} is not among the compared strategies; choose one of: {names}")
    return None


def ensembles_first(cost: pd.DataFrame, strategies: list[str]) -> pd.DataFrame:
    """The cost table in the strategies' order, each seed ensemble just before its seeds."""
    order = {name: i for i, name in enumerate(strategies)}
    return cost.sort_values(
        "strategy", key=lambda c: c.map(lambda n: (order.get(base_name(n), 0), is_seed_member(n))), kind="stable"
    ).reset_index(drop=True)


def shared_rows(forecasts: pd.DataFrame, runs: list[RunData]) -> pd.DataFrame:
    """:func:`common_rows`, refused when there are none."""
    rows = common_rows(forecasts)
    if rows.empty:
        spans = "; ".join(
            f"{r.path}: {r.forecasts['issued_at'].min()} .. {r.forecasts['issued_at'].max()}" for r in runs
        )
        raise CompareError(f"the runs share no forecast rows (same issue time, target and horizon): {spans}")
    return rows


def write_report(stage: Path, comparison: pd.DataFrame, cost: pd.DataFrame, loss: str, styles, text: str) -> None:
    """The comparison's figures, ``compare.md`` and ``report.html`` into ``stage``."""
    plot_loss_by_horizon(comparison, loss, stage / "loss_by_horizon.png", styles)
    plot_cost_vs_accuracy(cost, loss, stage / "cost_vs_accuracy.png", styles)
    (stage / "compare.md").write_text(text)
    write_html(
        stage,
        "compare.md",
        {
            "loss_by_horizon.png": f"Mean {loss} by horizon on the common rows",
            "cost_vs_accuracy.png": "Accuracy against training cost",
        },
    )


def checked_out(out: Path, runs: list[RunData], force: bool) -> Path:
    """``out``, refused if it would replace a compared run, or an earlier comparison without ``force``."""
    for r in runs:  # never replace a run with its comparison
        if out.resolve() == r.path.resolve() or out.resolve() in r.path.resolve().parents:
            raise CompareError(f"--out {out}: would replace the run in {r.path}; choose another folder")
    if out.exists() and not force:
        raise CompareError(f"{out}: already there; pass --force to replace it or choose another --out")
    return out


def run_evaluation(run: RunData) -> dict:
    """The ``evaluation`` block of a run's ``config.yaml`` (empty if it has none)."""
    return RunDir(run.path).config_block("evaluation")


def compare_tests(
    table: pd.DataFrame, loss: str, benchmark: str | None, seed: int, mcs_reps: int, block_size: int | None = None
) -> pd.DataFrame:
    """DM tests and the MCS per asset; with several assets also the pooled DM tests (``asset`` = ``all``)."""
    parts = []
    for asset, t in table.groupby("asset", observed=True, sort=True):
        dm = dm_table(t, loss, benchmark if benchmark in set(t["strategy"]) else None).assign(test="dm")
        per_issue = horizon_averaged(t[t["loss"] == loss])  # the horizon-averaged DM tests' rows
        mcs = model_confidence_set(per_issue, (0.10, 0.25), mcs_reps, block_size, seed=seed)
        mcs = mcs.rename(columns={"strategy": "model"}).assign(test="mcs", loss=loss, horizon=0)
        parts.append(pd.concat([dm, mcs], ignore_index=True).assign(asset=asset))
    if table["asset"].nunique() > 1:
        parts.append(panel_dm_table(table, loss, benchmark).assign(asset="all"))
    out = pd.concat(parts, ignore_index=True)
    out["asset"] = out["asset"].astype("string")
    return out[["asset"] + [c for c in out.columns if c != "asset"]]


def markdown(
    runs, rows, comparison, tests, cost, loss, benchmark, answer: list[str], spread: pd.DataFrame, seeded: set[str]
) -> str:
    per = comparison.groupby("strategy")[[loss]].mean().sort_values(loss)
    lines = [
        "# Comparison",
        "",
        *[
            f"- run `{r.name}` ({r.path}): {r.forecasts['strategy'].nunique()} strategies, {len(r.forecasts):,} rows"
            for r in runs
        ],
        f"- common rows: {len(rows):,} ({rows['issued_at'].nunique():,} issue times x horizons "
        f"{rows['horizon'].min()}..{rows['horizon'].max()}, every strategy)"
        + (f", on {rows['asset'].nunique()} assets" if rows["asset"].nunique() > 1 else ""),
        "",
        "## The answer",
        "",
        *answer,
        "",
        f"## Mean {loss}, averaged over horizons (best first; a seed member is one draw, never a candidate)",
        "",
        f"| strategy | {loss} | h=1 | h={comparison['horizon'].max()} |",
        "|---|---|---|---|",
    ]
    hmax = comparison["horizon"].max()
    wide = comparison.pivot_table(index="strategy", columns="horizon", values=loss)  # mean over assets
    for name, row in per.iterrows():
        lines.append(f"| {seed_label(name)} | {row[loss]:.4f} | {wide.loc[name, 1]:.4f} | {wide.loc[name, hmax]:.4f} |")
    if len(spread):
        lines += [
            "",
            f"## Seed spread ({loss} of each seed alone on the common rows, against their mean forecast's)",
            "",
            "| strategy | seeds | mean over seeds | std | min | max | ensemble |",
            "|---|---|---|---|---|---|---|",
            *[
                f"| {r.strategy} | {r.seeds} | {r.mean:.4f} | {r.std:.4f} | {r.min:.4f} | {r.max:.4f} | {r.ensemble:.4f} |"
                for r in spread.itertuples()
            ],
        ]
    lines += dm_markdown(tests, loss, benchmark, seeded) + mcs_markdown(tests)
    lines += cost_markdown(cost, loss, benchmark)
    lines += ["", "Plots: `loss_by_horizon.png`, `cost_vs_accuracy.png`.", ""]
    return "\n".join(lines)


def cost_markdown(cost: pd.DataFrame, loss: str, benchmark: str | None) -> list[str]:
    """The cost table: retrains, training and tuning seconds, and what they bought against the benchmark."""
    gain = [c for c in cost.columns if c.startswith("gain_vs_")][0]
    lines = [
        "",
        f"## Cost and gains (gain = `{benchmark}`'s mean {loss} minus the strategy's; retrains per seed, an "
        "ensemble's seconds all its seeds'; gain per minute only for a gain)"
        if benchmark
        else "## Cost (retrains per seed, an ensemble's seconds all its seeds')",
        "",
        "| strategy | retrains | seeds | training s | tuning s | s per fit | gain | gain per minute |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in cost.to_dict("records"):  # (a column named after `run:har` is no attribute name)
        g = f"{d[gain]:+.4f}" if pd.notna(d[gain]) else "–"
        per_min = f"{d['gain_per_train_minute']:+.4f}" if pd.notna(d["gain_per_train_minute"]) else "–"
        lines.append(
            f"| {d['strategy']} | {d['retrains']} | {d.get('seeds', 1)} | {d['train_seconds']:.1f} | "
            f"{d['tuning_seconds']:.1f} | {d['seconds_per_retrain']:.2f} | {g} | {per_min} |"
        )
    return lines


def dm_markdown(
    tests: pd.DataFrame, loss: str, benchmark: str | None = None, seeded: set[str] | None = None
) -> list[str]:
    """The DM tests on the horizon-averaged loss (per asset, then pooled where there are several): every
    strategy against the benchmark, and the seeded strategies against each other (every pair is in
    tests.parquet)."""
    many = tests["asset"].nunique() > 1
    dm = tests[tests["test"].isin(["dm", "pooled_dm"]) & (tests["horizon"] == 0)]
    dm = dm[~seed_rows(dm["model"]) & ~seed_rows(dm["against"])]
    if benchmark is not None:
        seeded = seeded or set()
        dm = dm[
            (dm["against"] == benchmark)
            | (dm["model"] == benchmark)
            | (dm["model"].isin(seeded) & dm["against"].isin(seeded))
        ]
    lines = [
        "",
        f"## Diebold–Mariano, {loss} averaged over horizons (HLN-corrected; negative = model has the lower loss; "
        + (f"against `{benchmark}` and between the seeded strategies; " if benchmark else "")
        + "every pair, seed members' too, is in tests.parquet)"
        + ("; asset `all`: the pooled test across assets" if many else ""),
        "",
        "| asset | model | against | DM | p-value | n |" if many else "| model | against | DM | p-value | n |",
        "|---|---|---|---|---|---|" if many else "|---|---|---|---|---|",
    ]
    for r in dm.itertuples():
        stat = f"{r.statistic:.2f}" if np.isfinite(r.statistic) else r.note
        p = f"{r.pvalue:.3g}" if np.isfinite(r.pvalue) else ""
        lines.append(
            ("| " + str(r.asset) + " " if many else "") + f"| {r.model} | {r.against} | {stat} | {p} | {int(r.n)} |"
        )
    return lines


def mcs_markdown(tests: pd.DataFrame) -> list[str]:
    """The MCS of each asset."""
    many = tests["asset"].nunique() > 1
    lines = [
        "",
        "## Model Confidence Set" + (" (per asset)" if many else ""),
        "",
        ("| asset " if many else "") + "| strategy | MCS p-value | in 90 % set | in 75 % set |",
        ("|---" if many else "") + "|---|---|---|---|",
    ]
    mcs = tests[(tests["test"] == "mcs") & ~seed_rows(tests["model"])]  # seeds: tests.parquet
    for asset, part in mcs.groupby("asset", sort=True):
        mcs = part.pivot(index="model", columns="size", values="in_set")
        pv = part.groupby("model")["mcs_pvalue"].first()
        for name in mcs.index:
            marks = [
                "**yes**" if mcs.loc[name, s] is True else "no" if mcs.loc[name, s] is False else "–"
                for s in (0.10, 0.25)
            ]
            p = f"{pv[name]:.3f}" if np.isfinite(pv[name]) else "not computed"
            lines.append((f"| {asset} " if many else "") + f"| {name} | {p} | {marks[0]} | {marks[1]} |")
    return lines
