"""Merkle trees over batch leaves, compatible with OpenZeppelin ``MerkleProof.verify``.

Pairs are hashed commutatively (``keccak(min(a, b) ++ max(a, b))``), so a proof is just the
list of sibling hashes. An odd node at the end of a level is carried up unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_utils import keccak

from spotcheck.errors import EncodingError


def hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


class MerkleTree:
    """A complete tree over ``leaves`` (already hashed, 32 bytes each)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise EncodingError("a Merkle tree needs at least one leaf")
        for i, leaf in enumerate(leaves):
            if len(leaf) != 32:
                raise EncodingError(f"leaf {i} must be 32 bytes, got {len(leaf)}")
        self.levels: list[list[bytes]] = [list(leaves)]
        while len(self.levels[-1]) > 1:
            level = self.levels[-1]
            nxt = [hash_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            self.levels.append(nxt)

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    def __len__(self) -> int:
        return len(self.levels[0])

    def proof(self, index: int) -> list[bytes]:
        if not 0 <= index < len(self):
            raise EncodingError(f"leaf index {index} outside 0..{len(self) - 1}")
        out: list[bytes] = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                out.append(level[sibling])
            index //= 2
        return out


def verify(proof: Sequence[bytes], root: bytes, leaf: bytes) -> bool:
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node == root
