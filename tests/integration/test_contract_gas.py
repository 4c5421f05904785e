"""Gas of every external state-changing function (MockVerifier for defend; the real verifier's
defend gas is in test_contract_real_verifier.py). Prints a markdown table (run with -s);
``SPOTCHECK_GAS_REPORT=path`` also writes it to a file. The asserted bounds catch regressions.

v2 rows: batch commits per job for 1, 64 and 1024 leaves (each leaf reserves a slash, so the
node stakes enough first), leaf requests and reveals for 4 and 784 input elements, and
``requestLeaves`` for 1, 8 and 32 leaves (gas per leaf vs one ``requestLeaf``)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from spotcheck.encoding import hash_vector, leaf_hash
from spotcheck.merkle import MerkleTree
from tests.fixtures.chain import (
    JOB_FEE,
    JOB_INPUT,
    JOB_OUTPUT,
    MOCK_MODEL,
    TEST_PARAMS,
    advance,
    defence_instances,
)

pytestmark = pytest.mark.chain
IN_HASH = hash_vector(JOB_INPUT)
OUT_HASH = hash_vector(JOB_OUTPUT)


def _report(rows: list[tuple[str, str, int]]) -> str:
    lines = ["| contract | function | gas |", "|---|---|---:|"]
    lines += [f"| {c} | {f} | {g:,} |" for c, f, g in rows]
    return "\n".join(lines) + "\n"


def test_gas_everyExternalFunction_andBatchCommitPerJob(
    spotcheck: Any,
    project: Any,
    deployer: Any,
    node: Any,
    node2: Any,
    challenger: Any,
    requester: Any,
    outsider: Any,
    chain: Any,
) -> None:
    sc = spotcheck
    sm, reg, jm, dm, consumer = (
        sc.stake_manager,
        sc.model_registry,
        sc.job_manager,
        sc.dispute_manager,
        sc.example_consumer,
    )
    rows: list[tuple[str, str, int]] = []

    def gas(contract: str, function: str, receipt: Any) -> Any:
        rows.append((contract, function, int(receipt.gas_used)))
        return receipt

    # A batch of 1024 reserves 1024 slashes: stake for it first.
    big_stake = 1100 * MOCK_MODEL.slash_amount
    sc.token.mint(node, big_stake, sender=deployer)
    gas("StakeManager", "stake", sm.stake(big_stake, sender=node))
    v = deployer.deploy(project.MockVerifier)
    struct = MOCK_MODEL.as_struct(str(v.address), b"\x0a" * 32, b"\x0b" * 32)
    gas("ModelRegistry", "registerModel", reg.registerModel(struct, sender=deployer))
    gas("JobManager", "setPrice", jm.setPrice(sc.model_id, JOB_FEE, sender=node))
    job_id = gas(
        "JobManager",
        "requestJob (4 inputs)",
        jm.requestJob(sc.model_id, JOB_INPUT, node, JOB_FEE, sender=requester),
    ).return_value
    gas(
        "JobManager",
        "commitResult (2 outputs)",
        jm.commitResult(job_id, IN_HASH, JOB_OUTPUT, sender=node),
    )
    advance(chain, MOCK_MODEL.challenge_window + 1)
    gas("JobManager", "finalize (EOA requester)", jm.finalize(job_id, sender=outsider))
    gas("JobManager", "withdrawCredits", jm.withdrawCredits(sender=node))

    sc.token.mint(consumer, 10 * JOB_FEE, sender=deployer)
    cjob = gas(
        "ExampleConsumer",
        "request (records the question)",
        consumer.request(sc.model_id, JOB_INPUT, node, JOB_FEE, sender=deployer),
    ).return_value
    jm.commitResult(cjob, IN_HASH, JOB_OUTPUT, sender=node)
    advance(chain, MOCK_MODEL.challenge_window + 1)
    gas("JobManager", "finalize (ExampleConsumer callback)", jm.finalize(cjob, sender=outsider))
    gas(
        "ExampleConsumer",
        "deliverOutput (2 outputs)",
        consumer.deliverOutput(cjob, JOB_OUTPUT, sender=outsider),
    )

    late = jm.requestJob(sc.model_id, JOB_INPUT, node2, JOB_FEE, sender=requester).return_value
    advance(chain, TEST_PARAMS.commit_timeout + 1)
    gas("JobManager", "cancelJob", jm.cancelJob(late, sender=requester))

    # disputes: one defended, one settled
    j1 = jm.requestJob(sc.model_id, JOB_INPUT, node, JOB_FEE, sender=requester).return_value
    jm.commitResult(j1, IN_HASH, JOB_OUTPUT, sender=node)
    d1 = gas(
        "DisputeManager", "openDispute", dm.openDispute(j1, OUT_HASH, sender=challenger)
    ).return_value
    gas(
        "DisputeManager",
        "defend (MockVerifier, 6 instances)",
        dm.defend(d1, b"p", defence_instances(JOB_INPUT, JOB_OUTPUT), JOB_OUTPUT, sender=node),
    )
    j2 = jm.requestJob(sc.model_id, JOB_INPUT, node, JOB_FEE, sender=requester).return_value
    jm.commitResult(j2, IN_HASH, JOB_OUTPUT, sender=node)
    d2 = dm.openDispute(j2, OUT_HASH, sender=challenger).return_value
    advance(chain, 2 * MOCK_MODEL.proof_window + 1)
    gas("DisputeManager", "settle (slash, bounty, burn)", dm.settle(d2, sender=outsider))
    gas("DisputeManager", "withdrawCredits", dm.withdrawCredits(sender=challenger))

    # batches: one root per batch; leaf disputes need ceil(log2(count)) siblings
    per_job: dict[int, int] = {}
    for count in (1, 64, 1024):
        leaves = [
            leaf_hash(i, sc.model_id, hash_vector([i, 0, 0, 0]), hash_vector([i, i]))
            for i in range(count)
        ]
        tree = MerkleTree(leaves)
        r = jm.commitBatch(
            sc.model_id, tree.root, count, f"http://node.example/batches/{count}", sender=node
        )
        gas("JobManager", f"commitBatch ({count} jobs)", r)
        per_job[count] = int(r.gas_used) // count
        batch_id = r.return_value
        if count == 1024:
            rd = dm.openBatchDispute(
                batch_id,
                5,
                5,
                hash_vector([5, 0, 0, 0]),
                hash_vector([5, 5]),
                tree.proof(5),
                sender=challenger,
            )
            gas("DisputeManager", "openBatchDispute (1024 leaves, 10 siblings)", rd)
            gas(
                "DisputeManager",
                "defend batch leaf (MockVerifier)",
                dm.defend(
                    rd.return_value,
                    b"p",
                    defence_instances([5, 0, 0, 0], [5, 5]),
                    [5, 5],
                    sender=node,
                ),
            )
            rq = dm.requestLeaf(batch_id, 7, tree.root, sender=challenger)
            gas("DisputeManager", "requestLeaf (4 inputs)", rq)
            gas(
                "DisputeManager",
                "revealLeaf (4 inputs, 2 outputs, 1024 leaves)",
                dm.revealLeaf(batch_id, 7, 7, [7, 0, 0, 0], [7, 7], tree.proof(7), sender=node),
            )
            rq2 = dm.requestLeaf(batch_id, 8, tree.root, sender=challenger)
            advance(chain, MOCK_MODEL.challenge_window + MOCK_MODEL.proof_window + 1)
            gas(
                "DisputeManager",
                "settleLeafRequest",
                dm.settleLeafRequest(rq2.return_value, sender=outsider),
            )
            advance(chain, MOCK_MODEL.challenge_window + 1)
            gas("JobManager", "finalizeBatch", jm.finalizeBatch(batch_id, sender=outsider))

    # leaf request and reveal for a 784-element input (a 28x28 image)
    wide = replace(MOCK_MODEL, input_len=784, output_len=10, in_lo=-(2**20), in_hi=2**20)
    v784 = deployer.deploy(project.MockVerifier)
    wide_id = reg.registerModel(
        wide.as_struct(str(v784.address), b"\x0c" * 32, b"\x0d" * 32), sender=deployer
    ).return_value
    inputs = [[(i * 7 + k) % 255 for k in range(784)] for i in range(64)]
    outputs = [[i + k for k in range(10)] for i in range(64)]
    leaves = [
        leaf_hash(i, wide_id, hash_vector(a), hash_vector(b))
        for i, (a, b) in enumerate(zip(inputs, outputs, strict=True))
    ]
    tree = MerkleTree(leaves)
    wb = jm.commitBatch(wide_id, tree.root, 64, "", sender=node).return_value
    gas(
        "DisputeManager",
        "requestLeaf (784 inputs)",
        dm.requestLeaf(wb, 9, tree.root, sender=challenger),
    )
    gas(
        "DisputeManager",
        "revealLeaf (784 inputs, 10 outputs, 64 leaves)",
        dm.revealLeaf(wb, 9, 9, inputs[9], outputs[9], tree.proof(9), sender=node),
    )
    gas(
        "JobManager",
        "requestJob (784 inputs)",
        jm.requestJob(wide_id, inputs[0], node, JOB_FEE, sender=requester),
    )

    # requestLeaves (one batch's leaves in one transaction) vs requestLeaf, per leaf: a fresh
    # 64-leaf batch; each call's leaves are new (the node's queue grows, one slot either way).
    # The first claim writes the zero queue and bondAtRisk slots: not in the comparison.
    lb = jm.commitBatch(sc.model_id, b"\x5a" * 32, 64, "", sender=node).return_value
    dm.requestLeaf(lb, 0, b"\x5a" * 32, sender=challenger)
    gas(
        "DisputeManager",
        "requestLeaf (64-leaf batch)",
        dm.requestLeaf(lb, 1, b"\x5a" * 32, sender=challenger),
    )
    per_leaf: dict[int, int] = {}
    start = 2
    for n in (1, 8, 32):
        r = dm.requestLeaves(lb, list(range(start, start + n)), b"\x5a" * 32, sender=challenger)
        assert r.return_value == n
        gas("DisputeManager", f"requestLeaves ({n} leaves)", r)
        per_leaf[n] = int(r.gas_used) // n
        start += n

    gas("StakeManager", "requestUnbond", sm.requestUnbond(sender=node2))
    advance(chain, TEST_PARAMS.unbonding_delay + 1)
    gas("StakeManager", "withdrawStake", sm.withdrawStake(sender=node2))
    gas("ModelRegistry", "deactivateModel", reg.deactivateModel(sc.model_id, sender=deployer))

    report = (
        _report(rows)
        + "\n| batch size | commit gas per job |\n|---:|---:|\n"
        + "".join(f"| {n} | {g:,} |\n" for n, g in per_job.items())
        + "\n| leaves per requestLeaves | gas per leaf |\n|---:|---:|\n"
        + "".join(f"| {n} | {g:,} |\n" for n, g in per_leaf.items())
    )
    print("\n" + report)
    if path := os.environ.get("SPOTCHECK_GAS_REPORT"):
        Path(path).write_text(report)

    by_fn = {f: g for _, f, g in rows}
    # One root per batch: commit gas does not grow with the batch size.
    assert max(by_fn[f"commitBatch ({n} jobs)"] for n in per_job) < 300_000
    assert per_job[1024] < 250
    assert by_fn["requestJob (4 inputs)"] < 300_000
    assert by_fn["openDispute"] < 450_000
    assert by_fn["defend (MockVerifier, 6 instances)"] < 200_000
    assert by_fn["requestLeaf (4 inputs)"] < 300_000
    # One transaction per batch: a leaf in a full call costs well under a lone requestLeaf.
    assert per_leaf[32] < 0.6 * by_fn["requestLeaf (64-leaf batch)"]
    assert per_leaf[1] < 1.05 * by_fn["requestLeaf (64-leaf batch)"]
    assert by_fn["requestLeaves (32 leaves)"] < 5_000_000
    assert by_fn["revealLeaf (784 inputs, 10 outputs, 64 leaves)"] < 1_500_000
