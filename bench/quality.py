"""Forecast quality of LSTM variants against HAR-RV and the seasonal GARCH on real data (issue 17), and the
HAR family ranked (issue 28).

    python bench/quality.py choose [--seeds 3] [--variants default,features,features_qlike] [--jobs 2]
    python bench/quality.py report [--seeds 3] [--variants ...]
    python bench/quality.py choose --family --variants ''      # the HAR family alone: which is strongest?

Each stage is one universe run (``backtest run``, ``--jobs N``) over the shared real data, every asset on
its own test period, weekly retrains (Monday 00:00 UTC), expanding windows, H = 24:

- ``choose`` (the data the default is chosen on): BTC and ETH 2023 H1, EUR/USD 2017 Q1;
- ``report`` (kept out of the choosing): BTC, ETH and ARB 2023 H2, EUR/USD 2017 Q2.

Every variant runs with ``--seeds`` seeds (``repeats``; its mean forecast is the ensemble scored), beside
``har``, ``garch`` (seasonal) and ``har_garch`` (their mean forecast, ``type: mean_of``). Prints, per asset
and variant, the mean QLIKE over horizons and at
h = 1, the DM statistic and p-value against HAR and against GARCH (horizon-averaged and h = 1), the
training seconds per retrain, and the pooled DM across assets; writes the table as Markdown to
``bench/quality_<stage>.md``. With ``--family`` the run adds every member of the HAR family (``FAMILY``) and
a second table ranks the baselines per asset and pooled: QLIKE over horizons, at h = 1 and h = 24, MSE, and
the DM test against the strongest HAR variant (the lowest pooled QLIKE); it is written to
``bench/quality_<stage>_family.md``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared/data/real"
BACKTEST = str(Path(sys.executable).parent / "backtest")

FILES = {
    "btc": "btcusdt_1m_2022_2023.parquet",
    "eth": "ethusdt_1m_2022_2023.parquet",
    "arb": "arbusdt_1m_2023.parquet",
    "eurusd": "eurusd_1m_2017h1.parquet",
}
# asset -> (data start, test start, test end)
STAGES = {
    "choose": {
        "btc": ("2022-11-01", "2023-01-02", "2023-07-01"),
        "eth": ("2022-11-01", "2023-01-02", "2023-07-01"),
        "eurusd": ("2017-01-02", "2017-02-06", "2017-04-01"),
    },
    "report": {
        "btc": ("2023-05-01", "2023-07-03", "2024-01-01"),
        "eth": ("2023-05-01", "2023-07-03", "2024-01-01"),
        "arb": ("2023-05-01", "2023-07-03", "2024-01-01"),
        "eurusd": ("2017-01-02", "2017-04-03", "2017-07-01"),
    },
}
BASE_LSTM = {
    "type": "lstm",
    "memory": 60,
    "layers": [{"units": 32, "dropout": 0.1}],
    "learning_rate": 0.003,
    "batch_size": 16,
    "epochs": 5,
    "validation_split": 0.0,
}
VARIANTS = {
    "default": {},  # today's lstm: 60 bars of min-max scaled RV, MSE
    "features": {"features": ["rv", {"rv_mean": ["1D", "7D"]}, "hour_of_day", "weekday"]},
    "features_qlike": {"features": ["rv", {"rv_mean": ["1D", "7D"]}, "hour_of_day", "weekday"], "loss": "qlike"},
    "qlike": {"loss": "qlike"},
    "log_features": {"features": ["rv", "log_rv", {"rv_mean": ["1D", "7D"]}, "hour_of_day"], "target": "log"},
    "hybrid_har": {"residual_of": "har"},
    "hybrid_har_qlike": {"residual_of": "har", "loss": "qlike"},
    "hybrid_har_features": {
        "residual_of": "har",
        "loss": "qlike",
        "features": ["rv", {"rv_mean": ["1D", "7D"]}, "hour_of_day", "weekday"],
    },
    "hybrid_garch_qlike": {"residual_of": "garch", "loss": "qlike"},
    "hybrid_garch_features": {
        "residual_of": "garch",
        "loss": "qlike",
        "features": ["rv", {"rv_mean": ["1D", "7D"]}, "hour_of_day", "weekday"],
    },
    "hybrid_mean_features": {
        "residual_of": ["har", "garch"],
        "loss": "qlike",
        "features": ["rv", {"rv_mean": ["1D", "7D"]}, "hour_of_day", "weekday"],
    },
    "hybrid_periodic_features": {  # issue 28: the hybrid on the strongest HAR variant (run with --family)
        "residual_of": "har_periodic",
        "loss": "qlike",
        "features": ["rv", {"rv_mean": ["1D", "7D"]}, "hour_of_day", "weekday"],
    },
    "hybrid_measures": {  # issue 28: the default hybrid with realized measures as inputs
        "residual_of": ["har", "garch"],
        "loss": "qlike",
        "features": ["rv", {"rv_mean": ["1D", "7D"]}, "hour_of_day", "weekday", "bpv", "rs_minus", "rq"],
    },
    "hybrid_harq_periodic_garch": {  # issue 28: started from the strongest HAR variant and GARCH
        "residual_of": ["harq_periodic", "garch"],
        "loss": "qlike",
        "features": ["rv", {"rv_mean": ["1D", "7D"]}, "hour_of_day", "weekday"],
    },
    "hybrid_garch_features_slow": {
        "residual_of": "garch",
        "loss": "qlike",
        "learning_rate": 0.001,
        "features": ["rv", {"rv_mean": ["1D", "7D"]}, "hour_of_day", "weekday"],
    },
}


FAMILY = {
    "har_rv": {"type": "har_rv"},
    "log_har": {"type": "log_har"},
    "wls_har": {"type": "wls_har"},
    "harq": {"type": "harq"},
    "har_j": {"type": "har_j"},
    "har_cj": {"type": "har_cj"},
    "shar": {"type": "shar"},
    "har_periodic": {"type": "har_periodic"},
    "log_har_periodic": {"type": "log_har", "periodic": True},
    "harq_periodic": {"type": "harq", "periodic": True},
}


def config(stage: str, variants: list[str], seeds: int, out: Path, family: bool = False) -> dict:
    assets = {}
    for name, (data_start, start, end) in STAGES[stage].items():
        entry = {"path": str(REAL / FILES[name]), "start": data_start, "backtest": {"start": start, "end": end}}
        if name == "eurusd":
            entry["calendar"] = "fx"
        assets[name] = entry
    strategies = {
        f"lstm_{v}": {**BASE_LSTM, **VARIANTS[v], **({"repeats": seeds} if seeds > 1 else {})} for v in variants
    }
    strategies |= {"har": {}, "garch": {}, "har_garch": {"type": "mean_of", "of": ["har", "garch"]}}
    if family:
        strategies |= FAMILY
    first = min(s for _, s, _ in STAGES[stage].values())
    return {
        "name": f"quality_{stage}",
        "seed": 7,
        "backend": "jax",
        "data": {"assets": assets, "bar": "1h"},
        "backtest": {
            "start": first,
            "horizon": 24,
            "retrain": {"rule": "weekly", "weekday": "mon", "time": "00:00", "timezone": "UTC"},
            "window": {"kind": "expanding"},
        },
        "strategies": strategies,
        "evaluation": {"benchmark": "har", "loss": "qlike"},
        "output": {"dir": str(out), "plots": False, "save_models": False},
    }


def dm_cell(dm: pd.DataFrame, asset: str, model: str, against: str, horizon: int) -> str:
    """``+1.23 (0.0456)``: the DM statistic of ``model`` against ``against`` (negative: ``model`` has the lower
    loss) and its p-value, on ``asset`` (``all``: pooled) at ``horizon`` (0: over horizons); ``–`` if untested."""
    t = dm[(dm["asset"] == asset) & (dm["horizon"] == horizon)]
    for m, a, sign in ((model, against, 1), (against, model, -1)):
        row = t[(t["model"] == m) & (t["against"] == a)]
        if len(row):
            return f"{sign * row['statistic'].iloc[0]:+.2f} ({row['pvalue'].iloc[0]:.3g})"
    return "–"


def table(run: Path, variants: list[str]) -> str:
    metrics = pd.read_parquet(run / "metrics.parquet")
    tests = pd.read_parquet(run / "tests.parquet")
    retrains = pd.read_parquet(run / "retrains.parquet")
    names = [f"lstm_{v}" for v in variants]
    dm = tests[tests["test"].isin(["dm", "pooled_dm"])]

    def p(asset, model, against, h):
        return dm_cell(dm, asset, model, against, h)

    lines = [
        "| asset | strategy | QLIKE all h | QLIKE h=1 | DM vs har, all h (p) | DM vs har, h=1 (p) | "
        "DM vs garch, all h (p) | DM vs har_garch, all h (p) | s per retrain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for asset in sorted(metrics["asset"].unique()) + ["all"]:
        m = metrics if asset == "all" else metrics[metrics["asset"] == asset]
        per = m.groupby(["asset", "strategy"])[["qlike"]].mean().groupby(level="strategy").mean()["qlike"]
        h1 = m[m["horizon"] == 1].groupby(["asset", "strategy"])["qlike"].mean().groupby(level="strategy").mean()
        for s in names + ["har", "garch", "har_garch"]:
            if s not in per.index:
                continue
            r = retrains[retrains["strategy"].astype(str).str.startswith(s + "#") | (retrains["strategy"] == s)]
            if asset != "all":
                r = r[r["asset"] == asset]
            cells = [f"{per[s]:.4f}", f"{h1[s]:.4f}"]
            cells += (
                [p(asset, s, "har", 0), p(asset, s, "har", 1), p(asset, s, "garch", 0), p(asset, s, "har_garch", 0)]
                if s in names
                else ["", "", "", ""]
            )
            cells.append(f"{r['seconds'].mean():.2f}" if len(r) else "")
            lines.append(f"| {asset} | {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def family_table(run: Path) -> str:
    """The baselines ranked per asset and pooled: QLIKE over horizons, at h = 1 and h = 24, MSE over horizons,
    and DM (statistic, p; pooled across assets on row ``all``) against the strongest HAR variant."""
    metrics = pd.read_parquet(run / "metrics.parquet")
    tests = pd.read_parquet(run / "tests.parquet")
    metrics = metrics[~metrics["strategy"].astype(str).str.contains("#|lstm", regex=True)]
    hmax = int(metrics["horizon"].max())
    pooled = metrics.groupby(["asset", "strategy"])["qlike"].mean().groupby(level="strategy").mean()
    hars = [s for s in pooled.index if "har" in s and s != "har_garch"]
    best = pooled[hars].idxmin()
    dm = tests[tests["test"].isin(["dm", "pooled_dm"]) & (tests["horizon"] == 0)]

    def vs(asset, model):
        return "strongest" if model == best else dm_cell(dm, asset, model, best, 0)

    lines = [
        f"Strongest HAR variant (lowest QLIKE over horizons, averaged over assets): `{best}`",
        "",
        f"| asset | strategy | QLIKE all h | QLIKE h=1 | QLIKE h={hmax} | MSE all h | DM vs {best}, all h (p) |",
        "|---|---|---|---|---|---|---|",
    ]
    for asset in sorted(metrics["asset"].unique()) + ["all"]:
        m = metrics if asset == "all" else metrics[metrics["asset"] == asset]
        mean = m.groupby(["asset", "strategy"])[["qlike", "mse"]].mean().groupby(level="strategy").mean()
        at = {
            h: m[m["horizon"] == h].groupby(["asset", "strategy"])["qlike"].mean().groupby(level="strategy").mean()
            for h in (1, hmax)
        }
        for s in mean.sort_values("qlike").index:
            lines.append(
                f"| {asset} | {s} | {mean.loc[s, 'qlike']:.4f} | {at[1][s]:.4f} | {at[hmax][s]:.4f} | "
                f"{mean.loc[s, 'mse']:.3e} | {vs(asset, s)} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=sorted(STAGES))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--variants", default="default,features,features_qlike")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--keep", default=None, help="folder for the run (default: a temporary one)")
    ap.add_argument("--family", action="store_true", help="add the HAR family and rank the baselines")
    args = ap.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep) if args.keep else Path(tmp)
        path = Path(tmp) / "quality.yaml"
        path.write_text(yaml.safe_dump(config(args.stage, variants, args.seeds, out, args.family), sort_keys=False))
        subprocess.run([BACKTEST, "run", str(path), "--force", "-q", "--jobs", str(args.jobs)], check=True, cwd=ROOT)
        text = table(out / f"quality_{args.stage}", variants) if variants else ""
        ranked = family_table(out / f"quality_{args.stage}") if args.family else ""
    command = f"python bench/quality.py {args.stage} --seeds {args.seeds} --variants '{args.variants}'"
    command += " --family" * args.family
    if text:
        print(text)
        (ROOT / f"bench/quality_{args.stage}.md").write_text(f"`{command}`\n\n{text}\n")
    if ranked:
        print(ranked)
        (ROOT / f"bench/quality_{args.stage}_family.md").write_text(f"`{command}`\n\n{ranked}\n")


if __name__ == "__main__":
    main()
