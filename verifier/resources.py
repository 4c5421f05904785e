"""Will this circuit fit in this machine's memory? Answered from logrows before setup.

Measured with ezkl 23 (docs/toolchain facts): proving keys are about 4 KiB per circuit row
(138 MB at logrows 15, 4.2 GB at logrows 20) and peak memory while proving about 7 KiB per
row (7 GB at logrows 20). The estimate uses the peak, so a "fits" answer leaves headroom.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from spotcheck.errors import ModelError

log = logging.getLogger(__name__)

PEAK_BYTES_PER_ROW = 7 * 1024
PK_BYTES_PER_ROW = 4 * 1024
#: Fixed overhead of the Python process, ezkl and onnxruntime.
BASE_BYTES = 300 * 1024 * 1024


@dataclass(frozen=True)
class MemoryEstimate:
    logrows: int
    peak_bytes: int
    proving_key_bytes: int
    available_bytes: int | None

    @property
    def fits(self) -> bool:
        return self.available_bytes is None or self.peak_bytes <= self.available_bytes

    def describe(self) -> str:
        avail = "unknown" if self.available_bytes is None else _gib(self.available_bytes)
        return (
            f"logrows {self.logrows}: ~{_gib(self.peak_bytes)} peak while proving, "
            f"~{_gib(self.proving_key_bytes)} proving key; {avail} available"
        )


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """MemAvailable in bytes (Linux), or None when it cannot be read."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def estimate(logrows: int, available_bytes: int | None = None) -> MemoryEstimate:
    rows = 2**logrows
    return MemoryEstimate(
        logrows=logrows,
        peak_bytes=BASE_BYTES + rows * PEAK_BYTES_PER_ROW,
        proving_key_bytes=rows * PK_BYTES_PER_ROW,
        available_bytes=available_bytes if available_bytes is not None else available_memory(),
    )


def check_fits(logrows: int, available_bytes: int | None = None) -> MemoryEstimate:
    """Raise ModelError before setup when the circuit cannot be proven on this machine.

    ``SPOTCHECK_SKIP_MEMORY_CHECK=1`` disables the check (for machines with swap you trust).
    """
    est = estimate(logrows, available_bytes)
    log.info("memory estimate: %s", est.describe())
    if not est.fits and os.environ.get("SPOTCHECK_SKIP_MEMORY_CHECK") != "1":
        raise ModelError(f"circuit too large for this machine: {est.describe()}")
    return est
