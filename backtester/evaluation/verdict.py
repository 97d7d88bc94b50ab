"""The comparison's answer in words, and when noise decides it.

:func:`answer_lines` turns a comparison's loss table, tests and cost into the sentences at the top
of ``compare.md``: the lowest loss; each strategy against the benchmark (loss difference, DM p,
model confidence set, cost with tuning included); each step up in training cost among the
strategies that depend on a seed (once -> monthly -> weekly -> daily: is the dearer one worth
it?); and the warnings that say when the answer is noise: a seeded strategy that ran with one seed,
a gap smaller than the spread between seeds, and a difference that one retrain segment decides
(:func:`decisive_segment`).

Seed members are labelled ``name#k`` and their mean forecast ``name`` (the ensemble); the
members are draws, the ensemble speaks for them.

Examples
--------
>>> members_of(["lstm", "lstm#1", "lstm#2", "har"])
{'lstm': ['lstm#1', 'lstm#2']}
>>> verdict_word(-0.02, 0.01), verdict_word(0.02, 0.01), verdict_word(-0.02, 0.4)
('worth it', 'not worth it', 'no significant difference')
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
    return "no significant difference"


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


def _p(p: float) -> str:
    return (
        f"p {_pvalue(p)}" if np.isfinite(p) and p < 1e-16 else f"p = {p:.3g}" if np.isfinite(p) else "DM not computed"
    )


def _seconds(cost: pd.DataFrame, name: str) -> float:
    c = cost[cost["strategy"] == name]
    return float(c["train_seconds"].sum() + c.get("tuning_seconds", pd.Series([0.0])).sum()) if len(c) else float("nan")


def _retrains(cost: pd.DataFrame, name: str, seeds: int = 1) -> str:
    """``14 retrains``, or for a seed ensemble ``2 retrains x 3 seeds``."""
    n = int(cost.loc[cost["strategy"] == name, "retrains"].sum())
    k = n // seeds if seeds > 1 else n
    word = "retrain" if k == 1 else "retrains"
    return f"{k} {word} x {seeds} seeds" if seeds > 1 else f"{k} {word}"


class Answer:
    """The facts the answer's sentences are made of (see :func:`answer_lines`).

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
        self.loss, self.tests, self.cost = loss, tests, cost
        self.values = t.pivot_table(index=KEYS, columns="strategy", values="value", observed=True)
        self.versions = t.pivot_table(index=KEYS, columns="strategy", values="model_version", observed=True)
        self.means = self.values.mean()
        self.ensembles = members_of(self.values.columns)
        self.spread = seed_spread(self.values, self.ensembles)
        self.times = {}
        if retrains is not None and len(retrains):
            ok = retrains[retrains["status"] == "ok"]
            for asset, s, v, when in zip(
                ok["asset"].astype(str), ok["strategy"].astype(str), ok["model_version"], ok["retrain_time"]
            ):
                self.times[(asset, s, int(v))] = pd.Timestamp(when)
                m = Member.parse(s)
                if m.is_seed:  # an ensemble's segments are its members'
                    self.times.setdefault((asset, m.base, int(v)), pd.Timestamp(when))

    def diff(self, a: str, b: str) -> float:
        both = self.values[[a, b]].dropna()
        return float((both[a] - both[b]).mean())

    def seeds(self, name: str) -> int:
        return len(self.ensembles.get(name, [name]))

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


def answer_lines(ans: Answer, benchmark: str | None, seeded: set[str]) -> list[str]:
    """The comparison's answer: lines of Markdown (see the module docstring); ``seeded``: the strategies
    whose forecasts depend on the seed."""
    means = ans.means[[s for s in ans.means.index if not is_member(s)]].sort_values()
    if means.empty:
        return []
    out = [
        f"- **Lowest {ans.loss}: `{means.index[0]}`** ({means.iloc[0]:.4f} on the common rows"
        + (f"; next `{means.index[1]}` {means.iloc[1]:.4f})." if len(means) > 1 else ").")
    ]
    if benchmark is not None and benchmark in means.index:
        out += benchmark_table(ans, means, benchmark)
    out += scheme_lines(ans, means, seeded)
    single = [s for s in means.index if s in seeded and s not in ans.ensembles]
    for s in single:
        out.append(
            f"- `{s}` ran with one seed: its loss is one draw of its initial weights and sample order; give it "
            "`repeats: 3` (or more) to see whether its differences are noise."
        )
    return out


def benchmark_table(ans: Answer, means: pd.Series, benchmark: str) -> list[str]:
    """Each strategy against the benchmark: loss difference, DM p (all horizons and h=1), MCS, cost."""
    mcs = ans.tests[ans.tests["test"] == "mcs"]
    mcs = mcs[mcs["size"] == 0.10] if "size" in mcs else mcs.assign(model="", in_set=False)
    mcs = mcs[mcs["asset"] != "all"] if "asset" in mcs else mcs
    inside = mcs.assign(yes=mcs["in_set"] == True).groupby("model")["yes"].agg(["sum", "size"])  # noqa: E712
    many = mcs["asset"].nunique() > 1 if "asset" in mcs else False
    out = [
        "",
        f"| strategy | mean {ans.loss} | minus `{benchmark}` | DM p, all horizons | DM p, h=1 | "
        f"in 90 % MCS{' (assets)' if many else ''} | retrains | training + tuning s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s, m in means.items():
        cells = [f"{m:.4f}"]
        if s == benchmark:
            cells += ["benchmark", "", ""]
        else:
            _, p0 = dm_of(ans.tests, s, benchmark, 0)
            _, p1 = dm_of(ans.tests, s, benchmark, 1)
            cells += [f"{ans.diff(s, benchmark):+.4f}", _pcell(p0), _pcell(p1)]
        seconds = _seconds(ans.cost, s)
        yes, n = inside.loc[s] if s in inside.index else (0, 0)
        cells += [
            "–" if not n else f"{yes}/{n}" if many else "**yes**" if yes else "no",
            _retrains(ans.cost, s, ans.seeds(s)).split(" ")[0],
            "no training" if not seconds >= 0.01 else f"{seconds:.1f}",
        ]
        out.append(f"| {s} | " + " | ".join(cells) + " |")
    out.append("")
    for s in means.index:
        if s != benchmark:
            notes = ans.noise(s, benchmark, ans.diff(s, benchmark))
            if notes:
                out.append(f"- `{s}` against `{benchmark}`: " + "; and ".join(notes) + ".")
    return out


def _pcell(p: float) -> str:
    if not np.isfinite(p):
        return "–"
    return f"**{_pvalue(p)}**" if p < SIGNIFICANT else _pvalue(p)


def _pvalue(p: float) -> str:
    """``0.0123``; below 1e-16 (where the t distribution's tail underflows) ``< 1e-16``."""
    return "< 1e-16" if p < 1e-16 else f"{p:.3g}"


def scheme_lines(ans: Answer, means: pd.Series, seeded: set[str]) -> list[str]:
    """Each step up in training cost among the seeded strategies: is the dearer one worth it?"""
    trained = [s for s in means.index if s in seeded and _seconds(ans.cost, s) > 0]
    trained.sort(key=lambda s: (_seconds(ans.cost, s), s))
    out = []
    for cheap, dear in zip(trained, trained[1:]):
        diff = ans.diff(dear, cheap)
        _, p = dm_of(ans.tests, dear, cheap, 0)
        extra = _seconds(ans.cost, dear) - _seconds(ans.cost, cheap)
        word = verdict_word(diff, p)
        said = (
            f"- **`{dear}` over `{cheap}`: {word}.** {_retrains(ans.cost, dear, ans.seeds(dear))} instead of "
            f"{_retrains(ans.cost, cheap, ans.seeds(cheap))}, {extra:+.1f} s of training and tuning, for a "
            f"{ans.loss} difference of "
            f"{diff:+.4f} ({_p(p)}, all horizons)"
        )
        notes = ans.noise(dear, cheap, diff)
        out.append(said + ("; but " + "; and ".join(notes) if notes else "") + ".")
    return out
