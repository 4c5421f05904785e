"""Batch listings no node can use to stall the challenger or learn its sample (issue 11.3, 11.4).

A real HTTP server on 127.0.0.1 plays the node: good listings, malformed ones, a listing in
another order, a server that drips one byte at a time, one that is down in bursts (a node
restarting). The challenger runs against the in-memory chain of ``test_challenger_service``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from challenger.batches import (
    BatchClient,
    Domain,
    Fetcher,
    FetchLimits,
    ListingInvalidError,
    ListingUnavailableError,
    parse_listing,
)
from challenger.sampling import SamplingPolicy
from challenger.service import Challenger, Options, _FetchPlan, next_attempt
from challenger.store import BatchRow, BatchState, JobState, LeafRequestState, Store
from spotcheck.encoding import INT256_MAX, batch_leaf_key, input_hash, leaf_hash, output_hash
from spotcheck.follower import open_db
from spotcheck.merkle import MerkleTree
from spotcheck.wire import BatchLeaf, BatchListing
from tests.unit.test_challenger_service import (
    BOND,
    MODEL,
    PROOF_WINDOW,
    TAU,
    FakeChain,
    FakeReexec,
    _commit,
)

DOMAIN = Domain(input_len=2, output_len=1, in_lo=-(2**20), in_hi=2**20)
WINDOW = 300  # challenge window (chain seconds); commitments at chain time 1000
DEADLINE = 1000 + WINDOW
LIMITS = FetchLimits(deadline_s=1.0, read_timeout_s=0.5)


# -- a node on a real socket ----------------------------------------------------------------


Behaviour = Callable[[BaseHTTPRequestHandler], None]


def body(data: bytes) -> Behaviour:
    def send(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    return send


def drip(interval: float = 0.05, seconds: float = 30.0) -> Behaviour:
    """200, then one byte every ``interval`` (each read is fast: per-read timeouts never fire)."""

    def send(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.end_headers()
        end = time.monotonic() + seconds
        try:
            h.wfile.write(b'{"leaves": [')
            while time.monotonic() < end:
                h.wfile.write(b" ")
                h.wfile.flush()
                time.sleep(interval)
        except OSError:
            return  # the client hung up: as it should

    return send


def status(code: int) -> Behaviour:
    def send(h: BaseHTTPRequestHandler) -> None:
        h.send_response(code)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return send


def hang_up(h: BaseHTTPRequestHandler) -> None:
    """A node being killed: the connection closes without an answer."""
    h.close_connection = True
    h.connection.close()


@dataclass
class NodeServer:
    """Routes ``/v1/batches/{id}`` to a behaviour; records every path asked for."""

    routes: dict[int, Behaviour] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def uri(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # http.server's name
                outer.paths.append(self.path)
                parts = self.path.strip("/").split("/")
                route = outer.routes.get(int(parts[2])) if len(parts) == 3 else None
                (route or status(404))(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def node_server() -> Iterator[NodeServer]:
    server = NodeServer()
    server.start()
    yield server
    server.stop()


# -- batches --------------------------------------------------------------------------------


def leaves_of(
    n: int, cheat: frozenset[int] | set[int] = frozenset(), first_job: int = 500
) -> list[dict[str, Any]]:
    """``n`` leaves of the fake model ``y = x0 + x1``; positions in ``cheat`` are off by tau+1."""
    out = []
    for i in range(n):
        x = [i, 2 * i + 1]
        y = [sum(x) + (TAU + 1 if i in cheat else 0)]
        out.append({"jobId": first_job + i, "inputQ": x, "outputQ": y})
    return out


def root_of(leaves: list[dict[str, Any]]) -> bytes:
    hashes = [
        leaf_hash(
            int(leaf["jobId"]), MODEL, input_hash(leaf["inputQ"]), output_hash(leaf["outputQ"])
        )
        for leaf in leaves
    ]
    return MerkleTree(hashes).root


def listing(leaves: list[dict[str, Any]]) -> bytes:
    return json.dumps({"leaves": leaves}).encode()


def add_batch(
    store: Store,
    chain: FakeChain,
    batch_id: int,
    uri: str,
    leaves: list[dict[str, Any]],
    *,
    root: bytes | None = None,
    model_id: bytes = MODEL,
    stamped: bool = True,
    deadline: int = DEADLINE,
) -> None:
    """Record a BatchCommitted as the follower does: first seen at the chain's current time
    (``stamped=False``: a row from before ``ch_batches.seen_at``, first-seen time unknown)."""
    Store.record_batch(
        store.conn,
        batch_id=batch_id,
        model_id=model_id,
        node="0x" + "ab" * 20,
        root=root or root_of(leaves),
        count=len(leaves),
        uri=uri,
        challenge_deadline=deadline,
        commit_block=10,
        seen_at=chain.now if stamped else None,
    )
    chain.batch_deadlines[batch_id] = deadline
    chain.batch_roots[batch_id] = root or root_of(leaves)


def batch_row(leaves: list[dict[str, Any]], uri: str = "http://x", batch_id: int = 1) -> BatchRow:
    return BatchRow(
        batch_id, MODEL, "0xnode", root_of(leaves), len(leaves), uri, 10, DEADLINE,
        BatchState.SEEN, 0, None,
    )  # fmt: skip


def make_challenger(
    db: Path, chain: FakeChain, rate: float = 1.0, rates: dict[bytes, float] | None = None,
    **opts: Any,
) -> Challenger:  # fmt: skip
    options = Options(max_bond_at_risk=10**6, fetch_wait_s=opts.pop("fetch_wait_s", 0.5), **opts)
    return Challenger(
        store=Store(open_db(db)),
        chain=chain,
        policy=SamplingPolicy(secret=b"\x07" * 32, default_rate=rate, rates=rates or {}),
        reexecutor_for=lambda _m: FakeReexec(),
        options=options,
        fetcher=Fetcher(BatchClient(limits=LIMITS), workers=4),
    )


def tick_until(ch: Challenger, chain: FakeChain, until: int, step: int = 1) -> None:
    """Tick once per ``step`` chain seconds until chain time ``until`` (inclusive)."""
    while chain.now <= until:
        ch.tick()
        chain.now += step


# -- parsing: every way a listing can be bad costs that batch, as ListingInvalidError --------------


def _mutate(fn: Callable[[list[dict[str, Any]]], Any]) -> bytes:
    leaves = leaves_of(4)
    fn(leaves)
    return listing(leaves)


BAD_LISTINGS = {
    "value above int256": _mutate(lambda ls: ls[1]["outputQ"].__setitem__(0, INT256_MAX + 1)),
    "negative jobId": _mutate(lambda ls: ls[2].__setitem__("jobId", -1)),
    "jobId above uint256": _mutate(lambda ls: ls[2].__setitem__("jobId", 2**256)),
    "boolean element": _mutate(lambda ls: ls[0]["inputQ"].__setitem__(0, True)),
    "float element": _mutate(lambda ls: ls[0]["inputQ"].__setitem__(0, 0.5)),
    "missing outputQ": _mutate(lambda ls: ls[3].pop("outputQ")),
    "vector not a list": _mutate(lambda ls: ls[3].__setitem__("inputQ", "12")),
    "wrong index": _mutate(lambda ls: ls[1].__setitem__("index", 2)),
    "one leaf short": _mutate(lambda ls: ls.pop()),
    "another order": _mutate(lambda ls: ls.reverse()),
    "leaf altered": _mutate(lambda ls: ls[0]["outputQ"].__setitem__(0, 99)),
    "not json": b"{leaves: oops",
    "no leaves": b'{"batchId": 1}',
    "a list": b"[1, 2]",
    "deep nesting": b"[" * 100_000,
    "deep nesting, closed": b"[" * 100_000 + b"]" * 100_000,
    "deep nesting in a leaf": b'{"leaves": [{"jobId": 1, "inputQ": '
    + b"[" * 50_000
    + b"]" * 50_000
    + b', "outputQ": []}]}',
    "huge integer": b'{"leaves": [{"jobId": 1' + b"0" * 5000 + b', "inputQ": [], "outputQ": []}]}',
}


@pytest.mark.parametrize("raw", BAD_LISTINGS.values(), ids=BAD_LISTINGS.keys())
def test_parseListing_badListing_isWithheld_neverAnotherError(raw: bytes) -> None:
    with pytest.raises(ListingInvalidError):
        parse_listing(raw, batch_row(leaves_of(4)), DOMAIN)


def test_parseListing_deepNesting_inAFetchThread_isWithheld_notACrash() -> None:
    """json's C decoder recurses per level; with the recursion limit py_ecc sets (100,000)
    deep nesting overflowed a fetch thread's C stack and killed the whole challenger."""
    out: list[BaseException] = []

    def run() -> None:
        try:
            parse_listing(b"[" * 200_000, batch_row(leaves_of(4)), DOMAIN)
        except BaseException as err:
            out.append(err)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert len(out) == 1 and isinstance(out[0], ListingInvalidError)


def test_parseListing_bracketsInsideStrings_doNotCountAsNesting() -> None:
    leaves = leaves_of(3)
    doc = {"leaves": leaves, "note": "[" * 10_000 + '\\"{'}
    fetched = parse_listing(json.dumps(doc).encode(), batch_row(leaves), DOMAIN)
    assert len(fetched.leaves) == 3


def test_parseListing_goodListing_leavesByPosition_treeRebuildsRoot() -> None:
    leaves = leaves_of(5)
    leaves[3]["jobId"] = leaves[1]["jobId"]  # jobIds need not be unique: keys are positions
    leaves[2]["index"] = 2  # an index, when given, must be the position
    leaves[4]["inputQ"] = [str(v) for v in leaves[4]["inputQ"]]  # decimal strings are fine
    fetched = parse_listing(listing(leaves), batch_row(leaves), DOMAIN)
    assert [leaf.index for leaf in fetched.leaves] == [0, 1, 2, 3, 4]
    assert fetched.leaves[3].job_id == fetched.leaves[1].job_id
    assert fetched.leaves[4].input_q == [4, 9]
    assert fetched.tree.root == root_of(leaves)


def test_parseListing_theNodesOwnModel_isUsable_hexStringsToo() -> None:
    """One wire type at both ends: what the node serves (``spotcheck.wire.BatchListing``,
    every field set) is what the challenger reads."""
    leaves = leaves_of(3)
    served = BatchListing(
        batchId=1, modelId=MODEL, root=root_of(leaves), count=3, final=False, node="0xnode",
        leaves=[
            BatchLeaf(
                **leaf, index=i, inputHash=input_hash(leaf["inputQ"]),
                outputHash=output_hash(leaf["outputQ"]), leaf=b"\x01" * 32, signature=b"\x02" * 65,
            )
            for i, leaf in enumerate(leaves)
        ],
    )  # fmt: skip
    fetched = parse_listing(served.model_dump_json().encode(), batch_row(leaves), DOMAIN)
    assert fetched.tree.root == root_of(leaves)
    doc = json.loads(listing(leaves))
    doc["leaves"][2]["inputQ"] = [hex(v) for v in doc["leaves"][2]["inputQ"]]
    fetched = parse_listing(json.dumps(doc).encode(), batch_row(leaves), DOMAIN)
    assert fetched.leaves[2].input_q == leaves[2]["inputQ"]


def test_parseListing_outOfDomainLeaf_markedAlone_restUsable() -> None:
    """An input outside the domain costs its own leaf only (marked, never disputed), not the
    listing: refusing the listing would make the challenger pay leaf-request bonds to the node."""
    leaves = leaves_of(4)
    leaves[1]["inputQ"][1] = 2**20 + 1
    leaves[3]["inputQ"][0] = -(2**20) - 1
    fetched = parse_listing(listing(leaves), batch_row(leaves), DOMAIN)
    assert fetched.tree.root == root_of(leaves)
    assert [leaf.outside is None for leaf in fetched.leaves] == [True, False, True, False]
    assert "input[1] = 1048577 outside the domain" in (fetched.leaves[1].outside or "")
    assert "input[0] = -1048577 outside the domain" in (fetched.leaves[3].outside or "")


OUT_OF_DOMAIN_AND_MALFORMED = {
    "root mismatch": lambda ls: ls[2]["outputQ"].__setitem__(0, 99),
    "value above int256": lambda ls: ls[2]["outputQ"].__setitem__(0, INT256_MAX + 1),
    "negative jobId": lambda ls: ls[2].__setitem__("jobId", -1),
    "one leaf short": lambda ls: ls.pop(),
}


@pytest.mark.parametrize(
    "mutate", OUT_OF_DOMAIN_AND_MALFORMED.values(), ids=OUT_OF_DOMAIN_AND_MALFORMED.keys()
)
def test_parseListing_outOfDomainLeaf_otherMalformation_stillWithheld(
    mutate: Callable[[list[dict[str, Any]]], Any],
) -> None:
    committed = leaves_of(4)
    committed[0]["inputQ"][0] = 2**20 + 1  # committed as is: the root holds it
    served = json.loads(listing(committed))["leaves"]
    mutate(served)
    with pytest.raises(ListingInvalidError):
        parse_listing(listing(served), batch_row(committed), DOMAIN)


def test_outOfDomainLeaf_recordedUndisputable_restDisputedFromTheListing(
    tmp_path: Path, node_server: NodeServer
) -> None:
    db = tmp_path / "c.sqlite"
    chain = FakeChain(in_lo=0, in_hi=100)
    store = Store(open_db(db))
    leaves = leaves_of(4, cheat={0, 2})
    leaves[2]["inputQ"] = [-5, 3]  # wrong *and* outside [0, 100]: never disputed
    add_batch(store, chain, 10, node_server.uri, leaves)
    node_server.routes[10] = body(listing(leaves))
    ch = make_challenger(db, chain)
    tick_until(ch, chain, DEADLINE - 1)
    assert ch.store.batch(10).state is BatchState.FETCHED  # type: ignore[union-attr]
    job = ch.store.job(batch_leaf_key(10, 2))
    assert job is not None and job.state is JobState.UNDISPUTABLE
    assert "outside the domain" in (job.reason or "") and job.input_q == [-5, 3]
    assert batch_leaf_key(10, 2) not in chain.disputes
    assert batch_leaf_key(10, 0) in chain.disputes  # the rest is checked as usual
    assert not any(s.startswith("request") for s in chain.sends)


# -- downloading: a total deadline and a byte cap ------------------------------------------------


def test_download_slowDrip_isCutAtTheTotalDeadline(node_server: NodeServer) -> None:
    node_server.routes[1] = drip(interval=0.05)
    client = BatchClient(limits=LIMITS)
    start = time.monotonic()
    with pytest.raises(ListingUnavailableError, match="not complete within"):
        client.fetch(batch_row(leaves_of(4), node_server.uri), DOMAIN)
    assert time.monotonic() - start < LIMITS.deadline_s + 0.5


def test_download_errorStatusOrNoServer_isUnavailable_notInvalid(node_server: NodeServer) -> None:
    """No answer (a status other than 200, nobody listening) is ``unavailable``: an honest node
    restarting looks like this. Only bytes that are not the committed listing are invalid."""
    node_server.routes[1] = status(503)
    client = BatchClient(limits=LIMITS)
    with pytest.raises(ListingUnavailableError, match="HTTP 503"):
        client.fetch(batch_row(leaves_of(4), node_server.uri), DOMAIN)
    nobody = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ListingUnavailableError):
        client.fetch(batch_row(leaves_of(4), nobody), DOMAIN)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_download_silentServer_isCutByTheReadTimeout(node_server: NodeServer) -> None:
    node_server.routes[1] = drip(interval=5.0)  # headers, 12 bytes, then silence
    client = BatchClient(limits=LIMITS)
    start = time.monotonic()
    with pytest.raises(ListingUnavailableError):
        client.fetch(batch_row(leaves_of(4), node_server.uri), DOMAIN)
    assert time.monotonic() - start < LIMITS.deadline_s + LIMITS.read_timeout_s + 0.5


def test_download_overTheByteCap_declaredOrStreamed_isWithheld(node_server: NodeServer) -> None:
    leaves = leaves_of(4)
    padded = listing(leaves)[:-1] + b" " * 10_000 + b"}"  # valid JSON, far beyond any need
    node_server.routes[1] = body(padded)
    client = BatchClient(limits=LIMITS)
    with pytest.raises(ListingInvalidError, match="declared, cap"):
        client.fetch(batch_row(leaves, node_server.uri), DOMAIN)

    def undeclared(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(padded)

    node_server.routes[1] = undeclared
    with pytest.raises(ListingInvalidError, match="more than"):
        client.fetch(batch_row(leaves, node_server.uri), DOMAIN)
    node_server.routes[1] = body(listing(leaves))  # the same listing without padding is fine
    assert len(client.fetch(batch_row(leaves, node_server.uri), DOMAIN).leaves) == 4


# -- the service: a bad listing costs that batch only, and nothing waits for it --------------------


def test_malformedListingsAndSlowDrip_everythingElseDisputedAndSettledOnTime(
    tmp_path: Path, node_server: NodeServer
) -> None:
    """Issue 11.4: a value outside int256, a negative jobId and a dripping server used to abort
    every tick (or hold it for the whole window); the cheats elsewhere must still be disputed
    in the first tick and settled as soon as their proof window ends."""
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    store = Store(open_db(db))
    good = leaves_of(4, cheat={2})
    add_batch(store, chain, 10, node_server.uri, good)
    node_server.routes[10] = body(listing(good))
    overflow = leaves_of(3)
    root = root_of(overflow)
    overflow[1]["outputQ"] = [INT256_MAX + 1]
    add_batch(store, chain, 11, node_server.uri, leaves_of(3), root=root)
    node_server.routes[11] = body(listing(overflow))
    negative = leaves_of(3)
    negative[0]["jobId"] = -5
    add_batch(store, chain, 12, node_server.uri, leaves_of(3))
    node_server.routes[12] = body(listing(negative))
    add_batch(store, chain, 13, node_server.uri, leaves_of(3))
    node_server.routes[13] = drip(interval=0.02)
    for job_id in (1, 2, 3):
        _commit(store.conn, job_id, job_id + 1 + (TAU + 1 if job_id == 2 else 0))

    ch = make_challenger(db, chain)
    start = time.monotonic()
    report = ch.tick()
    assert time.monotonic() - start < 0.5 + 0.5 * 4  # fetch_wait plus slack, not the drip
    assert report.errors == []
    assert set(chain.sends) == {"open 2", "open batch 10/2"}
    counters = ch.store.counters()
    for name in ("batches_withheld", "batches_unavailable", "listings_invalid"):
        assert counters.get(name, 0) == 0  # not given up yet, and never an accusation

    chain.now += PROOF_WINDOW + 1
    ch.tick()
    assert chain.sends.count("settle") == 2 and chain.withdrawn == 2 * (BOND + 25)
    states = ch.store.state_counts()
    assert states["won"] == 2 and states["matched"] == 2 + 3

    # The bad batches are given up only at the end, each on its own, with leaf requests for
    # the sampled positions (p = 1: all of them).
    tick_until(ch, chain, DEADLINE - 1)
    for batch_id in (11, 12, 13):
        assert ch.store.batch(batch_id).state is BatchState.UNAVAILABLE  # type: ignore[union-attr]
    requested = sorted(s for s in chain.sends if s.startswith("request"))
    assert requested == sorted(f"request {b}/{i}" for b in (11, 12, 13) for i in range(3))
    # A listing that is not the committed batch (11, 12) is counted apart from a node that
    # never answered in time (13); neither is an accusation before a leaf goes unrevealed.
    counters = ch.store.counters()
    assert counters["listings_invalid"] == 2 and counters["batches_unavailable"] == 1
    assert "batches_withheld" not in counters


def test_listingInAnotherOrder_neverAsksForSampledLeaves_requestsThemOnChain(
    tmp_path: Path, node_server: NodeServer
) -> None:
    """Issue 11.2: a reordered listing used to make the challenger ask the node for the
    proofs of exactly its sampled leaves. Now it only ever asks for the whole listing, and the
    sampled positions are requested on chain, where every challenger may ask."""
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    store = Store(open_db(db))
    leaves = leaves_of(16)
    add_batch(store, chain, 7, node_server.uri, leaves)
    node_server.routes[7] = body(listing(list(reversed(leaves))))
    ch = make_challenger(db, chain, rate=0.5)
    tick_until(ch, chain, DEADLINE - 1)

    assert set(node_server.paths) == {"/v1/batches/7"}
    seed = chain.block_hash(11)
    sampled = [i for i in range(16) if ch.policy.decide(MODEL, seed, batch_leaf_key(7, i))]
    assert 0 < len(sampled) < 16
    assert sorted(s for s in chain.sends if s.startswith("request")) == sorted(
        f"request 7/{i}" for i in sampled
    )
    assert ch.store.batch(7).state is BatchState.UNAVAILABLE  # type: ignore[union-attr]


def test_modelNotJudged_batchNeverFetched(tmp_path: Path, node_server: NodeServer) -> None:
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    store = Store(open_db(db))
    other = b"\x99" * 32
    add_batch(store, chain, 3, node_server.uri, leaves_of(2), model_id=other)
    node_server.routes[3] = status(500)
    ch = make_challenger(db, chain, rate=1.0, rates={other: 0.0})
    tick_until(ch, chain, DEADLINE - 1, step=10)
    assert node_server.paths == []
    assert ch.store.batch(3).state is BatchState.NOT_JUDGED  # type: ignore[union-attr]
    assert chain.sends == []
    assert not {"batches_withheld", "batches_unavailable", "listings_invalid"} & set(
        ch.store.counters()
    )


# -- pacing: by the time left, with a last attempt, and no alarm for a restarting node ----------


PLAN = _FetchPlan(last_attempt_at=1068, give_up_at=1070, hard_stop=1085)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (1000, 1017),  # a quarter of the 70 s left
        (1040, 1047),  # a quarter of 30
        (1060, 1065),  # at least retry_min
        (1065, 1068),  # never past the last attempt
        (1067, 1068),
    ],
)
def test_nextAttempt_pacedByTimeLeft_neverSkipsTheLastAttempt(now: int, expected: int) -> None:
    assert next_attempt(now, PLAN, retry_min=5, retry_max=30) == expected


def test_nextAttempt_longWindow_cappedByRetryMax_notByAttemptCount() -> None:
    plan = _FetchPlan(last_attempt_at=90_000, give_up_at=90_011, hard_stop=95_000)
    assert next_attempt(1000, plan, retry_min=5, retry_max=30) == 1030
    assert next_attempt(80_000, plan, retry_min=5, retry_max=30) == 80_030


@dataclass
class Restarting:
    """A node that is down except in the given chain-time spans (killed and restarted)."""

    chain: FakeChain
    up: list[tuple[int, int]]
    good: bytes
    attempts: list[int] = field(default_factory=list)

    def __call__(self, h: BaseHTTPRequestHandler) -> None:
        now = self.chain.now
        self.attempts.append(now)
        if any(lo <= now < hi for lo, hi in self.up):
            body(self.good)(h)
        else:
            hang_up(h)


#: A node killed every 20 s and up for 5 s of each 20 (restart gaps most of the time).
FLAPPING = [(1000 + 20 * k + 10, 1000 + 20 * k + 15) for k in range(15)]


@pytest.mark.parametrize(
    "up",
    [[(1025, 1065)], [(DEADLINE - 32, DEADLINE - 31)], FLAPPING],
    ids=["up-mid-window", "up-only-at-the-last-attempt", "flapping"],
)
def test_restartingNode_isCheckedInTheEnd_andNeverReportedAsWithholding(
    tmp_path: Path, node_server: NodeServer, caplog: pytest.LogCaptureFixture, up: Any
) -> None:
    """Issue 11.3: fetches landing in restart gaps, a retry delay doubling from an attempt
    count and no last attempt left whole batches unchecked and the honest node reported."""
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    store = Store(open_db(db))
    leaves = leaves_of(4, cheat={1})
    add_batch(store, chain, 5, node_server.uri, leaves)
    node = Restarting(chain, up, listing(leaves))
    node_server.routes[5] = node
    ch = make_challenger(db, chain)
    with caplog.at_level(logging.WARNING):
        tick_until(ch, chain, DEADLINE - 1)
    assert ch.store.batch(5).state is BatchState.FETCHED  # type: ignore[union-attr]
    assert "open batch 5/1" in chain.sends  # the cheat in it was caught
    assert not {"batches_withheld", "batches_unavailable"} & set(ch.store.counters())
    assert not any("WITHHOLDS" in r.getMessage() for r in caplog.records)
    assert not any("listing unavailable" in r.getMessage() for r in caplog.records)
    assert not any(s.startswith("request") for s in chain.sends)
    assert len(node.attempts) <= 25  # paced, not hammered


def _down_all_window(
    tmp_path: Path, node_server: NodeServer, caplog: pytest.LogCaptureFixture
) -> tuple[Challenger, FakeChain]:
    """A node down at every listing attempt of batch 6: given up on, leaves requested."""
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    store = Store(open_db(db))
    add_batch(store, chain, 6, node_server.uri, leaves_of(2))
    node = Restarting(chain, [], b"")
    node_server.routes[6] = node
    ch = make_challenger(db, chain)
    with caplog.at_level(logging.WARNING):
        tick_until(ch, chain, DEADLINE - 1)
    batch = ch.store.batch(6)
    assert batch is not None and batch.state is BatchState.UNAVAILABLE
    plan = ch._plan(batch)
    assert any(plan.last_attempt_at <= t < plan.give_up_at for t in node.attempts)
    # Giving up on the listing is a warning, not an accusation: an honest node restarting
    # through the whole window looks exactly like this.
    (given_up,) = [r for r in caplog.records if "listing unavailable" in r.getMessage()]
    assert given_up.levelno == logging.WARNING
    assert given_up.getMessage().startswith(
        f"batch 6 listing unavailable after {batch.attempts} attempts "
    )
    assert "requesting 2 sampled leaves on chain" in given_up.getMessage()
    assert f"node={batch.node}" in given_up.getMessage()
    assert not any("WITHHOLDS" in r.getMessage() for r in caplog.records)
    assert ch.store.counters()["batches_unavailable"] == 1
    assert "batches_withheld" not in ch.store.counters()
    assert sorted(s for s in chain.sends if s.startswith("request")) == [
        "request 6/0",
        "request 6/1",
    ]
    assert ch.store.leaf_request_summary()["opened"] == 2
    assert {r.state for r in ch.store.leaf_requests(*LeafRequestState)} == {LeafRequestState.OPEN}
    return ch, chain


def test_nodeDownAllWindow_thenReveals_checkedThroughLeafRequests_neverReportedWithholding(
    tmp_path: Path, node_server: NodeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 11: a node restarted through a batch's whole window answers the leaf requests
    once it is back; it is checked that way and never reported as withholding."""
    ch, chain = _down_all_window(tmp_path, node_server, caplog)
    for index in (0, 1):
        chain.reveal(6, index)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            chain.now += PROOF_WINDOW
            ch.tick()
    assert "settle_leaf" not in chain.sends
    assert not any("WITHHOLDS" in r.getMessage() for r in caplog.records)
    counters = ch.store.counters()
    assert counters["batches_unavailable"] == 1 and "batches_withheld" not in counters


def test_nodeDownAllWindow_neverReveals_reportedWithholdingOnce(
    tmp_path: Path, node_server: NodeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Withholding is reported when it is proven: a leaf request of ours on the batch passed
    its reveal deadline unrevealed and was settled (the node slashed); once per batch."""
    ch, chain = _down_all_window(tmp_path, node_server, caplog)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            chain.now += PROOF_WINDOW + 1
            ch.tick()
    assert chain.sends.count("settle_leaf") == 2
    (withheld,) = [r for r in caplog.records if "WITHHOLDS" in r.getMessage()]
    assert withheld.levelno == logging.ERROR
    assert "batch 6 leaf 0 was not revealed" in withheld.getMessage()
    assert "batch_id=6 " in withheld.getMessage()
    counters = ch.store.counters()
    assert counters["batches_withheld"] == 1 and counters["batches_unavailable"] == 1
    assert ch.store.batch(6).withheld  # type: ignore[union-attr]


def test_fetchRaisingAnything_costsThatBatchOnly(tmp_path: Path) -> None:
    """Whatever a listing does to the client (here: a transport that raises), it is one
    batch's failed attempt, never a failed tick."""

    def explode(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("boom")

    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    store = Store(open_db(db))
    add_batch(store, chain, 8, "http://node.test", leaves_of(2))
    _commit(store.conn, 2, 3 + TAU + 1)
    ch = Challenger(
        store=store,
        chain=chain,
        policy=SamplingPolicy(secret=b"\x07" * 32, default_rate=1.0),
        reexecutor_for=lambda _m: FakeReexec(),
        options=Options(max_bond_at_risk=10**6),
        fetcher=Fetcher(BatchClient(transport=httpx.MockTransport(explode))),
    )
    report = ch.tick()
    assert chain.sends == ["open 2"]
    assert ch.store.batch(8).attempts == 1  # type: ignore[union-attr]
    assert "RuntimeError" in (ch.store.batch(8).last_error or "")  # type: ignore[union-attr]
    assert report.errors == []
    assert ch.store.job(batch_leaf_key(8, 0)) is None
    assert JobState.SAMPLED.value not in ch.store.state_counts()


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**300), max_value=2**300)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["jobId", "inputQ", "outputQ", "index", "x"]), inner)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(leaves=st.lists(_json, min_size=0, max_size=5))
def test_parseListing_anyJson_isWithheldOrUsable_neverAnotherError(leaves: list[Any]) -> None:
    raw = json.dumps({"leaves": leaves}).encode()
    try:
        parse_listing(raw, batch_row(leaves_of(4)), DOMAIN)
    except ListingInvalidError:
        return
    raise AssertionError("random leaves rebuilt the committed root")


# -- batches seen late (issue 13: "never served" reported for batches the node did serve) -----


def test_oldBatch_seenAfterItsWindow_expiresQuietly_nothingSaidAboutTheNode(
    tmp_path: Path, node_server: NodeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A challenger started on an old deployment follows batches whose windows closed long
    ago: the node served them to whoever asked; this challenger never asked. An info line and
    ``batches_seen_late``, no warning, no leaf request, no "unavailable" count."""
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    store = Store(open_db(db))
    add_batch(store, chain, 4, node_server.uri, leaves_of(3))
    node_server.routes[4] = body(listing(leaves_of(3)))
    chain.now = DEADLINE + 500
    ch = make_challenger(db, chain)
    with caplog.at_level(logging.INFO):
        ch.tick()
    assert ch.store.batch(4).state is BatchState.EXPIRED  # type: ignore[union-attr]
    counters = ch.store.counters()
    assert counters["batches_seen_late"] == 1
    assert not {"batches_unavailable", "listings_invalid", "batches_withheld"} & set(counters)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    (line,) = [r.getMessage() for r in caplog.records if "seen too late" in r.getMessage()]
    assert "nothing said about the node" in line and "batch_id=4 " in line
    assert chain.sends == [] and node_server.paths == []


def test_batchFirstSeenPastTheGiveUpPoint_isFetchedOnce_neverGivenUpUntried(
    tmp_path: Path, node_server: NodeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Seen for the first time after the point where retries stop: the challenger gave up
    with 0 attempts ("listing unavailable after 0 attempts") and requested leaves of a batch
    the node serves. Now it asks once, and the served listing is checked."""
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    store = Store(open_db(db))
    leaves = leaves_of(4, cheat={2})
    add_batch(store, chain, 9, node_server.uri, leaves)
    node_server.routes[9] = body(listing(leaves))
    ch = make_challenger(db, chain, fetch_wait_s=3.0)
    batch = ch.store.batch(9)
    assert batch is not None
    chain.now = ch._plan(batch).give_up_at + 1
    with caplog.at_level(logging.WARNING):
        ch.tick()
        ch.tick()
    assert ch.store.batch(9).state is BatchState.FETCHED  # type: ignore[union-attr]
    assert node_server.paths == ["/v1/batches/9"]
    assert "open batch 9/2" in chain.sends  # the cheat in it was caught
    assert not any(s.startswith("request") for s in chain.sends)
    assert not any("listing unavailable" in r.getMessage() for r in caplog.records)
    assert "batches_unavailable" not in ch.store.counters()


def test_batchFirstSeenTooCloseToTheDeadlineForOneAttempt_expiresQuietly(
    tmp_path: Path, node_server: NodeServer
) -> None:
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    store = Store(open_db(db))
    add_batch(store, chain, 10, node_server.uri, leaves_of(2))
    chain.now = DEADLINE - 1
    ch = make_challenger(db, chain)
    ch.tick()
    assert ch.store.batch(10).state is BatchState.EXPIRED  # type: ignore[union-attr]
    assert ch.store.counters()["batches_seen_late"] == 1
    assert chain.sends == [] and node_server.paths == []


def test_sampledLeaf_keepsTheVrfProofThatSampledIt(tmp_path: Path, node_server: NodeServer) -> None:
    """Issue 15: the claim needs each sampled job's VRF proof; skipped leaves are not stored
    (issue 14: only counted)."""
    from challenger.sampling import parse_proof
    from spotcheck import vrf

    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    store = Store(open_db(db))
    leaves = leaves_of(12)
    add_batch(store, chain, 11, node_server.uri, leaves)
    node_server.routes[11] = body(listing(leaves))
    ch = make_challenger(db, chain, rate=0.5, fetch_wait_s=3.0)
    ch.tick()
    ch.tick()
    assert ch.store.batch(11).state is BatchState.FETCHED  # type: ignore[union-attr]
    seed = chain.block_hash(11)  # seed_block(commit_block 10)
    sampled = skipped = 0
    for i in range(12):
        job = ch.store.job(batch_leaf_key(11, i))
        expected = vrf.prove(ch.policy.sk, seed, batch_leaf_key(11, i))
        if job is None:
            skipped += 1
            assert not vrf.sampled_bps(expected, 5_000)
        else:
            sampled += 1
            assert job.vrf_proof is not None and parse_proof(job.vrf_proof) == expected
            assert vrf.sampled_bps(expected, 5_000)
    assert sampled and skipped  # both kinds occur, so the test means something
    assert ch.store.counters()["leaves_skipped"] == skipped
