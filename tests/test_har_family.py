"""The HAR family against long-hand least squares: HARQ (and its insanity filter), HAR-J, HAR-CJ, SHAR,
log-HAR's bias correction, WLS, the periodic factor and the floor; bad input named in one line."""

import numpy as np
import pandas as pd
import pytest

from backtester.config import parse_config
from backtester.core.errors import ConfigError
from backtester.core.series import BarSeries
from strategies.har import HarParams, HarqParams, LogHarParams, PeriodicHarParams, WlsHarParams

from .conftest import base_config
from .test_strategies import series

LAGS = [1, 5, 20]


def ols(columns: dict[str, np.ndarray], y: np.ndarray, h: int, weights=None) -> np.ndarray:
    """Least squares of ``y`` shifted ``h`` bars on ``columns`` (and a constant), rows with every value."""
    x = pd.DataFrame({"c": 1.0, **columns})
    frame = x.assign(y=pd.Series(y).shift(-h))
    if weights is not None:
        frame = frame.assign(w=weights)
    frame = frame.dropna()
    xs, ys = frame[list(x)].to_numpy(), frame["y"].to_numpy()
    if weights is not None:
        root = np.sqrt(frame["w"].to_numpy())
        xs, ys = xs * root[:, None], ys * root
    return np.linalg.lstsq(xs, ys, rcond=None)[0]


def means(v: np.ndarray) -> dict[str, np.ndarray]:
    s = pd.Series(v)
    return {f"m{lag}": s.rolling(lag).mean().to_numpy() for lag in LAGS}


def fitted(params: HarParams, s: BarSeries, h: int = 3):
    model = params.build(0)
    model.fit(s, h)
    return model


def test_harq_is_har_on_variance_plus_the_last_bar_times_root_quarticity_and_filters_insane_forecasts():
    s = series(600, seed=11)
    v, rq = s.rv**2, s.measure("rq")
    model = fitted(HarqParams(lags=LAGS), s)
    cols = {**means(v), "q": v * np.sqrt(rq)}
    for h in (1, 2, 3):
        np.testing.assert_allclose(model.coef[:, h - 1], ols(cols, v, h), rtol=1e-8)
    # a forecast outside the window's range of variance is replaced by the window's mean
    model.coef[:, 0] = [1e3, 0, 0, 0, 0]
    assert model.forecast(s, 1)[0] ** 2 == pytest.approx(v.mean())


def test_har_j_and_har_cj_regress_on_jumps_and_the_continuous_part():
    s = series(600, seed=12)
    v, bpv, jump = s.rv**2, s.measure("bpv"), s.measure("jump")
    j = np.maximum(v - bpv, 0)
    model = fitted(HarParams(lags=LAGS, target="variance", jumps="j"), s)
    np.testing.assert_allclose(model.coef[:, 0], ols({**means(v), "j": j}, v, 1), rtol=1e-8)
    sig = j * (jump > 0)
    c = v - sig
    cols = {**{f"c{k}": x for k, x in means(c).items()}, **{f"j{k}": x for k, x in means(sig).items()}}
    model = fitted(HarParams(lags=LAGS, target="variance", jumps="cj"), s)
    np.testing.assert_allclose(model.coef[:, 1], ols(cols, v, 2), rtol=1e-8)


def test_shar_splits_the_last_bar_into_semivariances():
    s = series(600, seed=13)
    v = s.rv**2
    cols = {"p": s.measure("rs_plus"), "n": s.measure("rs_minus"), **{k: x for k, x in means(v).items() if k != "m1"}}
    model = fitted(HarParams(lags=LAGS, target="variance", semivariance=True), s)
    np.testing.assert_allclose(model.coef[:, 0], ols(cols, v, 1), rtol=1e-8)


def test_log_har_corrects_its_bias_back_to_levels():
    s = series(600, seed=14)
    v = s.rv**2
    model = fitted(LogHarParams(lags=LAGS), s, 2)
    floor = np.quantile(v[v > 0], 0.01)  # logs of variances at least the floor: a zero bar is no -inf
    cols = {k: np.log(np.maximum(x, floor)) for k, x in means(v).items()}
    logv = np.log(np.maximum(v, floor))
    beta = ols(cols, logv, 1)
    np.testing.assert_allclose(model.coef[:, 0], beta, rtol=1e-8)
    x = np.r_[1.0, [np.log(max(v[-lag:].mean(), floor)) for lag in LAGS]]
    resid = pd.DataFrame({"c": 1.0, **cols}).assign(y=pd.Series(logv).shift(-1)).dropna()
    s2 = np.mean((resid[["c", *cols]].to_numpy() @ beta - resid["y"].to_numpy()) ** 2)
    assert model.forecast(s, 2)[0] == pytest.approx(np.sqrt(np.exp(x @ beta + s2 / 2)), rel=1e-9)


def test_wls_har_weighs_each_row_by_its_inverse_fitted_variance():
    s = series(600, seed=15)
    v = s.rv**2
    first = ols(means(v), v, 1)
    x = np.column_stack([np.ones(600), *means(v).values()])
    floor = np.quantile(v[v > 0], 0.05)
    w = 1 / np.maximum(x @ first, floor) ** 2
    model = fitted(WlsHarParams(lags=LAGS), s, 1)
    np.testing.assert_allclose(model.coef[:, 0], ols(means(v), v, 1, weights=w), rtol=1e-6)


def test_the_periodic_factor_comes_from_the_window_and_scales_the_target_hour():
    s = series(24 * 40, seed=16)
    hour = (s.time // 3_600_000_000_000) % 24
    boost = np.where(hour == 14, 3.0, 1.0)
    s = BarSeries(s.time, s.rv * boost, s.ret * boost, s.observed, s.measures)
    model = fitted(PeriodicHarParams(), s, 24)
    profile = np.asarray(model.profile)
    assert profile[14] > 5 * np.median(profile)  # variance: 3^2
    f = model.forecast(s, 24)
    targets = ((s.time[-1] + np.arange(1, 25) * 3_600_000_000_000) // 3_600_000_000_000) % 24
    assert f[targets == 14][0] > 2.5 * np.median(f)


@pytest.mark.parametrize("params", [HarParams(), HarParams(target="variance"), LogHarParams(), HarqParams()])
def test_no_forecast_falls_below_the_floor_even_where_the_data_go_to_zero(params):
    s = series(700, seed=17)
    rv = s.rv.copy()
    rv[-30:] = 1e-9  # a dead market at the end: a straight HAR extrapolates to zero or below
    s = BarSeries(
        s.time, rv, s.ret, s.observed, {k: np.where(np.arange(700) >= 670, 1e-18, x) for k, x in s.measures.items()}
    )
    model = params.build(0)
    model.fit(s.upto(640), 6)
    f = model.forecast(s, 6)
    floor = np.sqrt(np.quantile(s.rv[:640][s.rv[:640] > 0] ** 2, 0.01))
    assert (f >= floor * (1 - 1e-9)).all() and np.isfinite(f).all()


def test_forecast_batch_equals_single_forecasts_for_every_variant():
    s = series(700, seed=18)
    for params in (HarqParams(lags=LAGS), HarParams(lags=LAGS, target="variance", jumps="cj", periodic=True)):
        model = params.build(0)
        model.fit(s.upto(500), 4)
        ends = np.arange(520, 700, 7)
        batch = model.forecast_batch(s, ends, 4)
        for k, end in enumerate(ends):
            np.testing.assert_array_equal(batch[k], model.forecast(s.upto(end), 4))


@pytest.mark.parametrize(
    "strategy, data, pattern",
    [
        ({"type": "har", "quarticity": True}, {}, r"strategies.q: quarticity: .* set target: variance"),
        ({"type": "harq", "mode": "iterated"}, {}, r"mode: iterated .* \(mode: direct\)"),
        (
            {"type": "har_cj"},
            {"bar": "1min"},
            r"strategies.q: har_cj reads 'bpv', which needs 2 or more returns "
            r"within a bar; data.bar 1min from data.interval 1min gives 1: use shorter input bars or a longer bar",
        ),
        ({"type": "harq"}, {"kind": "rv"}, r"data.kind: rv gives RV alone: give minute bars"),
        ({"type": "har", "lags": [1, 24], "floor": 0.7}, {}, r"strategies.q.floor"),
    ],
)
def test_bad_har_input_is_one_line_naming_the_key_and_the_fix(strategy, data, pattern, minute_file, tmp_path):
    raw = base_config(minute_file, tmp_path, q=strategy)
    raw["data"].update(data)
    with pytest.raises(ConfigError, match=pattern) as err:
        parse_config(raw)
    assert "\n" not in str(err.value)


def test_a_jump_level_outside_zero_and_one_is_refused(minute_file, tmp_path):
    raw = base_config(minute_file, tmp_path, q={"type": "har_cj"})
    raw["data"]["jump_level"] = 1.0
    with pytest.raises(ConfigError, match=r"data.jump_level: 1.0 is no level; give one between 0 and 1"):
        parse_config(raw)
