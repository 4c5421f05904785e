"""Audit (v2): one out-of-domain leaf poisons a whole listing.

``challenger.batches.parse_listing`` rejected the *whole* listing (as withheld) when any one
leaf's input is outside the model's domain, although the listing rebuilds the committed root
and every other leaf is checkable off-chain. The challenger then treats the batch as withheld
and pays one bonded ``requestLeaf`` per sampled leaf; each bond is credited to the node on
reveal. A cheating node that adds one out-of-domain garbage leaf to every batch (it can never
be disputed: challengers never dispute out-of-domain inputs) turns every check of its batches
into bonds paid to itself, and fills the challenger's ``max_bond_at_risk`` cap (requests then
wait and can miss the window).
"""

from __future__ import annotations

from pathlib import Path

import httpx

from challenger.batches import BatchClient, Fetcher
from challenger.sampling import SamplingPolicy
from challenger.service import Challenger, Options
from challenger.store import JobState, Store
from spotcheck.encoding import batch_leaf_key
from spotcheck.follower import open_db
from tests.unit.test_challenger_fetch import (
    DEADLINE,
    LIMITS,
    add_batch,
    leaves_of,
    listing,
    tick_until,
)
from tests.unit.test_challenger_service import FakeChain, FakeReexec

BATCH = 9


def test_audit_oneOutOfDomainLeaf_makesChallengerPayLeafRequestBondsToTheNode(
    tmp_path: Path,
) -> None:
    leaves = leaves_of(4, cheat={0})  # leaf 0: a wrong answer
    leaves[3] = {"jobId": 999, "inputQ": [-5, 3], "outputQ": [0]}  # garbage, outside [0, 100]
    store = _run(tmp_path, leaves)
    # The garbage leaf alone is set aside: recorded undisputable, with why, never disputed.
    job = store.job(batch_leaf_key(BATCH, 3))
    assert job is not None and job.state is JobState.UNDISPUTABLE
    assert "outside the domain" in (job.reason or "")
    assert job.input_q == [-5, 3]


def test_audit_control_inDomainListing_cheatDisputedWithoutLeafRequests(tmp_path: Path) -> None:
    """Control for the test above: the same batch without the garbage leaf."""
    _run(tmp_path, leaves_of(4, cheat={0}))


def _run(tmp_path: Path, leaves: list[dict]) -> Store:  # type: ignore[type-arg]
    served = listing(leaves)

    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=served, headers={"Content-Type": "application/json"})

    db = tmp_path / "c.sqlite"
    chain = FakeChain(in_lo=0, in_hi=100)
    store = Store(open_db(db))
    add_batch(store, chain, BATCH, "http://node.test", leaves)
    store.conn.close()
    ch = Challenger(
        store=Store(open_db(db)),
        chain=chain,
        policy=SamplingPolicy(secret=b"\x07" * 32, default_rate=1.0),
        reexecutor_for=lambda _m: FakeReexec(),
        options=Options(max_bond_at_risk=10**6, fetch_wait_s=0.5),
        fetcher=Fetcher(BatchClient(limits=LIMITS, transport=httpx.MockTransport(serve))),
    )
    tick_until(ch, chain, DEADLINE - 1)
    requests = sorted(s for s in chain.sends if s.startswith("request"))
    # Property: the served listing rebuilds the root, so nothing needs forcing on chain, and
    # the wrong leaf 0 is disputed straight from the listing.
    assert requests == [], f"bonded leaf requests paid to the node: {requests}"
    assert batch_leaf_key(BATCH, 0) in chain.disputes
    return ch.store
