"""``backtest``: a thin click layer over :mod:`backtester.runner`.

Every user error prints one line ``error: ...`` to stderr and exits with status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .errors import BacktestError

EXIT_USAGE = 2


def _fail(exc: BacktestError) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(EXIT_USAGE)


def _load(config: str, overrides: tuple[str, ...]):
    from .config import load_config

    return load_config(config, overrides)


set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                          help="Override a config key, e.g. --set backtest.horizon=6 (repeatable).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="backtester")
def main() -> None:
    """Walk-forward backtests of volatility forecasts."""


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@set_option
@click.option("--force", is_flag=True, help="Replace an existing results directory of the same name.")
@click.option("--dry-run", is_flag=True, help="Print the plan and stop before training.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or messages.")
def run(config: str, overrides: tuple[str, ...], force: bool, dry_run: bool, quiet: bool) -> None:
    """Run the backtest described by CONFIG and write results/<name>/."""
    try:
        cfg = _load(config, overrides)
        if dry_run:
            _print_plan(cfg)
            return
        from .runner import run as run_backtest

        log = (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))
        result = run_backtest(cfg, force=force, progress=None if quiet else _progress, log=log)
    except BacktestError as exc:
        _fail(exc)
    if not quiet:
        from .evaluation import summary

        click.echo(summary(result.metrics).to_string(float_format=lambda v: f"{v:.4g}"))
        secs = result.manifest["seconds"]
        click.echo(f"wrote {result.out_dir}/ in {secs['total']:.1f}s (train {secs['train']:.1f}s, predict {secs['predict']:.1f}s)")


def _progress(total: int):
    from tqdm import tqdm

    bar = tqdm(total=total, unit="ev", desc="walk-forward", file=sys.stderr, mininterval=0.5, leave=False)

    def on_event(kind, t):
        bar.update(1)
        if kind == "retrain":
            bar.set_postfix_str(f"retrain {t:%Y-%m-%d %H:%M}")

    return on_event


def _print_plan(cfg) -> None:
    from .runner import prepare

    prepared, plan = prepare(cfg)
    click.echo(f"data: {prepared.describe()}")
    click.echo(plan.describe(list(cfg.strategies)))


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@set_option
def plan(config: str, overrides: tuple[str, ...]) -> None:
    """Print the walk-forward plan of CONFIG: retrain dates, windows, forecast count."""
    try:
        _print_plan(_load(config, overrides))
    except BacktestError as exc:
        _fail(exc)


@main.group()
def data() -> None:
    """Make sample data and prepare realized-volatility bars."""


@data.command()
@click.option("--out", type=click.Path(dir_okay=False), default="data/sample_1m.parquet", show_default=True)
@click.option("--start", default="2024-01-01", show_default=True, help="First bar (UTC).")
@click.option("--days", type=click.IntRange(1, 3650), default=90, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
def synth(out: str, start: str, days: int, seed: int) -> None:
    """Write synthetic 1-minute OHLCV bars (stochastic volatility, jumps, gaps)."""
    from .synth import synth_bars

    bars = synth_bars(start=start, days=days, seed=seed)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".csv":
        bars.to_csv(tmp, index=False)
    else:
        bars.to_parquet(tmp, index=False, compression="zstd", compression_level=19)
    tmp.replace(path)
    click.echo(f"wrote {len(bars):,} bars to {path}")


@data.command()
@click.argument("config", type=click.Path(dir_okay=False))
@set_option
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the RV bars to this Parquet file.")
def prepare(config: str, overrides: tuple[str, ...], out: str | None) -> None:
    """Build (and cache) the realized-volatility bars of CONFIG's data section."""
    try:
        cfg = _load(config, overrides)
        from .rv import prepare_bars

        prepared = prepare_bars(cfg.data)
    except BacktestError as exc:
        _fail(exc)
    click.echo(f"{prepared.describe()}{' (from cache)' if prepared.from_cache else ''}")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        prepared.bars.to_parquet(out)
        click.echo(f"wrote {out}")


if __name__ == "__main__":  # pragma: no cover
    main()
