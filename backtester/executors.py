"""Where units of work run: in this process, on local worker processes, or on a Dask cluster.

The engine hands an executor a list of frozen jobs and one pure function; the executor only
decides where each ``fn(job)`` runs and calls ``on_done(job, result)`` in this process as each
finishes. So the same loop serves every executor, and results do not depend on where or in how
many workers they ran: every process, this one included, computes on one thread
(:func:`backtester.process.pin_threads`), so sums are added in one order everywhere (tested on
``configs/weekly.yaml``'s models). Local workers are ``spawn``-ed processes, each with its own Keras
and its own core; a Dask cluster's workers need this package installed and the results directory on
a path they share with the client (``--scheduler tcp://host:8786``), and are pinned before their
first job.

Examples
--------
>>> done = []
>>> InProcess().run(abs, [-2, 3], lambda job, result: done.append(result))
>>> done
[2, 3]
>>> worker_threads(jobs=2, cores=2)
1
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures import Executor as _FuturesExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from .backend import select_backend
from .core.errors import BacktestError, ConfigError
from .process import THREADS, pin_threads

RETRIES = 2  # a lost worker's jobs are run again this many times
CONNECT_TIMEOUT = "10s"  # how long to try a Dask scheduler before saying it cannot be reached

OnDone = Callable[[Any, Any], None]


class Executor(Protocol):
    """Runs ``fn(job)`` for every job and calls ``on_done(job, result)`` here as each finishes."""

    parallel: bool  # jobs run at once (then the longest should start first); else one by one, in the order given

    def run(self, fn: Callable[[Any], Any], jobs: Sequence[Any], on_done: OnDone) -> None: ...


class InProcess:
    """Every job in this process, in the order given."""

    parallel = False

    def run(self, fn: Callable[[Any], Any], jobs: Sequence[Any], on_done: OnDone) -> None:
        for job in jobs:
            on_done(job, fn(job))


@dataclass(frozen=True)
class WorkerSetup:
    """What a local worker process sets up once, in its initializer: the Keras backend, its share of
    the cores, and each strategy's own process-wide set-up (``Params.worker_setup``)."""

    backend: str
    threads: int
    params: tuple[Any, ...] = ()


class LocalPool:
    """Jobs on ``workers`` spawned local processes. A pool that loses a worker is restarted and its
    unfinished jobs run again, up to :data:`RETRIES` times. :meth:`start` spawns the workers at once, so
    their start-up (a process, Keras imported) overlaps the parent's own work (reading the bars); the
    started pool then serves every :meth:`run` until :meth:`close`."""

    parallel = True

    def __init__(self, workers: int, backend: str, params: Iterable[Any] = ()):
        self.workers, self.backend, self.params = workers, backend, tuple(params)
        self._pool: ProcessPoolExecutor | None = None
        self._used = False  # the started pool ran a job

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context("spawn")
        setup = WorkerSetup(self.backend, worker_threads(max(workers, 1)), self.params)
        return ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(setup, ctx.Value("i", 0))
        )

    def start(self) -> None:
        """Spawn the workers now (each runs its set-up while this process goes on); not when more workers
        than cores are asked for (then :meth:`run` starts no more than it has jobs for)."""
        if self._pool is None and self.workers <= (os.cpu_count() or 1):
            self._pool = self._new_pool(self.workers)
            for _ in range(self.workers):
                self._pool.submit(_ready)

    def close(self, abort: bool = False) -> None:
        """Stop the started workers: at once with ``abort`` (mid-job), or if they never got a job (a run whose
        segments were all reused need not wait for them to finish starting)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            if abort or not self._used:
                _terminate(pool)
            pool.shutdown(wait=True, cancel_futures=True)

    def run(self, fn: Callable[[Any], Any], jobs: Sequence[Any], on_done: OnDone) -> None:
        pending = list(jobs)
        for attempt in range(RETRIES + 1):
            if not pending:
                return
            owned = self._pool is None  # no more processes than jobs, and the cores shared among those
            pool = self._new_pool(min(self.workers, len(pending))) if owned else self._pool
            self._used = self._used or not owned
            try:
                _drain(pool, pending, fn, on_done)
            except BrokenProcessPool:
                pool.shutdown(wait=True)
                self._pool = None
                if attempt == RETRIES:
                    raise BacktestError(
                        f"a worker process died {RETRIES + 1} times (out of memory?); "
                        f"{len(pending)} jobs did not finish; try fewer --jobs"
                    ) from None
                continue
            except BaseException:  # interrupted, or a job's error stops the run: stop the workers now, mid-job
                _terminate(pool)
                pool.shutdown(wait=True)
                self._pool = None
                raise
            if owned:
                pool.shutdown(wait=True)
            return


def _ready() -> None:
    """A no-op job: it makes the pool spawn a worker now."""


class DaskCluster:
    """Jobs on the Dask scheduler at ``address`` (which reschedules a lost worker's tasks itself).
    A Dask worker has no initializer of ours: it applies the set-up once, before its first job."""

    parallel = True

    def __init__(self, address: str, backend: str = "jax", params: Iterable[Any] = ()):
        self.address = address
        self.setup = WorkerSetup(backend, 0, tuple(params))

    def run(self, fn: Callable[[Any], Any], jobs: Sequence[Any], on_done: OnDone) -> None:
        pending = list(jobs)
        if not pending:
            return
        workers = local_workers(self.address)
        if workers is not None:  # local:N: a cluster of N worker processes on this machine, for this run
            with local_cluster(workers) as cluster:
                self._run(cluster.scheduler_address, fn, pending, on_done)
        else:
            self._run(self.address, fn, pending, on_done)

    def _run(self, address: str, fn: Callable[[Any], Any], pending: list, on_done: OnDone) -> None:
        client = dask_client(address)
        executor = client.get_executor()
        try:
            _drain(executor, pending, partial(_set_up_first, self.setup, fn), on_done)
        except BaseException:
            for fut in list(getattr(executor, "_futures", ())):  # the cluster drops what has not started
                fut.cancel()
            raise
        finally:
            client.close()


def make_executor(
    jobs: int = 1, scheduler: str | None = None, backend: str = "jax", params: Iterable[Any] = ()
) -> Executor:
    """The executor an ``execution`` block asks for: a Dask cluster, a local pool, or this process."""
    if scheduler is not None:
        return DaskCluster(scheduler, backend, params)
    if jobs > 1:
        return LocalPool(jobs, backend, params)
    return InProcess()


def worker_threads(jobs: int, cores: int | None = None) -> int:
    """Compute threads per process, whatever the jobs and cores: :data:`backtester.process.THREADS` (one),
    in this process and in every worker alike, so that the thread count never decides a result."""
    return THREADS


_SET_UP: list[WorkerSetup] = []  # what this (Dask worker) process has set up


def _set_up_first(setup: WorkerSetup, fn: Callable[[Any], Any], job: Any) -> Any:
    """``fn(job)`` on a Dask worker, after the run's backend, one compute thread and the strategies' set-up
    (once per process)."""
    if setup not in _SET_UP:
        select_backend(setup.backend)  # refused if this worker already has Keras on another backend
        if not pin_threads():
            raise ConfigError(
                "execution.scheduler: this Dask worker already runs JAX on several threads, so its numbers would "
                "differ from every other executor's; start the workers with XLA_FLAGS=--xla_cpu_multi_thread_eigen"
                "=false, or use fresh ones"
            )
        for params in setup.params:
            params.worker_setup()
        _SET_UP.append(setup)
    return fn(job)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's workers at once, mid-job (what they finished is on disk already)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for proc in processes:
        proc.terminate()
    for proc in processes:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()


def _exit_with_parent(poll: float = 0.5) -> None:
    """End this worker process as soon as its parent is gone (killed with -9: nothing else tells it)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _init_worker(setup: WorkerSetup, counter) -> None:
    """A local worker's start: its core, one compute thread and its backend, then each strategy's set-up.
    It ignores Ctrl-C (the parent stops it) and exits by itself when the parent dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _exit_with_parent()
    if setup.threads == 1 and hasattr(os, "sched_setaffinity"):
        # one core each: workers that float between cores run each step slower (measured, bench/README.md)
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cores[index % len(cores)]})
    os.environ["KERAS_BACKEND"] = setup.backend
    pin_threads()  # inherited from the parent already; again for BLAS loaded while the set-up was unpickled
    for params in setup.params:
        params.worker_setup()


def _drain(executor: _FuturesExecutor, pending: list, fn: Callable, on_done: OnDone) -> None:
    """Submit every pending job, hand each result to ``on_done`` and remove its job from ``pending``."""
    futures = {executor.submit(fn, job): k for k, job in enumerate(pending)}
    finished: set[int] = set()
    try:
        while futures:
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for fut in done:
                k = futures.pop(fut)
                result = fut.result()
                finished.add(k)
                on_done(pending[k], result)
    finally:
        pending[:] = [job for k, job in enumerate(pending) if k not in finished]


def local_workers(address: str) -> int | None:
    """N of a ``local:N`` scheduler (a Dask cluster of N worker processes started here), else None.

    >>> local_workers("local:4"), local_workers("tcp://10.0.0.5:8786")
    (4, None)
    """
    if not address.startswith("local:"):
        return None
    n = address.removeprefix("local:")
    if not n.isdigit() or int(n) < 1:
        raise ConfigError(
            f"execution.scheduler: {address} starts no workers; give local:N with N 1 or more (e.g. local:2), "
            "or a scheduler's address such as tcp://host:8786"
        )
    return int(n)


def local_cluster(workers: int):
    """A ``distributed.LocalCluster`` of ``workers`` processes of one thread each (no dashboard): the cluster
    path on one machine. Its workers are Dask's own processes, restarted by their nannies if one dies."""
    try:
        from distributed import LocalCluster
    except ImportError:
        raise ConfigError(
            "execution.scheduler: Dask is not installed; pip install -e '.[dask]' (on the workers too)"
        ) from None
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)


def dask_client(address: str):
    """A Dask distributed client for ``address``, or a one-line error saying why not."""
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError(
            "execution.scheduler: Dask is not installed; pip install -e '.[dask]' (on the workers too)"
        ) from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
        raise ConfigError(
            f"execution.scheduler: cannot reach the Dask scheduler at {address} "
            f"({type(exc).__name__}: {first}); start one with `dask scheduler` and workers with "
            "`dask worker ADDRESS`, or drop --scheduler"
        ) from None


def cost_order(items: Iterable[tuple[Any, float]]) -> list[Any]:
    """Keys by estimated cost, longest first (so the slowest job does not start last).

    >>> cost_order([("a", 1.0), ("b", 5.0), ("c", 2.0)])
    ['b', 'c', 'a']
    """
    return [k for k, _ in sorted(items, key=lambda kv: -kv[1])]
