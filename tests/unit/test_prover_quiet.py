"""Node log noise (issue 13): a finalize a dApp won is not a failure, and withholding mode
says so once per leaf request, not every step.

The service is built without its constructor (no chain, no store file): only the attributes
the two methods read are set, with fakes that record what the service did.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from prover.service import NodeService
from prover.store import JobState, LeafRequest
from spotcheck.chain import JobStatus, LeafRequestStatus
from spotcheck.errors import RevertError

JOB_ID = 7


class Store:
    def __init__(self) -> None:
        self.marked: list[tuple[int, JobState]] = []

    def mark_job(self, job_id: int, state: JobState) -> None:
        self.marked.append((job_id, state))


class FinalizeChain:
    """``job`` reads COMMITTED, then ``after`` once finalize was sent; finalize raises ``err``."""

    def __init__(self, err: Exception, after: JobStatus) -> None:
        self.err = err
        self.after = after
        self.sent = 0

    def job(self, job_id: int) -> Any:
        return SimpleNamespace(status=self.after if self.sent else JobStatus.COMMITTED)

    def finalize(self, job_id: int) -> Any:
        self.sent += 1
        raise self.err


def _service(chain: Any) -> NodeService:
    service = NodeService.__new__(NodeService)
    service.chain = chain
    service.store = Store()  # type: ignore[assignment]
    service.metrics = SimpleNamespace()  # type: ignore[assignment]
    service.withhold_reveals = False
    service._withheld = set()
    return service


def _job() -> Any:
    return SimpleNamespace(job_id=JOB_ID, status=JobState.COMMITTED)


def test_finalize_thatADappWonFirst_marksFinal_atDebugOnly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    chain = FinalizeChain(
        RevertError("finalize: BadJobStatus(...)", "BadJobStatus"), JobStatus.FINAL
    )
    service = _service(chain)
    with caplog.at_level(logging.DEBUG, logger="prover.service"):
        assert service._finalize_job(_job()) == 0
    assert service.store.marked == [(JOB_ID, JobState.FINAL)]  # type: ignore[attr-defined]
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (logging.DEBUG, "finalized by someone else first") in said
    assert all(level < logging.WARNING for level, _ in said)


def test_finalize_badJobStatus_butJobNotFinal_isStillAFailure() -> None:
    chain = FinalizeChain(
        RevertError("finalize: BadJobStatus(...)", "BadJobStatus"), JobStatus.DISPUTED
    )
    service = _service(chain)
    with pytest.raises(RevertError, match="BadJobStatus"):
        service._finalize_job(_job())
    assert service.store.marked == []  # type: ignore[attr-defined]


def test_finalize_otherRevert_isStillAFailure_evenIfFinal() -> None:
    chain = FinalizeChain(RevertError("finalize: TooEarly()", "TooEarly"), JobStatus.FINAL)
    service = _service(chain)
    with pytest.raises(RevertError, match="TooEarly"):
        service._finalize_job(_job())
    assert service.store.marked == []  # type: ignore[attr-defined]


class RevealChain:
    def leaf_request(self, rid: bytes) -> Any:
        return SimpleNamespace(status=LeafRequestStatus.OPEN, reveal_deadline=1_000)

    def now(self) -> int:
        return 10


def test_withholdingMode_warnsOncePerRequest_notEveryStep(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = _service(RevealChain())
    service.withhold_reveals = True
    first = LeafRequest(b"\x01" * 32, 3, 0, 1_000, "open", None, None)
    second = LeafRequest(b"\x02" * 32, 3, 1, 1_000, "open", None, None)
    with caplog.at_level(logging.DEBUG, logger="prover.service"):
        for _ in range(5):
            assert service._reveal(first) == 0
        assert service._reveal(second) == 0
    said = [r.getMessage() for r in caplog.records if "WITHHOLDING MODE" in r.getMessage()]
    assert len(said) == 2
