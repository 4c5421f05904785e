"""Fetch a committed batch's whole listing from its node and check every leaf against the root.

The node serves ``GET {uri}/v1/batches/{batchId}``: every leaf (``jobId``, ``inputQ``,
``outputQ``) in leaf order. The challenger always downloads the **whole listing** and never
asks for single leaves or proofs: what it requests must not depend on its sample, or the node
learns which leaves are checked (issue 11, point 2). It rebuilds the positional tree
(``spotcheck.merkle``) from the listing and takes every proof it needs from its own tree.

A listing is usable only if all of this holds, otherwise the attempt failed with a
:class:`ListingError` (and only that batch: the caller carries on with everything else):
:class:`ListingUnavailableError` when no complete answer came (connection refused or cut, a status
other than 200, the deadline passed: an honest node restarting looks like this), or
:class:`ListingInvalidError` when the node answered 200 with bytes that are not the committed
listing (over the byte cap, malformed, or not rebuilding the root). Neither proves the node
withholds its batch: only an unrevealed leaf request does (``challenger.service``).

- HTTP 200 within a **total** deadline (not per read: a server dripping one byte a second is
  cut off when the deadline passes) and under a byte cap (declared or streamed);
- a :class:`spotcheck.wire.BatchListing` (the node's own response model) with ``count``
  leaves, each with a ``jobId`` in ``uint256``, ``inputQ`` and ``outputQ`` of integers in
  ``int256`` (an optional ``index`` must equal the leaf's position);
- the leaves, in the order served, rebuild the committed root (a listing in another order, or
  with any leaf altered, does not).

A leaf whose input has an element outside the model's domain ``[inLo, inHi]`` does **not**
make the listing unusable: once the root is rebuilt, that leaf alone is marked
(:attr:`Leaf.outside`, the reason) and recorded ``undisputable`` by the service (no proof
exists for it, so it is never disputed; a dApp's receipt check refuses its output), and every
other leaf is checked from the listing as usual. Refusing the whole listing would let a node
add one garbage leaf to every batch and turn each check into bonded leaf requests whose bonds
are credited to itself.

One fetch is one GET: retries are paced by the service (``challenger.service``) against the
time left in the challenge window. Fetches run in worker threads (:class:`Fetcher`) so a slow
or withholding node never delays disputes or settlements of other commitments.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from challenger.store import BatchRow, Leaf
from spotcheck.encoding import input_hash, leaf_hash, output_hash
from spotcheck.errors import SpotcheckError
from spotcheck.merkle import MerkleTree
from spotcheck.wire import BatchListing
from verifier.domain import in_domain

log = logging.getLogger(__name__)

#: Bytes a listing may take per vector element (an int256 in decimal or 0x-hex, quoted, comma)
#: and per leaf (keys, jobId, index, brackets): the cap derived from ``count`` and the lengths.
_BYTES_PER_ELEMENT = 80
_BYTES_PER_LEAF = 256
_BYTES_OVERHEAD = 4096


class ListingError(SpotcheckError, RuntimeError):
    """The node did not serve a usable listing of a committed batch (this attempt)."""

    #: True if the node answered with bytes that are not the committed listing.
    invalid = False


class ListingUnavailableError(ListingError):
    """No complete answer: refused or cut connection, a status other than 200, the deadline."""


class ListingInvalidError(ListingError):
    """An answer that is not the committed listing: over the cap, malformed, another root."""

    invalid = True


@dataclass(frozen=True)
class Domain:
    """What a listing is checked against: the model's vector lengths and input domain."""

    input_len: int
    output_len: int
    in_lo: int
    in_hi: int


@dataclass(frozen=True)
class FetchLimits:
    #: Total seconds for one listing, connect to last byte.
    deadline_s: float = 10.0
    #: Longest wait for any single read (capped by what is left of the deadline).
    read_timeout_s: float = 2.0
    #: Largest listing accepted whatever the batch (the per-batch cap is usually smaller).
    max_bytes: int = 256 * 2**20


def listing_byte_cap(count: int, domain: Domain, max_bytes: int) -> int:
    """Bytes a well-formed listing of ``count`` leaves can take, at most ``max_bytes``."""
    per_leaf = _BYTES_PER_LEAF + _BYTES_PER_ELEMENT * (domain.input_len + domain.output_len)
    return min(max_bytes, _BYTES_OVERHEAD + count * per_leaf)


@dataclass(frozen=True)
class FetchedBatch:
    """A listing that rebuilt the committed root: its leaves in order and the tree.

    Leaves whose input is outside the model's domain carry the reason in ``outside``."""

    leaves: list[Leaf]
    tree: MerkleTree


#: JSON nesting a listing may have: at least this many levels are accepted, more than twice
#: as many never (a well-formed listing has 4: object, leaves, leaf, vector). Checked before
#: parsing, whatever the parser: ``json``'s C decoder recursed once per level, and with the
#: recursion limit py_ecc sets on import (100,000) some ten thousand ``[`` overflowed the C
#: stack of a fetch thread (a segmentation fault, not a RecursionError) and killed the
#: challenger.
MAX_LISTING_DEPTH = 16
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _too_deep(raw: bytes, limit: int = MAX_LISTING_DEPTH) -> bool:
    """True if ``raw`` may nest brackets deeper than ``limit`` (certainly if deeper than
    ``2 * limit``), or leaves some unclosed.

    Strings are removed first, then everything but brackets; each of ``limit`` passes then
    deletes the innermost ``[]`` and ``{}`` pairs (one or two levels per pass), at C speed.
    """
    rest = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        if not rest:
            return False
        rest = rest.replace(b"[]", b"").replace(b"{}", b"")
    return bool(rest)


def parse_listing(raw: bytes, batch: BatchRow, domain: Domain) -> FetchedBatch:
    """Check a listing's bytes against ``batch`` (see the module doc).

    Raises :class:`ListingInvalidError` if they are not the committed listing."""
    where = f"batch {batch.batch_id}"
    if _too_deep(raw):
        raise ListingInvalidError(
            f"{where}: malformed listing: JSON nested too deep (or brackets left open)"
        )
    try:
        served = BatchListing.model_validate_json(raw)
    except ValidationError as err:
        raise ListingInvalidError(f"{where}: malformed listing: {_one_line(err)}") from err
    if len(served.leaves) != batch.count:
        raise ListingInvalidError(
            f"{where}: {len(served.leaves)} leaves served, {batch.count} committed"
        )
    leaves: list[Leaf] = []
    hashes: list[bytes] = []
    try:
        for i, item in enumerate(served.leaves):
            if item.index is not None and item.index != i:
                raise ValueError(f"leaf {i} says index {item.index}")
            job_id = int(item.jobId)
            input_q, output_q = [int(v) for v in item.inputQ], [int(v) for v in item.outputQ]
            ih, oh = input_hash(input_q), output_hash(output_q)
            hashes.append(leaf_hash(job_id, batch.model_id, ih, oh))
            leaves.append(Leaf(i, job_id, input_q, output_q, ih, oh, []))
        tree = MerkleTree(hashes)
    except (ValueError, SpotcheckError) as err:
        msg = f"{where}: malformed listing: {type(err).__name__}: {err}"
        raise ListingInvalidError(msg) from err
    if tree.root != batch.root:
        raise ListingInvalidError(
            f"{where}: the listing does not rebuild the committed root "
            "(leaves altered, missing or out of order)"
        )
    # Only now, with the listing proven to be the committed one: out-of-domain leaves are
    # marked one by one (never disputed), and never cost the rest of the batch.
    return FetchedBatch([_mark_domain(leaf, domain) for leaf in leaves], tree)


def _one_line(err: ValidationError) -> str:
    """The first problem of a listing, without echoing the listing back."""
    first = err.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "listing"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _mark_domain(leaf: Leaf, domain: Domain) -> Leaf:
    """``leaf`` with :attr:`Leaf.outside` set if an input element is outside the domain."""
    k = in_domain(leaf.input_q, domain.in_lo, domain.in_hi)
    if k is None:
        return leaf
    reason = f"input[{k}] = {leaf.input_q[k]} outside the domain [{domain.in_lo}, {domain.in_hi}]"
    return dataclasses.replace(leaf, outside=reason)


class BatchClient:
    """Downloads listings: one GET each, a total deadline, a byte cap."""

    def __init__(
        self,
        *,
        limits: FetchLimits | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.limits = limits or FetchLimits()
        self._client = httpx.Client(
            transport=transport,
            follow_redirects=False,
            headers={"Accept-Encoding": "identity", "Accept": "application/json"},
        )

    def close(self) -> None:
        self._client.close()

    def fetch(self, batch: BatchRow, domain: Domain) -> FetchedBatch:
        """The whole listing of ``batch``, checked; :class:`ListingError` otherwise."""
        cap = listing_byte_cap(batch.count, domain, self.limits.max_bytes)
        url = f"{batch.uri.rstrip('/')}/v1/batches/{batch.batch_id}"
        return parse_listing(self.download(url, cap), batch, domain)

    def download(self, url: str, cap: int) -> bytes:
        """The body of ``GET url``: at most ``cap`` bytes within the total deadline."""
        limits = self.limits
        deadline = time.monotonic() + limits.deadline_s
        per_read = min(limits.read_timeout_s, limits.deadline_s)
        try:
            with self._client.stream("GET", url, timeout=httpx.Timeout(per_read)) as response:
                if response.status_code != 200:
                    raise ListingUnavailableError(f"GET {url}: HTTP {response.status_code}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > cap:
                    raise ListingInvalidError(f"GET {url}: {declared} bytes declared, cap {cap}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > cap:
                        raise ListingInvalidError(f"GET {url}: more than {cap} bytes")
                    if time.monotonic() > deadline:
                        raise ListingUnavailableError(
                            f"GET {url}: not complete within {limits.deadline_s:g} s "
                            f"({len(body)} bytes so far)"
                        )
                return bytes(body)
        except httpx.HTTPError as err:
            raise ListingUnavailableError(f"GET {url}: {type(err).__name__}: {err}") from err


#: The outcome of one attempt: the checked listing, or why it was not usable.
Outcome = FetchedBatch | ListingError


class Fetcher:
    """Runs listing downloads in worker threads; the service collects finished attempts.

    At most ``per_node`` attempts per node run at once, so one withholding node can occupy
    only its own share of the workers. Workers touch no database: results are handed back
    to the service's thread, which records them.
    """

    def __init__(self, client: BatchClient, *, workers: int = 8, per_node: int = 2) -> None:
        self.client = client
        self.per_node = per_node
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batch-fetch")
        self._inflight: dict[int, tuple[BatchRow, Future[Outcome]]] = {}
        self._lock = threading.Lock()

    def running(self) -> int:
        return len(self._inflight)

    def busy(self, batch_id: int) -> bool:
        return batch_id in self._inflight

    def node_busy(self, node: str) -> bool:
        running = sum(1 for b, _ in self._inflight.values() if b.node.lower() == node.lower())
        return running >= self.per_node

    def submit(self, batch: BatchRow, domain: Domain) -> bool:
        """Start an attempt (False if one is running for the batch or its node is busy)."""
        if self.busy(batch.batch_id) or self.node_busy(batch.node):
            return False
        self._inflight[batch.batch_id] = (batch, self._pool.submit(self._attempt, batch, domain))
        return True

    def _attempt(self, batch: BatchRow, domain: Domain) -> Outcome:
        try:
            return self.client.fetch(batch, domain)
        except ListingError as err:
            return err
        except Exception as err:  # any failure of one listing costs that batch only
            return ListingUnavailableError(f"batch {batch.batch_id}: {type(err).__name__}: {err}")

    def collect(self, wait_s: float = 0.0) -> list[tuple[BatchRow, Outcome]]:
        """Attempts finished by now, waiting up to ``wait_s`` while any is still running."""
        end = time.monotonic() + max(0.0, wait_s)
        out: list[tuple[BatchRow, Outcome]] = []
        while self._inflight:
            finished = [bid for bid, (_, f) in self._inflight.items() if f.done()]
            for bid in finished:
                batch, future = self._inflight.pop(bid)
                out.append((batch, future.result()))
            left = end - time.monotonic()
            if not self._inflight or left <= 0:
                break
            if finished:
                continue
            wait([f for _, f in self._inflight.values()], timeout=left, return_when=FIRST_COMPLETED)
        return out

    def drop(self, batch_id: int) -> None:
        """Forget an attempt whose result is no longer wanted (it finishes in the background)."""
        self._inflight.pop(batch_id, None)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()


def domain_of(model: Any) -> Domain:
    """The :class:`Domain` of a ``challenger.chain_io.ModelParams``."""
    return Domain(model.input_len, model.output_len, model.in_lo, model.in_hi)
