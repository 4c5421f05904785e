"""Audit 8: a batch leaf's ``seen_at`` is when its listing was recorded, not when the challenger
first saw the batch's commitment. A challenger that saw the batch at once, started the listing
attempt at once and was then too slow (a long tick: re-execution backlog, RPC stalls) records
the listing after the deadline: its wrong leaves end ``missed`` as "seen after window closed",
the reason that says it "never had a chance" (a warning, not an error), and the network
benchmark's verdict does not count them. No leaf request was sent either (the batch left
``seen``): the cheater escaped this challenger, and both the log and the verdict excuse it."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from challenger.store import MISSED_SEEN_LATE, BatchState, JobState, Store
from spotcheck.follower import open_db
from tests.unit.test_challenger_fetch import DEADLINE, add_batch, listing
from tests.unit.test_challenger_missed import BATCH, LEAVES, _challenger
from tests.unit.test_challenger_service import FakeChain


def test_audit8_batchSeenInTime_listingRecordedLate_isNotExcusedAsSeenLate(
    tmp_path: Path,
) -> None:
    db = tmp_path / "c.sqlite"
    chain = FakeChain()  # chain time 1000: the batch is committed and seen now, 300 s to go
    store = Store(open_db(db))
    add_batch(store, chain, BATCH, "http://node.test", LEAVES)
    store.conn.close()
    release = threading.Event()
    served = listing(LEAVES)

    def slow(_r: httpx.Request) -> httpx.Response:
        release.wait(10)
        return httpx.Response(200, content=served)

    ch = _challenger(db, chain, httpx.MockTransport(slow), wait=0.0)
    ch.tick()  # seen at 1000 and the listing asked for at once
    assert ch.fetcher.busy(BATCH)
    chain.now = DEADLINE + 5  # the challenger's next tick comes late (it is slow, not down)
    release.set()
    while not all(f.done() for _, f in ch.fetcher._inflight.values()):
        threading.Event().wait(0.01)
    ch.tick()
    assert ch.store.batch(BATCH).state is BatchState.FETCHED  # type: ignore[union-attr]
    missed = ch.store.jobs(JobState.MISSED)
    assert missed  # the cheat at index 0 (sampling rate 1.0) escaped this challenger
    # The batch (and so each of its leaves) was seen 300 s before its deadline: a miss this
    # challenger could have avoided, not one it "never had a chance" at.
    assert {j.reason for j in missed} != {MISSED_SEEN_LATE}
