"""Sending the node's transactions: one nonce per intent, replaced with higher fees when stuck.

Every transaction the node sends belongs to an *intent* (``commitResult:job:7``,
``commitBatch:local:3``, ``defend:0x...``), and every signed transaction of an intent is
written to the node's journal (:class:`TxJournal`, the ``transactions`` table of the store)
*before* it is broadcast: nonce, hash and fees. So:

- a restart finds the intent's transactions and asks the chain about each hash before sending
  anything; a transaction still pending is waited for (and replaced if stuck), never sent again
  under a fresh nonce;
- a transaction with no receipt after ``stuck_after_s`` is replaced by the same transaction with
  the same nonce and ``maxFeePerGas`` and ``maxPriorityFeePerGas`` both raised by ``bump``
  (at least 12.5 %, the EIP-1559 replacement rule of geth and anvil: a replacement at the same
  fee is refused as "replacement transaction underpriced"); the fee never goes down;
- a fresh nonce is taken only when the intent has no transaction yet, or when its nonce was
  consumed by a transaction that is not one of its own (checked in that order: nonce first, then
  receipts, so that a transaction mined in between is never missed), or after its transaction
  reverted;
- a journaled transaction at or above the account's confirmed nonce that the chain node no
  longer knows (``eth_getTransactionByHash`` null: a reorg dropped it and it did not come back
  to the pool, or its broadcast failed) is broadcast again *as signed* (the journal keeps the
  signed bytes: same hash, same nonce, so it is still one transaction) within ``drop_check_s``
  (:meth:`TxSender.resend_dropped`, run while waiting for a receipt, before a fresh nonce is
  taken, and once per step of the node), not after ``stuck_after_s``. That covers the
  transaction of an intent the node already saw mined, and a lower nonce that a pending
  transaction waits behind (a nonce gap no fee bump of the pending one can close).

Before an intent's first transaction is signed, the call is simulated (``eth_call``): a
revert surfaces then, as :class:`spotcheck.errors.RevertError` carrying the custom error's
name (``NodeUnbonding``), and nothing is spent. A transaction that is mined and reverts anyway
is decoded from its receipt where the RPC can trace it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from spotcheck.encoding import to_hex
from spotcheck.errors import ChainError, ConfigError, RevertError, chain_failure

log = logging.getLogger(__name__)

#: Smallest fee bump a replacement may carry (geth's and anvil's rule is +10 %; 12.5 % is the
#: margin EIP-1559 base fees move per block).
MIN_BUMP = 1.125
#: A dropped transaction is broadcast again at most this often (s): a broadcast that fails
#: (funds, a fee below the base fee) is not repeated on every check.
RESEND_EVERY_S = 10.0
#: Gas limit of a transaction sent without waiting (:meth:`TxSender.broadcast`): its estimate
#: times this.
GAS_MARGIN = 1.3


@dataclass(frozen=True)
class FeePolicy:
    """How the node prices and escalates its transactions (``[transactions]`` in node.toml)."""

    #: No receipt after this long: replace the transaction with a higher fee.
    stuck_after_s: float = 30.0
    #: Multiplier of both fee fields on each replacement (>= 1.125).
    bump: float = 1.25
    #: Never bid more than this maxFeePerGas (None: no cap).
    max_fee_cap_wei: int | None = None
    #: One ``send`` gives up (ChainError) after this long; the journal keeps the transaction and
    #: the next attempt resumes it (same nonce).
    timeout_s: float = 600.0
    poll_s: float = 0.25
    #: Look for journaled transactions the chain node dropped (and send them again) at most
    #: this often.
    drop_check_s: float = 1.0

    def __post_init__(self) -> None:
        if self.bump < MIN_BUMP:
            raise ConfigError(f"fee bump {self.bump} below the replacement minimum {MIN_BUMP}")
        if min(self.stuck_after_s, self.timeout_s, self.poll_s, self.drop_check_s) <= 0:
            raise ConfigError("stuck_after_s, timeout_s, poll_s and drop_check_s must be > 0")


@dataclass(frozen=True)
class SentTx:
    """One signed transaction of an intent, as journaled before its broadcast."""

    intent: str
    nonce: int
    tx_hash: str
    max_fee: int
    priority_fee: int
    sent_at: float
    #: The signed transaction as broadcast (None in journals written before it was kept): what
    #: :meth:`TxSender.resend_dropped` broadcasts again.
    raw: bytes | None = None


#: Appended to the intent of a journal's closed transactions (:meth:`TxJournal.txs_close`).
CLOSED_SUFFIX = "#closed"


class TxJournal(Protocol):
    def tx_sent(self, tx: SentTx) -> None: ...

    def txs_for(self, intent: str) -> list[SentTx]: ...

    def txs_clear(self, intent: str) -> None: ...

    def txs_close(self, intent: str) -> None:
        """Free ``intent`` (:meth:`txs_for` no longer lists its transactions) but keep them for
        :meth:`txs_from_nonce`: mined transactions that hold their nonces."""
        ...

    def txs_from_nonce(self, nonce: int) -> list[SentTx]:
        """Every journaled transaction with a nonce >= ``nonce``, by nonce, then as sent."""
        ...


class MemoryJournal:
    """A journal that forgets on restart (one-shot commands; tests)."""

    def __init__(self) -> None:
        self._txs: dict[str, list[SentTx]] = {}
        self._lock = threading.Lock()

    def tx_sent(self, tx: SentTx) -> None:
        with self._lock:
            self._txs.setdefault(tx.intent, []).append(tx)

    def txs_for(self, intent: str) -> list[SentTx]:
        with self._lock:
            return list(self._txs.get(intent, []))

    def txs_clear(self, intent: str) -> None:
        with self._lock:
            self._txs.pop(intent, None)

    def txs_close(self, intent: str) -> None:
        with self._lock:
            closed = self._txs.pop(intent, [])
            self._txs.setdefault(intent + CLOSED_SUFFIX, []).extend(closed)

    def txs_from_nonce(self, nonce: int) -> list[SentTx]:
        with self._lock:
            found = [t for txs in self._txs.values() for t in txs if t.nonce >= nonce]
        return sorted(found, key=lambda t: (t.nonce, t.sent_at))


@dataclass(frozen=True)
class Mined:
    """A mined transaction: its hash and Ape receipt."""

    tx_hash: str
    receipt: Any


CrashHook = Callable[[str], None]


def _no_crash(point: str) -> None:
    return None


def _message(err: Exception) -> str:
    return (getattr(err, "message", None) or str(err)).lower()


class TxSender:
    """Signs, journals, broadcasts and sees through the transactions of one account."""

    def __init__(
        self,
        account: Any,
        journal: TxJournal | None = None,
        policy: FeePolicy | None = None,
        crash_hook: CrashHook = _no_crash,
    ) -> None:
        self.account = account
        self.journal: TxJournal = journal or MemoryJournal()
        self.policy = policy or FeePolicy()
        self._crash = crash_hook
        self._nonce_lock = threading.Lock()
        self._reserved: set[int] = set()
        #: Called between two polls of a receipt wait (:meth:`send`): the node's chain loop
        #: answers leaf requests meanwhile (``NodeService._urgent``). Never raises here; a send
        #: made from inside it does not call it again (no nested waits within waits).
        self.on_wait: Callable[[], None] | None = None
        self._in_wait = threading.local()
        self._drop_lock = threading.Lock()
        self._drop_checked_at = -math.inf
        #: tx hash -> when it was last broadcast again (monotonic): at most every RESEND_EVERY_S
        self._resent: dict[str, float] = {}

    # -- chain access (thin; every failure surfaces as an exception the loop handles) -------

    @property
    def _web3(self) -> Any:
        from ape import chain

        return chain.provider.web3

    def _simulate(self, txn: Any) -> None:
        """``eth_call`` of the transaction as this account (raises on a revert; a few ms on a
        local node, against ~65 ms for Ape's ``estimate_gas_cost``)."""
        call = {"from": self.account.address, "to": txn.receiver, "data": bytes(txn.data)}
        value = int(getattr(txn, "value", 0) or 0)
        if value:
            call["value"] = value
        self._web3.eth.call(call, "latest")

    def _confirmed_nonce(self) -> int:
        return int(self._web3.eth.get_transaction_count(self.account.address, "latest"))

    def _pending_nonce(self) -> int:
        return int(self._web3.eth.get_transaction_count(self.account.address, "pending"))

    def _base_fee(self) -> int:
        from ape import chain

        return int(chain.blocks.head.base_fee or 0)

    def _priority_fee(self) -> int:
        from ape import chain

        try:
            return int(chain.provider.priority_fee)
        except Exception:  # an RPC without eth_maxPriorityFeePerGas
            return 10**9

    def _receipt(self, tx_hash: str) -> Any | None:
        from ape import chain
        from web3.exceptions import TransactionNotFound

        try:
            self._web3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None
        return chain.provider.get_receipt(tx_hash)

    def _known(self, tx_hash: str) -> bool:
        """True if the chain node knows the transaction (mined, or in its pool)."""
        from web3.exceptions import TransactionNotFound

        try:
            return self._web3.eth.get_transaction(tx_hash) is not None
        except TransactionNotFound:
            return False

    def _mined(self, txs: list[SentTx]) -> Mined | None:
        for tx in txs:
            receipt = self._receipt(tx.tx_hash)
            if receipt is not None:
                return Mined(tx.tx_hash, receipt)
        return None

    # -- fees --------------------------------------------------------------------------------

    def initial_fees(self) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas): twice the base fee plus the tip."""
        priority = self._priority_fee()
        return self._cap(2 * self._base_fee() + priority), priority

    def bumped_fees(self, max_fee: int, priority: int) -> tuple[int, int]:
        """Both fields raised by at least ``bump`` (and the max fee to cover today's base fee)."""
        bump = self.policy.bump
        new_priority = max(math.ceil(priority * bump), priority + 1)
        new_max = max(math.ceil(max_fee * bump), max_fee + 1, 2 * self._base_fee() + new_priority)
        return self._cap(new_max), min(new_priority, self._cap(new_max))

    def _cap(self, max_fee: int) -> int:
        cap = self.policy.max_fee_cap_wei
        return max_fee if cap is None else min(max_fee, cap)

    # -- sending -----------------------------------------------------------------------------

    def send(self, intent: str, method: Any, *args: Any) -> Mined:
        """Send ``method(*args)`` for ``intent`` (or resume its journaled transaction) and
        return it mined. Raises :class:`ChainError` on a revert (before sending: the gas
        estimate; after: a failed receipt) or when it is still not mined after ``timeout_s``.
        """
        previous = self.journal.txs_for(intent)
        if previous:
            resumed = self._resume(intent, previous)
            if isinstance(resumed, Mined):
                return self._checked(intent, resumed)
            previous = resumed or []
        if previous:
            txn = self._build(method, args, previous[-1].nonce)
        else:
            # A first send is simulated first (the gas estimate): a revert no retry can fix
            # (NodeUnbonding...) surfaces decoded, before anything is signed or spent.
            txn = self._first_send(intent, self._build(method, args, None, preflight=True))
            previous = self.journal.txs_for(intent)
        return self._checked(intent, self._see_through(intent, txn, previous))

    def broadcast(self, intent: str, method: Any, *args: Any) -> Mined | SentTx:
        """Like :meth:`send`, without waiting for the receipt: the intent's transaction is
        journaled and broadcast (or, journaled already, resumed: its receipt if mined, else the
        pending transaction, replaced with higher fees once it is ``stuck_after_s`` old), and
        the next call may broadcast another intent at the next nonce at once. Call again (or
        :meth:`poll`) to see it mined; a restart resumes it from the journal (never a second
        transaction under a fresh nonce while the first may still be mined). Raises
        :class:`ChainError` on a revert (the gas estimate, or a failed receipt)."""
        previous = self.journal.txs_for(intent)
        if previous:
            resumed = self._resume(intent, previous)
            if isinstance(resumed, Mined):
                return self._checked(intent, resumed)
            if resumed:
                last = resumed[-1]
                if time.time() - last.sent_at < self.policy.stuck_after_s:
                    return last
                max_fee, priority = self.bumped_fees(last.max_fee, last.priority_fee)
                if max_fee <= last.max_fee:
                    log.critical(
                        "tx stuck at the fee cap: raise max_fee_cap_wei",
                        extra={"intent": intent, "max_fee": last.max_fee},
                    )
                    return last
                log.warning(
                    "tx stuck: replacing it with a higher fee",
                    extra={
                        "intent": intent,
                        "nonce": last.nonce,
                        "old_max_fee": last.max_fee,
                        "max_fee": max_fee,
                    },
                )
                txn = self._build(method, args, last.nonce, estimate=True)
                return self._sign_and_broadcast(intent, txn, max_fee, priority)
        self._first_send(intent, self._build(method, args, None, estimate=True))
        return self.journal.txs_for(intent)[-1]

    def poll(self, intent: str) -> Mined | None:
        """The intent's mined transaction (ChainError if it reverted), or None (pending, or
        nothing journaled)."""
        previous = self.journal.txs_for(intent)
        mined = self._mined(previous) if previous else None
        return None if mined is None else self._checked(intent, mined)

    def _resume(self, intent: str, previous: list[SentTx]) -> Mined | list[SentTx] | None:
        """A journaled intent: mined (its receipt), still ours to wait for (its transactions),
        or None when its nonce went to another transaction (start afresh)."""
        nonce = previous[-1].nonce
        confirmed = self._confirmed_nonce()  # first the nonce, then the receipts
        mined = self._mined(previous)
        if mined is not None:
            return mined
        if confirmed > nonce:
            log.warning(
                "tx nonce was used by another transaction; sending afresh",
                extra={"intent": intent, "nonce": nonce},
            )
            self.journal.txs_clear(intent)
            return None
        log.info("tx resumed", extra={"intent": intent, "nonce": nonce, "sent": len(previous)})
        return previous

    def _build(
        self,
        method: Any,
        args: tuple[Any, ...],
        nonce: int | None,
        *,
        estimate: bool = False,
        preflight: bool = False,
    ) -> Any:
        """The unsigned transaction (gas estimated: a revert surfaces here, before sending).

        ``estimate``: the gas limit is this call's estimate plus :data:`GAS_MARGIN`, whatever
        the network's ``gas_limit`` setting (Ape's local default is the whole block's limit,
        which lets one block hold one such transaction: back-to-back sends need the estimate).
        ``preflight``: simulate the call (one ``eth_call`` on the latest block) to see a revert
        before sending; the gas limit stays the network's setting.
        """
        try:
            kwargs: dict[str, Any] = {"sender": self.account}
            if nonce is not None:
                kwargs["nonce"] = nonce
            if estimate:
                gas = int(method.estimate_gas_cost(*args, sender=self.account))
                kwargs["gas"] = math.ceil(gas * GAS_MARGIN)
            txn = method.as_transaction(*args, **kwargs)
            if preflight and not estimate:
                self._simulate(txn)
            return txn
        except Exception as err:
            raise chain_failure(f"{_method_name(method)} would fail", err) from err

    def _first_send(self, intent: str, txn: Any) -> Any:
        # A dropped transaction's nonce goes back to it, not to this one (the pending nonce
        # counts only what the chain node still knows).
        self.check_dropped()
        with self._nonce_lock:
            nonce = max(self._confirmed_nonce(), self._pending_nonce())
            while nonce in self._reserved:
                nonce += 1
            self._reserved.add(nonce)
        try:
            max_fee, priority = self.initial_fees()
            txn.nonce = nonce
            self._sign_and_broadcast(intent, txn, max_fee, priority)
        finally:
            with self._nonce_lock:
                self._reserved.discard(nonce)
        return txn

    def _sign_and_broadcast(self, intent: str, txn: Any, max_fee: int, priority: int) -> SentTx:
        txn.max_fee = max_fee
        txn.max_priority_fee = priority
        txn.signature = None
        signed = self.account.sign_transaction(txn)
        if signed is None:
            raise ChainError(f"tx {intent}: the node account refused to sign (enable autosign)")
        raw = bytes(signed.serialize_transaction())
        sent = SentTx(
            intent, int(txn.nonce), to_hex(signed.txn_hash), max_fee, priority, time.time(), raw
        )
        self.journal.tx_sent(sent)  # before the broadcast: a restart knows the hash
        self._crash("tx:before-broadcast")
        self._send_raw(sent, raw)
        self._crash("tx:after-broadcast")
        log.info(
            "tx sent",
            extra={
                "intent": intent,
                "tx": sent.tx_hash,
                "nonce": sent.nonce,
                "max_fee": max_fee,
                "priority_fee": priority,
            },
        )
        return sent

    def _send_raw(self, sent: SentTx, raw: bytes) -> None:
        """Broadcast; a refusal is logged (the wait that follows sees what became of it)."""
        try:
            self._web3.eth.send_raw_transaction(raw)
        except Exception as err:
            text = _message(err)
            if "already known" in text or "already imported" in text:
                pass
            elif "nonce too low" in text:
                log.warning(
                    "tx nonce already used: %s",
                    err,
                    extra={"intent": sent.intent, "nonce": sent.nonce},
                )
            else:
                log.warning(
                    "tx broadcast failed: %s",
                    err,
                    extra={"intent": sent.intent, "tx": sent.tx_hash},
                )

    def check_dropped(self) -> int:
        """:meth:`resend_dropped`, at most once per ``drop_check_s`` (any thread); 0 if skipped
        or if the RPC failed (logged: the check is repeated, a send does not wait on it)."""
        now = time.monotonic()
        if now - self._drop_checked_at < self.policy.drop_check_s:
            return 0
        try:
            return self.resend_dropped()
        except Exception as err:
            log.warning("tx drop check failed: %s", err)
            return 0
        finally:  # the interval runs from the end of a check, however long it took
            self._drop_checked_at = time.monotonic()

    def resend_dropped(self) -> int:
        """Broadcast again, as signed, each journaled transaction the chain node no longer
        knows, from the account's confirmed nonce up: per nonce the last one journaled, unless
        the node knows any transaction journaled at that nonce (then it is pending, mined, or
        replaced by one that is). The same signed bytes: the same hash and nonce, never a second
        transaction of an intent. Returns how many were broadcast again."""
        with self._drop_lock:
            confirmed = self._confirmed_nonce()
            by_nonce: dict[int, list[SentTx]] = {}
            for tx in self.journal.txs_from_nonce(confirmed):
                by_nonce.setdefault(tx.nonce, []).append(tx)
            now = time.monotonic()
            self._resent = {h: t for h, t in self._resent.items() if now - t < RESEND_EVERY_S}
            resent = 0
            for nonce in sorted(by_nonce):
                txs = by_nonce[nonce]
                if any(self._known(t.tx_hash) for t in reversed(txs)):
                    # A reorg (or a restarted chain node) drops a run of nonces from the
                    # confirmed one up; the first one it still knows ends that run, so a burst
                    # of pending sends costs one read here, not one per pending transaction.
                    break
                last = txs[-1]
                if last.raw is None:
                    log.warning(
                        "tx dropped by the chain node and not kept signed: waiting for the "
                        "stuck-transaction replacement",
                        extra={"intent": last.intent, "nonce": nonce, "tx": last.tx_hash},
                    )
                    continue
                if last.tx_hash in self._resent:
                    continue
                log.warning(
                    "tx dropped by the chain node (reorg?): broadcasting it again",
                    extra={"intent": last.intent, "nonce": nonce, "tx": last.tx_hash},
                )
                self._resent[last.tx_hash] = now
                self._send_raw(last, last.raw)
                resent += 1
            return resent

    def _see_through(self, intent: str, txn: Any, sent: list[SentTx]) -> Mined:
        """Wait for any of ``sent`` to be mined, replacing the last one when stuck."""
        policy = self.policy
        start = time.monotonic()
        last = sent[-1]
        last_at = time.monotonic() - max(0.0, time.time() - last.sent_at)
        while True:
            try:
                mined = self._mined(sent)
                if mined is not None:
                    return mined
                self.check_dropped()  # ours, or a lower nonce ours waits behind
                if time.monotonic() - last_at >= policy.stuck_after_s:
                    if self._confirmed_nonce() > last.nonce:
                        mined = self._mined(sent)
                        if mined is not None:
                            return mined
                        self.journal.txs_clear(intent)
                        raise ChainError(
                            f"tx {intent}: nonce {last.nonce} was used by another transaction"
                        )
                    max_fee, priority = self.bumped_fees(last.max_fee, last.priority_fee)
                    if max_fee <= last.max_fee:
                        log.critical(
                            "tx stuck at the fee cap: raise max_fee_cap_wei",
                            extra={"intent": intent, "max_fee": last.max_fee},
                        )
                    else:
                        log.warning(
                            "tx stuck for %.0f s: replacing it with a higher fee",
                            time.monotonic() - last_at,
                            extra={
                                "intent": intent,
                                "nonce": last.nonce,
                                "old_max_fee": last.max_fee,
                                "max_fee": max_fee,
                            },
                        )
                        last = self._sign_and_broadcast(intent, txn, max_fee, priority)
                        sent = [*sent, last]
                    last_at = time.monotonic()
            except ChainError:
                raise
            except Exception as err:  # RPC trouble: keep trying until the timeout
                log.warning("tx waiting for a receipt: %s", err, extra={"intent": intent})
            if time.monotonic() - start > policy.timeout_s:
                raise ChainError(
                    f"tx {intent}: not mined after {policy.timeout_s:.0f} s "
                    f"(nonce {last.nonce} kept; resumed on the next attempt)"
                )
            self._waiting(intent)
            time.sleep(policy.poll_s)

    def _waiting(self, intent: str) -> None:
        """Run :attr:`on_wait` once, unless this thread is already inside it."""
        hook = self.on_wait
        if hook is None or getattr(self._in_wait, "active", False):
            return
        self._in_wait.active = True
        try:
            hook()
        except Exception as err:  # the wait goes on whatever the hook did
            log.warning("tx wait hook failed: %s", err, extra={"intent": intent})
        finally:
            self._in_wait.active = False

    def _checked(self, intent: str, mined: Mined) -> Mined:
        if getattr(mined.receipt, "failed", False):
            # A revert frees the intent for a fresh attempt; the signed transaction stays
            # journaled (under a closed name) since it holds its nonce: if a reorg drops it,
            # resend_dropped broadcasts it again, or the transactions after it would wait
            # behind the gap (audit 7-1).
            self.journal.txs_close(intent)
            what = f"tx {intent}: {mined.tx_hash} reverted"
            try:  # Ape decodes the revert from the trace where the RPC has one
                mined.receipt.raise_for_status()
            except Exception as err:
                raise chain_failure(what, err) from err
            raise RevertError(what)
        return mined


def _method_name(method: Any) -> str:
    abis = getattr(method, "abis", None)
    return str(abis[0].name) if abis else str(getattr(method, "__name__", "transaction"))
