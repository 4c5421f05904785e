"""AUDIT7-1 (MEDIUM): a transaction of the node that was mined *reverted* is deleted from the
journal (``TxSender._checked`` -> ``txs_clear``). When a reorg then drops it for good (the very
case ``resend_dropped`` exists for), its nonce has no journaled signed copy: ``resend_dropped``
rebroadcasts the later journaled transactions but cannot fill the gap, so they wait behind it
(a pending ``defend``/``revealLeaf`` is stuck until some unrelated new intent happens to take
that nonce). docs/node-operators.md section 6 promises the opposite ("a lower nonce that a
pending transaction waits behind" is broadcast again).

Reverts of the node's own transactions are ordinary: ``finalize`` racing a dApp's finalize
(``BadJobStatus`` is expected by ``NodeService._finalize_job``), ``finalizeBatch`` racing
another finalizer, a reveal/defence someone else answered first.

Expected behaviour asserted here (failed on 00d28cc, before the fix):
after the reorg, every nonce from the
confirmed one up to the highest journaled one is broadcast again.
"""

from __future__ import annotations

from typing import Any

import pytest

from prover.transactions import MemoryJournal, Mined, SentTx, TxSender
from spotcheck.errors import ChainError


class _Receipt:
    failed = True

    def raise_for_status(self) -> None:
        raise RuntimeError("execution reverted: BadJobStatus()")


class FakeChainSender(TxSender):
    """TxSender whose chain node is a dict: what it knows (pool or mined) and the nonce."""

    def __init__(self) -> None:
        super().__init__(account=None, journal=MemoryJournal())
        self.confirmed = 0
        self.known: set[str] = set()
        self.rebroadcast: list[int] = []

    def _confirmed_nonce(self) -> int:
        return self.confirmed

    def _known(self, tx_hash: str) -> bool:
        return tx_hash in self.known

    def _send_raw(self, sent: SentTx, raw: bytes) -> None:
        self.rebroadcast.append(sent.nonce)
        self.known.add(sent.tx_hash)


def _journal(sender: FakeChainSender, intent: str, nonce: int, t: float) -> SentTx:
    tx = SentTx(intent, nonce, f"0x{nonce:064x}", 10, 1, t, raw=bytes([nonce]) * 8)
    sender.journal.tx_sent(tx)
    sender.known.add(tx.tx_hash)
    return tx


def test_audit7_revertedTxDroppedByReorg_leavesANonceGapResendCannotFill() -> None:
    s = FakeChainSender()
    # nonce 7: the node's finalize(5), mined but reverted (a dApp finalized first)
    fin = _journal(s, "finalize:5", 7, 1.0)
    with pytest.raises(ChainError):
        s._checked("finalize:5", Mined(fin.tx_hash, _Receipt()))  # what send() does on a revert
    # nonce 8: the node's defence of an open dispute, mined
    _journal(s, "defend:0xaa", 8, 2.0)
    s.confirmed = 9

    # A reorg drops both blocks for good: the chain node knows neither transaction.
    s.known.clear()
    s.confirmed = 7
    s.resend_dropped()

    # The defence (nonce 8) is broadcast again, but nothing fills nonce 7: it can never be
    # mined while the gap stands.
    assert 8 in s.rebroadcast
    assert 7 in s.rebroadcast, (
        "nonce 7 (a reverted tx, deleted from the journal) is never broadcast again: "
        f"rebroadcast {s.rebroadcast}; the defence at nonce 8 waits behind a gap"
    )


def test_audit7_resendDropped_onlyKnowsTheJournal_afterARevertTheNonceIsUnaccounted() -> None:
    """The same, read off the journal: no entry at the reverted nonce survives."""
    s = FakeChainSender()
    fin = _journal(s, "finalizeBatch:3", 4, 1.0)
    with pytest.raises(ChainError):
        s._checked("finalizeBatch:3", Mined(fin.tx_hash, _Receipt()))
    _journal(s, "revealLeaf:3:0", 5, 2.0)
    nonces: list[Any] = [t.nonce for t in s.journal.txs_from_nonce(4)]
    assert 4 in nonces, f"journal from nonce 4 holds only {nonces}: nonce 4 cannot be resent"
