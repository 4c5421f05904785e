"""Thin typed bindings for ``CheckPool`` (paid checks, issue 15): register a VRF key, claim
sampled jobs and batch leaves with VRF proofs (one or a batch), collect rewards, burn a lazy
claimant's collateral, refund a batch's unclaimed leaf deposits to its node.

The rules (seed, claim window, collateral) are in ``docs/sampling-vrf.md``; this module only
builds the arguments from ``spotcheck.vrf`` values and sends them through an Ape contract
instance (``SpotcheckContracts.check_pool``). Ape is never imported here: callers pass the
contract and the account.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from spotcheck import vrf
from spotcheck.chain import ClaimStatus, TxResult
from spotcheck.encoding import batch_leaf_key, onchain_job_key
from spotcheck.errors import ConfigError, chain_failure

__all__ = [
    "BLOCKHASH_WINDOW",
    "MAX_BATCH_CLAIMS",
    "MAX_CHECK_SHARE_BPS",
    "Claim",
    "ClaimStatus",
    "LeafClaim",
    "claim",
    "claim_batch",
    "claim_leaves",
    "claim_status",
    "collect",
    "collect_leaf",
    "forfeit",
    "forfeit_leaf",
    "leaf_claim_status",
    "make_claim",
    "make_leaf_claim",
    "possession",
    "record_seed",
    "refund_batch_deposit",
    "register",
    "seed_readable",
    "set_leaf_check_fee",
    "set_model_terms",
]

#: ``CheckPool.MAX_BATCH_CLAIMS``.
MAX_BATCH_CLAIMS = 32
#: ``CheckPool.MAX_CHECK_SHARE_BPS``: the node keeps at least half of a claimed job's fee.
MAX_CHECK_SHARE_BPS = 5000
#: ``blockhash`` reads the last 256 blocks: a seed must be recorded by ``commitBlock + 257``.
BLOCKHASH_WINDOW = 256


@dataclass(frozen=True)
class Claim:
    """A VRF claim on on-chain job ``job_id``: the proof of ``(seed, onchain_job_key(job_id))``."""

    job_id: int
    proof: vrf.G1Point

    @property
    def job_ref(self) -> bytes:
        return onchain_job_key(self.job_id)


@dataclass(frozen=True)
class LeafClaim:
    """A VRF claim on leaf ``index`` of batch ``batch_id``: the proof of
    ``(batch seed, batch_leaf_key(batch_id, index))``."""

    batch_id: int
    index: int
    proof: vrf.G1Point

    @property
    def leaf_ref(self) -> bytes:
        return batch_leaf_key(self.batch_id, self.index)


def seed_readable(commit_block: int, block_number: int) -> bool:
    """True iff ``blockhash(commit_block + 1)`` is readable in block ``block_number``: the seed
    rule's window (``commit_block + 1 < block_number <= commit_block + 257``)."""
    seed_block = commit_block + 1
    return seed_block < block_number <= seed_block + BLOCKHASH_WINDOW


def make_claim(key: vrf.KeyPair, job_id: int, seed: bytes, sampling_bps: int) -> Claim | None:
    """The claim ``key`` may make on ``job_id`` under ``seed``, or None if it did not sample it."""
    job_ref = onchain_job_key(job_id)
    proof = vrf.prove(key.secret, seed, job_ref)
    return Claim(job_id, proof) if vrf.sampled_bps(proof, sampling_bps) else None


def make_leaf_claim(
    key: vrf.KeyPair, batch_id: int, index: int, seed: bytes, sampling_bps: int
) -> LeafClaim | None:
    """The claim ``key`` may make on leaf ``index`` of ``batch_id`` under the batch's ``seed``,
    or None if it did not sample it."""
    proof = vrf.prove(key.secret, seed, batch_leaf_key(batch_id, index))
    return LeafClaim(batch_id, index, proof) if vrf.sampled_bps(proof, sampling_bps) else None


def _tx(receipt: Any) -> TxResult:
    return TxResult(
        str(receipt.txn_hash),
        block_number=int(receipt.block_number),
        gas_used=int(receipt.gas_used),
        receipt=receipt,
    )


def _send(what: str, call: Any, *args: Any, sender: Any) -> TxResult:
    try:
        return _tx(call(*args, sender=sender))
    except Exception as err:  # Ape's ContractLogicError and transport errors: one line
        # A revert keeps its custom error's name (RevertError.error, and in the text).
        raise chain_failure(f"CheckPool.{what} failed", err) from err


def possession(pool: Any, key: vrf.KeyPair, registrant: str) -> vrf.G1Point:
    """``key``'s proof of possession for ``registrant`` registering with ``pool`` on its chain
    (the PoP is bound to all three: ``vrf.pop_message``)."""
    chain_id = int(pool.chain_manager.chain_id)
    return vrf.prove_possession(key.secret, str(registrant), str(pool.address), chain_id)


def register(pool: Any, key: vrf.KeyPair, bond: int, sender: Any) -> TxResult:
    """Register ``key`` (with its proof of possession) and a bond of ``bond`` base units; the
    sender must have approved the pool for ``bond``."""
    if bond <= 0:
        raise ConfigError(f"bond must be > 0, got {bond}")
    pop = possession(pool, key, sender.address)
    return _send(
        "register", pool.register, list(key.public.words()), list(pop.words()), bond, sender=sender
    )


def claim(pool: Any, c: Claim, sender: Any) -> TxResult:
    """Claim one job."""
    return _send("claim", pool.claim, c.job_id, list(c.proof.words()), sender=sender)


def claim_batch(pool: Any, claims: Sequence[Claim], sender: Any) -> TxResult:
    """Claim up to ``MAX_BATCH_CLAIMS`` jobs in one transaction (one pairing product)."""
    if not 0 < len(claims) <= MAX_BATCH_CLAIMS:
        raise ConfigError(f"a batched claim holds 1..{MAX_BATCH_CLAIMS} jobs, got {len(claims)}")
    return _send(
        "claimBatch",
        pool.claimBatch,
        [c.job_id for c in claims],
        [list(c.proof.words()) for c in claims],
        sender=sender,
    )


def claim_leaves(pool: Any, claims: Sequence[LeafClaim], sender: Any) -> TxResult:
    """Claim up to ``MAX_BATCH_CLAIMS`` batch leaves in one transaction (one pairing product
    for two or more)."""
    if not 0 < len(claims) <= MAX_BATCH_CLAIMS:
        raise ConfigError(f"a leaf claim holds 1..{MAX_BATCH_CLAIMS} leaves, got {len(claims)}")
    return _send(
        "claimLeaves",
        pool.claimLeaves,
        [c.batch_id for c in claims],
        [c.index for c in claims],
        [list(c.proof.words()) for c in claims],
        sender=sender,
    )


def collect_leaf(pool: Any, batch_id: int, index: int, sender: Any) -> TxResult:
    """Collect the sender's share of a leaf's deposit once its batch is final."""
    return _send("collectLeaf", pool.collectLeaf, batch_id, index, sender=sender)


def forfeit_leaf(pool: Any, batch_id: int, index: int, claimant: str, sender: Any) -> TxResult:
    """Burn ``claimant``'s collateral on an invalidated leaf (anyone may send)."""
    return _send("forfeitLeaf", pool.forfeitLeaf, batch_id, index, claimant, sender=sender)


def refund_batch_deposit(pool: Any, batch_id: int, sender: Any) -> TxResult:
    """Pay a final batch's node the deposits of its unclaimed, valid leaves (anyone may send)."""
    return _send("refundBatchDeposit", pool.refundBatchDeposit, batch_id, sender=sender)


def set_leaf_check_fee(pool: Any, model_id: bytes, fee: int, sender: Any) -> TxResult:
    """Set a model's check deposit per batch leaf (the model registry's owner only)."""
    if not 0 <= fee < 2**128:
        raise ConfigError(f"leaf check fee must be in 0..2**128-1 base units, got {fee}")
    return _send("setLeafCheckFee", pool.setLeafCheckFee, model_id, fee, sender=sender)


def collect(pool: Any, job_id: int, sender: Any) -> TxResult:
    """Collect the sender's reward for a final job (frees its collateral)."""
    return _send("collect", pool.collect, job_id, sender=sender)


def forfeit(pool: Any, job_id: int, claimant: str, sender: Any) -> TxResult:
    """Burn ``claimant``'s collateral on an invalid job (anyone may send)."""
    return _send("forfeit", pool.forfeit, job_id, claimant, sender=sender)


def record_seed(pool: Any, job_id: int, sender: Any) -> TxResult:
    """Store on-chain job ``job_id``'s seed while ``blockhash`` can read it (anyone)."""
    return _send("recordSeed", pool.recordSeed, job_id, sender=sender)


def set_model_terms(
    pool: Any, model_id: bytes, check_share_bps: int, sampling_bps: int, sender: Any
) -> TxResult:
    """Set a model's check share and VRF sampling rate (the model registry's owner only)."""
    if not 0 <= check_share_bps <= MAX_CHECK_SHARE_BPS or not 0 <= sampling_bps <= vrf.BPS:
        raise ConfigError(
            f"check share must be in 0..{MAX_CHECK_SHARE_BPS} and sampling in 0..{vrf.BPS} bps "
            f"(got {check_share_bps}, {sampling_bps})"
        )
    return _send(
        "setModelTerms", pool.setModelTerms, model_id, check_share_bps, sampling_bps, sender=sender
    )


def claim_status(pool: Any, job_id: int, claimant: str) -> ClaimStatus:
    """The claimant's claim on ``job_id``."""
    return ClaimStatus(int(pool.claimOf(onchain_job_key(job_id), claimant)))


def leaf_claim_status(pool: Any, batch_id: int, index: int, claimant: str) -> ClaimStatus:
    """The claimant's claim on leaf ``index`` of ``batch_id``."""
    return ClaimStatus(int(pool.claimOf(batch_leaf_key(batch_id, index), claimant)))
