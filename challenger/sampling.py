"""Which commitments this challenger re-executes: private, unpredictable, reproducible.

The rule (``../shared/DESIGN.md``, Sampling):

- **Seed.** A commitment mined in block ``b`` gets the seed ``blockhash(b + SEED_DELAY)``.
  That block does not exist when the node commits, so the node cannot know the seed; the
  challenger waits until the block exists (it is always older than the confirmation depth the
  service reads at, when ``seed_delay <= confirmations``).
- **Decision.** Job ``jobRef`` (its 32-byte job key: ``onchain_job_key`` / ``batch_leaf_key``)
  is sampled iff ``int(keccak256(secret ‖ seed ‖ jobRef)) < floor(p * 2**256)``, with ``p``
  the rate configured for the job's model.
- **Secret.** 32 random bytes, generated on first run and kept in a file with mode 0600. Only
  the challenger knows it, so nobody else can tell which jobs it re-runs until it disputes.
  The same secret and seed always give the same decision, so a restart re-derives exactly the
  decisions it made before (the store also persists them).
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from eth_utils import keccak

from spotcheck.errors import ConfigError

log = logging.getLogger(__name__)

#: Blocks between the commitment's block and the block whose hash seeds its sampling.
SEED_DELAY = 1
SECRET_BYTES = 32
_SPACE = 2**256


def threshold(p: float) -> int:
    """``floor(p * 2**256)``, exactly (no float rounding above 2**53)."""
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"sampling rate {p} outside [0, 1]")
    return int(Fraction(p) * _SPACE)


def sample_score(secret: bytes, seed: bytes, job_ref: bytes) -> int:
    """``int(keccak256(secret ‖ seed ‖ jobRef))``: uniform on [0, 2**256) for a secret seed."""
    for name, value in (("secret", secret), ("seed", seed), ("jobRef", job_ref)):
        if len(value) != 32:
            raise ConfigError(f"{name} must be 32 bytes, got {len(value)}")
    return int.from_bytes(keccak(secret + seed + job_ref), "big")


def is_sampled(secret: bytes, seed: bytes, job_ref: bytes, p: float) -> bool:
    return sample_score(secret, seed, job_ref) < threshold(p)


def seed_block(commit_block: int, seed_delay: int = SEED_DELAY) -> int:
    """The block whose hash seeds a commitment mined in ``commit_block``."""
    return commit_block + seed_delay


@dataclass(frozen=True)
class SamplingPolicy:
    """The challenger's secret and its per-model rates (``default_rate`` for other models)."""

    secret: bytes = field(repr=False)
    default_rate: float
    rates: Mapping[bytes, float] = field(default_factory=dict)
    seed_delay: int = SEED_DELAY

    def __post_init__(self) -> None:
        if len(self.secret) != SECRET_BYTES:
            raise ConfigError(f"the sampling secret must be {SECRET_BYTES} bytes")
        if self.seed_delay < 1:
            raise ConfigError("seed_delay must be >= 1: the seed block must follow the commit")
        threshold(self.default_rate)
        for model_id, rate in self.rates.items():
            if len(model_id) != 32:
                raise ConfigError(f"model id {model_id.hex()} must be 32 bytes")
            threshold(rate)

    def rate(self, model_id: bytes) -> float:
        return self.rates.get(model_id, self.default_rate)

    def decide(self, model_id: bytes, seed: bytes, job_ref: bytes) -> bool:
        return is_sampled(self.secret, seed, job_ref, self.rate(model_id))


def load_or_create_secret(path: str | Path) -> bytes:
    """Read the 32-byte secret at ``path``, creating it (mode 0600) on first run.

    A secret readable by group or others is refused: whoever reads it can predict this
    challenger's sample.
    """
    secret_path = Path(path)
    secret_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(secret_path)
    try:
        os.write(fd, secrets.token_bytes(SECRET_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    log.info("created sampling secret", extra={"path": str(secret_path)})
    return _read_secret(secret_path)


def _read_secret(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"sampling secret {path} has mode {mode:o}; it must be 0600 (chmod 600)")
    data = path.read_bytes()
    if len(data) != SECRET_BYTES:
        raise ConfigError(f"sampling secret {path} holds {len(data)} bytes, not {SECRET_BYTES}")
    return data
