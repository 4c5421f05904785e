"""The ezkl backend's proof can be stopped (its dispute was settled by someone else): the
prover process is killed, ``prove`` raises ProofCancelledError, and the next proof runs in a
fresh process. The proofs here are stand-ins run in the real prover process pool."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from prover.defence import EzklProofBackend, ProofCancelledError
from verifier.prove import ProofBundle

A = bytes.fromhex("aa" * 32)


def _slow_prove(key: Any, values: list[int]) -> tuple[bytes, list[int], list[int]]:
    time.sleep(120)
    return b"late", [], []


def _quick_prove(key: Any, values: list[int]) -> tuple[bytes, list[int], list[int]]:
    return b"proof", [len(values)], values


def _backend() -> EzklProofBackend:
    cfg = SimpleNamespace(onnx_path="m.onnx", calibration_path=None, srs_path=None, srs_sha256=None)
    backend = EzklProofBackend({A: cfg})  # type: ignore[dict-item]
    backend._artifacts[A] = object()  # no ezkl build: the stand-ins ignore the artifacts
    return backend


def test_cancel_stopsTheRunningProof_andTheNextProofRunsInAFreshProcess() -> None:
    backend = _backend()
    backend._child_prove = _slow_prove
    outcome: list[BaseException | ProofBundle] = []

    def run() -> None:
        try:
            outcome.append(backend.prove(A, [1, 2]))
        except BaseException as err:
            outcome.append(err)

    try:
        assert not backend.cancel()  # nothing running
        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 10
        while backend._running is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        start = time.monotonic()
        assert backend.cancel()
        thread.join(15)
        assert not thread.is_alive() and time.monotonic() - start < 15
        [err] = outcome
        assert isinstance(err, ProofCancelledError)
        assert not backend.cancel()

        backend._child_prove = _quick_prove
        assert backend.prove(A, [1, 2, 3]) == ProofBundle(b"proof", [3], [1, 2, 3])
    finally:
        backend.close()


def test_inProcessProofs_cannotBeCancelled() -> None:
    backend = EzklProofBackend({}, in_process=True)
    assert not backend.cancel()
    with pytest.raises(Exception, match="not served"):
        backend.prove(A, [1])


def test_cancel_beforeTheProofIsSubmitted_stopsIt_andTheNextProofRuns() -> None:
    """A3-N1: cancel() while prove() still loads the artifacts (nothing submitted yet) makes
    prove() stop before submitting; the flag does not outlive that proof."""
    backend = _backend()
    backend._child_prove = _slow_prove
    loading, release = threading.Event(), threading.Event()
    real_artifacts = backend.artifacts

    def slow_artifacts(model_id: bytes) -> Any:
        loading.set()
        assert release.wait(10)
        return real_artifacts(model_id)

    backend.artifacts = slow_artifacts  # type: ignore[method-assign]
    outcome: list[BaseException | ProofBundle] = []

    def run() -> None:
        try:
            outcome.append(backend.prove(A, [1, 2]))
        except BaseException as err:
            outcome.append(err)

    try:
        thread = threading.Thread(target=run)
        thread.start()
        assert loading.wait(10)
        assert backend.cancel()
        release.set()
        thread.join(10)
        assert not thread.is_alive()
        [err] = outcome
        assert isinstance(err, ProofCancelledError)
        assert backend._pool is None  # nothing was submitted
        assert not backend.cancel()

        backend._child_prove = _quick_prove
        assert backend.prove(A, [1, 2, 3]) == ProofBundle(b"proof", [3], [1, 2, 3])
    finally:
        backend.close()


def test_cancelNext_stopsTheProofAboutToStart_once() -> None:
    """The defence worker arms ``cancel_next`` for a dispute settled during its witness
    pre-check: that prove() stops before submitting, and the flag is gone after it."""
    backend = _backend()
    backend._child_prove = _slow_prove
    try:
        backend.cancel_next()
        with pytest.raises(ProofCancelledError):
            backend.prove(A, [1, 2])
        assert backend._pool is None and not backend._cancel_pending
    finally:
        backend.close()
