"""``backtest``: a thin click layer over :mod:`backtester.runner`.

Exit codes: 0 done; 1 a check failed (``audit``, ``model predict``) or an internal error; 2 bad input
(config, data, model files: one line ``error: ...``, nothing written); 3 a run stopped by its failure
policy (too many failed retrains, a leak found); 130 Ctrl-C; 143 SIGTERM. ``backtest --debug ...``
prints the traceback behind an error.
"""

from __future__ import annotations

import atexit
import os
import sys
import traceback
from pathlib import Path

import click

from .cli_common import _DEBUG, _fail, _load, backend_option, set_option
from .cli_model import model
from .cli_output import ProgressBar, _interrupted, _print_plan, _summary_table
from .core.errors import BacktestError, ConfigError
from .core.interrupt import exit_code
from .core.interrupt import install as install_signals

__all__ = ["entry", "main"]


def entry() -> None:
    """The ``backtest`` command: :func:`main`, then a hard exit with its status.

    Native thread pools (Arrow's, XLA's) can abort or crash while the interpreter tears itself down
    (``terminate called without an active exception``, apache/arrow#34314; a segfault after Ctrl-C
    mid-training), turning a finished command into exit -6 or -11. So once the command is done and
    Python's exit handlers have run, the process ends with ``os._exit``, skipping that teardown.
    """
    install_signals()
    code = 0
    try:
        returned = main(standalone_mode=False)
        code = returned if isinstance(returned, int) else 0  # --help, --version
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            click.echo(exc.code, err=True)
    except click.exceptions.Abort as exc:  # click's word for a KeyboardInterrupt it caught (compare, audit, ...)
        code = exit_code(exc.__context__) if isinstance(exc.__context__, KeyboardInterrupt) else 130
        click.echo("interrupted: finished segments are kept; run the same command again to continue", err=True)
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except KeyboardInterrupt as exc:  # outside a command's own handler (e.g. while importing)
        click.echo("\ninterrupted", err=True)
        code = exit_code(exc)
    except Exception as exc:  # a bug of ours or a library's: one line, the traceback with --debug
        if _DEBUG[0]:
            traceback.print_exc()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        click.echo(
            f"error: internal error: {type(exc).__name__}: {first} (run with --debug for the traceback)", err=True
        )
        code = 1
    _hard_exit(code)


def _hard_exit(code: int) -> None:
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="backtester")
@click.option("--debug", is_flag=True, help="Print the traceback behind an error.")
def main(debug: bool) -> None:
    """Walk-forward backtests of volatility forecasts."""
    if debug:
        _DEBUG[0] = True


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@set_option
@backend_option
@click.option(
    "--jobs",
    "-j",
    type=int,
    default=None,
    metavar="N",
    help="Run segments on N local worker processes (overrides execution.jobs).",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Run segments on the Dask scheduler at ADDRESS, e.g. tcp://host:8786, or on local:N, a Dask cluster of N "
    "worker processes started here (overrides execution.scheduler).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace an existing results directory of the same name (reusing its finished segments that are still valid).",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="Compute every segment again: ignore the segments finished by an "
    "interrupted run or by the run being replaced.",
)
@click.option("--dry-run", is_flag=True, help="Print the plan and stop before training.")
@click.option(
    "--track", is_flag=True, help="Log the finished run to MLflow (as tracking: mlflow; pip install -e '.[mlflow]')."
)
@click.option("-q", "--quiet", count=True, help="No progress bar or tables, only where the results went; -qq: nothing.")
def run(
    config: str,
    overrides: tuple[str, ...],
    backend: str | None,
    jobs: int | None,
    scheduler: str | None,
    track: bool,
    force: bool,
    fresh: bool,
    dry_run: bool,
    quiet: int,
) -> None:
    """Run the backtest described by CONFIG and write results/<name>/.

    Interrupted (Ctrl-C, kill) or edited, the same command again reuses every segment already
    finished under the same key and computes only the rest."""
    cfg, bar = None, None
    try:
        extra = ((f"backend={backend}",) if backend else ()) + ((f"execution.jobs={jobs}",) if jobs is not None else ())
        extra += (f"execution.scheduler={scheduler}",) if scheduler else ()
        extra += ("tracking.to=mlflow",) if track else ()  # keeps a uri the config gives
        cfg = _load(config, overrides + extra, train=not dry_run, on_workers=True)
        if dry_run:
            _print_plan(cfg)
            return
        from .runner import run as run_backtest

        log = (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))
        bar = None if quiet else ProgressBar(cfg)
        result = run_backtest(cfg, force=force, progress=bar, log=log, fresh=fresh)
    except BacktestError as exc:
        if bar is not None:
            bar.close()  # the error on a line of its own, not after the bar's "elapsed"
        _fail(exc, overrides)
    except KeyboardInterrupt as exc:
        code = exit_code(exc)  # handled from here on: a signal delivered again cannot cut the message short
        click.echo(f"\n{_interrupted(cfg, fresh)}", err=True)
        sys.exit(code)
    if not quiet:
        click.echo(_summary_table(result))
        secs = result.manifest["seconds"]
        tuning = f", tuning {secs['tuning']:.1f}s" if "tuning" in secs else ""
        click.echo(
            f"wrote {result.out_dir}/ in {secs['total']:.1f}s (train {secs['train']:.1f}s{tuning}, "
            f"predict {secs['predict']:.1f}s)"
        )
    elif quiet == 1:
        click.echo(f"wrote {result.out_dir}/")


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@set_option
@click.option(
    "--estimate", is_flag=True, help="Estimate each strategy's run time from a quick timing of one small fit (seconds)."
)
def plan(config: str, overrides: tuple[str, ...], estimate: bool) -> None:
    """Print the walk-forward plan of CONFIG: retrain dates, windows, forecast count, cost per strategy."""
    try:
        _print_plan(_load(config, overrides, train=estimate), estimate)
    except BacktestError as exc:
        _fail(exc, overrides)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@set_option
@backend_option
@click.option(
    "--until",
    default=None,
    metavar="DATE",
    help="Train on the bars closed at or before DATE (a date alone: the whole day); default: all data.",
)
@click.option("--strategy", "only", multiple=True, metavar="NAME", help="Train only this strategy (repeatable).")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to write the model folder (default: results/<name>-model).",
)
@click.option("--force", is_flag=True, help="Replace an existing model folder.")
@click.option("--asset", default=None, metavar="NAME", help="In a universe (data.assets): the asset to train on.")
@click.option("-q", "--quiet", is_flag=True, help="Only the folder written.")
def train(
    config: str,
    overrides: tuple[str, ...],
    backend: str | None,
    until: str | None,
    only: tuple[str, ...],
    out: str | None,
    force: bool,
    asset: str | None,
    quiet: bool,
) -> None:
    """Tune (if configured) and train each strategy of CONFIG once, as a retrain at --until would;
    write the artifacts (results/<name>-model/models/<strategy>/1/)."""
    try:
        cfg = _one_asset(_load(config, overrides + ((f"backend={backend}",) if backend else ()), train=True), asset)
        from .train import train as train_models

        log = (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))
        done = train_models(cfg, until=until, only=only, out=out, force=force, log=log)
    except BacktestError as exc:
        _fail(exc, overrides)
    except KeyboardInterrupt as exc:
        click.echo("\ninterrupted: nothing was written; run the same command again", err=True)
        sys.exit(exit_code(exc))
    if not quiet:
        for name, folder in done.models.items():
            click.echo(f"{name}: {folder}")
        click.echo(f"trained through {done.at} in {done.seconds:.1f}s")
    click.echo(f"wrote {done.out_dir}/")


def _one_asset(cfg, asset: str | None):
    """The config as one asset sees it: ``asset`` of a universe (required there), else the config itself."""
    assets = {a.name: a for a in cfg.universe()}
    if "" in assets:
        if asset is not None:
            raise ConfigError(f"--asset {asset}: this config has one data.path, no universe; leave --asset out")
        return cfg
    if asset is None or asset not in assets:
        given = f"--asset {asset}: not an asset of data.assets" if asset else "this config is a universe (data.assets)"
        raise ConfigError(f"{given}; pass --asset NAME, one of {', '.join(assets)}")
    view = assets[asset].cfg
    return view.model_copy(update={"name": f"{cfg.name}-{asset}"})  # results/<name>-<asset>-model


@main.group()
def data() -> None:
    """Make sample data and prepare realized-volatility bars."""


@data.command()
@click.option("--out", type=click.Path(dir_okay=False), default="data/sample_1m.parquet", show_default=True)
@click.option("--start", default="2024-01-01", show_default=True, help="First bar (UTC).")
@click.option("--days", type=click.IntRange(1, 3650), default=90, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--assets",
    type=click.IntRange(1, 1000),
    default=None,
    help="Write this many assets (seeds SEED, SEED+1, ...; their volatilities share a market factor) as "
    "OUT/syn1.parquet, OUT/syn2.parquet, ...",
)
def synth(out: str, start: str, days: int, seed: int, assets: int | None) -> None:
    """Write synthetic 1-minute OHLCV bars (stochastic volatility, jumps, gaps)."""
    from .synth import synth_bars

    paths = [Path(out)] if assets is None else [Path(out) / f"syn{k}.parquet" for k in range(1, assets + 1)]
    for k, path in enumerate(paths):  # a universe's assets share a market volatility factor
        bars = synth_bars(start=start, days=days, seed=seed + k, market_seed=None if assets is None else seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        if path.suffix == ".csv":
            bars.to_csv(tmp, index=False)
        else:  # the shipped sample is compressed hard (it is in git); a universe's files are quick to write
            bars.to_parquet(tmp, index=False, compression="zstd", compression_level=19 if assets is None else 3)
        tmp.replace(path)
        click.echo(f"wrote {len(bars):,} bars to {path}")


@data.command()
@click.argument("config", type=click.Path(dir_okay=False))
@set_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Also write the RV bars to this Parquet file (in a universe: one file per asset, FILE_<asset>).",
)
def prepare(config: str, overrides: tuple[str, ...], out: str | None) -> None:
    """Build (and cache) the realized-volatility bars of CONFIG's data section."""
    try:
        cfg = _load(config, overrides)
        from .rv import prepare_bars

        done = [(asset.name, prepare_bars(asset.cfg.data)) for asset in cfg.universe()]
    except BacktestError as exc:
        _fail(exc)
    for name, prepared in done:
        click.echo(
            f"{name + ': ' if name else ''}{prepared.describe()}{' (from cache)' if prepared.from_cache else ''}"
        )
        if out:
            path = Path(out) if not name else Path(out).with_name(f"{Path(out).stem}_{name}{Path(out).suffix}")
            path.parent.mkdir(parents=True, exist_ok=True)
            prepared.bars.to_parquet(path)
            click.echo(f"wrote {path}")


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the comparison goes (default: RUN/comparison for one run, else results/compare_<runs>).",
)
@click.option("--benchmark", default=None, help="Strategy the DM tests compare against (default: har if present).")
@click.option(
    "--loss", default="qlike", show_default=True, help="Loss of the tests: qlike, mse, mae, mse_var, mse_log."
)
@click.option(
    "--force", is_flag=True, help="Replace --out, and rerun a config whose results hold another config's run."
)
@click.option("-q", "--quiet", is_flag=True, help="No progress or messages.")
@click.option(
    "--seed",
    type=click.IntRange(0, 2**32 - 1),
    default=None,
    help="Seed of the MCS bootstrap (default: the first run's seed).",
)
@click.option(
    "--block-size",
    type=click.IntRange(1, 100_000),
    default=None,
    help="MCS bootstrap block length (default: the first run's evaluation.block_size, else arch's).",
)
def compare(
    runs: tuple[str, ...],
    out: str | None,
    benchmark: str | None,
    loss: str,
    force: bool,
    quiet: bool,
    seed: int | None,
    block_size: int | None,
) -> None:
    """Compare RUNS (run directories, or configs: run first unless already run) on their common forecast rows."""
    try:
        dirs = [_run_dir_for(arg, force, quiet) for arg in runs]
        from .compare import compare as compare_runs
        from .compare import default_out

        result = compare_runs(
            dirs,
            out or default_out(dirs),
            benchmark=benchmark,
            loss=loss,
            force=force,
            seed=seed,
            block_size=block_size,
        )
    except BacktestError as exc:
        _fail(exc)
    if not quiet:
        click.echo((result.out_dir / "compare.md").read_text())
    click.echo(f"wrote {result.out_dir}/ ({result.rows:,} common rows)")


def _run_dir_for(arg: str, force: bool, quiet: bool) -> Path:
    """A run directory as it is; a config: its results directory, run first if missing or of another config."""
    path = Path(arg)
    if path.is_dir() or path.suffix not in (".yaml", ".yml"):
        return path
    from .layout import peek_manifest
    from .runner import run as run_backtest
    from .runner import target_dir

    cfg = _load(arg, (), train=True, on_workers=True)  # run as `run` runs it
    out = target_dir(cfg)
    manifest = peek_manifest(out)
    if manifest is not None and manifest.config_id == cfg.config_id():
        if not quiet:
            click.echo(f"{arg}: reusing the finished run in {out}/", err=True)
        return out
    log = (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))
    run_backtest(cfg, force=force, progress=None if quiet else ProgressBar(cfg), log=log)
    return out


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
def report(run_dir: str) -> None:
    """Redraw the figures of RUN_DIR and write its self-contained report.html."""
    from .core.errors import RunError
    from .evaluation.report import write_figures, write_html
    from .layout import FORECASTS, REPORT, RunDir

    path, run = Path(run_dir), RunDir(run_dir)
    try:
        if not run.is_finished() or not run.file(REPORT).is_file():
            raise RunError(f"{path}: not a finished run (no manifest.json or report.md); pass results/<name>")
        ev = run.config_block("evaluation")
        if run.file(FORECASTS).is_file():
            write_figures(path, ev.get("loss", "qlike"), ev.get("benchmark"))
        out = write_html(path)
    except BacktestError as exc:
        _fail(exc)
    click.echo(f"wrote {out}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--sample",
    type=click.IntRange(1, 1000),
    default=3,
    show_default=True,
    help="Segments recomputed per strategy (always its first and last).",
)
@click.option("--strategy", "only", multiple=True, metavar="NAME", help="Audit only this strategy (repeatable).")
@backend_option
def audit(run_dir: str, sample: int, only: tuple[str, ...], backend: str | None) -> None:
    """Prove that no forecast of RUN_DIR saw the future: recompute sampled segments on truncated and
    on poisoned data, check artifacts and rows; exit 1 naming the first offending strategy and time."""
    try:
        from .audit import audit as audit_run

        report = audit_run(
            Path(run_dir), sample=sample, only=only, backend=backend, log=lambda msg: click.echo(msg, err=True)
        )
    except BacktestError as exc:
        _fail(exc)
    for line in report.lines():
        click.echo(line)
    from .tracking import tag_audit

    tag_audit(Path(run_dir), "PASS" if report.ok else "FAIL", lambda msg: click.echo(msg, err=True))
    if not report.ok:
        sys.exit(1)


main.add_command(model)

if __name__ == "__main__":  # pragma: no cover
    main()
