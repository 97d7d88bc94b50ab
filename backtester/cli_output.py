"""What ``backtest run`` and ``backtest plan`` show: the progress bar over retrains, the summary table, the
plan, and what an interrupted run kept."""

from __future__ import annotations

import sys

import click


def _interrupted(cfg, fresh: bool = False) -> str:
    """What an interrupted run kept, and the command that continues it (without ``--fresh``, which would
    compute every segment again)."""
    if cfg is None:
        return "interrupted: nothing was written"
    from .layout import RunDir, stage_dir
    from .prepare import target_dir

    out, stage = target_dir(cfg), stage_dir(target_dir(cfg))
    kept = RunDir(stage).finished_segments() if stage.is_dir() else 0
    earlier = " (the earlier run there is untouched)" if RunDir(out).is_finished() else ""
    if kept == 0:
        return f"interrupted: nothing was written to {out}/{earlier}; run the same command again to start over"
    how = (
        "run the same command without --fresh to continue (with --fresh it computes every segment again)"
        if fresh
        else "run the same command again to continue"
    )
    return (
        f"interrupted: kept {kept} finished segment{'s' * (kept != 1)} in {stage}/; nothing was written to "
        f"{out}/{earlier}; {how}"
    )


class ProgressBar:
    """A progress bar over a run's retrains, its time left estimated from the fits' expected cost.

    The run calls it as ``progress(plan, None, False)`` once the plan is known, then ``progress(plan,
    segment, reused)`` as each segment is done (a reused one leaves the time estimate alone); in a
    universe ``plan`` is the list of the assets' plans.
    """

    def __init__(self, cfg):
        self.specs = cfg.run_strategies()
        self.bar = None

    def __call__(self, plan, segment, reused: bool = False) -> None:
        if segment is None:
            self._start(plan)
        elif self.bar is not None:
            self._advance(segment, reused)

    def _start(self, plan) -> None:
        from tqdm import tqdm

        self.costs = {}
        for seg in [s for p in (plan if isinstance(plan, list) else [plan]) for s in p.segments()]:
            params = self.specs[seg.strategy].params
            bars = seg.window.stop - seg.window.start
            cost = params.fit_cost(bars) + 1e-4 * seg.issues  # forecasting: cheap
            if seg.tune:
                trials, epochs = params.tuning_budget()
                cost += trials * epochs * bars
            self.costs[seg.key] = cost
        self.total = sum(self.costs.values()) or 1.0
        self.done = 0.0
        self.bar = tqdm(
            total=len(self.costs),
            unit="retrain",
            desc="walk-forward",
            file=sys.stderr,
            mininterval=0.5,
            leave=False,
            bar_format="{desc}: {n_fmt}/{total_fmt} retrains |{bar}| {elapsed} elapsed{postfix}",
        )

    def close(self) -> None:
        """End the bar on its own line, so that what is printed next (an error) starts a line of its own."""
        if self.bar is not None and not self.bar.disable:
            self.bar.close()
            self.bar = None

    def _advance(self, seg, reused: bool = False) -> None:
        bar = self.bar
        if reused:  # found finished: nothing ran, so it tells nothing about the time left
            self.total -= self.costs.get(seg.key, 0.0)
        else:
            self.done += self.costs.get(seg.key, 0.0)
        elapsed = bar.format_dict["elapsed"]
        left = elapsed * (self.total - self.done) / self.done if self.done > 0 else float("nan")
        eta = f", about {_seconds(left)} left" if left == left and bar.n + 1 < bar.total else ""
        bar.set_postfix_str(f"{seg.owner} {seg.retrain_time:%Y-%m-%d %H:%M}{eta}", refresh=False)
        bar.update(1)
        if bar.n == bar.total:
            bar.close()


def _seconds(secs: float) -> str:
    return f"{secs:.0f} s" if secs < 90 else f"{secs / 60:.0f} min" if secs < 5400 else f"{secs / 3600:.1f} h"


def _summary_table(result) -> str:
    """The run's scores, one format per column, saying what they average over."""
    from .evaluation import summary

    table = summary(result.metrics)
    m = result.metrics
    horizons = f"{int(m['horizon'].min())}..{int(m['horizon'].max())}" if len(m) else "-"
    over = (
        f"mean over {m['asset'].nunique()} assets and horizons"
        if "asset" in m and m["asset"].nunique() > 1
        else "mean over horizons"
    )
    lines = [
        f"{over} {horizons} of each horizon's mean over its forecasts with an actual; best QLIKE first",
        f"  {'strategy':<16} {'QLIKE':>8} {'MSE (vol)':>11} {'MAE (vol)':>11}",
    ]
    for name, row in table.iterrows():
        lines.append(f"  {name!s:<16} {row['qlike']:>8.4f} {row['mse']:>11.3e} {row['mae']:>11.3e}")
    return "\n".join(lines)


def _print_plan(cfg, estimate: bool = False) -> None:
    from .estimate import estimate_table, format_table
    from .prepare import plan_universe

    runs = plan_universe(cfg)
    for k, r in enumerate(runs):
        if r.asset.name:
            click.echo(f"{chr(10) if k else ''}asset {r.asset.name} ({k + 1} of {len(runs)})")
        click.echo(f"data: {r.prepared.describe()}")
        click.echo(r.plan.describe())
        click.echo("")
        click.echo("cost per strategy:")
        if estimate:
            click.echo("  timing one small fit per strategy ...", err=True)
        click.echo(format_table(estimate_table(r.cfg, r.plan, r.series, estimate)))
