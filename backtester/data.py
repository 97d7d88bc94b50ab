"""Load and validate input bars (CSV or Parquet).

Input is either N-minute price bars (``data.kind: minute``) or ready-made
realized-volatility bars (``data.kind: rv``). Timestamps are converted to UTC;
naive timestamps are read in ``data.timezone``. Every problem raises a
:class:`~backtester.core.errors.DataError` whose message names the file and the fix.

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
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from .core.errors import DataError


def file_fingerprint(path: Path) -> str:
    """sha256 of the file's bytes (the data fingerprint recorded in every manifest)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_table(
    path: Path, fmt: str, columns: list, separator: str = ",", header: bool = True, decimal: str = "."
) -> pd.DataFrame:
    """Read the named columns (positions when ``header`` is False) of a CSV or Parquet file (CSV numbers with
    ``decimal`` as their decimal mark: ``,`` for ``1234,5``)."""
    path = Path(path)
    fmt = source_format(path, fmt)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
            _check_columns(path, names, columns)
            return pd.read_parquet(path, columns=columns)
        if not header:
            first = pd.read_csv(path, sep=separator, header=None, nrows=1)
            _check_positions(path, first.shape[1], columns)
            return pd.read_csv(path, sep=separator, header=None, usecols=columns, decimal=decimal)
        head = pd.read_csv(path, sep=separator, nrows=1)
        _check_columns(path, head.columns.tolist(), columns, csv=separator, first_row=head)
        return pd.read_csv(path, sep=separator, usecols=columns, decimal=decimal)
    except DataError:
        raise
    except Exception as exc:  # unreadable file: name it, keep one line
        raise DataError(f"{path}: cannot read as {fmt}: {str(exc).splitlines()[0]}") from None


def _check_positions(path: Path, width: int, columns: list) -> None:
    for col in columns:
        if not 0 <= col < width:
            raise DataError(
                f"{path}: no column at position {col}; the file has {width} column(s) (0 = the first); "
                "set data.timestamp_column / data.price_column / data.rv_column"
            )


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


def _check_columns(
    path: Path, have: list, need: list, csv: str | None = None, first_row: pd.DataFrame | None = None
) -> None:
    for col in need:
        if col not in have:
            hint = "set data.timestamp_column / data.price_column / data.rv_column"
            if csv is not None:
                hint = _dialect_hint(have, csv, first_row) or hint
            raise DataError(f"{path}: no column {col!r}; columns are {', '.join(map(str, have))}; {hint}")


def _dialect_hint(have: list, separator: str, first_row: pd.DataFrame | None) -> str | None:
    """Why a CSV's columns are not the ones expected, if it looks like another dialect."""
    if len(have) == 1:
        for sep, name in ((";", "';'"), ("\t", "'\\t' (tab)"), ("|", "'|'"), (",", "','")):
            if sep != separator and sep in str(have[0]):
                return f"the file seems to be separated by {name}: set data.separator: {name.split()[0]}"
    try:  # a header that reads as a timestamp is a first data row
        pd.Timestamp(str(have[0]))
        looks_like_data = not str(have[0]).strip().isalpha()
    except (ValueError, TypeError):
        looks_like_data = False
    if looks_like_data:
        return (
            "the file seems to have no header row (its first row reads as data): set data.header: false and give "
            "data.timestamp_column / data.price_column as positions (0 = the first column)"
        )
    return None


def _magnitude(values: pd.Series) -> float:
    """Largest absolute epoch number of a numeric timestamp column (NaN ignored)."""
    return float(np.nanmax(np.abs(values.to_numpy(dtype="float64")))) if len(values) else 0.0


def _epoch_unit(mag: float) -> str:
    return "s" if mag < 1e11 else "ms" if mag < 1e14 else "us" if mag < 1e17 else "ns"


def parse_timestamps(
    values: pd.Series, timezone: str, path: Path, column: str, unit: str | None = None, fmt: str | None = None
) -> pd.DatetimeIndex:
    """Parse a timestamp column into a UTC DatetimeIndex.

    Text is read with ``fmt`` (a strftime format) when given, else as ISO-like dates;
    epoch numbers in ``unit``, by default the unit their magnitude suggests. A failure
    suggests the ``data.timestamp_format`` or ``data.epoch_unit`` that would work; text with
    more than one UTC offset (``+00:00`` and ``+02:00``, a local clock across a DST change) is
    refused as such (:func:`mixed_offsets`).
    """
    try:
        if pd.api.types.is_datetime64_any_dtype(values):
            idx = pd.DatetimeIndex(values)
        elif pd.api.types.is_numeric_dtype(values):
            guessed = unit is None
            unit = unit or _epoch_unit(_magnitude(values))
            idx = pd.DatetimeIndex(pd.to_datetime(values, unit=unit, utc=True))
            years = idx[~idx.isna()].year
            if len(years) and (years.min() < 1970 or years.max() > 2200):
                raise DataError(
                    f"{path}: column {column!r} read as epoch {unit} gives dates from {idx.min()} to "
                    f"{idx.max()}; set data.epoch_unit (s, ms, us or ns) to the unit of the numbers"
                    + (" (the magnitude suggested " + unit + ")" if guessed else "")
                )
        else:
            with warnings.catch_warnings():  # pandas warns about mixed offsets before it fails on them
                warnings.simplefilter("ignore", FutureWarning)
                idx = pd.DatetimeIndex(pd.to_datetime(values, utc=False, format="mixed" if fmt is None else fmt))
    except (ValueError, TypeError, OverflowError) as exc:
        raise _unparsed(exc, values, path, column, fmt) from None
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


def _unparsed(exc: Exception, values: pd.Series, path: Path, column: str, fmt: str | None) -> DataError:
    """The one-line error for timestamps pandas could not parse: mixed offsets, a format that does not
    match, epoch numbers out of range, or text it cannot read (with the format that would work)."""
    mixed = mixed_offsets(values)
    if mixed:
        return DataError(
            f"{path}: column {column!r} has {mixed}; convert the timestamps to UTC (or one offset) "
            "before loading, or write them without offsets and set data.timezone to the zone they "
            "are in (e.g. 'Europe/Berlin')"
        )
    what = str(exc).splitlines()[0]
    if fmt is not None:
        return DataError(
            f"{path}: column {column!r} does not match data.timestamp_format {fmt!r} ({what}); "
            f"fix the format (e.g. '%d/%m/%Y %H:%M')"
        )
    if pd.api.types.is_numeric_dtype(values):
        return DataError(
            f"{path}: column {column!r} has epoch numbers out of range ({what}); set data.epoch_unit (s, ms, us or ns)"
        )
    return DataError(f"{path}: column {column!r} has unparseable timestamps ({what}); {_format_hint(values)}")


_OFFSET = re.compile(r"(Z|[+-]\d\d:?\d\d)\s*$")


def mixed_offsets(values: pd.Series) -> str | None:
    """``mixed UTC offsets (+00:00 at row 0, +02:00 at row 5)`` if text timestamps carry more than one offset.

    >>> mixed_offsets(pd.Series(["2024-01-01 00:00:00+00:00", "2024-03-31 03:00:00+02:00"]))
    'mixed UTC offsets (+00:00 at row 0, +02:00 at row 1)'
    >>> mixed_offsets(pd.Series(["2024-01-01 00:00:00+00:00", "2024-01-01 01:00:00+00:00"])) is None
    True
    """
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values) or not len(values):
        return None
    found = values.astype(str).reset_index(drop=True).str.extract(_OFFSET, expand=False)
    offsets = found.dropna()
    if offsets.nunique() < 2:
        return None
    first = offsets.iloc[0]
    other = offsets[offsets != first]
    return f"mixed UTC offsets ({first} at row {offsets.index[0]}, {other.iloc[0]} at row {other.index[0]})"


def _format_hint(values: pd.Series) -> str:
    """The ``data.timestamp_format`` to set, guessed from the first value (day first if month first fails)."""
    from pandas.tseries.api import guess_datetime_format

    sample = str(values.iloc[0]) if len(values) else ""
    for dayfirst in (False, True):
        guess = guess_datetime_format(sample, dayfirst=dayfirst)
        if guess:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)
                    pd.to_datetime(values, format=guess)
                return f"set data.timestamp_format: '{guess}'"
            except (ValueError, TypeError):
                continue
    return "set data.timestamp_format to their strftime format, e.g. '%d/%m/%Y %H:%M'"


def _dayfirst_hint(values: pd.Series) -> str | None:
    """If text timestamps read as sorted day-first, the format that reads them so."""
    from pandas.tseries.api import guess_datetime_format

    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values) or not len(values):
        return None
    guess = guess_datetime_format(str(values.iloc[0]), dayfirst=True)
    if not guess or "%d" not in guess or "%m" not in guess or guess.index("%d") > guess.index("%m"):
        return None  # only a day-before-month format can be the misreading
    try:
        idx = pd.DatetimeIndex(pd.to_datetime(values, format=guess))
    except (ValueError, TypeError):
        return None
    return guess if (np.diff(idx.asi8) > 0).all() else None


def _check_order(idx: pd.DatetimeIndex, path: Path, column: str, raw: pd.Series | None = None) -> None:
    diffs = np.diff(idx.asi8)
    if (diffs <= 0).any() and raw is not None:
        guess = _dayfirst_hint(raw)
        if guess:
            raise DataError(
                f"{path}: timestamps in {column!r} read month-first are out of order, but read day-first "
                f"they are sorted: set data.timestamp_format: '{guess}'"
            )
    if (diffs == 0).any():
        row = int(np.flatnonzero(diffs == 0)[0]) + 1
        raise DataError(f"{path}: duplicate timestamp {idx[row]} at row {row} in {column!r}; remove duplicate rows")
    if (diffs < 0).any():
        row = int(np.flatnonzero(diffs < 0)[0]) + 1
        raise DataError(
            f"{path}: timestamps are not sorted ({idx[row]} at row {row} comes after {idx[row - 1]}); sort the file by {column!r}"
        )


def validate_prices(
    df: pd.DataFrame,
    ts_col,
    price_col,
    timezone: str,
    path: Path | str,
    unit: str | None = None,
    fmt: str | None = None,
) -> pd.Series:
    """Return the price column as a Series indexed by UTC timestamps, after validation."""
    path = Path(path)
    idx = parse_timestamps(df[ts_col], timezone, path, ts_col, unit, fmt)
    _check_order(idx, path, ts_col, df[ts_col] if fmt is None else None)
    try:
        prices = pd.to_numeric(df[price_col], errors="raise").to_numpy(dtype="float64")
    except (ValueError, TypeError):
        raise DataError(f"{path}: column {price_col!r} has non-numeric prices{_decimal_hint(df[price_col])}") from None
    bad = ~np.isfinite(prices) | (prices <= 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: {int(bad.sum())} non-finite or non-positive price(s) in {price_col!r}, first at row {row} "
            f"({idx[row]}: {prices[row]}); clean or drop those rows"
        )
    return pd.Series(prices, index=idx, name="price")


def _decimal_hint(values: pd.Series) -> str:
    """``; ...set data.decimal`` where the text looks like numbers with a decimal comma (``1234,5``)."""
    sample = values.dropna().astype(str).head(20)
    if len(sample) and sample.str.fullmatch(r"\s*-?[\d.]*\d,\d+\s*").all():
        return f" (e.g. {sample.iloc[0].strip()!r}: a decimal comma); set data.decimal: ',' (and data.separator: ';')"
    return "; clean the column or point data.price_column at the price"


def load_prices(cfg) -> pd.Series:
    """Load N-minute bars from ``cfg`` (a DataConfig) as a price Series keyed by bar open time (UTC)."""
    df = read_table(
        cfg.path, cfg.format, [cfg.timestamp_column, cfg.price_column], cfg.separator, cfg.header, cfg.decimal
    )
    if len(df) < 2:
        raise DataError(f"{cfg.path}: only {len(df)} row(s); need at least two bars")
    prices = validate_prices(
        df, cfg.timestamp_column, cfg.price_column, cfg.timezone, cfg.path, cfg.epoch_unit, cfg.timestamp_format
    )
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
    unit = cfg.epoch_unit
    ts_type = source.schema_arrow.field(ts_col).type
    if unit is None and (pa.types.is_integer(ts_type) or pa.types.is_floating(ts_type)):
        # epoch numbers: one unit for the whole file, from the whole column's magnitude
        mags = [_magnitude(b[ts_col]) for b in _read_batches(source, path, batch_rows, [ts_col])]
        unit = _epoch_unit(float(np.fmax.reduce(mags)))
    last = None
    for batch in _read_batches(source, path, batch_rows, [ts_col, price_col]):
        prices = validate_prices(batch, ts_col, price_col, cfg.timezone, path, unit, cfg.timestamp_format)
        if last is not None and prices.index[0] <= last:
            raise DataError(
                f"{path}: timestamps are not sorted or repeat at {prices.index[0]}; sort the file by {ts_col!r}"
            )
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
    df = read_table(cfg.path, cfg.format, [cfg.timestamp_column, cfg.rv_column], cfg.separator, cfg.header, cfg.decimal)
    idx = parse_timestamps(
        df[cfg.timestamp_column], cfg.timezone, cfg.path, cfg.timestamp_column, cfg.epoch_unit, cfg.timestamp_format
    )
    _check_order(
        idx, cfg.path, cfg.timestamp_column, df[cfg.timestamp_column] if cfg.timestamp_format is None else None
    )
    if cfg.timestamp_is == "open":
        idx = idx + cfg.bar
    rv = pd.to_numeric(df[cfg.rv_column], errors="coerce").to_numpy(dtype="float64")
    bad = np.isinf(rv) | (rv < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{cfg.path}: negative or infinite volatility in {cfg.rv_column!r} at row {row}; fix or blank it (blank = missing bar)"
        )
    out = pd.DataFrame({"rv": rv, "ret": np.nan, "n_returns": np.where(np.isnan(rv), 0, -1)}, index=idx)
    out.index.name = "time"
    return out
