"""``backtest audit RUN_DIR``: prove, strategy by strategy, that no forecast of a finished run saw the future.

The audit rebuilds the run's bars from its ``config.yaml`` (refusing data whose sha256 is not the
manifest's) and its plan, then checks every strategy that ran (seed members of ``repeats`` one by
one; users' own strategies like the built-ins):

``truncation``
    A sample of each strategy's segments (``sample``: always its first and last, the rest evenly
    spaced) is recomputed by the engine's own chain loop (:func:`backtester.chain.run_chains`, the
    loop every job of a run goes through) at three issue times T each
    (the segment's first and last, and one in between drawn from the run's seed, so a strategy
    cannot know which): the segment cut to end at T, on the bars up to T. Every row issued from the
    segment's start up to T must equal the run's ``forecasts.parquet``.
``poison``
    The same segments and issue times (but the last, where it would repeat the truncation), on the
    whole bar series with every bar after T overwritten with junk (huge random rv and returns,
    every junk bar observed): the rows issued up to T must again equal the run's.
``batch``
    Where the run forecast in batches and the fitted strategy has ``forecast_batch``
    (:class:`strategies.base.BatchForecaster`): each sampled segment recomputed on the per-bar
    reference path (the chain with ``batched=False``, one ``forecast`` per issue time, on a freshly
    fitted model) must give the run's rows at every issue time of the segment.
``windows``
    With artifacts (``output.save_models``): every ``artifact.json``'s training window is the plan's
    and ends, like its ``trained_through``, at or before its retrain time, on the run's data; every
    ok fit has its artifact. Without artifacts, the same of every ok fit in ``retrains.parquet``.
``scaler``
    Artifacts holding a ``scaler.json`` (Keras strategies; any strategy may write one in the same
    form): the scaler saw exactly the training window (its sample count, and min/max or mean/variance,
    equal to those of the window's bars in the model's target unit). A scaler the config loads from a
    file (``scaler:``, an imported model's own) is not fitted in the run and is left out.
``rows``
    Every row of ``forecasts.parquet``: its ``model_version`` exists (an artifact, else an ok fit in
    ``retrains.parquet``), its ``trained_through`` is that model's, and both the model's retrain
    time and ``trained_through`` are at or before ``issued_at``; every issue time has its rows.
``economic``
    Each strategy's VaR and ES (``var.parquet``, issue 29; a seed ensemble's from its mean forecast) before
    every sampled issue time T, recomputed from its forecasts issued by T on the bars cut at T, then on the
    bars poisoned after T: both must equal the run's (the distribution's refits see only returns known then).

Recomputations run in this one process in order of T across all strategies (at each T: every
truncation in config order, then every poisoning, then the per-bar references), so a strategy that
leaks through state left by another (a module global) only ever finds the data up to the current T
and its recomputed forecasts differ from the run's. Run the audit in a fresh process (the CLI does):
state left by the run itself in the same process could hide such a leak.

Tolerances, measured on honest runs (tests/test_audit.py). Truncated and poisoned recomputations
must equal the run's rows to a relative ``RECOMPUTE_RTOL`` = 1e-12: Keras models reproduce them
bit for bit on TensorFlow and JAX (their batches are padded to one shape, so a shorter segment
gives the same bits), GARCH, naive and the medians too, but HAR's vectorised forecasts of a
segment cut to a few issue times go through another BLAS kernel and differ by up to 5e-15
relative. ``batch`` allows a relative ``BATCH_RTOL`` = 1e-5 for strategies that run on a Keras
backend (float32: one-row and batched predictions differ by up to 4e-7 relative on CPU) and
``BATCH_RTOL_FLOAT64`` = 1e-9 for the others (HAR: 7e-14). Forecasts are compared on the model's
version and ``trained_through`` as well as their values.

Warm-start chains (``Params.chains()``): each sampled segment's chain is recomputed from its first
segment up to the sampled one, on the same truncated or poisoned bars; a global model's retrain is
recomputed on every asset's bars, cut or poisoned at the same time (the chain loop's pooled step). Tuned strategies: each
segment gets the hyperparameters of the latest tuning at or before it (:func:`params_by_segment`),
read from the run (``tuning/<strategy>/<NNNN>/best.json``; a tuning with no record is searched
again on its window); the searches themselves are not re-run on cut data. A fit that failed in the
run takes the forecasts of the previous good model, refitted (:func:`backtester.chain.previous_good`,
the function the engine uses), as in the run. A fit the run trained in a stacked program (its record's
``stacked``) is recomputed in the same group (the engine's grouping and stacked step; the other members'
bars cut or poisoned as the target's are) and held exactly; where the group cannot be rebuilt (a
resumed run's remainder, a group halved to fit in memory) it is trained alone and held to
:data:`STACK_RTOL`.

Modules: :mod:`.run` (the finished run rebuilt), :mod:`.recompute` (sampling, poisoning, recomputing
through the chain loop, comparing rows), :mod:`.checks` (windows, scalers, rows), :mod:`.report`
(checks, report, tolerances) and :mod:`.main` (:func:`audit`).

Examples
--------
>>> report = audit(Path("results/weekly"), sample=3)  # doctest: +SKIP
>>> report.ok, report.lines()[-1]                      # doctest: +SKIP
(True, 'audit: PASS, 30 checks on 6 strategies (36 recomputations at 18 issue times)')
"""

from .main import audit
from .report import BATCH_RTOL, BATCH_RTOL_FLOAT64, CHECKS, RECOMPUTE_RTOL, STACK_RTOL, AuditReport, Check

__all__ = [
    "BATCH_RTOL",
    "BATCH_RTOL_FLOAT64",
    "CHECKS",
    "RECOMPUTE_RTOL",
    "STACK_RTOL",
    "AuditReport",
    "Check",
    "audit",
]
