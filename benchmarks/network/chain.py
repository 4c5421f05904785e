"""The chain as the benchmark reads it: raw JSON-RPC to anvil (no Ape in the driver process),
the protocol's events decoded from their logs, and the reorg."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from eth_abi import decode
from eth_utils import keccak, to_checksum_address

#: The events the analysis reads: name -> (indexed types, data types), in the contracts' order
#: (contracts/interfaces/IJobManager.sol, IDisputeManager.sol, IStakeManager.sol).
EVENTS: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {
    "BatchCommitted": (
        [("batchId", "uint256"), ("node", "address"), ("modelId", "bytes32")],
        [
            ("root", "bytes32"),
            ("count", "uint32"),
            ("uri", "string"),
            ("challengeDeadline", "uint64"),
            ("reserved", "uint256"),
        ],
    ),
    "BatchFinalized": (
        [("batchId", "uint256"), ("node", "address")],
        [("released", "uint256")],
    ),
    "DisputeOpened": (
        [("disputeId", "bytes32"), ("node", "address"), ("challenger", "address")],
        [
            ("kind", "uint8"),
            ("ref", "uint256"),
            ("index", "uint256"),
            ("jobId", "uint256"),
            ("bond", "uint256"),
            ("proofDeadline", "uint64"),
        ],
    ),
    "DisputeDefended": (
        [("disputeId", "bytes32"), ("node", "address")],
        [("defender", "address"), ("bondToNode", "uint256")],
    ),
    "DisputeSettled": (
        [("disputeId", "bytes32"), ("node", "address"), ("challenger", "address")],
        [("slashed", "uint256"), ("bounty", "uint256"), ("burned", "uint256")],
    ),
    "LeafRequested": (
        [("requestId", "bytes32"), ("batchId", "uint256"), ("node", "address")],
        [
            ("index", "uint256"),
            ("requester", "address"),
            ("bond", "uint256"),
            ("revealDeadline", "uint64"),
        ],
    ),
    "LeafRevealed": (
        [("requestId", "bytes32"), ("batchId", "uint256")],
        [
            ("index", "uint256"),
            ("jobId", "uint256"),
            ("inputHash", "bytes32"),
            ("outputHash", "bytes32"),
            ("input", "int256[]"),
            ("output", "int256[]"),
            ("disputeDeadline", "uint64"),
        ],
    ),
    "LeafRequestSettled": (
        [("requestId", "bytes32"), ("node", "address"), ("requester", "address")],
        [("slashed", "uint256"), ("bounty", "uint256"), ("burned", "uint256")],
    ),
    "Slashed": (
        [("node", "address"), ("recipient", "address")],
        [("requested", "uint256"), ("slashed", "uint256")],
    ),
}

#: Kind of a DisputeOpened (IDisputeManager.JobKind).
KIND_BATCH = 1


def _signature(name: str) -> str:
    indexed, data = EVENTS[name]
    types = {**dict(indexed), **dict(data)}
    return f"{name}({','.join(types[f] for f in _DECLARED[name])})"


#: Field order as declared (the signature's order).
_DECLARED: dict[str, list[str]] = {
    "BatchCommitted": [
        "batchId",
        "node",
        "modelId",
        "root",
        "count",
        "uri",
        "challengeDeadline",
        "reserved",
    ],
    "BatchFinalized": ["batchId", "node", "released"],
    "DisputeOpened": [
        "disputeId",
        "node",
        "challenger",
        "kind",
        "ref",
        "index",
        "jobId",
        "bond",
        "proofDeadline",
    ],
    "DisputeDefended": ["disputeId", "node", "defender", "bondToNode"],
    "DisputeSettled": ["disputeId", "node", "challenger", "slashed", "bounty", "burned"],
    "LeafRequested": [
        "requestId",
        "batchId",
        "index",
        "node",
        "requester",
        "bond",
        "revealDeadline",
    ],
    "LeafRevealed": [
        "requestId",
        "batchId",
        "index",
        "jobId",
        "inputHash",
        "outputHash",
        "input",
        "output",
        "disputeDeadline",
    ],
    "LeafRequestSettled": ["requestId", "node", "requester", "slashed", "bounty", "burned"],
    "Slashed": ["node", "requested", "slashed", "recipient"],
}


def topic0(name: str) -> str:
    return "0x" + keccak(text=_signature(name)).hex()


@dataclass(frozen=True)
class Event:
    name: str
    block: int
    tx: str
    log_index: int
    args: dict[str, Any]


def _decode_topic(kind: str, topic: str) -> Any:
    raw = bytes.fromhex(topic[2:])
    if kind == "address":
        return to_checksum_address(raw[-20:])
    if kind.startswith("uint"):
        return int.from_bytes(raw, "big")
    return "0x" + raw.hex()


class Chain:
    """JSON-RPC to one anvil."""

    def __init__(self, rpc: str) -> None:
        self.rpc = rpc
        self._http = httpx.Client(timeout=60)
        self._id = 0

    def call(self, method: str, *params: Any) -> Any:
        self._id += 1
        body = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)}
        answer = self._http.post(self.rpc, json=body).json()
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def head(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def block(self, number: int) -> dict[str, Any]:
        result: dict[str, Any] = self.call("eth_getBlockByNumber", hex(number), False)
        return result

    def timestamp(self, number: int) -> int:
        return int(self.block(number)["timestamp"], 16)

    def gas_used(self, tx: str) -> int:
        return int(self.call("eth_getTransactionReceipt", tx)["gasUsed"], 16)

    def events(self, name: str, start: int = 0, end: int | None = None) -> list[Event]:
        """Every ``name`` log in ``[start, end]`` (all contracts: one deployment per anvil)."""
        indexed, data = EVENTS[name]
        last = self.head() if end is None else end
        out: list[Event] = []
        step = 5000
        for lo in range(start, last + 1, step):
            hi = min(last, lo + step - 1)
            logs = self.call(
                "eth_getLogs", {"fromBlock": hex(lo), "toBlock": hex(hi), "topics": [topic0(name)]}
            )
            for log in logs:
                args: dict[str, Any] = {}
                for (field, kind), topic in zip(indexed, log["topics"][1:], strict=True):
                    args[field] = _decode_topic(kind, topic)
                values = decode([k for _, k in data], bytes.fromhex(log["data"][2:]))
                for (field, kind), value in zip(data, values, strict=True):
                    if kind == "address":
                        value = to_checksum_address(value)
                    elif kind == "bytes32":
                        value = "0x" + bytes(value).hex()
                    args[field] = value
                out.append(
                    Event(
                        name,
                        int(log["blockNumber"], 16),
                        log["transactionHash"],
                        int(log["logIndex"], 16),
                        args,
                    )
                )
        return out

    def reorg(self, depth: int) -> dict[str, Any]:
        """Replace the last ``depth`` blocks (anvil_reorg; their transactions are dropped back
        to the senders, who must notice and send again). Returns what changed."""
        head = self.head()
        before = [self.block(head - i)["hash"] for i in range(depth)]
        self.call("anvil_reorg", depth, [])
        after = [self.block(head - i)["hash"] for i in range(depth)]
        return {
            "depth": depth,
            "head": head,
            "replaced_blocks": sum(1 for a, b in zip(before, after, strict=True) if a != b),
        }
