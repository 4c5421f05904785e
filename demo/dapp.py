"""The dApp reads its outputs at the end, and uses an output only if it answers its own
question (the model it asked for, the input it sent, the output it got, its own request or the
node it asked) and is final."""

from __future__ import annotations

from typing import Any

from demo.actors import NodeActor
from demo.chain_setup import DemoChain
from demo.progress import Progress
from demo.report import DappReport
from demo.workload import HttpJob, Workload


def dapp_reads(
    chain: DemoChain, nodes: list[NodeActor], workload: Workload, progress: Progress
) -> DappReport:
    with progress.stage("dApp reads final outputs"):
        report = DappReport(
            client="verifier.client.SpotcheckClient + ExampleConsumer; batch receipts: "
            "spotcheck.receipts.check_receipt_onchain"
        )
        _read_onchain(chain, nodes, workload, report, progress)
        _read_batched(chain, nodes, workload, report)
        report.answers_lost = len(workload.lost)
        progress.say(
            f"    on-chain outputs used {report.onchain_used}, refused "
            f"{report.onchain_refused}; batched outputs used {report.batch_used}, "
            f"refused {report.batch_refused}"
        )
        return report


def _read_onchain(
    chain: DemoChain,
    nodes: list[NodeActor],
    workload: Workload,
    report: DappReport,
    progress: Progress,
) -> None:
    """``verifier.client.SpotcheckClient.verified_output`` (the job is the consumer's own
    request for this model and input, final on chain, and the emitted output hashes to the
    stored hash), then ``ExampleConsumer.deliverOutput``, which checks the same on-chain."""
    from verifier.client import JobInvalidError, JobNotFinalError, JobRequest, SpotcheckClient

    client = SpotcheckClient(chain.contracts)
    consumer = chain.contracts.example_consumer
    dapp = chain.accounts.dapp
    addresses = {n.label: n.address for n in nodes}
    for req in workload.onchain:
        request = JobRequest.of(
            req.job_id, str(consumer.address), addresses[req.node], chain.model_id, req.input_q
        )
        try:
            verified = client.verified_output(request)
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
    """``spotcheck.receipts.check_receipt_onchain`` with what the dApp holds: the node it
    asked, the model, the input it sent and the output it got; the batch, index and proof the
    node serves for the job (hex strings, as ``GET /v1/jobs/{id}`` returns them)."""
    import httpx

    from spotcheck.receipts import Receipt, check_receipt_onchain

    jm = chain.contracts.job_manager
    by_label = {n.label: n for n in nodes}
    with httpx.Client(timeout=10.0) as http:
        for job in workload.http:
            node = by_label[job.node]
            receipt = Receipt.from_json(job.receipt)
            where = http.get(f"{node.http.url}/v1/jobs/{receipt.job_id}").json()
            if where.get("batchId") is None or where.get("index") is None:
                report.batch_refused += 1
                continue
            check = check_receipt_onchain(
                receipt,
                node=node.address,
                model_id=chain.model_id,
                input_q=job.input_q,
                output_q=job.output_q,
                batch_id=int(where["batchId"]),
                index=int(where["index"]),
                proof=where.get("proof", []),
                job_manager=jm,
            )
            if check.ok:
                report.batch_used += 1
                if report.foreign_receipt_refused is None:
                    report.foreign_receipt_refused = _foreign_receipt_refused(
                        workload, job, where, node, chain
                    )
            else:
                report.batch_refused += 1
                reason = ", ".join(check.failures)
                report.batch_refusals[reason] = report.batch_refusals.get(reason, 0) + 1


def _foreign_receipt_refused(
    workload: Workload, used: HttpJob, where: dict[str, Any], node: NodeActor, chain: DemoChain
) -> bool | None:
    """The attack a receipt check must stop: a node answers another input with this final,
    correct job's receipt and proof. True iff the check refuses it (None: no other job)."""
    from spotcheck.receipts import Receipt, check_receipt_onchain

    other = next((j for j in workload.http if j is not used and j.node == used.node), None)
    if other is None:
        return None
    check = check_receipt_onchain(
        Receipt.from_json(used.receipt),
        node=node.address,
        model_id=chain.model_id,
        input_q=other.input_q,  # what the dApp sent this time
        output_q=other.output_q,
        batch_id=int(where["batchId"]),
        index=int(where["index"]),
        proof=where.get("proof", []),
        job_manager=chain.contracts.job_manager,
    )
    return not check.ok
