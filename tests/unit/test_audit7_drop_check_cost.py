"""AUDIT7-3 (LOW, performance on deadline-bound sends): ``TxSender._first_send`` runs
``check_dropped`` before taking a nonce, and ``resend_dropped`` reads the chain node for EVERY
journaled transaction at or above the confirmed nonce (``eth_getTransactionCount`` plus one
``eth_getTransactionByHash`` per pending nonce). The rate limit (``drop_check_s``) is measured
from the START of a check, so once a check itself takes longer than ``drop_check_s`` (pending
count x RPC latency > 1 s: 20 pending transactions at 50 ms), every following send runs a full
check again. In a reveal burst (``reveal_leaves`` broadcasts all open reveals back-to-back,
none mined until the next block) the k-th send pays k RPC round trips: the burst costs
O(N^2) reads instead of O(N) until the next block mines them, against reveal deadlines (a
missed reveal is slashed). Modelled here with 12 s blocks (each mines everything sent before
it) and 50 ms per RPC read: 100 reveals take ~2.4x as long as without the checks.

Expected behaviour asserted here (failed on 00d28cc, before the fix):
the drop checks add at most 50 %
to a reveal burst.
"""

from __future__ import annotations

import time

import pytest

from prover.transactions import FeePolicy, MemoryJournal, SentTx, TxSender

RPC_S = 0.05  # one round trip to a remote RPC
SEND_S = 5 * RPC_S  # what one reveal costs besides the check (reads, estimate, broadcast)
BLOCK_S = 12.0  # an L1-like block time: a block mines every reveal broadcast before it


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class CountingSender(TxSender):
    def __init__(self, clock: Clock) -> None:
        super().__init__(account=None, journal=MemoryJournal(), policy=FeePolicy(drop_check_s=1.0))
        self.clock = clock
        self.reads = 0
        self.sent_at: list[float] = []

    def _confirmed_nonce(self) -> int:
        self.reads += 1
        self.clock.t += RPC_S
        # a block every BLOCK_S mines every reveal sent before it
        block_start = 1000.0 + BLOCK_S * ((self.clock.t - 1000.0) // BLOCK_S)
        return sum(1 for t in self.sent_at if t < block_start)

    def _known(self, tx_hash: str) -> bool:
        self.reads += 1
        self.clock.t += RPC_S
        return True  # every reveal of the burst is pending in the pool

    def _send_raw(self, sent: SentTx, raw: bytes) -> None:
        raise AssertionError("nothing is dropped")


@pytest.mark.parametrize("n", [100])
def test_audit7_revealBurst_dropChecksCostQuadraticReads(
    monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    clock = Clock()
    monkeypatch.setattr(time, "monotonic", clock)
    s = CountingSender(clock)
    for k in range(n):
        s.check_dropped()  # what _first_send does before taking the nonce of reveal k
        s.journal.tx_sent(SentTx(f"revealLeaf:1:{k}", k, f"0x{k:064x}", 1, 1, clock.t, b"r"))
        s.sent_at.append(clock.t)
        clock.t += SEND_S
    burst_s = clock.t - 1000.0
    assert burst_s <= 1.5 * n * SEND_S, (
        f"{n} back-to-back reveals made {s.reads} drop-check RPC reads; the burst took "
        f"{burst_s:.0f} s at {RPC_S * 1000:.0f} ms per read instead of {n * SEND_S:.0f} s"
    )
