"""The floor for W1's training: the same 18 fits with nothing around them.

    KERAS_BACKEND=jax python bench/fit_floor.py

For each of W1's retrains: a fresh model from the same builder (LSTM(32), dropout 0.1,
Dense(24), Adam 3e-3), MinMaxScaler on the window, ``model.fit(batch_size=16, epochs=5,
shuffle=True)`` — the notebook's training loop, no forecasts, no files. Prints one JSON line
with the seconds spent in those fits (imports and data preparation excluded).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from backtester.config import load_config
    from backtester.core.series import BarSeries
    from backtester.plan import make_plan
    from backtester.rv import prepare_bars
    from strategies.keras.builder import fixed_hyperparameters
    from strategies.keras.runtime import keras_module
    from strategies.keras.windows import windows
    from strategies.lstm import build_lstm

    cfg = load_config(
        ROOT / "bench/w1.yaml", [f"data.path={ROOT.parent / 'shared/data/real/btcusdt_1m_2022_2023.parquet'}"]
    )
    bars = prepare_bars(cfg.data).bars
    plan = make_plan(cfg, bars.index)
    series = BarSeries.from_frame(bars)
    p = cfg.strategies["lstm"].params
    keras = keras_module()
    from sklearn.preprocessing import MinMaxScaler

    hp = fixed_hyperparameters(p.fixed_values())
    seconds, steps = 0.0, 0
    for seg in plan.segments("lstm"):
        rv = series.slice(seg.window.start, seg.window.stop).rv.reshape(-1, 1)
        scaled = MinMaxScaler().fit_transform(rv)[:, 0].astype("float32")
        x, y = windows(scaled, p.memory, plan.horizon)
        t0 = time.perf_counter()
        keras.backend.clear_session()
        keras.utils.set_random_seed(seg.model_version)
        model = build_lstm(hp, p.memory, plan.horizon)
        model.fit(x[..., None], y, batch_size=p.batch_size, epochs=p.epochs, shuffle=True, verbose=0)
        seconds += time.perf_counter() - t0
        steps += -(-len(x) // p.batch_size) * p.epochs
    print(
        json.dumps(
            {
                "train": round(seconds, 3),
                "fits": len(plan.segments("lstm")),
                "steps": steps,
                "ms_per_step": round(1000 * seconds / steps, 3),
                "backend": keras.backend.backend(),
            }
        )
    )


if __name__ == "__main__":
    main()
