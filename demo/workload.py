"""The dApp's job stream: on-chain jobs requested through ``ExampleConsumer`` and batched jobs
sent to the nodes' HTTP API, interleaved, from a thread."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from demo.actors import NodeActor
from demo.chain_setup import DemoChain
from demo.config import DemoConfig
from demo.http_retry import AnswerLost, new_client, post_json

log = logging.getLogger(__name__)


@dataclass
class OnchainRequest:
    job_id: int
    node: str  # label
    input_q: list[int]
    request_tx: str


@dataclass
class HttpJob:
    node: str  # label
    input_q: list[int]
    output_q: list[int]
    receipt: dict[str, Any]


@dataclass
class Workload:
    """The dApp's submissions (filled by the workload thread)."""

    onchain: list[OnchainRequest] = field(default_factory=list)
    http: list[HttpJob] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)
    #: HTTP jobs whose answer never arrived after the node may have read the request (not
    #: retried: ``/infer`` is not idempotent; see ``demo.http_retry``)
    lost: list[str] = field(default_factory=list)
    first_job_at: float | None = None


class DappWorkload:
    """Sends ``cfg.onchain_jobs`` on-chain and ``cfg.batch_jobs`` batched jobs to the honest
    and the dishonest node, and ``cfg.withheld_batch_jobs`` batched jobs to the withholding
    node (it serves users; it withholds only from challengers)."""

    def __init__(
        self, cfg: DemoConfig, artifacts: Any, chain: DemoChain, nodes: list[NodeActor]
    ) -> None:
        self.cfg = cfg
        self.artifacts = artifacts
        self.chain = chain
        self.nodes = nodes
        self.sent = Workload()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dapp-workload", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        import numpy as np

        cfg, artifacts, chain = self.cfg, self.artifacts, self.chain
        rng = np.random.default_rng(cfg.seed)
        # Inputs anywhere in the model's registered domain [inLo, inHi] (quantized units):
        # outside it requestJob reverts and nodes refuse.
        model = chain.contracts.model_registry.getModel(chain.model_id)
        lo, hi = int(model.inLo), int(model.inHi)

        def random_input() -> list[int]:
            return [int(v) for v in rng.integers(lo, hi, size=artifacts.input_len, endpoint=True)]

        consumer = chain.contracts.example_consumer
        jm = chain.contracts.job_manager
        onchain_cap = {n.label: 0 if n.withholding else cfg.onchain_jobs for n in self.nodes}
        batch_cap = {
            n.label: cfg.withheld_batch_jobs if n.withholding else cfg.batch_jobs
            for n in self.nodes
        }
        rounds = max([*batch_cap.values(), *onchain_cap.values()])
        every = max(1, rounds // max(1, cfg.onchain_jobs))
        sent_onchain = {n.label: 0 for n in self.nodes}
        client = new_client()
        self.sent.first_job_at = time.perf_counter()
        try:
            for i in range(rounds):
                for node in self.nodes:
                    if self._stop.is_set():
                        return
                    q = random_input()
                    if i % every == 0 and sent_onchain[node.label] < onchain_cap[node.label]:
                        # request is owner-only; chain_setup hands the consumer to the dApp.
                        receipt = consumer.request(
                            chain.model_id, q, node.address, chain.fee, sender=chain.accounts.dapp
                        )
                        logs = list(receipt.decode_logs(jm.JobRequested))
                        job_id = int(logs[0].event_arguments["jobId"])
                        self.sent.onchain.append(
                            OnchainRequest(job_id, node.label, q, str(receipt.txn_hash))
                        )
                        sent_onchain[node.label] += 1
                    if i < batch_cap[node.label]:
                        q = random_input()
                        url = f"{node.http.url}/v1/models/0x{chain.model_id.hex()}/infer"
                        try:
                            body = post_json(client, url, {"input_q": q})
                        except AnswerLost as err:
                            self.sent.lost.append(f"{node.label}: {err}")
                            log.warning("dApp: answer lost, job not used: %s", err)
                            continue
                        self.sent.http.append(
                            HttpJob(node.label, q, list(body["output_q"]), body["receipt"])
                        )
                time.sleep(cfg.pace_s)
        except Exception as err:
            self.sent.errors.append(f"{type(err).__name__}: {err}")
            log.error("workload failed: %s", err)
        finally:
            client.close()
            self.sent.done.set()
