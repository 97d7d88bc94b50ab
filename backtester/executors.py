"""Where segments run: in this process, on local worker processes, or on a Dask cluster.

Every executor runs the same pure job, :func:`segment_job` (fit one segment, write it
to the run's staging directory, return its record and rows), so results do not depend
on where or in how many workers they ran (tested). Local workers are ``spawn``-ed
processes, each with its own Keras and one compute thread per core it is given; a Dask
cluster's workers need this package installed and the results directory on a path they
share with the client (``--scheduler tcp://host:8786``).

Examples
--------
>>> worker_threads(jobs=2, cores=2)
1
"""

from __future__ import annotations

import os
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

from .errors import BacktestError, ConfigError

RETRIES = 2  # a lost worker's segments are run again this many times


@dataclass
class JobResult:
    """What a worker sends back: the segment's result without its model, and who ran it."""

    result: Any  # SegmentResult with model=None
    record: Any  # FitRecord as written (with its artifact path)
    worker: str


def segment_job(seg, spec, series, bars, run_seed: int, batched: bool, stage, context: dict, save_models: bool) -> JobResult:
    """Fit one segment (no fallback model), write it under ``stage`` and return it without the model."""
    return chain_job([(seg, spec)], series, bars, run_seed, batched, stage, context, save_models)[0]


def chain_job(items: list, series, bars, run_seed: int, batched: bool, stage, context: dict,
              save_models: bool) -> list[JobResult]:
    """Fit segments in order, each written under ``stage``; returned without their models.

    ``items`` is ``[(segment, spec), ...]``: one segment, or a warm-start strategy's whole
    chain, where each fit continues the last good model (and a failed fit falls back on it).
    """
    from .backend import select_backend
    from .segment import run_segment, write_segment

    if context.get("backend"):
        select_backend(context["backend"])  # a Dask worker: the run's backend (refused if it has another loaded)
    out, live = [], None
    for seg, spec in items:
        warm = getattr(spec.params, "warm_start", None) is not None
        res = run_segment(seg, spec.params, series, bars, run_seed, batched=batched, fallback=live,
                          start_from=live if warm else None)
        record = write_segment(stage, res, spec, context, save_models) if stage is not None else res.record
        if res.ok:
            live = res.model
        out.append(JobResult(replace(res, model=None), record, f"{os.uname().nodename}:{os.getpid()}"))
    return out


def tune_job(seg, params, series, run_seed: int, stage, backend: str | None):
    """A tuning retrain's search (:func:`backtester.tuning.tune_segment`) on a worker."""
    from .backend import select_backend
    from .tuning import tune_segment

    if backend:
        select_backend(backend)
    return tune_segment(seg, params, series, run_seed, stage)


def worker_threads(jobs: int, cores: int | None = None) -> int:
    """Compute threads per local worker: the machine's cores shared out, at least one."""
    return max(1, (cores or os.cpu_count() or 1) // jobs)


def _init_worker(backend: str, threads: int, keras: bool, counter) -> None:
    if threads == 1 and hasattr(os, "sched_setaffinity"):
        # one core each: workers that float between cores run each step slower (measured, bench/README.md)
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cores[index % len(cores)]})
    os.environ["KERAS_BACKEND"] = backend
    os.environ["BACKTESTER_THREADS"] = str(threads)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    if threads == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    if keras:  # import it now, so a segment's fit time is not the worker's start-up
        from strategies.keras_model import keras_module

        keras_module()


def run_jobs(jobs: list[tuple], fn: Callable, workers: int, scheduler: str | None, backend: str,
             on_done: Callable[[Any, JobResult], None], keras: bool = False) -> None:
    """Run ``fn(*args)`` for every ``(key, args)`` in ``jobs`` on ``workers`` local processes, or on the
    Dask scheduler at ``scheduler``; call ``on_done(key, result)`` as each finishes (in this process).

    A local pool that loses a worker is restarted and its unfinished jobs run again, up
    to :data:`RETRIES` times; Dask reschedules a lost worker's tasks itself.
    """
    pending = dict(jobs)
    if scheduler is not None:
        client = dask_client(scheduler)
        try:
            _drain(client.get_executor(), pending, fn, on_done)
        finally:
            client.close()
        return
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    for attempt in range(RETRIES + 1):
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(backend, worker_threads(workers), keras, ctx.Value("i", 0)))
        try:
            _drain(pool, pending, fn, on_done)
            return
        except BrokenProcessPool:
            if attempt == RETRIES:
                raise BacktestError(f"a worker process died {RETRIES + 1} times (out of memory?); "
                                    f"{len(pending)} segments did not finish; try fewer --jobs") from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _drain(executor: Executor, pending: dict, fn: Callable, on_done: Callable) -> None:
    """Submit every pending job, hand each result to ``on_done`` and remove it from ``pending``."""
    from concurrent.futures import FIRST_COMPLETED, wait

    futures = {executor.submit(fn, *args): key for key, args in pending.items()}
    try:
        while futures:
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for fut in done:
                key = futures.pop(fut)
                result = fut.result()
                pending.pop(key)
                on_done(key, result)
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise


def dask_client(address: str):
    """A Dask distributed client for ``address``, or a one-line error saying why not."""
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError("execution.scheduler: Dask is not installed; pip install -e '.[dask]' "
                          "(on the workers too)") from None
    try:
        return Client(address, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(f"execution.scheduler: cannot reach the Dask scheduler at {address} "
                          f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else 'no answer'}); "
                          "start one with `dask scheduler` and workers with `dask worker ADDRESS`, or drop --scheduler") from None


def cost_order(items: Iterable[tuple[Any, float]]) -> list[Any]:
    """Keys by estimated cost, longest first (so the slowest segment does not start last).

    >>> cost_order([("a", 1.0), ("b", 5.0), ("c", 2.0)])
    ['b', 'c', 'a']
    """
    return [k for k, _ in sorted(items, key=lambda kv: -kv[1])]

