"""Keras training loops: one model alone, epoch by epoch (:func:`train_epochs`), or many models of one
architecture at once, one compiled program over a leading model axis (:func:`train_stacked`).

The fits of one strategy's cold retrains (or one retrain of its warm-start chains), its seed members
and its assets share a builder and shapes; only their samples, seeds and initial weights differ. :func:`train_stacked` trains them
together: each model's state (weights, dropout seed state, optimizer state, loss tracker) gets a
leading model axis, and Keras' own pure ``train_step`` (the JAX trainer's) runs under
``jax.vmap`` inside a ``jax.lax.scan`` over :data:`CHUNK` batches per compiled call.

Each model sees exactly what :func:`train_epochs` gives it alone: the same
per-epoch shuffle (a generator seeded with its seed), the same zero-weight padding of the last
batch, the same epochs. A model with fewer batches than the largest of its group is masked for
the steps it does not have: its state is carried through unchanged (an Adam step on a zero
gradient would still move the weights). So a stacked model equals the model trained alone up
to float32 rounding (``tests/test_stack.py`` bounds the difference).

JAX only: on another backend (or ``execution.stack: off``) every model trains alone.

Examples
--------
>>> idx, w = epoch_batches(5, 2, np.random.default_rng(0), pad_index=9)
>>> idx.tolist(), w.tolist()  # 5 samples shuffled, the last batch padded with row 9 at weight 0
([[2, 4], [3, 0], [1, 9]], [[1.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

CHUNK = 32  # batches per compiled call: the program's shape does not depend on a window's length
ROWS = 512  # sample arrays are padded to a multiple of this, so groups of similar windows share a program


def epoch_batches(n: int, batch: int, rng: np.random.Generator, pad_index: int) -> tuple[np.ndarray, np.ndarray]:
    """One epoch's sample indices in batches and their weights, as :func:`train_epochs` makes them:
    a permutation of ``n`` samples from ``rng``, the last batch padded with ``pad_index`` (a zero
    row) at weight 0 and its real rows weighted ``batch / real``."""
    order = rng.permutation(n)
    total = -(-n // batch) * batch
    idx = np.full(total, pad_index, dtype="int32")
    idx[:n] = order
    w = np.zeros(total, "float32")
    w[:n] = 1.0
    tail = n % batch
    if tail:
        w[n - tail : n] = batch / tail
    return idx.reshape(-1, batch), w.reshape(-1, batch)


def val_batches(n_train: int, n_val: int, batch: int, pad_index: int) -> tuple[np.ndarray, np.ndarray]:
    """The validation samples (rows ``n_train ..``) in order, padded, each real row weighing ``padded / n``
    (the mean of batch means is the exact mean, as :func:`padded_batches` with ``"mean"``)."""
    total = -(-n_val // batch) * batch
    idx = np.full(total, pad_index, dtype="int32")
    idx[:n_val] = np.arange(n_train, n_train + n_val)
    w = np.zeros(total, "float32")
    w[:n_val] = total / n_val
    return idx.reshape(-1, batch), w.reshape(-1, batch)


def padded_batches(x: np.ndarray, y: np.ndarray, batch: int, weights: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pad ``x``, ``y`` with zero-weight rows to a whole number of batches, so every batch has one shape.

    ``weights="batch"``: the real rows of the last, partial batch weigh ``batch / real``,
    so that batch's mean loss (and gradient) is the mean over its real rows, as without
    padding. ``weights="mean"``: every real row weighs ``padded / n``, so the mean of the
    batch means is the mean over all real rows (an exact validation loss).

    >>> _, _, w = padded_batches(np.zeros((5, 2)), np.zeros((5, 1)), 4, "batch")
    >>> w.tolist()
    [1.0, 1.0, 1.0, 1.0, 4.0, 0.0, 0.0, 0.0]
    >>> _, _, w = padded_batches(np.zeros((5, 2)), np.zeros((5, 1)), 4, "mean")
    >>> [round(float(v), 3) for v in w]
    [1.6, 1.6, 1.6, 1.6, 1.6, 0.0, 0.0, 0.0]
    """
    n = len(x)
    total = -(-n // batch) * batch
    w = np.zeros(total, "float32")
    if weights == "batch":
        w[:n] = 1.0
        tail = n % batch
        if tail:
            w[n - tail : n] = batch / tail
    else:
        w[:n] = total / n
    pad = total - n
    x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
    y = np.concatenate([y, np.zeros((pad, *y.shape[1:]), y.dtype)])
    return x, y, w


def train_epochs(
    model, x, y, x_val, y_val, batch: int, epochs: int, seed: int, callbacks: list | None = None
) -> dict[str, list[float]]:
    """``fit`` epoch by epoch on samples shuffled by a generator seeded with ``seed``, each epoch padded
    to whole batches (:func:`padded_batches`), so no call brings a new input shape to compile.

    Returns the per-epoch history (``loss``, ``val_loss`` when there is validation data, and what
    ``callbacks``, given to every epoch's ``fit``, add to an epoch's logs).
    The epoch's training loss weighs the padded last batch as a full one (its mean is still
    over its real rows only); the validation loss is the exact mean.
    """
    rng = np.random.default_rng(seed)
    val = None
    if len(x_val):
        xv, yv, wv = padded_batches(x_val, y_val, batch, "mean")
        val = (xv[..., None] if xv.ndim == 2 else xv, yv, wv)
    history: dict[str, list[float]] = {}
    for _ in range(epochs):
        order = rng.permutation(len(x))
        xe, ye, we = padded_batches(x[order], y[order], batch, "batch")
        h = model.fit(
            xe[..., None] if xe.ndim == 2 else xe,
            ye,
            sample_weight=we,
            batch_size=batch,
            epochs=1,
            shuffle=False,
            validation_data=val,
            callbacks=callbacks,
            verbose=0,
        )
        for k, vals in h.history.items():
            history.setdefault(k, []).extend(float(v) for v in vals)
    return history


_PROGRAMS: dict = {}  # (architecture key, chunk) -> programs, kept for this process's later groups


def _programs(template, chunk: int, key: str | None = None):
    """The compiled chunk programs of ``template``'s architecture: (train chunk, validation chunk). With a
    ``key`` (what makes two models one program) they are kept and reused by later groups of that key;
    a kept template is only ever called as a pure function of the state it is given."""
    if key is not None and (key, chunk) in _PROGRAMS:
        return _PROGRAMS[key, chunk]
    import jax
    import jax.numpy as jnp

    def keep(active, new, old):
        return jax.tree_util.tree_map(lambda a, b: jnp.where(active, a, b), new, old)

    def train_one(state, x_all, y_all, idx, w, active):
        _, new = template.train_step(state, (x_all[idx], y_all[idx], w))
        return keep(active, new, state)

    def test_one(state, x_all, y_all, idx, w, active):
        _, new = template.test_step(state, (x_all[idx], y_all[idx], w))
        return keep(active, new, state)

    def scanned(step):
        vstep = jax.vmap(step)

        def run(state, x_all, y_all, idx, w, active):
            def body(st, inp):
                return vstep(st, x_all, y_all, *inp), None

            state, _ = jax.lax.scan(body, state, (idx, w, active))
            return state

        return jax.jit(run, donate_argnums=0)

    programs = (scanned(train_one), scanned(test_one))
    if key is not None:
        _PROGRAMS[key, chunk] = programs
        while len(_PROGRAMS) > 8:
            _PROGRAMS.pop(next(iter(_PROGRAMS)))
    return programs


def _stack(values: list[list]) -> list:
    import jax.numpy as jnp

    return [jnp.stack([np.asarray(v[k]) for v in values]) for k in range(len(values[0]))]


def _chunks(idx: np.ndarray, w: np.ndarray, chunk: int):
    """Per-model batch lists (models x steps x batch) as arrays of ``chunk`` steps each (steps x models x
    batch), steps a model does not have masked inactive."""
    steps = max(len(i) for i in idx)
    total = max(chunk, -(-steps // chunk) * chunk)
    m, b = len(idx), idx[0].shape[1]
    I = np.zeros((total, m, b), "int32")
    W = np.zeros((total, m, b), "float32")
    A = np.zeros((total, m), bool)
    for k, (i, ww) in enumerate(zip(idx, w)):
        I[: len(i), k], W[: len(i), k], A[: len(i), k] = i, ww, True
        I[len(i) :, k] = i[0] if len(i) else 0
    for s in range(0, total, chunk):
        yield I[s : s + chunk], W[s : s + chunk], A[s : s + chunk]


def _tracker_slots(template) -> tuple[int, int]:
    """Positions of the loss tracker's total and count among ``template.metrics_variables``."""
    tracker = template._loss_tracker
    ids = [id(v) for v in template.metrics_variables]
    return ids.index(id(tracker.total)), ids.index(id(tracker.count))


def train_stacked(
    models: list,
    samples: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    batch: int,
    epochs: int,
    seeds: list[int],
    chunk: int = CHUNK,
    program_key: str | None = None,
    epoch_end: Callable[[list[dict[str, list[float]]]], None] | None = None,
) -> list[dict[str, list[float]]]:
    """Train ``models`` (same architecture, each built and compiled, in its initial state) together on
    their own ``samples`` ``(x_train, y_train, x_val, y_val)``, ``epochs`` epochs of ``batch`` with each
    model's shuffle seeded by its ``seeds`` entry. Each model's variables end as if it had been trained
    alone by :func:`train_epochs`; returns each one's history (``loss``, ``val_loss`` when it has
    validation samples).

    ``epoch_end(histories)``, if given, is called after each epoch with every model holding its weights
    of that epoch (what a Keras callback's ``on_epoch_end`` sees); it may add to the histories."""
    import jax.numpy as jnp

    template = models[0]
    x_shape = _built(models, samples)
    x_all, y_all, pad = _packed(samples, x_shape)
    train_chunk, test_chunk = _programs(template, chunk, program_key)
    state = (
        _stack([[v.value for v in m.trainable_variables] for m in models]),
        _stack([[v.value for v in m.non_trainable_variables] for m in models]),
        _stack([[v.value for v in m.optimizer.variables] for m in models]),
        _stack([[v.value for v in m.metrics_variables] for m in models]),
    )
    fresh_metrics = state[3]
    total, count = _tracker_slots(template)
    rngs = [np.random.default_rng(s) for s in seeds]
    val = [
        val_batches(len(s[0]), len(s[2]), batch, pad)
        if len(s[2])
        else (np.zeros((0, batch), "int32"), np.zeros((0, batch), "float32"))
        for s in samples
    ]
    histories: list[dict[str, list[float]]] = [{} for _ in models]
    for _ in range(epochs):
        state = (*state[:3], [jnp.array(v) for v in fresh_metrics])  # fit resets the loss tracker each epoch
        batches = [epoch_batches(len(s[0]), batch, rng, pad) for s, rng in zip(samples, rngs)]
        for I, W, A in _chunks([b[0] for b in batches], [b[1] for b in batches], chunk):
            state = train_chunk(state, x_all, y_all, jnp.asarray(I), jnp.asarray(W), jnp.asarray(A))
        for h, loss in zip(histories, _mean_loss(state[3], total, count)):
            h.setdefault("loss", []).append(float(loss))
        if any(len(s[2]) for s in samples):
            test_state = (state[0], state[1], [jnp.array(v) for v in fresh_metrics])
            for I, W, A in _chunks([v[0] for v in val], [v[1] for v in val], chunk):
                test_state = test_chunk(test_state, x_all, y_all, jnp.asarray(I), jnp.asarray(W), jnp.asarray(A))
            _add_val_loss(histories, samples, _mean_loss(test_state[2], total, count))
            state = (test_state[0], test_state[1], state[2], state[3])
        if epoch_end is not None:
            _assign(models, *state[:2])
            epoch_end(histories)
    _assign(models, *state[:2])  # the optimizer's state stays initial: only the weights are kept
    return histories


def _built(models: list, samples: list) -> tuple:
    """Build every model's optimizer, variables and metrics on a first batch; the shape of one input sample."""
    for m in models:
        if not m.optimizer.built:
            m.optimizer.build(m.trainable_variables)
    x0, y0 = samples[0][0], samples[0][1]
    first = (x0[:1] if x0.ndim == 3 else x0[:1, :, None], y0[:1], np.ones(1, "float32"))
    for m in models:
        m._symbolic_build(data_batch=first)
        m.reset_metrics()
    return first[0].shape[1:]


def _add_val_loss(histories: list[dict[str, list[float]]], samples: list, losses: np.ndarray) -> None:
    """Each model's validation loss of the epoch (models without validation samples get none)."""
    for h, s, loss in zip(histories, samples, losses):
        if len(s[2]):
            h.setdefault("val_loss", []).append(float(loss))


def _packed(samples: list, x_shape: tuple) -> tuple:
    """Every model's training then validation samples, one row block per model (rows padded to a multiple of
    :data:`ROWS`, so groups of similar windows share a program), and the index of a zero row for padding."""
    import jax.numpy as jnp

    rows = max(len(s[0]) + len(s[2]) for s in samples) + 1  # + a zero row for padding
    rows = -(-rows // ROWS) * ROWS
    x_all = np.zeros((len(samples), rows, *x_shape), "float32")
    y_all = np.zeros((len(samples), rows, samples[0][1].shape[1]), "float32")
    for k, (xt, yt, xv, yv) in enumerate(samples):
        xs = np.concatenate([xt, xv]) if len(xv) else xt
        ys = np.concatenate([yt, yv]) if len(yv) else yt
        x_all[k, : len(xs)] = xs if xs.ndim == 3 else xs[..., None]
        y_all[k, : len(ys)] = ys
    return jnp.asarray(x_all), jnp.asarray(y_all), rows - 1


def _mean_loss(metrics: list, total: int, count: int) -> np.ndarray:
    """Each model's mean loss from its loss tracker's total and count."""
    return np.asarray(metrics[total]) / np.maximum(np.asarray(metrics[count]), 1e-30)


def _assign(models: list, trainable: list, non_trainable: list) -> None:
    """Each model's variables from its slice of the stacked state."""
    for k, m in enumerate(models):
        for var, value in zip(m.trainable_variables, trainable):
            var.assign(np.asarray(value[k]))
        for var, value in zip(m.non_trainable_variables, non_trainable):
            var.assign(np.asarray(value[k]))


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says the device (or the host) ran out of memory: XLA's ``RESOURCE_EXHAUSTED``, or a
    ``MemoryError``."""
    return isinstance(exc, MemoryError) or "RESOURCE_EXHAUSTED" in str(exc) or "out of memory" in str(exc).lower()


def train_fitting(
    models: list,
    samples: list,
    batch: int,
    epochs: int,
    seeds: list[int],
    program_key: str | None = None,
    epoch_end: Callable[[list, list[int]], None] | None = None,
) -> tuple[list[dict[str, list[float]]], list[int]]:
    """:func:`train_stacked`, halving a group that does not fit in memory (down to a lone model) instead of
    failing it: the group size is the most that fits. Each model's result does not depend on its group's
    size. Returns the histories and, per model, the size of the program that trained it. ``epoch_end``
    gets the histories and the positions (in ``models``) of the models that hold them."""
    initial = [[np.array(v.value) for v in m.variables] for m in models]

    def run(positions: list[int]) -> None:
        try:
            got = train_stacked(
                [models[k] for k in positions],
                [samples[k] for k in positions],
                batch,
                epochs,
                [seeds[k] for k in positions],
                program_key=program_key,
                epoch_end=None if epoch_end is None else lambda hs: epoch_end(hs, positions),
            )
        except Exception as exc:
            if len(positions) == 1 or not out_of_memory(exc):
                raise
            for k in positions:  # back to the initial state: a failed program may have left an epoch's weights
                for var, value in zip(models[k].variables, initial[k]):
                    var.assign(value)
            half = len(positions) // 2
            run(positions[:half])
            run(positions[half:])
            return
        for k, h in zip(positions, got):
            histories[k], sizes[k] = h, len(positions)

    histories: list = [None] * len(models)
    sizes = [0] * len(models)
    run(list(range(len(models))))
    return histories, sizes
