"""Keras strategies' machinery, in the order data flows (each module imports only those above it):

- ``runtime``: Keras imported once, quietly, on the run's backend; seeding (nothing imports Keras at import time);
- ``tuning``: the ``tuning`` block's config; ``features``, ``losses``: input channels and training losses;
- ``windows``: the one window pipeline (scalers fitted on the window, samples, the one split rule, inference
  windows) that fitting, tuning and the search share;
- ``builder``: the one seeded model build (loss, a hybrid's zero start, ``jit_compile``);
- ``cache``: the compiled-model cache and its ownership rule; ``training``: the training loops, alone and stacked;
- ``fitted``: the forecaster's fitted state as one record; ``archive``: save/load and the scaler codecs;
- ``stacked``: several fits trained together; ``forecaster``: :class:`KerasForecaster` (fit, one forecast path);
- ``tuner``, ``search``: keras-tuner inside the walk-forward;
- ``params``: the config classes (``type: keras``); ``notebook``: the Keras-2 ``.h5`` translation and pickled
  scalers; ``inspection``: what ``backtest model inspect`` shows; ``imported``: ``type: imported``.

The ``lstm`` strategy (:mod:`strategies.lstm`) is a builder and its params on top of this package.
"""
