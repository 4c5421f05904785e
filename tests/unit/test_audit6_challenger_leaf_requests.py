"""Audit 6, A6-4: the challenger never answers someone else's leaf request on a leaf it claimed.

A leaf request that nobody reveals by its deadline makes the leaf invalid
(``settleLeafRequest``), and ``forfeitLeaf`` then burns every claim on it, however correct the
leaf. ``revealLeaf`` is open to anyone (tests/integration/test_audit6_leaf_checks.py: the
claimant's own reveal keeps its collateral), and a claimant has the leaf's data and path from
its re-run. But the service follows no ``LeafRequested`` event: a node offline (or colluding
with the requester) costs every diligent claimant of the leaf its collateral. The defence
(challenger.defence) covers disputes only. Safe: the service follows ``LeafRequested`` so that
the defender can reveal the leaves it claimed (challenger.reveals; the reveal decision:
tests/unit/test_challenger_reveals.py)."""

from __future__ import annotations

from challenger import service


class _EveryEvent:
    """A DisputeManager that has every event (the current contract has LeafRequested)."""

    def __getattr__(self, name: str) -> object:
        return object()


def test_audit6_serviceFollowsLeafRevealed_setUp() -> None:
    """The helper under test filters by the contract's events (this part passes today)."""
    assert "LeafRevealed" in service.dispute_events(_EveryEvent())


def test_audit6_serviceFollowsForeignLeafRequests_toRevealTheLeavesItClaimed() -> None:
    assert "LeafRequested" in service.dispute_events(_EveryEvent())
