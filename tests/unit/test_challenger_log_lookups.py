"""Issue 14: the challenger's log lookups (``ApeChain.request_input``, ``committed_output``)
scan from the commitment's block downwards in bounded ranges, never from block 0."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from challenger.chain_io import ApeChain


@dataclass
class FakeEvent:
    """An event's ``range(start, stop, search_topics)`` over logs at known blocks."""

    logs: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # block -> args
    calls: list[tuple[int, int]] = field(default_factory=list)

    def range(self, start: int, stop: int, search_topics: dict[str, Any]) -> list[Any]:
        assert stop - start <= 2000, "an unbounded eth_getLogs"
        self.calls.append((start, stop))
        return [
            SimpleNamespace(event_arguments=args)
            for block in range(start, stop)
            for args in self.logs.get(block, [])
            if args["jobId"] == search_topics["jobId"]
        ]


def _chain(requested: FakeEvent, committed: FakeEvent, start_block: int = 100) -> ApeChain:
    jobs = SimpleNamespace(JobRequested=requested, ResultCommitted=committed)
    return ApeChain(
        job_manager=jobs,
        dispute_manager=None,
        model_registry=None,
        token=None,
        account=None,
        start_block=start_block,
        log_range=1000,
    )


def test_requestInput_scansDownFromTheCommitBlock_inBoundedRanges() -> None:
    requested = FakeEvent({7_400: [{"jobId": 9, "modelId": "0x" + "42" * 32, "input": [1, 2]}]})
    chain = _chain(requested, FakeEvent())
    assert chain.request_input(9, before_block=9_000) == (b"\x42" * 32, [1, 2])
    assert requested.calls == [(8_001, 9_001), (7_001, 8_001)]  # stops where it is found


def test_requestInput_notFound_stopsAtTheDeploymentBlock() -> None:
    requested = FakeEvent({50: [{"jobId": 9, "modelId": "0x" + "42" * 32, "input": [1]}]})
    chain = _chain(requested, FakeEvent(), start_block=100)
    assert chain.request_input(9, before_block=2_500) is None
    assert requested.calls == [(1_501, 2_501), (501, 1_501), (100, 501)]


def test_committedOutput_readsTheCommitBlockOnly() -> None:
    committed = FakeEvent({5_000: [{"jobId": 3, "output": [7, -8]}]})
    chain = _chain(FakeEvent(), committed)
    assert chain.committed_output(3, at_block=5_000) == [7, -8]
    assert committed.calls == [(5_000, 5_001)]
