"""Receipts live in core (:mod:`spotcheck.receipts`): one definition for the node that signs
them and the dApps that check them. This module re-exports them for the prover's imports."""

from spotcheck.receipts import (
    ApeSigner,
    KeySigner,
    OnchainReceiptCheck,
    Receipt,
    ReceiptDomain,
    Signer,
    check_receipt_onchain,
    ecdsa_backend,
    recover_signer,
    verify_receipt,
)

__all__ = [
    "ApeSigner",
    "KeySigner",
    "OnchainReceiptCheck",
    "Receipt",
    "ReceiptDomain",
    "Signer",
    "check_receipt_onchain",
    "ecdsa_backend",
    "recover_signer",
    "verify_receipt",
]
