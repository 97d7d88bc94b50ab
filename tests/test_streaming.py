"""A universe is evaluated asset by asset (issue 30): no two assets' rows are held at once, and what is gathered
across assets (sums per time and per cell) gives exactly what the tests on every row at once gave."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from backtester.config import parse_config
from backtester.evaluation.panel import CrossSection, cluster_dm, pooled_dm
from backtester.evaluation.verdict import KEYS, LossSummary
from backtester.evaluation.worth import Book
from backtester.runner import run

from .test_universe import universe_config, universe_files  # noqa: F401 - the fixture

TIMES = pd.date_range("2024-01-01", periods=120, freq="h", tz="UTC")


def loss_rows(asset: str, rng: np.random.Generator, strategies=("a", "b", "c"), horizons=(1, 2, 3)) -> pd.DataFrame:
    """Tidy QLIKE rows of one asset: every strategy, issue time and horizon, some rows missing."""
    idx = pd.MultiIndex.from_product([strategies, TIMES, horizons], names=["strategy", "issued_at", "horizon"])
    t = idx.to_frame(index=False)
    t["target_time"] = t["issued_at"] + pd.to_timedelta(t["horizon"], unit="h")
    t["model_version"] = 1 + t["issued_at"].dt.day // 2
    t["loss"] = "qlike"
    t["value"] = rng.gamma(2.0, 0.3, len(t)) + (t["strategy"] == "a") * 0.05
    t["asset"] = asset
    return t.sample(frac=0.9, random_state=int(rng.integers(1 << 31))).reset_index(drop=True)  # unbalanced


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_pooled_tests_from_sums_over_assets_equal_those_on_the_whole_panel(seed):
    rng = np.random.default_rng(seed)
    assets = [loss_rows(name, rng) for name in ("x", "y", "z", "w")]
    cs = CrossSection("qlike", "b", clusters=4)
    for part in rng.permutation(len(assets)):  # the order assets come in changes nothing
        cs.add(assets[part].drop(columns="asset"))
    got = cs.table().set_index(["test", "horizon", "model", "against"])
    table = pd.concat(assets)
    for h in (1, 2, 3):
        t = table[table["horizon"] == h]
        wide = t.pivot_table(index="target_time", columns=["strategy", "asset"], values="value")
        for model, against in (("a", "b"), ("c", "b"), ("a", "c")):
            diff = wide[model] - wide[against]
            for test, want in (("pooled_dm", pooled_dm(diff, h - 1)), ("cluster_dm", cluster_dm(diff, 4))):
                row = got.loc[(test, h, model, against)]
                assert row["n"] == want.n and row["assets"] == 4, (test, h, model)
                assert np.isclose(row["statistic"], want.statistic, rtol=1e-10, atol=0), (test, h, model)
                assert np.isclose(row["pvalue"], want.pvalue, rtol=1e-9, atol=1e-300), (test, h, model)


def test_the_answers_sums_over_assets_equal_the_answer_on_every_row():
    rng = np.random.default_rng(5)
    assets = [loss_rows(name, rng) for name in ("x", "y", "z")]
    whole = LossSummary.of(pd.concat(assets), "qlike")
    parts = LossSummary.concat([LossSummary.of(a, "qlike") for a in assets])
    values = pd.concat(assets).pivot_table(index=KEYS, columns="strategy", values="value")
    for s in (whole, parts):
        pd.testing.assert_series_equal(
            s.means(), values.groupby(level=["asset", "horizon"]).mean().mean(), check_names=False, rtol=1e-12
        )
        for a, b, h in (("a", "b", 0), ("b", "c", 2), ("c", "a", 0)):
            both = values[[a, b]].dropna()
            both = both[both.index.get_level_values("horizon") == h] if h else both
            want = (both[a] - both[b]).groupby(level=["asset", "horizon"]).mean().mean()
            assert np.isclose(s.diff(a, b, h), want, rtol=1e-12), (a, b, h)
    assert whole.assets == parts.assets == 3
    pd.testing.assert_series_equal(whole.row_means(), parts.row_means(), rtol=1e-12)


def test_the_portfolio_from_sums_equals_the_average_over_every_assets_positions():
    rng = np.random.default_rng(3)
    per = {}
    for asset in ("x", "y", "z"):
        times = TIMES if asset != "z" else TIMES[10:]  # z starts later: the average is over the assets held
        w = rng.uniform(0.5, 2.0, len(times))
        per[asset] = pd.DataFrame({"time": times, "w": w, "gross": rng.normal(0, 0.01, len(times))})
        per[asset]["net"] = per[asset]["gross"] - 0.0002 * np.abs(np.diff(np.r_[0.0, w]))
    book = Book()
    for p in per.values():
        book.add({"m": p})
    got = book.positions("m")
    frames = {a: p.set_index("time") for a, p in per.items()}
    for col in ("net", "gross", "w"):
        want = pd.DataFrame({a: f[col] for a, f in frames.items()}).mean(axis=1)
        np.testing.assert_allclose(got[col].to_numpy(), want.to_numpy(), rtol=1e-12)
    trade = pd.DataFrame({a: f["w"].diff().abs() for a, f in frames.items()}).mean(axis=1).fillna(0.0)
    np.testing.assert_allclose(got["trade"].to_numpy(), trade.to_numpy(), rtol=1e-12)


def test_a_universe_holds_one_assets_rows_at_a_time(universe_files, tmp_path, monkeypatch):  # noqa: F811
    """Each asset's rows, read back from the store, and its evaluation's row tables are let go before the next
    asset's are read; every large table is written a row group per asset."""
    import backtester.engine as engine
    import backtester.evaluation.results as results

    alive: list[weakref.ref] = []
    read, evaluate = engine.read_rows, results.evaluate_asset

    def none_alive() -> None:
        gc.collect()
        assert all(r() is None for r in alive), "an earlier asset's rows are still held"

    def watched_read(*args):
        none_alive()
        rows = read(*args)
        alive.append(weakref.ref(rows))
        return rows

    def watched_evaluate(*args, **kwargs):
        none_alive()
        part = evaluate(*args, **kwargs)
        alive.extend(weakref.ref(part[name]) for name in ("forecasts", "losses", "var", "positions"))
        return part

    monkeypatch.setattr(engine, "read_rows", watched_read)
    monkeypatch.setattr(results, "evaluate_asset", watched_evaluate)
    res = run(parse_config(universe_config(universe_files, tmp_path)))
    assert len(alive) == 3 * 5  # each asset's rows were read once, from the store
    for name in ("forecasts", "positions", "var"):
        f = pq.ParquetFile(res.out_dir / f"{name}.parquet")
        firsts = [f.read_row_group(k, columns=["asset"]).column(0)[0].as_py() for k in range(f.num_row_groups)]
        assert firsts == ["aaa", "bbb", "ccc"], name
    assert res.rows is None and res.forecasts["asset"].unique().tolist() == ["aaa", "bbb", "ccc"]
    assert res.manifest["rows"] == len(res.forecasts)
