"""The dApp load generator: worker threads posting jobs to the nodes' ``/infer`` round-robin.

Every answer is checked the way a dApp can: its output against a reference (the first honest
node's answer to the same input, asked once per input of the pool before the run), so the
generator knows which jobs a cheater corrupted (more than ``tau`` off) without asking it.

``request_batch`` > 1 posts that many inputs per HTTP request (issue 14's batched requests;
``BatchedPoster``); 1 posts one job per request (``SinglePoster``). Switching is that one flag.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

#: The example model's input domain ([-1, 0.92], examples/README.md).
INPUT_LO, INPUT_HI = -1.0, 0.92


@dataclass(frozen=True)
class JobRecord:
    node: int
    job_id: int
    t: float  # unix time of the answer
    latency_s: float
    corrupted: bool


@dataclass
class LoadStats:
    records: list[JobRecord] = field(default_factory=list)
    refused: int = 0  # 503: not accepting work
    failed: int = 0  # connection errors (a killed node), other statuses
    errors: dict[str, int] = field(default_factory=dict)
    started: float = 0.0
    ended: float = 0.0


class Poster(Protocol):
    def post(self, client: httpx.Client, url: str, inputs: list[list[float]]) -> list[Any]: ...


class SinglePoster:
    """One job per request: ``POST /v1/models/{id}/infer {"input": [...]}``."""

    per_request = 1

    def __init__(self, model_id: str) -> None:
        self.path = f"/v1/models/{model_id}/infer"

    def post(self, client: httpx.Client, url: str, inputs: list[list[float]]) -> list[Any]:
        r = client.post(url + self.path, json={"input": inputs[0]})
        r.raise_for_status()
        return [r.json()]


class BatchedPoster:
    """Many jobs per request (issue 14): ``{"inputs": [[...], ...]}`` to the same endpoint,
    answered with ``{"results": [{output, output_q, receipt}, ...]}`` (``prover/api.py``). A node
    without batched requests answers 422: the run stops with that line."""

    def __init__(self, model_id: str, per_request: int) -> None:
        self.path = f"/v1/models/{model_id}/infer"
        self.per_request = per_request

    def post(self, client: httpx.Client, url: str, inputs: list[list[float]]) -> list[Any]:
        r = client.post(url + self.path, json={"inputs": inputs})
        if r.status_code == 422:
            raise SystemExit(
                f"the node at {url} does not take batched requests ({r.text[:160]}); "
                "run with --request-batch 1"
            )
        r.raise_for_status()
        results: list[Any] = r.json()["results"]
        return results


class LoadGenerator:
    def __init__(
        self,
        node_urls: list[str],
        model_id: str,
        tau: int,
        *,
        threads: int,
        request_batch: int,
        pool_size: int = 128,
        seed: int = 7,
    ) -> None:
        self.urls = node_urls
        self.model_id = model_id
        self.tau = tau
        self.threads = threads
        rng = random.Random(seed)
        self.pool = [[rng.uniform(INPUT_LO, INPUT_HI) for _ in range(4)] for _ in range(pool_size)]
        self.poster: SinglePoster | BatchedPoster = (
            SinglePoster(model_id) if request_batch <= 1 else BatchedPoster(model_id, request_batch)
        )
        self.reference: list[list[int]] = []
        #: The reference jobs themselves (real jobs of the reference node).
        self.calibration: list[JobRecord] = []
        self.stats = LoadStats()
        self._lock = threading.Lock()
        self._next = 0
        self._stop = threading.Event()
        #: Jobs per second the workers keep to together (0: as fast as the nodes answer).
        self.rate = 0.0
        self._slot = 0.0  # monotonic time of the next request's slot (paced runs)

    def calibrate(self, reference_node: int) -> None:
        """Each pool input once to an honest node: the reference outputs (jobs like others)."""
        with httpx.Client(timeout=30) as client:
            for x in self.pool:
                answer = SinglePoster(self.model_id).post(client, self.urls[reference_node], [x])[0]
                self.reference.append(list(answer["output_q"]))
                job = int(answer["receipt"]["jobId"])
                self.calibration.append(JobRecord(reference_node, job, time.time(), 0.0, False))

    def _corrupted(self, idx: int, output_q: list[int]) -> bool:
        ref = self.reference[idx]
        return any(abs(a - b) > self.tau for a, b in zip(output_q, ref, strict=True))

    def run(self, jobs: int, duration_s: float) -> LoadStats:
        """Post until ``jobs`` answers or ``duration_s`` passed; returns the stats."""
        self.stats.started = time.time()
        deadline = time.monotonic() + duration_s
        workers = [
            threading.Thread(target=self._work, args=(jobs, deadline, w), daemon=True)
            for w in range(self.threads)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        self.stats.ended = time.time()
        return self.stats

    def stop(self) -> None:
        self._stop.set()

    def done(self) -> int:
        return len(self.stats.records)

    def _work(self, jobs: int, deadline: float, seed: int) -> None:
        rng = random.Random(seed)
        n = self.poster.per_request
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                with self._lock:
                    if len(self.stats.records) >= jobs:
                        return
                    node = self._next % len(self.urls)
                    self._next += 1
                    wait = self._pace(n)
                if wait > 0:
                    time.sleep(wait)
                idxs = [rng.randrange(len(self.pool)) for _ in range(n)]
                t0 = time.monotonic()
                try:
                    answers = self.poster.post(
                        client, self.urls[node], [self.pool[i] for i in idxs]
                    )
                except httpx.HTTPStatusError as err:
                    self._count(err.response.status_code == 503, f"HTTP {err.response.status_code}")
                    time.sleep(0.05)
                    continue
                except httpx.HTTPError as err:
                    self._count(False, type(err).__name__)
                    time.sleep(0.05)
                    continue
                latency = (time.monotonic() - t0) / len(answers)
                now = time.time()
                records = [
                    JobRecord(
                        node,
                        int(a["receipt"]["jobId"]),
                        now,
                        latency,
                        self._corrupted(i, list(a["output_q"])),
                    )
                    for i, a in zip(idxs, answers, strict=True)
                ]
                with self._lock:
                    self.stats.records.extend(records)

    def _pace(self, jobs: int) -> float:
        """Seconds to wait before posting ``jobs`` so that all workers together keep to
        ``rate`` (called under the lock). A run that falls behind does not burst to catch up:
        each slot is at least now."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        self._slot = max(self._slot, now)
        wait = self._slot - now
        self._slot += jobs / self.rate
        return wait

    def _count(self, refused: bool, what: str) -> None:
        with self._lock:
            if refused:
                self.stats.refused += 1
            else:
                self.stats.failed += 1
            self.stats.errors[what] = self.stats.errors.get(what, 0) + 1
