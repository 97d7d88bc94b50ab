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

    >>> idx = pd.MultiIndex.from_product([["X"], range(30)], names=["asset", "t"])
    >>> vals = pd.DataFrame({"a": [1.0] * 25 + [9.0] * 5, "b": [2.0] * 30}, index=idx)
    >>> vers = pd.DataFrame({"a": [1] * 13 + [2] * 12 + [3] * 5, "b": [1] * 30}, index=idx)
    >>> d = decisive_segment(vals, vers, "a", "b")
    >>> d.strategy, d.version, d.rows, round(d.with_all, 3), d.without
    ('a', 3, 5, 0.333, -1.0)
    """
    d = (values[a] - values[b]).to_numpy()
    ok = np.isfinite(d)
    if ok.sum() < 2:
        return None
    total = float(d[ok].mean())
    noise = 2 * float(d[ok].std(ddof=1)) / np.sqrt(ok.sum())
    assets = values.index.get_level_values("asset").astype(str)
    best = None
    for name in (a, b):
        seg = pd.DataFrame(
            {"asset": assets, "version": versions[name].to_numpy(), "d": d, "v": values[name].to_numpy()}
        )[ok]
        if seg.groupby("asset")["version"].nunique().max() < 2:
            continue
        for (asset, version), part in seg.groupby(["asset", "version"], sort=False):
            if 3 * len(part) > len(seg):
                continue
            without = (seg["d"].sum() - part["d"].sum()) / (len(seg) - len(part))
            moved = abs(without - total)
            decides = (np.sign(without) != np.sign(total) or abs(without) < 0.5 * abs(total)) and moved > noise
            weight = moved * len(seg) / len(part)
            if decides and (best is None or weight > best[0]):
                when = (retrain_times or {}).get((asset, name, int(version)))
                best = (
                    weight,
                    Decider(name, asset, int(version), when, len(part), float(part["v"].mean()), total, float(without)),
                )
    return best[1] if best else None


def seed_spread(values: pd.DataFrame, ensembles: dict[str, list[str]]) -> pd.DataFrame:
    """Per seed ensemble, on the common rows: its members' mean losses (mean, std, min, max) and its own."""
    means = values.mean()
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

    ``table``: the tidy loss table on the common rows; ``tests``: DM tests (``dm`` per asset, ``pooled_dm``
    across assets) and MCS; ``cost``: one row per strategy with ``retrains``, ``train_seconds`` and
    ``tuning_seconds``; ``retrains``: the fit records (for when each segment began).
    """

    def __init__(
        self,
        table: pd.DataFrame,
        tests: pd.DataFrame,
        cost: pd.DataFrame,
        loss: str,
        retrains: pd.DataFrame | None = None,
    ):
        t = table[table["loss"] == loss]
        if "asset" not in t:  # one asset's own table
            t = t.assign(asset="")
        self.loss, self.tests, self.cost = loss, tests, cost
        self.values = t.pivot_table(index=KEYS, columns="strategy", values="value", observed=True)
        self.versions = t.pivot_table(index=KEYS, columns="strategy", values="model_version", observed=True)
        # each horizon (and asset) weighs the same, as in every table of the report and the comparison
        self.means = self.values.groupby(level=["asset", "horizon"]).mean().mean()
        self.ensembles = members_of(self.values.columns)
        self.spread = seed_spread(self.values, self.ensembles)
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
        both = self.values[[a, b]].dropna()
        if horizon:
            both = both[both.index.get_level_values("horizon") == horizon]
        return float((both[a] - both[b]).groupby(level=["asset", "horizon"]).mean().mean())

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
        many = self.values.index.get_level_values("asset").nunique()
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
        seg = decisive_segment(self.values, self.versions, a, b, self.times)
        if seg is not None:
            out.append(seg.sentence(self.loss))
        return out
