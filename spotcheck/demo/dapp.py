"""The dApp reads its outputs at the end, and uses an output only once it is final and
verified."""

from __future__ import annotations

from spotcheck.demo.actors import NodeActor
from spotcheck.demo.chain_setup import DemoChain
from spotcheck.demo.progress import Progress
from spotcheck.demo.report import DappReport
from spotcheck.demo.workload import Workload


def dapp_reads(
    chain: DemoChain, nodes: list[NodeActor], workload: Workload, progress: Progress
) -> DappReport:
    with progress.stage("dApp reads final outputs"):
        report = DappReport(
            client="verifier.client.SpotcheckClient + ExampleConsumer; batch receipts: "
            "prover.receipts.check_receipt_onchain"
        )
        _read_onchain(chain, workload, report, progress)
        _read_batched(chain, nodes, workload, report)
        progress.say(
            f"    on-chain outputs used {report.onchain_used}, refused "
            f"{report.onchain_refused}; batched outputs used {report.batch_used}, "
            f"refused {report.batch_refused}"
        )
        return report


def _read_onchain(
    chain: DemoChain, workload: Workload, report: DappReport, progress: Progress
) -> None:
    """``verifier.client.SpotcheckClient.verified_output`` (final on chain and the emitted
    output hashes to the stored hash), then ``ExampleConsumer.deliverOutput``, which checks
    the same on-chain."""
    from verifier.client import JobInvalidError, JobNotFinalError, SpotcheckClient

    client = SpotcheckClient(chain.contracts)
    consumer = chain.contracts.example_consumer
    dapp = chain.accounts.dapp
    for req in workload.onchain:
        try:
            verified = client.verified_output(req.job_id)
        except (JobInvalidError, JobNotFinalError) as err:
            report.onchain_refused += 1
            progress.say(f"    job {req.job_id} ({req.node}): refused by the client: {err}")
            if report.consumer_reverted_on_invalid is None:
                # The consumer contract must refuse it too, whoever delivers it.
                try:
                    raw = client.committed_output(req.job_id)
                    consumer.deliverOutput(req.job_id, raw, sender=dapp)
                    report.consumer_reverted_on_invalid = False
                except JobNotFinalError:
                    pass
                except Exception:  # the expected OutputNotVerified revert
                    report.consumer_reverted_on_invalid = True
            continue
        consumer.deliverOutput(req.job_id, list(verified.output_q), sender=dapp)
        report.onchain_used += 1


def _read_batched(
    chain: DemoChain, nodes: list[NodeActor], workload: Workload, report: DappReport
) -> None:
    """The node's signed receipt, its Merkle proof against the committed root and
    ``isBatchJobFinal`` (``prover.receipts.check_receipt_onchain``)."""
    import httpx

    from prover.receipts import Receipt, check_receipt_onchain

    jm = chain.contracts.job_manager
    by_label = {n.label: n for n in nodes}
    with httpx.Client(timeout=10.0) as http:
        for job in workload.http:
            node = by_label[job.node]
            receipt = Receipt.from_json(job.receipt)
            where = http.get(f"{node.http.url}/v1/jobs/{receipt.job_id}").json()
            if where.get("batchId") is None:
                report.batch_refused += 1
                continue
            proof = [bytes.fromhex(p.removeprefix("0x")) for p in where.get("proof", [])]
            check = check_receipt_onchain(receipt, int(where["batchId"]), proof, jm)
            if check.ok and check.leaf_final:
                report.batch_used += 1
            else:
                report.batch_refused += 1
