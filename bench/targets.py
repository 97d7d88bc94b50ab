"""Issue 8: which target transform (``rv``, ``log``, ``variance``) makes the default LSTM most competitive.

    python bench/targets.py [--datasets btc,eth] [--targets rv,log,variance] [--seeds 42,7]
                            [--set strategies.lstm.epochs=10 --tag e10] [--table-only]

For each dataset (``bench/targets/<dataset>.yaml``: the default ``{type: lstm}`` and HAR), target and
seed, runs ``backtest run CONFIG --set strategies.lstm.target=T --set seed=S -qq --force`` in a fresh
process (one at a time) and reads ``results/<name>/forecasts.parquet``. Per run and horizon it scores
the LSTM and HAR on the rows both forecast with QLIKE of variance, mean(a²/f² - ln(a²/f²) - 1) over
rows with a, f > 0 (as ``backtester/evaluation/losses.py``), and the MSE of volatility. One JSON line
per run is appended to ``bench/targets/runs.jsonl`` (a run already there is not repeated; delete the
file to start over); the table is printed from it, as markdown, with the mean over seeds and the
spread (max - min) of every figure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "bench/targets"
LOG = HERE / "runs.jsonl"
DATA = {
    "btc": ROOT.parent / "shared/data/real/btcusdt_1m_2022_2023.parquet",
    "eth": ROOT.parent / "shared/data/real/ethusdt_1m_2022_2023.parquet",
}
SHOW = (1, 6, 12, 24)


def qlike(a: np.ndarray, f: np.ndarray) -> float:
    ok = (a > 0) & (f > 0)
    r = a[ok] ** 2 / f[ok] ** 2
    return float(np.mean(r - np.log(r) - 1))


def score(run_dir: Path) -> dict:
    """Per horizon QLIKE and MSE of the LSTM and HAR on their common rows."""
    f = pd.read_parquet(run_dir / "forecasts.parquet").dropna(subset=["actual"])
    f["strategy"] = f["strategy"].astype(str)
    wide = f.pivot_table(index=["issued_at", "horizon"], columns="strategy", values="forecast").dropna()
    actual = f.drop_duplicates(["issued_at", "horizon"]).set_index(["issued_at", "horizon"])["actual"]
    wide["actual"] = actual.reindex(wide.index)
    out: dict = {"rows": int(len(wide))}
    for s in ("lstm", "har"):
        ql, mse = [], []
        for _, part in wide.groupby(level="horizon"):
            a, fc = part["actual"].to_numpy(), part[s].to_numpy()
            ql.append(qlike(a, fc))
            mse.append(float(np.mean((fc - a) ** 2)))
        out[s] = {"qlike": ql, "mse": mse}
    return out


def run_once(dataset: str, target: str, seed: int, sets: list[str], tag: str) -> dict:
    name = f"targets_{dataset}_{target}_s{seed}{'_' + tag if tag else ''}"
    cmd = [str(Path(sys.executable).parent / "backtest"), "run", str(HERE / f"{dataset}.yaml"), "-qq", "--force"]
    for s in [f"name={name}", f"seed={seed}", f"data.path={DATA[dataset]}", f"strategies.lstm.target={target}", *sets]:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    run_dir = ROOT / "results" / name
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return {
        "dataset": dataset,
        "target": target,
        "seed": seed,
        "tag": tag,
        "sets": sets,
        "name": name,
        "wall": round(wall, 1),
        "train": manifest["seconds"]["train"],
        "failed_retrains": manifest["failed_retrains"],
        "git_commit": manifest.get("git_commit"),
        **score(run_dir),
    }


def load() -> list[dict]:
    return [json.loads(line) for line in LOG.read_text().splitlines() if line.strip()] if LOG.exists() else []


def fmt(values: list[float], digits: int = 3, sci: bool = False) -> str:
    m, spread = float(np.mean(values)), float(np.ptp(values))
    if sci:
        return f"{m:.3e}" + (f" ±{spread / 2:.1e}" if len(values) > 1 else "")
    return f"{m:.{digits}f}" + (f" ±{spread / 2:.{digits}f}" if len(values) > 1 else "")


def table(runs: list[dict]) -> str:
    """Markdown: per dataset × target (× tag), mean over seeds ± half the seed range."""
    lines = [
        "| dataset | model | target | seeds | "
        + " | ".join(f"QLIKE h={h}" for h in SHOW)
        + " | QLIKE mean h=1..24 | MSE vol h=1 | horizons beating HAR | wall s |",
        "|---|---|---|---|" + "---|" * (len(SHOW) + 4),
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in runs):
        mine = [r for r in runs if r["dataset"] == dataset]
        har = mine[0]["har"]  # HAR does not depend on the seed or the LSTM (checked below)
        for r in mine[1:]:
            assert np.allclose(r["har"]["qlike"], har["qlike"]), "HAR differs between runs"
        lines.append(
            f"| {dataset} | HAR | – | all | "
            + " | ".join(f"{har['qlike'][h - 1]:.3f}" for h in SHOW)
            + f" | {np.mean(har['qlike']):.3f} | {har['mse'][0]:.3e} | – | – |"
        )
        for key in dict.fromkeys((r["target"], r["tag"]) for r in mine):
            group = [r for r in mine if (r["target"], r["tag"]) == key]
            q = np.array([r["lstm"]["qlike"] for r in group])  # seeds × horizons
            wins = [float(np.mean(np.array(r["lstm"]["qlike"]) < np.array(har["qlike"]))) for r in group]
            mean_wins = float(np.mean(q.mean(axis=0) < np.array(har["qlike"])))
            label = key[0] + (f" ({key[1]})" if key[1] else "")
            seeds = ",".join(str(r["seed"]) for r in group)
            lines.append(
                f"| {dataset} | LSTM | {label} | {seeds} | "
                + " | ".join(fmt(q[:, h - 1]) for h in SHOW)
                + f" | {fmt(q.mean(axis=1))} | {fmt([r['lstm']['mse'][0] for r in group], sci=True)}"
                + f" | {mean_wins:.0%} (per seed {', '.join(f'{w:.0%}' for w in wins)})"
                + f" | {np.mean([r['wall'] for r in group]):.0f} |"
            )
    return "\n".join(lines)


def diagnose(runs: list[dict]) -> str:
    """Why a target loses, from each run's forecasts (results/<name>/ must still be there): the mean
    forecast over the mean actual; how many LSTM forecasts sit at the output floor (a negative or tiny
    forecast clipped to the training window's smallest positive RV, seen as the retrain's smallest
    forecast repeated); the median per-row QLIKE at h=1; and the QLIKE after the best constant rescale of
    the variance forecast, c = mean(a²/f²), which is ln(mean r) - mean(ln r) with r = a²/f². That
    rescale looks ahead: it only shows how much of the loss is a level bias, it is not a result."""
    lines = [
        "| dataset | target | seeds | mean f / mean a | forecasts clipped to floor (per seed) | median QLIKE h=1 "
        "| QLIKE h=1 rescaled | QLIKE mean h=1..24 rescaled |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups: dict = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["target"], r["tag"]), []).append(r)
    for (dataset, target, tag), group in groups.items():
        stats = []
        for r in group:
            f = pd.read_parquet(ROOT / "results" / r["name"] / "forecasts.parquet").dropna(subset=["actual"])
            f = f[(f["strategy"].astype(str) == "lstm") & (f["actual"] > 0) & (f["forecast"] > 0)]
            ratio = (f["actual"] / f["forecast"]).to_numpy() ** 2
            seg_min = f.groupby("model_version")["forecast"].transform("min")
            at_min = f["forecast"] <= seg_min * (1 + 1e-12)
            shared = at_min.groupby(f["model_version"]).transform("sum") > 1  # a clipped forecast repeats
            at_floor = int((at_min & shared).sum())
            resc = [
                float(np.log(x.mean()) - np.log(x).mean())
                for _, x in pd.Series(ratio, index=f["horizon"].to_numpy()).groupby(level=0)
            ]
            h1 = ratio[f["horizon"].to_numpy() == 1]
            stats.append(
                (
                    f["forecast"].mean() / f["actual"].mean(),
                    at_floor,
                    float(np.median(h1 - np.log(h1) - 1)),
                    resc[0],
                    float(np.mean(resc)),
                )
            )
        st = np.array(stats)
        label = target + (f" ({tag})" if tag else "")
        lines.append(
            f"| {dataset} | {label} | {','.join(str(r['seed']) for r in group)} | {fmt(st[:, 0])} | "
            + " / ".join(str(int(x)) for x in st[:, 1])
            + f" | {fmt(st[:, 2])} | {fmt(st[:, 3])} | {fmt(st[:, 4])} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="btc,eth")
    ap.add_argument("--targets", default="rv,log,variance")
    ap.add_argument("--seeds", default="42,7")
    ap.add_argument(
        "--set", action="append", default=[], dest="sets", help="extra override, e.g. strategies.lstm.epochs=10"
    )
    ap.add_argument("--tag", default="", help="label of a variant run with --set (part of the run's name)")
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--diagnose", action="store_true", help="also print the bias / floor diagnostics")
    args = ap.parse_args()
    if not args.table_only:
        done = {(r["dataset"], r["target"], r["seed"], r["tag"]) for r in load()}
        for dataset in args.datasets.split(","):
            for target in args.targets.split(","):
                for seed in map(int, args.seeds.split(",")):
                    if (dataset, target, seed, args.tag) in done:
                        continue
                    r = run_once(dataset, target, seed, args.sets, args.tag)
                    with LOG.open("a") as fh:
                        fh.write(json.dumps(r) + "\n")
                    print(
                        f"{r['name']}: wall {r['wall']} s, QLIKE h=1 lstm {r['lstm']['qlike'][0]:.4f} "
                        f"har {r['har']['qlike'][0]:.4f}, mean lstm {np.mean(r['lstm']['qlike']):.4f} "
                        f"har {np.mean(r['har']['qlike']):.4f}",
                        flush=True,
                    )
    print(table(load()))
    if args.diagnose:
        print()
        print(diagnose(load()))


if __name__ == "__main__":
    main()
