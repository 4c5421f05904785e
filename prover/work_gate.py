"""Whether the node may take new work: its stake must back the next commitment.

A commitment (``commitResult``, ``commitBatch``) locks ``slashAmount`` per job in the node's
stake and reverts ``NodeUnbonding`` once the node asked to unbond, ``InsufficientStake`` below
the minimum or when the free stake cannot back it. No retry fixes either: only the operator
can (a top-up; after an unbond, a withdrawal and a fresh stake). So the chain loop reads the
stake once per step (:meth:`WorkGate.refresh`) and, while it cannot back more work:

- the HTTP API answers new jobs of the model with 503 and the reason (``/ready`` too when no
  model can take work);
- sealed batches are held (not sent, so no reverting transaction is retried every step); they
  are committed if the stake recovers;
- on-chain jobs are dropped when the node is unbonding or below the minimum (the requester's
  fee comes back through ``cancel`` after the commit deadline) and held when the free stake is
  only short for now.

The gate keeps one ledger of the free stake for all work not yet committed, every model,
under one lock shared by the HTTP threads and the chain loop: the store's pending jobs at the
last read (served and not yet committed), API jobs admitted and still being served
(:meth:`WorkGate.admit`, settled by :meth:`WorkGate.stored` or :meth:`WorkGate.release`), API
jobs stored since the read began (a job stored during the read is counted twice at worst,
never too few), and on-chain jobs reserved for their commitment
(:meth:`WorkGate.reserve_job`, until :meth:`WorkGate.job_mined` and the next read, or
:meth:`WorkGate.job_dropped`). A new job, API or on-chain, of any model is taken only while
that sum plus its own slash fits the free stake of the last read (audit A4-4, A5-2, A5-3,
A5-6). The API validates a request before it asks ``admit``, so a malformed one reserves
nothing (A5-4). Before the first read the ledger is not checked (the node's start-up reads
the stake before the API listens). Not covered: stake locked or freed on chain by anything
else between two reads (the next read sees it).

A change of the gate's state is logged once (ERROR when it closes, WARNING when it opens
again). A commit that reverted with one of :data:`spotcheck.errors.STAKE_ERRORS` closes the
gate at once (:meth:`WorkGate.trip`) until the stake read from the chain changes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from prover.chain_io import StakeView
from spotcheck.cli_options import format_tokens
from spotcheck.encoding import to_hex

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateState:
    """The gate after one stake read: a reason for every model that cannot take work."""

    #: Why no model can take work (unbonding, below the minimum); None: that is not the case.
    everything: str | None
    #: model id -> why this model cannot take work (its need exceeds the free stake).
    models: dict[bytes, str]

    def reason(self, model_id: bytes) -> str | None:
        return self.everything or self.models.get(model_id)


OPEN = GateState(None, {})


class WorkGate:
    """One ledger of the free stake, shared by the HTTP threads and the chain loop (all
    reads and writes of the ledger under one lock)."""

    def __init__(
        self,
        read_stake: Callable[[], StakeView],
        slash_amounts: dict[bytes, int],
        pending_jobs: Callable[[], dict[bytes, int]] = dict,
        *,
        node: str = "",
    ) -> None:
        self._read_stake = read_stake
        self.slash_amounts = dict(slash_amounts)
        self._pending_jobs = pending_jobs
        self.node = node
        self.state = OPEN
        self._tripped: tuple[str, StakeView | None] | None = None
        self._last_view: StakeView | None = None
        self._permanent = False
        #: False until the first read: no ledger to check against yet (the API is open).
        self._read = False
        #: free stake at the last read, and the store's pending jobs per model at that read
        self._free = 0
        self._pending: dict[bytes, int] = {}
        #: API jobs admitted and not yet stored (nor released), per model
        self._in_flight: dict[bytes, int] = {}
        #: API jobs stored since start, per model (monotonic), and its value when the last
        #: read began: the difference is stored work the last read may not have seen
        self._stored: dict[bytes, int] = {}
        self._stored_mark: dict[bytes, int] = {}
        #: on-chain job id -> slash reserved for its commitment (until mined or dropped)
        self._onchain: dict[int, int] = {}
        #: on-chain jobs whose commitment was mined: their lock is in the next read's stake
        self._mined: set[int] = set()
        self._lock = threading.Lock()

    # -- read by the API and the service ----------------------------------------------------

    def refuse(self, model_id: bytes, n: int = 1) -> str | None:
        """Why ``n`` new jobs of ``model_id`` are refused now (None: accepted); reserves
        nothing."""
        with self._lock:
            return self._why_not(model_id, n)

    def admit(self, model_id: bytes, n: int = 1) -> str | None:
        """Admit ``n`` new API jobs of ``model_id``, one request (the API asks after validating
        its inputs): None and their slash counted in the ledger at once (in flight until
        :meth:`stored` or :meth:`release`), or why not; all of them or none."""
        with self._lock:
            why = self._why_not(model_id, n)
            if why is None and model_id in self.slash_amounts:
                self._in_flight[model_id] = self._in_flight.get(model_id, 0) + n
            return why  # an unknown model is the API's to refuse

    def stored(self, model_id: bytes, n: int = 1) -> None:
        """``n`` admitted API jobs are in the store: counted until the next read sees them."""
        with self._lock:
            taken = self._take_in_flight(model_id, n)
            if taken:
                self._stored[model_id] = self._stored.get(model_id, 0) + taken

    def release(self, model_id: bytes, n: int = 1) -> None:
        """``n`` admitted API jobs were not served (nor stored): their slash is free again."""
        with self._lock:
            self._take_in_flight(model_id, n)

    def reserve_job(self, job_id: int, model_id: bytes, *, force: bool = False) -> str | None:
        """Reserve the slash of on-chain job ``job_id`` for its commitment (the chain loop asks
        before each commit): None and reserved (again: nothing more), or why not. ``force``
        reserves without asking (a commitment already sent). Held until :meth:`job_mined` (and
        the next read) or :meth:`job_dropped`."""
        with self._lock:
            slash = self.slash_amounts.get(model_id, 0)
            if job_id in self._onchain:
                return None if force else self.state.everything
            why = None if force else self._why_not(model_id)
            if why is None:
                self._onchain[job_id] = slash
            return why

    def job_mined(self, job_id: int) -> None:
        """The commitment of on-chain job ``job_id`` was mined: its slash stays reserved until
        the next read, whose stake holds its lock."""
        with self._lock:
            if job_id in self._onchain:
                self._mined.add(job_id)

    def job_dropped(self, job_id: int) -> None:
        """On-chain job ``job_id`` will not be committed (dropped, or committed elsewhere)."""
        with self._lock:
            self._onchain.pop(job_id, None)
            self._mined.discard(job_id)

    def keep_jobs(self, job_ids: set[int]) -> None:
        """Only on-chain jobs in ``job_ids`` (still to be committed) or mined keep their
        reservation: one dropped anywhere else (a cancel, a reorg) frees its slash."""
        with self._lock:
            for job_id in [j for j in self._onchain if j not in job_ids and j not in self._mined]:
                del self._onchain[job_id]

    def refuse_all(self) -> str | None:
        """Why no model can take work (for ``/ready``), or None."""
        state = self.state
        if state.everything is not None:
            return state.everything
        if self.slash_amounts and all(m in state.models for m in self.slash_amounts):
            return "; ".join(state.models[m] for m in self.slash_amounts)
        return None

    @property
    def permanent(self) -> bool:
        """True while the node is unbonding or below the minimum stake, as last read: on-chain
        jobs are dropped (a tripped gate only holds them: the stake may be topped up)."""
        return self._permanent

    @property
    def closed(self) -> bool:
        """True while no model can take work (unbonding, below the minimum, or tripped by a
        stake revert): sealed batches are held."""
        return self.state.everything is not None

    # -- written by the chain loop ----------------------------------------------------------

    def refresh(self) -> GateState:
        """Read the stake and decide; logs once when the decision changes."""
        with self._lock:
            mark = dict(self._stored)
            mined = set(self._mined)
        view = self._read_stake()
        pending = self._pending_jobs()
        with self._lock:
            self._last_view = view
            self._read = True
            self._free = view.free
            self._pending = dict(pending)
            # Jobs stored during the read may also be in `pending`: counted twice, not lost.
            self._stored_mark = mark
            for job_id in mined:  # committed before this read: in `view.locked` now
                self._onchain.pop(job_id, None)
            self._mined -= mined
            if self._tripped is not None and self._tripped[1] != view:
                self._tripped = None  # the stake changed since the revert: decide afresh
            reserved = self._reserved() - self._pending_need()
            state = decide(view, self.slash_amounts, pending, self.node, reserved)
            self._permanent = state.everything is not None
            if self._tripped is not None and state.everything is None:
                state = GateState(self._tripped[0], state.models)
            self._set(state)
            return state

    def trip(self, reason: str) -> None:
        """A commitment reverted with a stake error: refuse work until the stake changes."""
        with self._lock:
            self._tripped = (reason, self._last_view)
            self._set(GateState(reason, self.state.models))

    # -- the ledger (under the lock) --------------------------------------------------------

    def _why_not(self, model_id: bytes, n: int = 1) -> str | None:
        if self.state.everything is not None:
            return self.state.everything
        slash = self.slash_amounts.get(model_id)
        if slash is None or not self._read:
            return None
        need = self._reserved() + slash * n
        if need > self._free:
            jobs = "1 job" if n == 1 else f"{n} jobs of this request"
            return (
                f"free stake {format_tokens(self._free)} tokens cannot back the next "
                f"commitment of model {to_hex(model_id)} (needs {format_tokens(need)} for "
                f"all work not yet committed + {jobs})"
            )
        return None

    def _pending_need(self) -> int:
        return sum(s * self._pending.get(m, 0) for m, s in self.slash_amounts.items())

    def _reserved(self) -> int:
        """Slash the free stake must back for all work not yet committed, every model: pending
        at the last read, in flight, stored since the read began, and on-chain reservations."""
        total = self._pending_need() + sum(self._onchain.values())
        for m, slash in self.slash_amounts.items():
            since = self._stored.get(m, 0) - self._stored_mark.get(m, 0)
            total += slash * (self._in_flight.get(m, 0) + since)
        return total

    def _take_in_flight(self, model_id: bytes, n: int = 1) -> int:
        """Take up to ``n`` jobs of ``model_id`` out of flight; how many were."""
        have = self._in_flight.get(model_id, 0)
        taken = max(0, min(have, n))
        self._in_flight[model_id] = have - taken
        return taken

    def _set(self, state: GateState) -> None:
        before = self.state
        self.state = state
        if _summary(before) == _summary(state):
            return
        if state == OPEN:
            log.warning("stake backs new work again: accepting jobs", extra={"node": self.node})
        else:
            log.error("not accepting work: %s", _summary(state), extra={"node": self.node})


def decide(
    view: StakeView,
    slash_amounts: dict[bytes, int],
    pending: dict[bytes, int],
    node: str = "",
    reserved: int = 0,
) -> GateState:
    """The gate for a stake ``view``: closed for all when unbonding or below the minimum;
    closed for a model when the pending work of every model, plus ``reserved`` (other work not
    yet committed), plus one job of it needs more than the free stake."""
    who = f"node {node} " if node else "node "
    if view.unbond_requested_at:
        return GateState(
            f"{who}is unbonding (requested at {view.unbond_requested_at}): "
            "commitments revert NodeUnbonding",
            {},
        )
    if view.amount < view.min_stake:
        return GateState(
            f"{who}stake {format_tokens(view.amount)} tokens is below the minimum "
            f"{format_tokens(view.min_stake)}: commitments revert InsufficientStake",
            {},
        )
    locked = reserved + sum(s * pending.get(m, 0) for m, s in slash_amounts.items())
    jobs = sum(pending.get(m, 0) for m in slash_amounts)
    models: dict[bytes, str] = {}
    for model_id, slash in slash_amounts.items():
        need = locked + slash
        if view.free < need:
            models[model_id] = (
                f"free stake {format_tokens(view.free)} tokens cannot back the next commitment "
                f"of model {to_hex(model_id)} (needs {format_tokens(need)}: "
                f"{jobs} pending job(s) of all models"
                + (f", {format_tokens(reserved)} reserved" if reserved else "")
                + f" + 1 of {format_tokens(slash)})"
            )
    return GateState(None, models)


def _summary(state: GateState) -> str:
    return state.everything or "; ".join(state.models[m] for m in sorted(state.models))
