"""Load and validate input bars (CSV or Parquet).

Input is either N-minute price bars (``data.kind: minute``) or ready-made
realized-volatility bars (``data.kind: rv``). Timestamps are converted to UTC;
naive timestamps are read in ``data.timezone``. Every problem raises a
:class:`~backtester.errors.DataError` whose message names the file and the fix.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=3, freq="min"),
...                    "close": [1.0, 1.1, 1.2]})
>>> validate_prices(df, "timestamp", "close", "UTC", "demo.csv").tolist()
[1.0, 1.1, 1.2]
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError


def file_fingerprint(path: Path) -> str:
    """sha256 of the file's bytes (the data fingerprint recorded in every manifest)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_table(path: Path, fmt: str, columns: list[str]) -> pd.DataFrame:
    """Read the named columns of a CSV or Parquet file."""
    path = Path(path)
    fmt = source_format(path, fmt)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
            _check_columns(path, names, columns)
            return pd.read_parquet(path, columns=columns)
        header = pd.read_csv(path, nrows=0).columns.tolist()
        _check_columns(path, header, columns)
        return pd.read_csv(path, usecols=columns)
    except DataError:
        raise
    except Exception as exc:  # unreadable file: name it, keep one line
        raise DataError(f"{path}: cannot read as {fmt}: {str(exc).splitlines()[0]}") from None


def source_format(path: Path, fmt: str) -> str:
    """``csv`` or ``parquet``: ``fmt``, or read from the suffix when ``fmt`` is ``auto``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found; check data.path in the config")
    if fmt == "auto":
        suffix = path.suffix.lower()
        fmt = "parquet" if suffix in (".parquet", ".pq") else "csv" if suffix in (".csv", ".txt", ".gz") else ""
        if not fmt:
            raise DataError(f"{path}: cannot tell the format from the suffix; set data.format to csv or parquet")
    return fmt


def _check_columns(path: Path, have: list[str], need: list[str]) -> None:
    for col in need:
        if col not in have:
            raise DataError(
                f"{path}: no column {col!r}; columns are {', '.join(map(str, have))}; "
                "set data.timestamp_column / data.price_column / data.rv_column"
            )


def _magnitude(values: pd.Series) -> float:
    """Largest absolute epoch number of a numeric timestamp column (NaN ignored)."""
    return float(np.nanmax(np.abs(values.to_numpy(dtype="float64")))) if len(values) else 0.0


def _epoch_unit(mag: float) -> str:
    return "s" if mag < 1e11 else "ms" if mag < 1e14 else "us" if mag < 1e17 else "ns"


def parse_timestamps(values: pd.Series, timezone: str, path: Path, column: str, unit: str | None = None) -> pd.DatetimeIndex:
    """Parse a timestamp column into a UTC DatetimeIndex.

    Epoch numbers are read in ``unit``, by default the unit their magnitude suggests.
    """
    try:
        if pd.api.types.is_datetime64_any_dtype(values):
            idx = pd.DatetimeIndex(values)
        elif pd.api.types.is_numeric_dtype(values):
            unit = unit or _epoch_unit(_magnitude(values))
            idx = pd.DatetimeIndex(pd.to_datetime(values, unit=unit, utc=True))
        else:
            idx = pd.DatetimeIndex(pd.to_datetime(values, utc=False, format="mixed"))
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"{path}: column {column!r} has unparseable timestamps ({str(exc).splitlines()[0]})") from None
    if idx.hasnans:
        row = int(np.flatnonzero(idx.isna())[0])
        raise DataError(f"{path}: column {column!r} has an empty or unparseable timestamp at row {row}")
    if idx.tz is None:
        try:
            idx = idx.tz_localize(timezone, ambiguous="raise", nonexistent="raise")
        except Exception as exc:
            raise DataError(
                f"{path}: timestamps cannot be read in timezone {timezone!r} ({str(exc).splitlines()[0]}); "
                "store UTC timestamps or set data.timezone"
            ) from None
    return idx.tz_convert("UTC").as_unit("ns")


def _check_order(idx: pd.DatetimeIndex, path: Path, column: str) -> None:
    diffs = np.diff(idx.asi8)
    if (diffs == 0).any():
        row = int(np.flatnonzero(diffs == 0)[0]) + 1
        raise DataError(f"{path}: duplicate timestamp {idx[row]} at row {row} in {column!r}; remove duplicate rows")
    if (diffs < 0).any():
        row = int(np.flatnonzero(diffs < 0)[0]) + 1
        raise DataError(f"{path}: timestamps are not sorted ({idx[row]} at row {row} comes after {idx[row - 1]}); sort the file by {column!r}")


def validate_prices(
    df: pd.DataFrame, ts_col: str, price_col: str, timezone: str, path: Path | str, unit: str | None = None
) -> pd.Series:
    """Return the price column as a Series indexed by UTC timestamps, after validation."""
    path = Path(path)
    idx = parse_timestamps(df[ts_col], timezone, path, ts_col, unit)
    _check_order(idx, path, ts_col)
    try:
        prices = pd.to_numeric(df[price_col], errors="raise").to_numpy(dtype="float64")
    except (ValueError, TypeError):
        raise DataError(f"{path}: column {price_col!r} has non-numeric prices") from None
    bad = ~np.isfinite(prices) | (prices <= 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: {int(bad.sum())} non-finite or non-positive price(s) in {price_col!r}, first at row {row} "
            f"({idx[row]}: {prices[row]}); clean or drop those rows"
        )
    return pd.Series(prices, index=idx, name="price")


def load_prices(cfg) -> pd.Series:
    """Load N-minute bars from ``cfg`` (a DataConfig) as a price Series keyed by bar open time (UTC)."""
    df = read_table(cfg.path, cfg.format, [cfg.timestamp_column, cfg.price_column])
    if len(df) < 2:
        raise DataError(f"{cfg.path}: only {len(df)} row(s); need at least two bars")
    prices = validate_prices(df, cfg.timestamp_column, cfg.price_column, cfg.timezone, cfg.path)
    if cfg.timestamp_is == "close":
        prices.index = prices.index - cfg.interval
    return prices


def price_batches(cfg, batch_rows: int = 1 << 16) -> Iterator[pd.Series]:
    """Yield a Parquet source's prices in time order, about ``batch_rows`` rows at a time.

    Each batch is what :func:`load_prices` returns for those rows; only the timestamp and price
    columns are read. Batches are validated one by one and against the previous batch's last
    timestamp, so a problem raises DataError when its batch is reached, with row numbers that
    count from the batch (``prepare_bars`` then re-reads the file whole to word the error).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(cfg.path)
    ts_col, price_col = cfg.timestamp_column, cfg.price_column
    try:
        source = pq.ParquetFile(path)
    except Exception as exc:
        raise DataError(f"{path}: cannot read as parquet: {str(exc).splitlines()[0]}") from None
    _check_columns(path, source.schema_arrow.names, [ts_col, price_col])
    if source.metadata.num_rows < 2:
        raise DataError(f"{path}: only {source.metadata.num_rows} row(s); need at least two bars")
    unit = None
    ts_type = source.schema_arrow.field(ts_col).type
    if pa.types.is_integer(ts_type) or pa.types.is_floating(ts_type):
        # epoch numbers: one unit for the whole file, from the whole column's magnitude
        mags = [_magnitude(b[ts_col]) for b in _read_batches(source, path, batch_rows, [ts_col])]
        unit = _epoch_unit(float(np.fmax.reduce(mags)))
    last = None
    for batch in _read_batches(source, path, batch_rows, [ts_col, price_col]):
        prices = validate_prices(batch, ts_col, price_col, cfg.timezone, path, unit)
        if last is not None and prices.index[0] <= last:
            raise DataError(f"{path}: timestamps are not sorted or repeat at {prices.index[0]}; sort the file by {ts_col!r}")
        last = prices.index[-1]
        if cfg.timestamp_is == "close":
            prices.index = prices.index - cfg.interval
        yield prices


def _read_batches(source, path: Path, batch_rows: int, columns: list[str]) -> Iterator[pd.DataFrame]:
    """The non-empty record batches of a ParquetFile as frames; a read failure is a one-line DataError."""
    batches = source.iter_batches(batch_rows, columns=columns)
    while True:
        try:
            batch = next(batches, None)
            frame = None if batch is None else batch.to_pandas()
        except Exception as exc:  # damaged file: name it, keep one line
            raise DataError(f"{path}: cannot read as parquet: {str(exc).splitlines()[0]}") from None
        if frame is None:
            return
        if len(frame):
            yield frame


def load_rv_bars(cfg) -> pd.DataFrame:
    """Load ready-made volatility bars (``data.kind: rv``), keyed by bar close time."""
    df = read_table(cfg.path, cfg.format, [cfg.timestamp_column, cfg.rv_column])
    idx = parse_timestamps(df[cfg.timestamp_column], cfg.timezone, cfg.path, cfg.timestamp_column)
    _check_order(idx, cfg.path, cfg.timestamp_column)
    if cfg.timestamp_is == "open":
        idx = idx + cfg.bar
    rv = pd.to_numeric(df[cfg.rv_column], errors="coerce").to_numpy(dtype="float64")
    bad = np.isinf(rv) | (rv < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{cfg.path}: negative or infinite volatility in {cfg.rv_column!r} at row {row}; fix or blank it (blank = missing bar)")
    out = pd.DataFrame({"rv": rv, "ret": np.nan, "n_returns": np.where(np.isnan(rv), 0, -1)}, index=idx)
    out.index.name = "time"
    return out
