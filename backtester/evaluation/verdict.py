"""The facts a comparison's answer is made of, and when noise decides it.

:class:`Answer` holds a comparison's loss table on its common rows, its tests and its cost; the
sentences made of them are :mod:`.answer`'s. The warnings that say when an answer is noise: a gap
smaller than the spread between seeds (:func:`seed_spread`, :func:`seeds_needed`) and a difference
that one retrain segment decides (:func:`decisive_segment`).

Seed members are labelled ``name#k`` and their mean forecast ``name`` (the ensemble); the
members are draws, the ensemble speaks for them.

Examples
--------
>>> members_of(["lstm", "lstm#1", "lstm#2", "har"])
{'lstm': ['lstm#1', 'lstm#2']}
>>> verdict_word(-0.02, 0.01), verdict_word(0.02, 0.01), verdict_word(-0.02, 0.4)
('worth it', 'not worth it', 'not told apart')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.names import Member, is_seed_member

KEYS = ["asset", "issued_at", "target_time", "horizon"]
SIGNIFICANT = 0.05


def members_of(names) -> dict[str, list[str]]:
    """Each seed ensemble among ``names`` and its members (``lstm`` -> ``lstm#1``, ``lstm#2``, ...)."""
    names = [str(n) for n in names]
    out: dict[str, list[str]] = {}
    for n in names:
        m = Member.parse(n)
        if m.is_seed and m.base in names:
            out.setdefault(m.base, []).append(n)
    return out


def is_member(name) -> bool:
    return is_seed_member(name)


def seed_rows(names: pd.Series) -> pd.Series:
    """Which of ``names`` are seed members (``lstm#2``): draws, judged by their ensemble.

    >>> seed_rows(pd.Series(["lstm", "lstm#1", "har"])).tolist()
    [False, True, False]
    """
    return names.astype(str).map(is_seed_member).astype(bool)


def verdict_word(diff: float, p: float) -> str:
    """A dearer strategy against a cheaper one: ``diff`` = dearer's loss minus cheaper's, ``p`` its DM p-value."""
    if np.isfinite(p) and p < SIGNIFICANT:
        return "worth it" if diff < 0 else "not worth it"
    return "not told apart"


@dataclass(frozen=True)
class Decider:
    """One retrain segment that alone decides a difference: without its rows the difference is ``without``."""

    strategy: str
    asset: str
    version: int
    retrain_time: pd.Timestamp | None
    rows: int
    loss: float  # the strategy's mean loss over the segment's rows
    with_all: float
    without: float

    def sentence(self, loss: str) -> str:
        when = f", retrained {self.retrain_time:%Y-%m-%d %H:%M}" if self.retrain_time is not None else ""
        where = f" on `{self.asset}`" if self.asset else ""
        return (
            f"a single retrain segment decides it: `{self.strategy}`'s model {self.version}{where}{when} "
            f"(mean {loss} {self.loss:.4g} over its {self.rows:,} rows); without it the difference would be "
            f"{self.without:+.4g} instead of {self.with_all:+.4g}"
        )


def decisive_segment(
    values: pd.DataFrame, versions: pd.DataFrame, a: str, b: str, retrain_times: dict | None = None
) -> Decider | None:
    """The retrain segment (of ``a`` or of ``b``) whose rows alone decide the mean difference ``a - b``.

    ``values`` and ``versions``: the loss and the model version of each strategy (columns) on the
    common rows (index with ``asset`` first). A segment decides when it holds at most a third of the rows,
    and leaving them out flips the sign of the mean difference or takes more than half of it away, by more
    than twice the mean's standard error (a change within noise decides nothing); of those, the one whose
    rows weigh most (the change per share of rows). A segment with half the rows always moves the mean a
    lot, which says nothing, so strategies with fewer than three segments are not judged this way.
    Computed from :class:`LossSummary`'s sums (:meth:`LossSummary.decisive`).

    >>> idx = pd.MultiIndex.from_product([["X"], range(30)], names=["asset", "horizon"])
    >>> vals = pd.DataFrame({"a": [1.0] * 25 + [9.0] * 5, "b": [2.0] * 30}, index=idx)
    >>> vers = pd.DataFrame({"a": [1] * 13 + [2] * 12 + [3] * 5, "b": [1] * 30}, index=idx)
    >>> d = decisive_segment(vals, vers, "a", "b")
    >>> d.strategy, d.version, d.rows, round(d.with_all, 3), d.without
    ('a', 3, 5, 0.333, -1.0)
    """
    return LossSummary.of_wide(values, versions).decisive(a, b, retrain_times)


def _sums(codes: np.ndarray, size: int, *columns: np.ndarray) -> list[np.ndarray]:
    """Each column's sum per group (``codes``: each row's group, ``0 .. size - 1``)."""
    return [np.bincount(codes, weights=c, minlength=size) for c in columns]


def _pair_sums(
    values: pd.DataFrame,
    versions: pd.DataFrame | None,
    a: str,
    b: str,
    assets: pd.Index,
    codes: np.ndarray,
    uniq: pd.Index,
) -> tuple[pd.DataFrame, list[pd.DataFrame]] | None:
    """The pair ``a < b``'s sums per (asset, horizon) cell and per retrain segment of either (None: no common row)."""
    d = (values[a] - values[b]).to_numpy(dtype="float64")
    ok = np.isfinite(d)
    if not ok.any():
        return None
    dd = np.where(ok, d, 0.0)
    n, s1, s2 = _sums(codes, len(uniq), ok.astype("float64"), dd, dd * dd)
    keep = n > 0
    cells = pd.DataFrame(
        {
            "a": a,
            "b": b,
            "asset": uniq.get_level_values(0)[keep],
            "horizon": uniq.get_level_values(1)[keep],
            "n": n[keep],
            "sum": s1[keep],
            "sq": s2[keep],
        }
    )
    segments = []
    for name in (a, b):
        if versions is None:
            break
        seg = pd.DataFrame(
            {
                "asset": assets[ok],
                "version": versions[name].to_numpy()[ok],
                "d": d[ok],
                "v": values[name].to_numpy(dtype="float64")[ok],
            }
        )
        g = seg.groupby(["asset", "version"], sort=False).agg(n=("d", "size"), sum=("d", "sum"), v=("v", "sum"))
        segments.append(g.reset_index().assign(a=a, b=b, name=name))
    return cells, segments


class LossSummary:
    """What the answer needs of a loss table, as sums that add up over assets: each strategy's mean loss per
    (asset, horizon) and its rows' sum and count; per pair of strategies (seed members aside) on their common rows, the count,
    sum and sum of squares of the difference per (asset, horizon), and per retrain segment of either the
    count, the difference's sum and the strategy's loss sum. One asset's summary is a few thousand numbers
    whatever its rows; a universe's answer concatenates its assets' (:meth:`concat`).

    >>> idx = pd.MultiIndex.from_product([["X"], [1, 2]], names=["asset", "horizon"])
    >>> s = LossSummary.of_wide(pd.DataFrame({"a": [1.0, 3.0], "b": [2.0, 2.0]}, index=idx))
    >>> s.diff("a", "b"), s.diff("b", "a", 2), s.means().to_dict()
    (0.0, -1.0, {'a': 2.0, 'b': 2.0})
    """

    def __init__(self, cells: pd.DataFrame, totals: pd.DataFrame, pairs: pd.DataFrame, segments: pd.DataFrame):
        self.cells, self.totals, self.pairs, self.segments = cells, totals, pairs, segments

    @classmethod
    def of_wide(cls, values: pd.DataFrame, versions: pd.DataFrame | None = None) -> LossSummary:
        """From the loss (and model version) of each strategy (columns) per row (index: ``asset`` and
        ``horizon`` among its levels; without ``horizon``, one cell per asset)."""
        assets = values.index.get_level_values("asset").astype(str)
        levels = values.index.names
        horizons = (
            values.index.get_level_values("horizon").astype("int64")
            if "horizon" in levels
            else pd.Index(np.zeros(len(values), dtype="int64"))
        )
        cells = values.groupby([assets, horizons]).mean().rename_axis(["asset", "horizon"])
        totals = pd.DataFrame({"sum": values.sum(), "n": values.notna().sum()})
        cell = pd.MultiIndex.from_arrays([assets, horizons], names=["asset", "horizon"])
        codes, uniq = pd.factorize(cell)
        names = sorted(str(c) for c in values.columns if not is_member(c))  # a seed member is one draw: never judged
        pairs, segments = [], []
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                got = _pair_sums(values, versions, a, b, assets, codes, uniq)
                if got is not None:
                    pairs.append(got[0])
                    segments += got[1]
        pair_cols = ["a", "b", "asset", "horizon", "n", "sum", "sq"]
        seg_cols = ["a", "b", "name", "asset", "version", "n", "sum", "v"]
        return cls(
            cells,
            totals,
            pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame(columns=pair_cols),
            pd.concat(segments, ignore_index=True)[seg_cols] if segments else pd.DataFrame(columns=seg_cols),
        )

    @classmethod
    def of(cls, table: pd.DataFrame, loss: str) -> LossSummary:
        """From a tidy loss table (``asset`` optional) for ``loss``."""
        t = table[table["loss"] == loss]
        if "asset" not in t:  # one asset's own table
            t = t.assign(asset="")
        values = t.pivot_table(index=KEYS, columns="strategy", values="value", observed=True)
        versions = t.pivot_table(index=KEYS, columns="strategy", values="model_version", observed=True)
        values.columns = values.columns.astype(str)
        versions.columns = versions.columns.astype(str)
        return cls.of_wide(values, versions)

    @classmethod
    def concat(cls, parts: list[LossSummary]) -> LossSummary:
        """The summary of the assets of ``parts`` together (each asset in one part)."""
        totals = pd.concat([p.totals for p in parts]).groupby(level=0, sort=False).sum()
        return cls(
            pd.concat([p.cells for p in parts]),
            totals,
            pd.concat([p.pairs for p in parts], ignore_index=True),
            pd.concat([p.segments for p in parts], ignore_index=True),
        )

    @property
    def strategies(self) -> list[str]:
        return [str(c) for c in self.cells.columns]

    @property
    def assets(self) -> int:
        return self.cells.index.get_level_values("asset").nunique()

    def means(self) -> pd.Series:
        """Each strategy's loss, each (asset, horizon) weighing the same."""
        return self.cells.mean()

    def row_means(self) -> pd.Series:
        """Each strategy's mean loss over its rows."""
        return self.totals["sum"] / self.totals["n"]

    def _pair(self, a: str, b: str) -> tuple[pd.DataFrame, float]:
        lo, hi = sorted((a, b))
        sign = 1.0 if (lo, hi) == (a, b) else -1.0
        p = self.pairs
        return p[(p["a"] == lo) & (p["b"] == hi)], sign

    def diff(self, a: str, b: str, horizon: int = 0) -> float:
        """The mean loss of ``a`` minus ``b``'s on the rows both scored: every horizon (0) or one; each
        (asset, horizon) weighs the same."""
        p, sign = self._pair(a, b)
        if horizon:
            p = p[p["horizon"] == horizon]
        return sign * float((p["sum"] / p["n"]).mean()) if len(p) else float("nan")

    def decisive(self, a: str, b: str, retrain_times: dict | None = None) -> Decider | None:
        """:func:`decisive_segment` of ``a - b``, from the sums."""
        p, sign = self._pair(a, b)
        n = float(p["n"].sum())
        if n < 2:
            return None
        s1, s2 = sign * float(p["sum"].sum()), float(p["sq"].sum())
        total = s1 / n
        noise = 2 * np.sqrt(max((s2 - s1 * s1 / n) / (n - 1), 0.0)) / np.sqrt(n)
        segs = self.segments
        segs = segs[(segs["a"] == min(a, b)) & (segs["b"] == max(a, b))]
        best = None
        for name in (a, b):
            seg = segs[segs["name"] == name]
            if not len(seg) or seg.groupby("asset")["version"].nunique().max() < 2:
                continue
            for asset, version, rows, part_sum, v in zip(seg["asset"], seg["version"], seg["n"], seg["sum"], seg["v"]):
                if 3 * rows > n:
                    continue
                without = (s1 - sign * part_sum) / (n - rows)
                moved = abs(without - total)
                decides = (np.sign(without) != np.sign(total) or abs(without) < 0.5 * abs(total)) and moved > noise
                weight = moved * n / rows
                if decides and (best is None or weight > best[0]):
                    when = (retrain_times or {}).get((asset, name, int(version)))
                    best = (
                        weight,
                        Decider(name, asset, int(version), when, int(rows), v / rows, total, float(without)),
                    )
        return best[1] if best else None


def seed_spread(means: pd.Series, ensembles: dict[str, list[str]]) -> pd.DataFrame:
    """Per seed ensemble, from each strategy's mean loss on the common rows: its members' mean losses (mean,
    std, min, max) and its own."""
    rows = []
    for name, members in ensembles.items():
        m = means[[x for x in members if x in means.index]]
        rows.append(
            {
                "strategy": name,
                "seeds": len(m),
                "mean": m.mean(),
                "std": m.std(ddof=1) if len(m) > 1 else np.nan,
                "min": m.min(),
                "max": m.max(),
                "ensemble": means.get(name, np.nan),
            }
        )
    return pd.DataFrame(rows, columns=["strategy", "seeds", "mean", "std", "min", "max", "ensemble"])


def seeds_needed(std: float, gap: float) -> int:
    """Seeds whose mean loss has a standard error of half the gap: ``ceil((2 std / gap)^2)`` (at least 1).

    >>> seeds_needed(0.02, 0.01), seeds_needed(0.01, 0.05)
    (16, 1)
    """
    if not gap:
        return 10**6
    return max(1, int(np.ceil((2 * std / abs(gap)) ** 2)))


def dm_of(tests: pd.DataFrame, a: str, b: str, horizon: int = 0) -> tuple[float, float]:
    """(statistic, p) of the DM test of ``a`` against ``b`` (sign: negative = ``a`` has the lower loss): the
    pooled test where there are several assets, else the asset's own."""
    pooled = tests[tests["test"] == "pooled_dm"]
    t = pooled if len(pooled) else tests[tests["test"] == "dm"]
    t = t[t["horizon"] == horizon]
    for model, against, sign in ((a, b, 1.0), (b, a, -1.0)):
        row = t[(t["model"] == model) & (t["against"] == against)]
        if len(row):
            return sign * float(row["statistic"].iloc[0]), float(row["pvalue"].iloc[0])
    return float("nan"), float("nan")


class Answer:
    """The facts the answer's sentences are made of (see :func:`.answer.answer_lines`).

    ``table``: the tidy loss table on the common rows, or its :class:`LossSummary`; ``tests``: DM tests (``dm`` per asset, ``pooled_dm``
    across assets) and MCS; ``cost``: one row per strategy with ``retrains``, ``train_seconds`` and
    ``tuning_seconds``; ``retrains``: the fit records (for when each segment began).
    """

    def __init__(
        self,
        table: pd.DataFrame | LossSummary,
        tests: pd.DataFrame,
        cost: pd.DataFrame,
        loss: str,
        retrains: pd.DataFrame | None = None,
    ):
        self.loss, self.tests, self.cost = loss, tests, cost
        self.summary = table if isinstance(table, LossSummary) else LossSummary.of(table, loss)
        # each horizon (and asset) weighs the same, as in every table of the report and the comparison
        self.means = self.summary.means()
        self.ensembles = members_of(self.summary.strategies)
        self.spread = seed_spread(self.summary.row_means(), self.ensembles)
        self.times = {}
        if retrains is not None and len(retrains):
            ok = retrains[retrains["status"] == "ok"]
            if "asset" not in ok:  # one asset's own records
                ok = ok.assign(asset="")
            for asset, s, v, when in zip(
                ok["asset"].astype(str), ok["strategy"].astype(str), ok["model_version"], ok["retrain_time"]
            ):
                self.times[(asset, s, int(v))] = pd.Timestamp(when)
                m = Member.parse(s)
                if m.is_seed:  # an ensemble's segments are its members'
                    self.times.setdefault((asset, m.base, int(v)), pd.Timestamp(when))

    def diff(self, a: str, b: str, horizon: int = 0) -> float:
        """The mean loss of ``a`` minus ``b``'s on the rows both scored: every horizon (0) or one."""
        return self.summary.diff(a, b, horizon)

    @property
    def pooled(self) -> bool:
        """Whether the DM tests are pooled across assets (a universe, or a comparison of several)."""
        return bool((self.tests["test"] == "pooled_dm").any())

    def seeds(self, name: str) -> int:
        return len(self.ensembles.get(name, [name]))

    def seconds(self, name: str) -> float:
        """Training and tuning seconds of ``name`` (an ensemble: all its seeds), over every asset."""
        c = self.cost[self.cost["strategy"] == name]
        if not len(c):
            return float("nan")
        return float(c["train_seconds"].sum() + c.get("tuning_seconds", pd.Series([0.0])).sum())

    def cost_key(self, name: str) -> tuple[float, int, str]:
        """What orders schemes of one model from cheap to dear: seconds of training and tuning, then retrains."""
        c = self.cost[self.cost["strategy"] == name]
        return self.seconds(name), int(c["retrains"].sum()), name

    def retrains(self, name: str) -> str:
        """``14 retrains``, ``2 retrains x 3 seeds``, ``68 retrains over 4 assets x 3 seeds``: per seed, the
        convention of every table."""
        c = self.cost[self.cost["strategy"] == name]
        n, seeds = int(c["retrains"].sum()), self.seeds(name)
        many = self.summary.assets
        assets = f" over {many} assets" if many > 1 else ""
        return f"{n} retrain{'' if n == 1 else 's'}{assets}" + (f" x {seeds} seeds" if seeds > 1 else "")

    def std(self, name: str) -> float:
        row = self.spread[self.spread["strategy"] == name]
        return float(row["std"].iloc[0]) if len(row) else float("nan")

    def noise(self, a: str, b: str, diff: float) -> list[str]:
        """Why the difference ``a - b`` may be noise: a gap smaller than a seed spread, one decisive segment."""
        out = []
        spreads = [(s, self.std(s)) for s in (a, b) if np.isfinite(self.std(s))]
        if spreads:
            name, std = max(spreads, key=lambda x: x[1])
            if abs(diff) < std:
                out.append(
                    f"the gap ({abs(diff):.4g}) is smaller than the spread between single seeds of `{name}` "
                    f"(std {std:.4g}): another draw of seeds could reverse it; telling a gap this size apart "
                    f"takes about {seeds_needed(std, diff)} seeds"
                )
        seg = self.summary.decisive(a, b, self.times)
        if seg is not None:
            out.append(seg.sentence(self.loss))
        return out
