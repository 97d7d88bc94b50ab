"""``backtest model``: reload a retrain's artifact and reproduce its forecasts (``predict``), or describe a
Keras model file (``inspect``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .cli_common import _fail, backend_option
from .core.errors import BacktestError


@click.group()
def model() -> None:
    """Saved models: reload a retrain's artifact (results/<run>/models/[<asset>/]<strategy>/<version>/) or inspect
    a .h5/.keras file."""


@model.command()
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option(
    "--data",
    "data_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="The run's data file, if it has moved since the run.",
)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the forecasts to this Parquet file.")
@backend_option
def predict(model_dir: str, data_path: str | None, out: str | None, backend: str | None) -> None:
    """Reload MODEL_DIR and forecast every issue time it served; compare with the run's rows."""
    try:
        from .artifacts import predict as predict_artifact
        from .artifacts import read_meta
        from .backend import select_backend

        select_backend(backend or read_meta(model_dir).get("backend") or "tensorflow")  # the run's, by default

        rows = predict_artifact(model_dir, data_path=data_path, backend=backend)
    except BacktestError as exc:
        _fail(exc)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        rows.to_parquet(out, index=False)
    first, last = rows["issued_at"].min(), rows["issued_at"].max()
    click.echo(f"{len(rows):,} forecasts issued {first} .. {last}")
    if (
        len(rows)
        and rows["target_time"].max() > rows["trained_through"].max()
        and rows.attrs["recorded"] == 0
        and first == last
    ):  # a `backtest train` model: show its forecast
        for r in rows.itertuples():
            click.echo(f"  h={r.horizon:<3} {r.target_time}  {r.forecast:.6g}")
    recorded, diff = rows.attrs["recorded"], rows.attrs["max_abs_diff"]
    scale = float(rows["forecast"].abs().max()) if len(rows) else 1.0
    if recorded == 0:
        click.echo("no recorded forecasts to compare with (forecasts.parquet not found)")
    elif diff != diff:  # NaN: different row sets
        click.echo(f"recorded: {recorded:,} rows, a different set of rows")
        sys.exit(1)
    elif diff == 0:
        click.echo(f"identical to the {recorded:,} recorded forecasts of this model")
    elif diff <= 1e-5 * scale:  # another backend or machine: float rounding only
        click.echo(f"equal to the {recorded:,} recorded forecasts within float rounding (max abs diff {diff:.3g})")
    else:
        click.echo(f"differs from the {recorded:,} recorded forecasts by up to {diff:.3g}")
        sys.exit(1)
    if out:
        click.echo(f"wrote {out}")


@model.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the description to this model_config.json (and, with --scaler, scaler.json beside it); "
    "without --out nothing is written.",
)
@click.option(
    "--scaler",
    "scaler_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="A pickled scikit-learn MinMaxScaler to describe (and convert to scaler.json beside --out).",
)
@click.option("--trust-pickle", is_flag=True, help="Allow unpickling --scaler (unpickling runs code from the file).")
def inspect(path: str, out: str | None, scaler_path: str | None, trust_pickle: bool) -> None:
    """Describe a .h5 (Keras 2 or 3) or .keras model file; with --out, write its model_config.json."""
    from strategies import inspect_model, summary_lines

    try:
        found = inspect_model(path, out=out, scaler_path=scaler_path, trust_pickle=trust_pickle)
    except BacktestError as exc:
        _fail(exc)
    for line in summary_lines(found.info, found.scaler):
        click.echo(line)
    for written in found.written:
        click.echo(f"wrote {written}")
