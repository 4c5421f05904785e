"""Samples every process of the run over time: RSS (psutil if installed, else /proc), the
size of its SQLite files (database, WAL, shared memory), and from its ``/metrics``: a
challenger's blocks behind the head and its tick time, a node's jobs waiting for a batch."""

from __future__ import annotations

import itertools
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from network.cluster import Service

_METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$", re.MULTILINE)


def rss_bytes(pid: int) -> int | None:
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except ImportError:
        pass
    except Exception:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def sqlite_bytes(db: Path) -> int:
    total = 0
    for suffix in ("", "-wal", "-shm"):
        p = db.with_name(db.name + suffix)
        if p.is_file():
            total += p.stat().st_size
    return total


def metrics(url: str) -> dict[str, float]:
    """Unlabelled samples, and labelled ones summed under their name."""
    try:
        text = httpx.get(url + "/metrics", timeout=3).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for name, _labels, value in _METRIC.findall(text):
        try:
            out[name] = out.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return out


@dataclass(frozen=True)
class Sample:
    t: float
    name: str
    incarnation: int
    rss: int | None
    db_bytes: int
    lag_blocks: float | None
    tick_sum: float | None
    tick_count: float | None
    pending: float | None


def tick_means(rows: list[Sample]) -> list[tuple[float, float]]:
    """``(t, mean tick seconds since the previous sample)`` of one challenger's samples."""
    out: list[tuple[float, float]] = []
    for a, b in itertools.pairwise(rows):
        if a.tick_sum is None or a.tick_count is None:
            continue
        if b.tick_sum is None or b.tick_count is None or b.tick_count <= a.tick_count:
            continue
        out.append((b.t, (b.tick_sum - a.tick_sum) / (b.tick_count - a.tick_count)))
    return out


class Sampler:
    def __init__(self, services: list[Service], interval_s: float, anvil_pid: int) -> None:
        self.services = services
        self.interval = interval_s
        self.anvil_pid = anvil_pid
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample_once()

    def sample_once(self) -> None:
        now = time.time()
        for s in self.services:
            pid = s.pid
            if pid is None:
                continue
            m = metrics(s.http_url)
            if s.kind == "challenger":
                lag = m.get("spotcheck_challenger_blocks_behind_head")
                tick_sum = m.get("spotcheck_challenger_tick_seconds_sum")
                tick_count = m.get("spotcheck_challenger_tick_seconds_count")
                pending = None
            else:
                lag = tick_sum = tick_count = None
                pending = m.get("spotcheck_node_pending_batch_jobs")
            self.samples.append(
                Sample(
                    now,
                    s.name,
                    s.incarnations,
                    rss_bytes(pid),
                    sqlite_bytes(s.db_path),
                    lag,
                    tick_sum,
                    tick_count,
                    pending,
                )
            )
        self.samples.append(
            Sample(now, "anvil", 1, rss_bytes(self.anvil_pid), 0, None, None, None, None)
        )
