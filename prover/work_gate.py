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

The need of a model is ``slashAmount * (jobs served and not yet committed + 1)``: what its
pending work locks when committed, plus one more job. Jobs the API admits between two reads
(:meth:`WorkGate.admit`, under the gate's lock) count at once, so a burst inside one step
cannot be served beyond what the free stake backs (audit A4-4); a job admitted during a read
is counted again after it (twice at worst, never too few), except one admitted just before a
read and not yet in the store when it is read (the milliseconds of one inference).

A change of the gate's state is logged once (ERROR when it closes, WARNING when it opens
again). A commit that reverted with one of :data:`spotcheck.errors.STAKE_ERRORS` closes the
gate at once (:meth:`WorkGate.tripped`) until the stake read from the chain changes.
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
    """Read by the HTTP thread, written by the chain loop (one attribute swap per refresh)."""

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
        #: free stake at the last read, and what each model's pending work needs from it (None
        #: before the first read)
        self._free = 0
        self._need: dict[bytes, int] | None = None
        #: jobs admitted per model since start (monotonic: a read counts what came during it)
        self._admitted: dict[bytes, int] = {}
        self._lock = threading.Lock()

    # -- read by the API and the service ----------------------------------------------------

    def refuse(self, model_id: bytes) -> str | None:
        """Why new work of ``model_id`` is refused now (None: it is accepted)."""
        return self.state.reason(model_id)

    def admit(self, model_id: bytes) -> str | None:
        """Admit one new job of ``model_id`` (the API asks before serving each): None and the
        job's slash counted against the free stake at once, or why not."""
        with self._lock:
            why = self.state.reason(model_id)
            slash = self.slash_amounts.get(model_id)
            if why is not None or slash is None:
                return why  # an unknown model is the API's to refuse
            if self._need is not None:
                need = self._need.get(model_id, 0) + slash
                if need > self._free:
                    return (
                        f"free stake {format_tokens(self._free)} tokens cannot back the next "
                        f"commitment of model {to_hex(model_id)} (needs {format_tokens(need)})"
                    )
                self._need[model_id] = need
            self._admitted[model_id] = self._admitted.get(model_id, 0) + 1
            return None

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
            mark = dict(self._admitted)
        view = self._read_stake()
        pending = self._pending_jobs()
        with self._lock:
            self._last_view = view
            # Jobs admitted during the read may also be in `pending`: counted twice, not lost.
            during = {m: n - mark.get(m, 0) for m, n in self._admitted.items()}
            self._free = view.free
            self._need = {
                m: slash * (pending.get(m, 0) + during.get(m, 0))
                for m, slash in self.slash_amounts.items()
            }
            if self._tripped is not None and self._tripped[1] != view:
                self._tripped = None  # the stake changed since the revert: decide afresh
            state = decide(view, self.slash_amounts, pending, self.node)
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
    view: StakeView, slash_amounts: dict[bytes, int], pending: dict[bytes, int], node: str = ""
) -> GateState:
    """The gate for a stake ``view``: closed for all when unbonding or below the minimum;
    closed for a model when its pending work plus one job needs more than the free stake."""
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
    models: dict[bytes, str] = {}
    for model_id, slash in slash_amounts.items():
        need = slash * (pending.get(model_id, 0) + 1)
        if view.free < need:
            models[model_id] = (
                f"free stake {format_tokens(view.free)} tokens cannot back the next commitment "
                f"of model {to_hex(model_id)} (needs {format_tokens(need)}: "
                f"{pending.get(model_id, 0)} pending job(s) + 1, "
                f"{format_tokens(slash)} each)"
            )
    return GateState(None, models)


def _summary(state: GateState) -> str:
    return state.everything or "; ".join(state.models[m] for m in sorted(state.models))
