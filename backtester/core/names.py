"""The two names a run composes from others: a seed member (``name#k``) and an owner (``asset/strategy``).

A strategy with ``repeats: N`` runs as its seed members ``name#1`` .. ``name#N`` (their mean is
reported as ``name``); in a universe every segment, seed and artifact folder belongs to an owner,
``<asset>/<strategy>`` (just ``<strategy>`` in a run on one ``data.path``). Both are frozen values
that parse their string and print it back unchanged.

Examples
--------
>>> m = Member.parse("lstm#2")
>>> m.base, m.index, m.is_seed, str(m)
('lstm', 2, True, 'lstm#2')
>>> Member.parse("har").is_seed, Member.parse("har").base
(False, 'har')
>>> str(Member.of("lstm", 3))
'lstm#3'
>>> o = Owner.parse("btc/lstm#2")
>>> o.asset, o.strategy, o.member.base, str(o)
('btc', 'lstm#2', 'lstm', 'btc/lstm#2')
>>> Owner.parse("har"), str(Owner("", "har"))
(Owner(asset='', strategy='har'), 'har')
>>> Owner("btc", "har").parts
('btc', 'har')
"""

from __future__ import annotations

from dataclasses import dataclass

SEED_MARK = "#"  # name#k: the k-th seed member of a strategy with repeats
ASSET_MARK = "/"  # asset/strategy: a universe asset's strategy


@dataclass(frozen=True)
class Member:
    """A strategy name as the run knows it: ``base`` alone, or its ``index``-th seed member ``base#index``."""

    base: str
    index: int | None = None

    @classmethod
    def parse(cls, name: str) -> Member:
        base, mark, k = str(name).rpartition(SEED_MARK)
        if not mark or not k.isdigit():
            return cls(str(name))
        return cls(base, int(k))

    @classmethod
    def of(cls, base: str, index: int) -> Member:
        return cls(base, index)

    @property
    def is_seed(self) -> bool:
        """Whether this is one seed member of a strategy with ``repeats`` (a draw, judged by its ensemble)."""
        return self.index is not None

    def __str__(self) -> str:
        return self.base if self.index is None else f"{self.base}{SEED_MARK}{self.index}"


def is_seed_member(name: object) -> bool:
    """Whether ``name`` is a seed member's name (``lstm#2``).

    >>> is_seed_member("lstm#2"), is_seed_member("lstm")
    (True, False)
    """
    return Member.parse(str(name)).is_seed


def base_name(name: object) -> str:
    """The strategy a name belongs to: ``lstm`` for ``lstm#2`` and for ``lstm``.

    >>> base_name("lstm#2"), base_name("har")
    ('lstm', 'har')
    """
    return Member.parse(str(name)).base


@dataclass(frozen=True)
class Owner:
    """Whose segment, seed or artifact: ``strategy`` on the run's one asset (``asset`` ``""``), or on ``asset``."""

    asset: str
    strategy: str

    @classmethod
    def parse(cls, text: str) -> Owner:
        asset, mark, strategy = str(text).partition(ASSET_MARK)
        return cls(asset, strategy) if mark else cls("", asset)

    @property
    def member(self) -> Member:
        return Member.parse(self.strategy)

    @property
    def parts(self) -> tuple[str, ...]:
        """The path components under ``models/`` or ``segments/``: ``(strategy,)`` or ``(asset, strategy)``."""
        return (self.asset, self.strategy) if self.asset else (self.strategy,)

    def __str__(self) -> str:
        return f"{self.asset}{ASSET_MARK}{self.strategy}" if self.asset else self.strategy
