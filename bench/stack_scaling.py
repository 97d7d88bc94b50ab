"""What a training step costs per model when M models of W1's LSTM are trained together (``execution.stack``).

    python bench/stack_scaling.py [--models 1,2,4,8,16] [--threads 0,1]

For each M: M models of W1's architecture (LSTM(32), dropout 0.1, Dense(24), Adam 3e-3, MSE, batch 16,
lookback 60) on random windows of equal length, trained together by
:func:`strategies.keras.training.train_stacked` for 2 epochs after one epoch of warm-up (compilation); and,
as the reference, one model trained alone by :func:`strategies.keras.training.train_epochs` (the path of
``stack: off``). Prints ms per stacked step and per model-step. ``--threads 1`` runs each measurement in
a process pinned to one core with XLA's thread pool off (what a ``--jobs 2`` worker on 2 cores has);
``0`` uses every core. Each M runs in a fresh process, so ``peak_rss_mib`` (the process's peak resident
memory, Keras and JAX included) compares across M; ``STACK_SAMPLES=4200`` gives W1's longest window.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = int(os.environ.get("STACK_SAMPLES", 1600))  # windows per model (1600: 100 batches of 16 per epoch)


def measure(models: int) -> dict:
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from strategies.keras.builder import fixed_hyperparameters
    from strategies.keras.runtime import keras_module
    from strategies.keras.runtime import private_python_random as _private_python_random
    from strategies.keras.training import train_epochs, train_stacked
    from strategies.lstm import LstmParams, build_lstm

    keras = keras_module()
    hp = fixed_hyperparameters(LstmParams(layers=[{"units": 32, "dropout": 0.1}]).fixed_values())
    rng = np.random.default_rng(0)
    empty = (np.zeros((0, 60), "float32"), np.zeros((0, 24), "float32"))
    data = [
        (rng.random((SAMPLES, 60), dtype="float32"), rng.random((SAMPLES, 24), dtype="float32"), *empty)
        for _ in range(models)
    ]

    def build(seed):
        keras.utils.set_random_seed(seed)
        _private_python_random(seed)
        return build_lstm(hp, 60, 24)

    steps = 2 * SAMPLES // 16
    if models == 1:  # the path of stack: off
        model = build(0)
        train_epochs(model, data[0][0], data[0][1], *empty, 16, 1, 0)
        t0 = time.perf_counter()
        train_epochs(model, data[0][0], data[0][1], *empty, 16, 2, 0)
        alone = (time.perf_counter() - t0) * 1000 / steps
    else:
        alone = None
    nets = [build(k) for k in range(models)]
    train_stacked(nets, data, 16, 1, list(range(models)), program_key="w1")  # compiles once
    t0 = time.perf_counter()
    train_stacked(nets, data, 16, 2, list(range(models)), program_key="w1")
    ms = (time.perf_counter() - t0) * 1000 / steps
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "models": models,
        "ms_per_stacked_step": round(ms, 3),
        "ms_per_model_step": round(ms / models, 3),
        "ms_per_step_alone": None if alone is None else round(alone, 3),
        "peak_rss_mib": round(peak),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="1,2,4,8,16")
    ap.add_argument("--threads", default="0,1")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one)))
        return
    for threads in (int(t) for t in args.threads.split(",")):
        env = {**os.environ, "KERAS_BACKEND": "jax"}
        cmd = [sys.executable, __file__]
        if threads == 1:
            env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false"
            cmd = ["taskset", "-c", "0", *cmd]
        for m in (int(x) for x in args.models.split(",")):
            out = subprocess.run([*cmd, "--one", str(m)], env=env, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(json.dumps({"threads": threads or os.cpu_count(), **row}), flush=True)


if __name__ == "__main__":
    main()
