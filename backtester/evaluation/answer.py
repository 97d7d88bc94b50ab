"""The answer in words, at the top of every report and comparison.

:func:`answer_lines` turns an :class:`~.verdict.Answer` and the strategies' :class:`~.profiles.Profile`
into Markdown lines:

1. each learned strategy: what it *is*; what it adds over its own untrained start (a hybrid's
   baselines, :func:`~.profiles.start_of`) and over the benchmark (loss difference, DM p over all
   horizons and at h = 1, seconds of training); then one sentence: worth it, not worth it or not told
   apart, and why (:func:`learned_lines`);
2. the lowest loss, seed members never among the candidates (:func:`lowest_lines`);
3. what the other strategies are;
4. where one model runs under several retrain rules or windows, whether the dearer scheme is worth its
   cost: every step up and every other pair that DM tells apart (:func:`scheme_lines`);
5. one-seed warnings.

:func:`pairs_table` is the DM table of the pairs these sentences rest on. Across assets the tests are
the pooled ones (:func:`~.verdict.dm_of`).

Examples
--------
>>> _p(0.0123), _p(float("nan")), _p(1e-20)
('p = 0.0123', 'DM not computed', 'p < 1e-16')
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .profiles import Profile, missing_start, scheme_pairs, start_of
from .verdict import SIGNIFICANT, Answer, dm_of, is_member, verdict_word


def answer_lines(ans: Answer, benchmark: str | None, profiles: dict[str, Profile]) -> list[str]:
    """The answer's lines of Markdown (see the module docstring); ``profiles``: the strategies by the
    names they have in ``ans`` (seed members not apart)."""
    means = ans.means[[s for s in ans.means.index if not is_member(s)]].sort_values()
    if means.empty:
        return []
    present = set(means.index)
    out: list[str] = []
    for name in means.index:
        p = profiles.get(name)
        if p is not None and p.learned:
            out += learned_lines(ans, p, benchmark, profiles)
    out += lowest_lines(ans, means)
    others = [n for n in means.index if n in profiles and not profiles[n].learned]
    if 0 < len(others) < 3:
        out.append("- The others: " + "; ".join(f"`{n}` is {profiles[n].about}" for n in others) + ".")
    elif others:
        out += ["- The others:", *(f"  - `{n}`: {profiles[n].about}." for n in others)]
    out += scheme_lines(ans, profiles, present)
    for s in means.index:
        p = profiles.get(s)
        if p is not None and p.learned and s not in ans.ensembles:
            out.append(
                f"- `{s}` ran with one seed: its loss is one draw of its initial weights and sample order; give it "
                "`repeats: 3` (or more) to see whether its differences are noise."
            )
    return out


def learned_lines(ans: Answer, p: Profile, benchmark: str | None, profiles: dict[str, Profile]) -> list[str]:
    """What a learned strategy is, what it adds over its start and the benchmark, and the verdict."""
    name, seconds = p.name, ans.seconds(p.name)
    cost = f"{ans.retrains(name)}, {_secs(seconds)} of training and tuning"
    out = [f"- **`{name}`** is {p.about} ({cost})."]
    start = start_of(p, profiles)
    if start is not None and start not in ans.means.index:
        start = None
    if p.starts and start is None:
        out.append(
            f"  - Its untrained start ({' and '.join(f'`{n}`' for n in p.starts)}"
            f"{', their mean' if len(p.starts) > 1 else ''}) is not in the run: add {missing_start(p)} "
            "to `strategies:` to see what its net adds."
        )
    if start is not None:
        fit = ans.seconds(start)
        out.append(
            f"  - Over its untrained start `{start}` ({'no training' if not fit >= 0.01 else f'{fit:.1f} s of fitting'}): "
            + _against(ans, name, start)
        )
    bench = benchmark if benchmark is not None and benchmark in ans.means.index and benchmark != name else None
    if bench is not None and bench != start:
        out.append(f"  - Over the benchmark `{bench}`: " + _against(ans, name, bench))
    sentence = verdict_sentence(ans, name, start, bench, seconds)
    if sentence:
        out.append(f"  - {sentence}")
    return out


def _against(ans: Answer, a: str, b: str) -> str:
    """``0.5779 against 0.5721 (+0.0058, higher), p = 0.75 over all horizons, p = 0.62 at h = 1``."""
    d, d1 = ans.diff(a, b), ans.diff(a, b, 1)
    _, p0 = dm_of(ans.tests, a, b, 0)
    _, p1 = dm_of(ans.tests, a, b, 1)
    way = "lower" if d < 0 else "higher"
    return (
        f"{ans.loss} {ans.means[a]:.4f} against {ans.means[b]:.4f} ({d:+.4f}, {way}; {_dm(ans)} {_p(p0)} over all "
        f"horizons); at h = 1: {d1:+.4f} ({_p(p1)})."
    )


def verdict_sentence(ans: Answer, name: str, start: str | None, bench: str | None, seconds: float) -> str:
    """One sentence: is the learned strategy ``name`` worth its training? Judged against its untrained
    ``start`` where the run has one (what the training adds), else against the benchmark."""
    against = start or bench
    if against is None:
        return ""
    d, d1 = ans.diff(name, against), ans.diff(name, against, 1)
    _, p0 = dm_of(ans.tests, name, against, 0)
    _, p1 = dm_of(ans.tests, name, against, 1)
    word = verdict_word(d, p0)
    what = f"its untrained start `{start}`" if start else f"`{bench}`"
    train = f"its {_secs(seconds)} of training"
    if word == "worth it":
        said = f"**Worth it**: it has a significantly lower {ans.loss} than {what} ({_p(p0)}) for {train}"
        if start and bench and bench != start:
            _, pb = dm_of(ans.tests, name, bench, 0)
            db = ans.diff(name, bench)
            said += (
                f", and beats `{bench}` ({_p(pb)})"
                if pb < SIGNIFICANT and db < 0
                else f", though it is significantly worse than `{bench}` ({_p(pb)})"
                if pb < SIGNIFICANT
                else f", though it is not told apart from `{bench}` ({_p(pb)})"
            )
        return said + "."
    if word == "not worth it":
        cheap = "which needs no training" if ans.seconds(against) < 1 else "which costs less"
        return f"**Not worth it**: it is significantly worse than {what} ({_p(p0)}), {cheap}."
    said = f"**Not told apart** from {what} over all horizons ({_p(p0)}): {train} buy no gain DM can tell from noise"
    if np.isfinite(p1) and p1 < SIGNIFICANT:
        said += (
            f"; only one bar ahead is it significantly {'better' if d1 < 0 else 'worse'} ({d1:+.4f} at h = 1, {_p(p1)})"
        )
    if start and bench and bench != start:
        _, pb = dm_of(ans.tests, start, bench, 0)
        if pb < SIGNIFICANT and ans.diff(start, bench) < 0:
            said += f"; what beats `{bench}` is its start, `{start}`, with no training ({_p(pb)})"
    return said + "."


def lowest_lines(ans: Answer, means: pd.Series) -> list[str]:
    """The lowest loss among the strategies (seed members are never candidates: say so where they ran)."""
    out = [
        f"- **Lowest {ans.loss}: `{means.index[0]}`** ({means.iloc[0]:.4f} on the common rows"
        + (f"; next `{means.index[1]}` {means.iloc[1]:.4f})." if len(means) > 1 else ").")
    ]
    for name, members in ans.ensembles.items():
        m = ans.means[members]
        out.append(
            f"- `{members[0]}`..`{members[-1]}` are single seeds of `{name}`, never candidates for the lowest loss: "
            f"their mean forecast, `{name}`, speaks for them (the luckiest, `{m.idxmin()}` at {m.min():.4f}, is "
            f"one draw of {len(members)})."
        )
    return out


def scheme_lines(ans: Answer, profiles: dict[str, Profile], present: set[str]) -> list[str]:
    """Where one model runs under several schedules: each step up in cost, and every other pair DM tells
    apart: is the dearer scheme worth it?"""
    out = []
    for group in scheme_pairs(profiles, present):
        group = sorted(group, key=ans.cost_key)
        steps = list(zip(group, group[1:]))
        others = [(group[i], group[j]) for i in range(len(group)) for j in range(i + 2, len(group))]
        out += [scheme_sentence(ans, profiles, cheap, dear) for cheap, dear in steps]
        for cheap, dear in others:  # a longer step is said where DM tells it apart
            _, p = dm_of(ans.tests, dear, cheap, 0)
            if np.isfinite(p) and p < SIGNIFICANT:
                out.append(scheme_sentence(ans, profiles, cheap, dear))
    return out


def schemes(a: Profile, b: Profile) -> str:
    """What differs between two schemes of one model: ``weekly mon 00:00 UTC instead of monthly day 1
    00:00 UTC`` (the windows too where they differ).

    >>> w = Profile("w", "", True, (), (), "m", "weekly; window expanding", 1)
    >>> m = Profile("m", "", True, (), (), "m", "monthly; window expanding", 1)
    >>> schemes(w, m)
    'weekly instead of monthly'
    """
    ra, _, wa = a.schedule.partition("; window ")
    rb, _, wb = b.schedule.partition("; window ")
    if wa != wb and ra == rb:
        return f"window {wa} instead of {wb}"
    if wa != wb:
        return f"{a.schedule} instead of {b.schedule}"
    return f"{ra} instead of {rb}"


def scheme_sentence(ans: Answer, profiles: dict[str, Profile], cheap: str, dear: str) -> str:
    """``**`w` over `m` (the same model; weekly instead of monthly): worth it.** ...``"""
    diff, d1 = ans.diff(dear, cheap), ans.diff(dear, cheap, 1)
    _, p = dm_of(ans.tests, dear, cheap, 0)
    _, p1 = dm_of(ans.tests, dear, cheap, 1)
    word = verdict_word(diff, p)
    if word == "not worth it":
        word = "not worth it, significantly worse"
    extra = ans.seconds(dear) - ans.seconds(cheap)
    seeds = ""
    if ans.seeds(dear) != ans.seeds(cheap):
        seeds = (
            f"; {_count(ans.seeds(dear), 'seed')} against {ans.seeds(cheap)}: the ensemble alone can make a difference"
        )
    said = (
        f"- **`{dear}` over `{cheap}` (the same model, {schemes(profiles[dear], profiles[cheap])}): {word}.** "
        f"{ans.retrains(dear)} instead of {ans.retrains(cheap)}, "
        f"{extra:+.1f} s of training and tuning, for a {ans.loss} difference of {diff:+.4f} ({_dm(ans)} {_p(p)}, all "
        f"horizons; {d1:+.4f}, {_p(p1)} at h = 1){seeds}"
    )
    notes = ans.noise(dear, cheap, diff)
    return said + ("; but " + "; and ".join(notes) if notes else "") + "."


def pairs_table(ans: Answer, benchmark: str | None, profiles: dict[str, Profile]) -> list[str]:
    """The DM table of the pairs the answer rests on: each learned strategy against its start and the
    benchmark, and the schemes of one model against each other."""
    present = set(ans.means.index)
    rows: list[tuple[str, str, str]] = []
    for name, p in profiles.items():
        if name not in present or not p.learned:
            continue
        start = start_of(p, profiles)
        if start in present:
            rows.append((name, str(start), "its untrained start"))
        if benchmark in present and benchmark not in (name, start):
            rows.append((name, str(benchmark), "the benchmark"))
    for group in scheme_pairs(profiles, present):
        group = sorted(group, key=ans.cost_key)
        rows += [
            (dear, cheap, schemes(profiles[dear], profiles[cheap]))
            for i, cheap in enumerate(group)
            for dear in group[i + 1 :]
        ]
    if not rows:
        return []
    out = [
        "",
        f"## What the training adds: the pairs that matter ({ans.loss}; {_dm(ans)}, HLN-corrected, two-sided; "
        "negative = the model has the lower loss)",
        "",
        "| model | against | what | difference, all horizons | DM | p | difference, h=1 | DM | p |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a, b, what in rows:
        s0, p0 = dm_of(ans.tests, a, b, 0)
        s1, p1 = dm_of(ans.tests, a, b, 1)
        out.append(
            f"| {a} | {b} | {what} | {ans.diff(a, b):+.4f} | {s0:.2f} | {pcell(p0, s0)} | {ans.diff(a, b, 1):+.4f} | "
            f"{s1:.2f} | {pcell(p1, s1)} |"
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
        f"| strategy | mean {ans.loss} | minus `{benchmark}` | {_dm(ans)} p, all horizons | {_dm(ans)} p, h=1 | "
        f"in 90 % MCS{' (assets)' if many else ''} | retrains (per seed) | training + tuning s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, m in means.items():
        s = str(key)
        cells = [f"{m:.4f}"]
        if s == benchmark:
            cells += ["benchmark", "", ""]
        else:
            s0, p0 = dm_of(ans.tests, s, benchmark, 0)
            s1, p1 = dm_of(ans.tests, s, benchmark, 1)
            cells += [f"{ans.diff(s, benchmark):+.4f}", pcell(p0, s0), pcell(p1, s1)]
        seconds = ans.seconds(s)
        yes, n = inside.loc[s] if s in inside.index else (0, 0)
        cells += [
            "–" if not n else f"{yes}/{n}" if many else "**yes**" if yes else "no",
            ans.retrains(s).split(" ")[0],
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


def pcell(p: float, statistic: float = float("nan")) -> str:
    """A p-value for a table: bold when significant, and which way (``**0.006, worse**``)."""
    if not np.isfinite(p):
        return "–"
    if p >= SIGNIFICANT:
        return _pvalue(p)
    way = "" if not np.isfinite(statistic) else ", better" if statistic < 0 else ", worse"
    return f"**{_pvalue(p)}{way}**"


def _dm(ans: Answer) -> str:
    return "pooled DM" if ans.pooled else "DM"


def _p(p: float) -> str:
    return (
        f"p {_pvalue(p)}" if np.isfinite(p) and p < 1e-16 else f"p = {p:.3g}" if np.isfinite(p) else "DM not computed"
    )


def _pvalue(p: float) -> str:
    """``0.0123``; below 1e-16 (where the t distribution's tail underflows) ``< 1e-16``."""
    return "< 1e-16" if p < 1e-16 else f"{p:.3g}"


def _secs(seconds: float) -> str:
    return "no training" if not seconds >= 0.01 else f"{seconds:.1f} s"


def _count(n: int, word: str) -> str:
    """``one seed``, ``3 seeds``."""
    return f"one {word}" if n == 1 else f"{n} {word}s"
