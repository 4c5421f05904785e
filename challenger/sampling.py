"""Which commitments this challenger re-executes: private, unpredictable, provable (issue 15).

The rule (``docs/sampling-vrf.md``; the VRF itself is ``spotcheck.vrf``):

- **Seed.** A commitment mined in block ``b`` gets the seed ``blockhash(b + 1)`` (the
  CheckPool's rule). That block does not exist when the node commits, so the node cannot know
  the seed; the challenger waits until the block exists.
- **Decision.** Job ``jobRef`` (its 32-byte job key: ``onchain_job_key`` / ``batch_leaf_key``)
  is sampled iff ``vrf.sampled_bps(vrf.prove(sk, seed, jobRef), p_bps)``, with ``p_bps`` the
  rate configured for the job's model in basis points (the unit the contract checks). The
  proof is a BLS signature, unique per key: the decision is private until the challenger
  shows the proof, and provable on-chain once it does (a paid-check claim carries it). The
  store keeps the proof of every sampled job.
- **Key.** A BN254 scalar ``sk`` in ``[1, r)``, generated on first run and kept as 32
  big-endian bytes in a file with mode 0600 (``vrf.key`` in the state folder). The public key
  and its proof of possession (for registration) are derived from it
  (``spotcheck challenger key show``). The same key and seed always give the same decision,
  so a restart re-derives exactly the decisions it made before (the store also persists them).

The old rule (``keccak256(secret ‖ seed ‖ jobRef)``, a ``secret`` file) is gone: decisions
already taken are persisted in the store, and a job still undecided is decided by the VRF, so
an old database needs nothing from the old secret (its file is left alone, unused).

Cost: one decision is one hash to G1 and one G1 scalar multiplication in pure Python: about
9 ms with py-ecc's ``multiply`` on an idle reference machine, about 3.5 times less with the
integer Jacobian / width-4 NAF multiplication of ``challenger.vrf_fast`` used here (the same
proofs, asserted in ``tests/property/test_sampling.py``).
A batch's decisions are therefore computed off the tick's thread as soon as its seed exists
(:class:`BatchDecisions`), once per batch, while its listing downloads.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from challenger.vrf_fast import Prover
from spotcheck import vrf
from spotcheck.encoding import batch_leaf_key
from spotcheck.errors import ConfigError, EncodingError

log = logging.getLogger(__name__)

#: Blocks between the commitment's block and the block whose hash seeds its sampling
#: (``blockhash(commitBlock + 1)``: the CheckPool's seed rule).
SEED_DELAY = 1
SECRET_BYTES = 32
BPS = vrf.BPS


def rate_bps(rate: float) -> int:
    """A sampling rate in ``[0, 1]`` as whole basis points (``0.05 -> 500``), as the contract
    takes it; a rate that is not a whole number of basis points is refused."""
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"sampling rate {rate} outside [0, 1]")
    bps = round(rate * BPS)
    if abs(bps - rate * BPS) > 1e-6:
        raise ConfigError(f"sampling rate {rate} is not a whole number of basis points (1e-4)")
    return bps


def secret_scalar(secret: bytes) -> int:
    """The VRF secret scalar of 32 big-endian bytes (must be in ``[1, r)``)."""
    if len(secret) != SECRET_BYTES:
        raise ConfigError(f"the VRF secret must be {SECRET_BYTES} bytes, got {len(secret)}")
    sk = int.from_bytes(secret, "big")
    if not 0 < sk < vrf.R:
        raise ConfigError("the VRF secret is not a BN254 scalar in [1, r)")
    return sk


def is_sampled(secret: bytes, seed: bytes, job_ref: bytes, p: float) -> bool:
    """The decision for ``jobRef`` under the key ``secret`` at rate ``p`` (whole bps)."""
    bps = rate_bps(p)
    if bps == 0:
        return False
    return vrf.sampled_bps(Prover(secret_scalar(secret)).prove(seed, job_ref), bps)


def seed_block(commit_block: int, seed_delay: int = SEED_DELAY) -> int:
    """The block whose hash seeds a commitment mined in ``commit_block``."""
    return commit_block + seed_delay


@dataclass(frozen=True)
class SamplingPolicy:
    """The challenger's VRF key and its per-model rates (``default_rate`` for other models).

    ``secret`` is the key's 32 big-endian bytes (:func:`load_or_create_secret`)."""

    secret: bytes = field(repr=False)
    default_rate: float
    rates: Mapping[bytes, float] = field(default_factory=dict)
    seed_delay: int = SEED_DELAY
    _prover: Prover = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The fast prover of challenger.vrf_fast: the same proofs as spotcheck.vrf.prove.
        object.__setattr__(self, "_prover", Prover(secret_scalar(self.secret)))
        if self.seed_delay < 1:
            raise ConfigError("seed_delay must be >= 1: the seed block must follow the commit")
        rate_bps(self.default_rate)
        for model_id, rate in self.rates.items():
            if len(model_id) != 32:
                raise ConfigError(f"model id {model_id.hex()} must be 32 bytes")
            rate_bps(rate)

    @property
    def sk(self) -> int:
        return secret_scalar(self.secret)

    def public_key(self) -> vrf.G2Point:
        return vrf.public_key(self.sk)

    def rate(self, model_id: bytes) -> float:
        return self.rates.get(model_id, self.default_rate)

    def rate_bps(self, model_id: bytes) -> int:
        return rate_bps(self.rate(model_id))

    def sample(self, model_id: bytes, seed: bytes, job_ref: bytes) -> vrf.G1Point | None:
        """The VRF proof of ``(seed, jobRef)`` if the job is sampled, else None (no proof is
        computed at rate 0)."""
        bps = self.rate_bps(model_id)
        if bps == 0:
            return None
        proof = self._prover.prove(seed, job_ref)
        return proof if vrf.sampled_bps(proof, bps) else None

    def decide(self, model_id: bytes, seed: bytes, job_ref: bytes) -> bool:
        return self.sample(model_id, seed, job_ref) is not None

    def sample_batch(
        self, model_id: bytes, seed: bytes, batch_id: int, count: int
    ) -> dict[int, vrf.G1Point]:
        """Positions of batch ``batch_id`` that are sampled, with their proofs."""
        out: dict[int, vrf.G1Point] = {}
        if self.rate_bps(model_id) == 0:
            return out
        for index in range(count):
            proof = self.sample(model_id, seed, batch_leaf_key(batch_id, index))
            if proof is not None:
                out[index] = proof
        return out


class BatchDecisions:
    """Sampling decisions of whole batches, computed in one worker thread, once per batch.

    ``start`` as soon as a batch's seed exists; ``get`` waits for the result (computing it
    here if it was never started). Results live in memory: after a restart an undecided batch
    is decided again (deterministic, so the same positions)."""

    def __init__(self, policy: SamplingPolicy) -> None:
        self.policy = policy
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vrf-decide")
        self._futures: dict[int, Future[dict[int, vrf.G1Point]]] = {}
        self._lock = threading.Lock()

    def start(self, batch_id: int, model_id: bytes, seed: bytes, count: int) -> None:
        with self._lock:
            if batch_id not in self._futures:
                self._futures[batch_id] = self._pool.submit(
                    self.policy.sample_batch, model_id, seed, batch_id, count
                )

    def ready(self, batch_id: int) -> bool:
        with self._lock:
            f = self._futures.get(batch_id)
        return f is not None and f.done()

    def get(
        self, batch_id: int, model_id: bytes, seed: bytes, count: int
    ) -> dict[int, vrf.G1Point]:
        self.start(batch_id, model_id, seed, count)
        with self._lock:
            f = self._futures[batch_id]
        return f.result()

    def forget(self, batch_id: int) -> None:
        with self._lock:
            self._futures.pop(batch_id, None)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def proof_text(proof: vrf.G1Point) -> str:
    """How the store keeps a VRF proof: ``"0x<x>,0x<y>"`` (64 hex digits each)."""
    return f"0x{proof.x:064x},0x{proof.y:064x}"


def parse_proof(text: str) -> vrf.G1Point:
    try:
        x, y = (int(part, 16) for part in text.split(","))
    except ValueError as err:
        raise EncodingError(f"stored VRF proof {text!r} is not two hex words") from err
    return vrf.G1Point(x, y)


def load_or_create_secret(path: str | Path) -> bytes:
    """Read the 32-byte VRF secret at ``path``, creating it (mode 0600) on first run.

    A key readable by group or others is refused: whoever reads it can predict this
    challenger's sample and claim in its name.
    """
    key_path = Path(path)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(key_path)
    try:
        os.write(fd, vrf.keypair().secret.to_bytes(SECRET_BYTES, "big"))
        os.fsync(fd)
    finally:
        os.close(fd)
    log.info("created VRF key %s", key_path)
    return _read_secret(key_path)


def public_key_words(secret: bytes) -> list[str]:
    """The public key as the ``uint256[4]`` 0x hex words ``CheckPool.register`` takes."""
    return [f"0x{w:064x}" for w in vrf.public_key(secret_scalar(secret)).words()]


def read_secret(path: str | Path) -> bytes:
    """Read an existing VRF key (mode and range checked), never creating one."""
    return _read_secret(Path(path))


def _read_secret(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"VRF key {path} has mode {mode:o}; it must be 0600 (chmod 600)")
    data = path.read_bytes()
    if len(data) != SECRET_BYTES:
        raise ConfigError(f"VRF key {path} holds {len(data)} bytes, not {SECRET_BYTES}")
    secret_scalar(data)
    return data
