"""Fetch a committed batch's contents from its node and verify every leaf against the root.

The node serves ``GET {uri}/v1/batches/{batchId}`` (all leaves: jobId, inputQ, outputQ, in
leaf order) and ``GET {uri}/v1/batches/{batchId}/jobs/{jobId}`` (one leaf and its Merkle
proof). The challenger downloads the whole listing, so the node cannot tell which leaves are
in its sample; it rebuilds the tree from the listing and, when the root matches the committed
one, takes proofs from its own tree. Otherwise it asks the node for the proof of each leaf it
needs and verifies it. A leaf that does not verify against the committed root is treated as
not served: the node's answer proves nothing about what it committed.

Anything short of verified contents is :class:`WithheldError` (timeouts, HTTP errors,
malformed JSON, wrong leaf count, leaves off the root), after retries with backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from challenger.store import BatchRow, Leaf
from spotcheck.encoding import input_hash, leaf_hash, output_hash
from spotcheck.errors import SpotcheckError
from spotcheck.merkle import MerkleTree, verify

log = logging.getLogger(__name__)


class WithheldError(SpotcheckError, RuntimeError):
    """The node did not serve verifiable contents for a committed batch."""


def _int(value: Any) -> int:
    if isinstance(value, str):
        return int(value, 0)
    return int(value)


class _LeafModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    job_id: int = Field(alias="jobId")
    input_q: list[int] = Field(alias="inputQ")
    output_q: list[int] = Field(alias="outputQ")

    @field_validator("job_id", mode="before")
    @classmethod
    def _job_id(cls, v: Any) -> int:
        return _int(v)

    @field_validator("input_q", "output_q", mode="before")
    @classmethod
    def _vector(cls, v: Any) -> list[int]:
        return [_int(x) for x in v]


class _BatchModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    leaves: list[_LeafModel]


class _ProofModel(_LeafModel):
    proof: list[str]


@dataclass(frozen=True)
class FetchedBatch:
    leaves: list[Leaf]
    proofs_from_node: bool  # True when the listing's tree did not match and the node gave proofs


class BatchClient:
    """HTTP client for node batch endpoints, with timeouts and retries."""

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        attempts: int = 3,
        max_backoff: float = 4.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._client = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)
        self._attempts = attempts
        self._max_backoff = max_backoff

    def close(self) -> None:
        self._client.close()

    def _get_json(self, url: str) -> Any:
        def once() -> Any:
            response = self._client.get(url)
            if response.status_code >= 500:
                response.raise_for_status()  # retry server errors
            if response.status_code != 200:
                raise WithheldError(f"GET {url}: HTTP {response.status_code}")
            return response.json()

        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=0.2, max=self._max_backoff),
            retry=retry_if_exception_type((httpx.HTTPError, ValueError)),
            reraise=False,
        )
        try:
            return retrying(once)
        except RetryError as err:
            cause = err.last_attempt.exception()
            raise WithheldError(f"GET {url}: {type(cause).__name__}: {cause}") from cause

    def fetch(self, batch: BatchRow, need_proof: Callable[[int], bool]) -> FetchedBatch:
        """All leaves of ``batch``, verified against its committed root.

        ``need_proof(jobId)`` says which leaves must carry a Merkle proof (the sampled ones).
        """
        base = batch.uri.rstrip("/")
        try:
            listing = _BatchModel.model_validate(
                self._get_json(f"{base}/v1/batches/{batch.batch_id}")
            )
        except ValidationError as err:
            raise WithheldError(f"batch {batch.batch_id}: malformed listing: {err}") from err
        if len(listing.leaves) != batch.count:
            raise WithheldError(
                f"batch {batch.batch_id}: {len(listing.leaves)} leaves served, "
                f"{batch.count} committed"
            )
        if len({leaf.job_id for leaf in listing.leaves}) != batch.count:
            raise WithheldError(f"batch {batch.batch_id}: duplicate jobIds in the listing")
        hashes = [(input_hash(leaf.input_q), output_hash(leaf.output_q)) for leaf in listing.leaves]
        leaf_hashes = [
            leaf_hash(leaf.job_id, batch.model_id, ih, oh)
            for leaf, (ih, oh) in zip(listing.leaves, hashes, strict=True)
        ]
        tree = MerkleTree(leaf_hashes)
        local = tree.root == batch.root
        out: list[Leaf] = []
        for i, (leaf, (ih, oh)) in enumerate(zip(listing.leaves, hashes, strict=True)):
            proof: list[bytes] = []
            if need_proof(leaf.job_id):
                proof = tree.proof(i) if local else self._node_proof(batch, leaf.job_id)
                if not verify(proof, batch.root, leaf_hashes[i]):
                    raise WithheldError(
                        f"batch {batch.batch_id}: leaf {leaf.job_id} is not under the root"
                    )
            out.append(Leaf(leaf.job_id, leaf.input_q, leaf.output_q, ih, oh, proof))
        if not local:
            log.warning(
                "batch listing does not rebuild the committed root; used node proofs",
                extra={"batch_id": batch.batch_id, "node": batch.node},
            )
        return FetchedBatch(out, proofs_from_node=not local)

    def _node_proof(self, batch: BatchRow, job_id: int) -> list[bytes]:
        url = f"{batch.uri.rstrip('/')}/v1/batches/{batch.batch_id}/jobs/{job_id}"
        try:
            answer = _ProofModel.model_validate(self._get_json(url))
            return [bytes.fromhex(p.removeprefix("0x")) for p in answer.proof]
        except (ValidationError, ValueError) as err:
            raise WithheldError(f"GET {url}: malformed proof: {err}") from err
