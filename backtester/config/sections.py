"""The plain sections of a run config: ``data``, ``backtest``, ``output``, ``execution``, ``evaluation``.

Examples
--------
>>> BacktestConfig(start="2024-02-05").horizon
24
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import Field, field_validator, model_validator

from ..core.schedule import RetrainRule, WeeklyRule, WindowConfig
from ..core.types import Duration, Strict, Timestamp, TimeZone, fmt_duration


class DataConfig(Strict):
    """Where the bars come from and how realized-volatility bars are built: one file (``path``), or a
    universe of assets (``assets``: name -> file or {path, options it overrides}, or a glob whose file
    names name the assets; see :mod:`backtester.config.universe`)."""

    path: Path | None = None
    assets: dict[str, Any] | str | None = None
    kind: Literal["minute", "rv"] = "minute"
    format: Literal["auto", "csv", "parquet"] = "auto"
    timestamp_column: str | int = "timestamp"  # a column name, or its position (0 = first) when header: false
    price_column: str | int = "close"
    rv_column: str | int = "rv"
    timestamp_format: str | None = None  # strftime format of text timestamps, e.g. '%d/%m/%Y %H:%M' (default: ISO-like)
    epoch_unit: Literal["s", "ms", "us", "ns"] | None = None  # numeric timestamps (default: from their magnitude)
    separator: str = Field(default=",", min_length=1)  # CSV field separator, e.g. ';' or '\t'
    decimal: Literal[".", ","] = "."  # CSV decimal mark: ',' for numbers written 1234,5 (then often separator ';')
    header: bool = True  # false: the CSV has no header row; name columns by position
    timezone: TimeZone = "UTC"
    timestamp_is: Literal["open", "close"] = "open"
    interval: Duration = pd.Timedelta("1min")
    calendar: str = "24/7"
    bar: Duration = pd.Timedelta("1h")
    anchor: Literal["session", "utc"] = "session"  # fx daily bars close at 17:00 New York (session) or 00:00 UTC
    min_returns: int | None = Field(
        default=None, ge=1, le=10_000_000
    )  # default: half the input bars a bar holds in session
    max_gap: Duration = pd.Timedelta("15min")
    jump_level: float = 0.999  # the jump test's level (backtester.measures): a bar jumps where z > the normal quantile
    start: Timestamp | None = None  # keep only bars closing at or after this time
    end: Timestamp | None = None  # keep only bars closing at or before this time
    cache_dir: Path | None = Path(".cache/backtester")

    @field_validator("jump_level")
    @classmethod
    def _a_level(cls, v: float) -> float:
        if not 0 < v < 1:
            raise ValueError(f"{v} is no level; give one between 0 and 1, e.g. 0.999 (ABD 2007) or 0.99")
        return v

    @field_validator("path", mode="before")
    @classmethod
    def _one_path(cls, v: Any) -> Any:
        if isinstance(v, (list, tuple, dict)):
            raise ValueError(
                "one file; for several assets use data.assets instead (name: file, or a glob such as data/*.parquet)"
            )
        return v

    @field_validator("assets", mode="before")
    @classmethod
    def _assets_shape(cls, v: Any) -> Any:
        if v is not None and not isinstance(v, (dict, str)):
            raise ValueError(
                "a mapping of asset name to file (or to {path: file, ...options}), e.g. {btc: "
                "data/btc.parquet}, or a glob string such as data/*.parquet"
            )
        return v

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if (self.path is None) == (self.assets is None):
            raise ValueError(
                "data: give either path (one file) or assets (a universe: name -> file, or a glob such "
                "as data/*.parquet), not both"
                if self.path is not None
                else "data: path is missing; give path (one file) or assets (a universe: name -> file, or "
                "a glob such as data/*.parquet)"
            )
        return self

    @model_validator(mode="after")
    def _columns_by_position(self) -> DataConfig:
        cols = {"timestamp_column": self.timestamp_column, "price_column": self.price_column}
        if self.kind == "rv":
            cols = {"timestamp_column": self.timestamp_column, "rv_column": self.rv_column}
        if not self.header:
            named = [k for k, v in cols.items() if not isinstance(v, int)]
            if named:
                raise ValueError(
                    f"header: false: give data.{named[0]} as a column position (0 = the first column), not a name"
                )
        else:
            positions = [k for k, v in cols.items() if isinstance(v, int)]
            if positions:
                raise ValueError(
                    f"{positions[0]}: a position ({cols[positions[0]]}) needs header: false; "
                    "give the column's name, or set data.header: false if the file has no header row"
                )
        return self

    @model_validator(mode="after")
    def _bar_is_multiple(self) -> DataConfig:
        if self.kind == "minute" and self.bar % self.interval != pd.Timedelta(0):
            raise ValueError(
                f"data.bar ({fmt_duration(self.bar)}) must be a multiple of data.interval ({fmt_duration(self.interval)})"
            )
        return self


class BacktestConfig(Strict):
    start: Timestamp
    end: Timestamp | None = None
    horizon: int = Field(default=24, ge=1, le=1000)
    retrain: RetrainRule = Field(default_factory=WeeklyRule)
    window: WindowConfig = Field(default_factory=WindowConfig)
    max_failed_retrains: int = Field(default=3, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _end_after_start(self) -> BacktestConfig:
        if self.end is not None and self.end <= self.start:
            raise ValueError("backtest.end must be after backtest.start")
        return self


class OutputConfig(Strict):
    dir: Path = Path("results")
    plots: bool = True
    plot_unit: Literal["bar", "percent", "annualized"] = "bar"  # volatility per bar, in %, or annualized %
    save_models: bool = True  # an artifact folder per retrain under results/<name>/models/

    @field_validator("dir", mode="before")
    @classmethod
    def _a_folder(cls, v: Any) -> Any:
        """A folder, or a path where one can be made: no part of it may be an existing file."""
        if isinstance(v, str) and not v.strip():
            raise ValueError("give the folder runs are written under, e.g. results")
        if isinstance(v, (str, os.PathLike)):
            path = Path(v)
            for part in (path, *path.parents):
                if part.exists() or part.is_symlink():
                    if not part.is_dir():
                        what = "is a file" if part == path else f"lies under {part}, which is a file"
                        raise ValueError(
                            f"{path} {what}, not a folder; point output.dir at a folder (default: results)"
                        )
                    break
        return v


STACK_AUTO_ACCELERATOR = 32  # stack: auto on a GPU/TPU: a guess, not measured (no GPU has been lent; issue 30)
STACK_AUTO_CPU = 16  # stack: auto on a CPU, for fits of one window length (seeds, assets, a search's trials)


class ExecutionConfig(Strict):
    """Where segments run: ``jobs`` local worker processes, or the Dask scheduler at ``scheduler``."""

    jobs: int = Field(default=1, ge=1, le=1024)  # 1: in this process
    scheduler: str | None = None  # tcp://10.0.0.5:8786 (the results dir on a path the workers share), or local:N
    memory_guard: bool = True  # refuse a run whose evaluation would not fit in this machine's free memory

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, v: str | None) -> str | None:
        if v is not None and v.startswith("local:") and (not v[6:].isdigit() or int(v[6:]) < 1):
            raise ValueError(
                f"{v} starts no workers; give local:N with N 1 or more (e.g. local:2), or a scheduler's address "
                "such as tcp://host:8786"
            )
        return v

    batched: bool = True  # one model call per segment; false: one per issue time (the slow reference path)
    stack: Literal["auto", "off"] | int = "auto"  # Keras fits trained together per compiled program (jax only)

    @field_validator("stack", mode="before")
    @classmethod
    def _stack_size(cls, v):
        if isinstance(v, bool):  # YAML reads a bare off / on as a boolean
            return "auto" if v else "off"
        if v not in ("auto", "off") and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError("stack is auto, off, or the most models trained together (1 or more, e.g. 8)")
        return v

    def stack_size(self, backend: str, accelerator: bool = False, threads: int = 1) -> tuple[int, bool]:
        """Models per stacked training program, and whether only fits on windows of one length stack.

        ``off``, or a backend other than jax: 1 (each alone). ``N``: N, any windows. ``auto`` on a GPU or
        TPU: :data:`STACK_AUTO_ACCELERATOR`, any windows. ``auto`` on a CPU, where a stacked step costs
        about as much per model as a lone one and a group's shorter windows waste masked steps, stacking
        pays only for fits on windows of one length (a strategy's seed members and assets at one retrain,
        the retrains of a rolling window, a random search's trials), and for retrains only on workers of one
        thread each (``threads``), where it saves Keras' per-step dispatch (measured: bench/README.md,
        "Stacked training"). Trials
        stack on any thread count (they also share one compile). So: :data:`STACK_AUTO_CPU`, equal windows
        only, or 1 for retrains on several threads (trials then still stack: see ``trial_stack``).
        """
        if self.stack == "off" or backend != "jax":
            return 1, False
        if self.stack == "auto":
            if accelerator:
                return STACK_AUTO_ACCELERATOR, False
            return (STACK_AUTO_CPU if threads == 1 else 1), True
        return int(self.stack), False

    def trial_stack(self, backend: str, accelerator: bool = False) -> int:
        """The most trials of a random search trained together: ``stack``'s size; ``auto`` on a CPU
        :data:`STACK_AUTO_CPU` whatever the threads (a search's trials share one window)."""
        if self.stack == "auto" and backend == "jax" and not accelerator:
            return STACK_AUTO_CPU
        return self.stack_size(backend, accelerator)[0]


class TrackingConfig(Strict):
    """Where a finished run is logged (:mod:`backtester.tracking`): ``tracking: mlflow``, or this mapping."""

    to: Literal["mlflow"] = "mlflow"
    uri: str | None = None  # default: sqlite:///<output.dir>/mlflow.db
    experiment: str | None = None  # default: the config's name
    strict: bool = False  # true: refuse to start when the store cannot be reached (else: run untracked, said)


class EconomicConfig(Strict):
    """What a forecast is worth (``evaluation.economic``, :mod:`backtester.evaluation.economic`): VaR and ES
    backtests, volatility targeting and realized utility from each strategy's forecasts and the bars' returns."""

    enabled: bool | None = None  # default: on where the data gives returns (minute bars), off for RV bars
    levels: list[float] = Field(default_factory=lambda: [0.01, 0.05], min_length=1)  # VaR/ES tail levels
    dist: list[str] = Field(default_factory=lambda: ["t"], min_length=1)  # normal, t or fhs: the standardized returns
    min_history: int = Field(default=250, ge=20, le=10_000_000)  # standardized returns t and fhs need, else normal
    refit: int = Field(default=168, ge=1, le=10_000_000)  # bars between refits of t's nu / fhs's sample (168: a week)
    target_vol: float = 0.10  # volatility targeting: the annualized target
    max_leverage: float = Field(default=2.0, gt=0, le=1000)  # the position's cap (times capital)
    rebalance: int = Field(default=1, ge=1, le=1000)  # bars between rebalances (<= backtest.horizon)
    cost_bp: float = 2.0  # transaction cost per unit of turnover, in basis points
    sharpe: float = Field(default=0.4, gt=0, le=10)  # realized utility (BHHP 2018): the assumed annual Sharpe ratio
    gamma: float = Field(default=2.0, gt=0, le=1000)  # ... and risk aversion
    sims: int = Field(default=1000, ge=100, le=100_000)  # draws of the ES test's null distribution

    @field_validator("dist", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("dist")
    @classmethod
    def _known_dist(cls, v: list[str]) -> list[str]:
        from ..core.validation import one_of

        return [one_of(d, ["normal", "t", "fhs"], "distribution") for d in v]

    @field_validator("levels")
    @classmethod
    def _tail_levels(cls, v: list[float]) -> list[float]:
        if any(not 0 < x < 0.5 for x in v):
            raise ValueError("levels are tail probabilities between 0 and 0.5, e.g. [0.01, 0.05] for 99 % and 95 % VaR")
        return v

    @field_validator("target_vol")
    @classmethod
    def _positive_target(cls, v: float) -> float:
        if not v > 0:
            raise ValueError(f"{v} is no volatility target; give an annualized volatility above 0, e.g. 0.10")
        return v

    @field_validator("cost_bp")
    @classmethod
    def _costs(cls, v: float) -> float:
        if v < 0:
            raise ValueError(f"{v} bp: costs cannot be negative; give 0 for none, e.g. 2 for 2 bp per unit traded")
        return v


class EvaluationConfig(Strict):
    """Tests of predictive accuracy run at the end of every run."""

    benchmark: str | None = "har"  # DM tests against it; default har where the run has it
    loss: Literal["qlike", "mse", "mae", "mse_var", "mse_log"] = "qlike"  # the loss the tests and the MCS use
    mcs_sizes: list[float] = Field(default_factory=lambda: [0.10, 0.25], min_length=1)  # 0.10 = the 90 % set
    mcs_reps: int = Field(default=1000, ge=100, le=1_000_000)
    block_size: int | None = Field(default=None, ge=1, le=100_000)  # MCS bootstrap block; default: arch's choice
    proxy: str = "rv"  # what forecasts are scored against: rv, or a jump- or noise-robust measure (bpv, medrv, ...)
    patton_b: list[float] = Field(default_factory=lambda: [-2.0, -1.0, 0.0, 1.0])  # Patton's robust losses (-2: QLIKE)
    gw_regime: bool = True  # GW's conditional test also on the volatility regime (RV above its median so far)
    economic: EconomicConfig = Field(default_factory=EconomicConfig)

    @field_validator("proxy")
    @classmethod
    def _known_proxy(cls, v: str) -> str:
        from ..core.series import PROXIES
        from ..core.validation import one_of

        return one_of(v, PROXIES, "proxy")

    @field_validator("mcs_sizes")
    @classmethod
    def _sizes(cls, v: list[float]) -> list[float]:
        if any(not 0 < x < 1 for x in v):
            raise ValueError("sizes are test sizes between 0 and 1, e.g. [0.10, 0.25] for the 90 % and 75 % sets")
        return v
