"""What each strategy of a run is, for the answer in words: :class:`Profile`.

A profile is made from the run's config (:func:`profiles_of`), written into ``manifest.json`` under
``strategies`` (:meth:`Profile.record`) and read back from there by ``backtest compare``
(:func:`profiles_from_manifest`), so a comparison of finished runs says the same things as their reports.

Two facts matter for the answer besides the words:

- a learned strategy's **start** (:func:`start_of`): the run's strategy that forecasts what the learned
  one starts from untrained (a hybrid's baseline, or the combination of its baselines), so that the
  loss difference to it is what the training adds;
- its **model** key: the type and parameters without the retrain rule and window, so that two strategies
  with the same key are one model under two schemes (:func:`scheme_pairs`).

Examples
--------
>>> a = Profile("lstm", "a hybrid", True, ("har", "garch"), (), "m1", "weekly", 3)
>>> b = Profile("har_garch", "a combination", False, (), ("garch", "har"), "m2", "weekly", 1)
>>> start_of(a, {"lstm": a, "har_garch": b})
'har_garch'
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import RunConfig


@dataclass(frozen=True)
class Profile:
    """One strategy of a run: ``about`` (what it is, in words), whether it is ``learned`` (trained weights
    that depend on a seed), the strategies it ``starts`` from and the ones it ``averages``, its ``model``
    key, its ``schedule`` label and its ``seeds``."""

    name: str
    about: str
    learned: bool
    starts: tuple[str, ...]
    averages: tuple[str, ...]
    model: str
    schedule: str
    seeds: int

    def record(self) -> dict[str, Any]:
        """The fields ``manifest.json`` keeps (besides ``type``, ``seeded`` and ``repeats``)."""
        return {
            "about": self.about,
            "starts_from": list(self.starts),
            "averages": list(self.averages),
            "model": self.model,
            "schedule": self.schedule,
        }

    def renamed(self, label: dict[str, str]) -> Profile:
        """This profile with its own and its linked strategies' names mapped by ``label`` (``run:name``)."""
        return Profile(
            label.get(self.name, self.name),
            self.about,
            self.learned,
            tuple(label.get(n, n) for n in self.starts),
            tuple(label.get(n, n) for n in self.averages),
            self.model,
            self.schedule,
            self.seeds,
        )


def model_key(kind: str, params: dict[str, Any]) -> str:
    """A short digest of a strategy's type and parameters: the same for one model on any schedule."""
    text = json.dumps({"type": kind, **params}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def profiles_of(cfg: RunConfig) -> dict[str, Profile]:
    """Each strategy of the run (seed members not apart), from its config."""
    out = {}
    for name, spec in cfg.strategies.items():
        p = spec.params
        out[name] = Profile(
            name,
            p.describe(),
            bool(p.seeded()),
            tuple(p.starts_from()),
            tuple(p.averages()),
            model_key(spec.type, p.model_dump(mode="json")),
            spec.schedule_label(),
            spec.repeats,
        )
    return out


def profiles_from_manifest(strategies: dict[str, Any]) -> dict[str, Profile]:
    """The profiles a run's ``manifest.json`` recorded (``strategies``); a run from before profiles gets
    its type as the words and its own name as its model (no schemes found)."""
    out = {}
    for name, d in (strategies or {}).items():
        out[name] = Profile(
            name,
            str(d.get("about") or f"a `{d.get('type', name)}` strategy"),
            bool(d.get("seeded")),
            tuple(d.get("starts_from") or ()),
            tuple(d.get("averages") or ()),
            str(d.get("model") or name),
            str(d.get("schedule") or ""),
            int(d.get("repeats") or 1),
        )
    return out


def start_of(profile: Profile, profiles: dict[str, Profile]) -> str | None:
    """The strategy of the run that forecasts ``profile``'s untrained start: its one baseline, or a
    combination of exactly its baselines; None where it has no start or the run lacks it."""
    if not profile.starts:
        return None
    if len(profile.starts) == 1:
        return profile.starts[0] if profile.starts[0] in profiles else None
    want = sorted(profile.starts)
    for name, other in profiles.items():
        if other.averages and sorted(other.averages) == want:
            return name
    return None


def missing_start(profile: Profile) -> str:
    """The config line that adds a learned strategy's untrained start to the run."""
    names = ", ".join(profile.starts)
    return f"`{'_'.join(profile.starts)}: {{type: mean_of, of: [{names}]}}`"


def scheme_pairs(profiles: dict[str, Profile], present: set[str]) -> list[list[str]]:
    """Groups of two or more ``present`` strategies that are one model under different schedules (the same
    :attr:`Profile.model`, another :attr:`Profile.schedule`), each group in the order of the profiles."""
    groups: dict[str, list[str]] = {}
    for name, p in profiles.items():
        if name in present:
            groups.setdefault(p.model, []).append(name)
    return [g for g in groups.values() if len(g) > 1 and len({profiles[n].schedule for n in g}) > 1]
