"""Positional Merkle trees over batch leaves (docs/v2-protocol.md, section 3).

Solidity twin: ``SpotcheckHash.merkleRoot`` / ``SpotcheckHash.verify`` and
``JobManager.verifyBatchLeaf``; shared vectors in ``tests/vectors/encoding.json``.

- Depth ``d = ceil(log2(count))`` (``count == 1`` gives ``d = 0``: the root is the leaf).
- Leaves ``0..count-1``, then ``bytes32(0)`` padding up to ``2**d``.
- Inner node ``keccak256(left ++ right)``: ordered pairs, not sorted, so a proof fixes the
  position of its leaf.
- A proof of leaf ``index`` is exactly ``d`` siblings, bottom up; bit ``k`` of ``index`` says
  whether the node at level ``k`` is a right child. It is valid only if ``index < count`` and
  ``len(proof) == d``.

Padding subtrees are never materialised: the hash of an all-padding subtree of height ``h`` is
precomputed (``ZERO_HASHES[h]``), so building costs ``O(count)`` hashes whatever the padding.
"""

from __future__ import annotations

from collections.abc import Sequence

from spotcheck.encoding import keccak256 as keccak
from spotcheck.errors import EncodingError

#: Padding leaf.
ZERO_LEAF = b"\x00" * 32
#: ``ZERO_HASHES[h]``: root of an all-padding subtree of height ``h``.
ZERO_HASHES: list[bytes] = [ZERO_LEAF]
for _ in range(256):
    ZERO_HASHES.append(keccak(ZERO_HASHES[-1] + ZERO_HASHES[-1]))


def hash_node(left: bytes, right: bytes) -> bytes:
    """Inner node: ``keccak256(left ++ right)`` (ordered)."""
    return keccak(left + right)


def tree_depth(count: int) -> int:
    """``ceil(log2(count))`` for ``count >= 1`` (``0`` for a single leaf)."""
    if count < 1:
        raise EncodingError(f"a batch holds at least one leaf, got count={count}")
    return (count - 1).bit_length()


class MerkleTree:
    """The positional tree over ``leaves`` (already hashed, 32 bytes each)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise EncodingError("a Merkle tree needs at least one leaf")
        for i, leaf in enumerate(leaves):
            if len(leaf) != 32:
                raise EncodingError(f"leaf {i} must be 32 bytes, got {len(leaf)}")
        self.depth = tree_depth(len(leaves))
        # levels[h] holds the non-padding nodes at height h; a missing right node is padding.
        self.levels: list[list[bytes]] = [[bytes(leaf) for leaf in leaves]]
        for h in range(self.depth):
            level = self.levels[h]
            nxt = [
                hash_node(level[i], level[i + 1] if i + 1 < len(level) else ZERO_HASHES[h])
                for i in range(0, len(level), 2)
            ]
            self.levels.append(nxt)

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    def __len__(self) -> int:
        return len(self.levels[0])

    def proof(self, index: int) -> list[bytes]:
        """The ``depth`` siblings of leaf ``index``, bottom up."""
        if not 0 <= index < len(self):
            raise EncodingError(f"leaf index {index} outside 0..{len(self) - 1}")
        out: list[bytes] = []
        for h, level in enumerate(self.levels[:-1]):
            sibling = index ^ 1
            out.append(level[sibling] if sibling < len(level) else ZERO_HASHES[h])
            index >>= 1
        return out

    def proofs_json(self) -> list[str]:
        """Every leaf's proof as JSON text (a list of ``0x`` hex siblings, bottom up), equal to
        ``json.dumps(["0x" + s.hex() for s in self.proof(i)])`` for each ``i``; each tree node
        is written as hex once (sealing a batch stores one per leaf)."""
        texts = [[f'"0x{node.hex()}"' for node in level] for level in self.levels[:-1]]
        padding = [f'"0x{ZERO_HASHES[h].hex()}"' for h in range(self.depth)]
        out: list[str] = []
        for index in range(len(self)):
            path, i = [], index
            for h, level in enumerate(texts):
                sibling = i ^ 1
                path.append(level[sibling] if sibling < len(level) else padding[h])
                i >>= 1
            out.append("[" + ", ".join(path) + "]")
        return out


def root_from_proof(leaf: bytes, index: int, proof: Sequence[bytes]) -> bytes:
    """``SpotcheckHash.merkleRoot``: the root ``proof`` rebuilds for ``leaf`` at ``index``."""
    node = bytes(leaf)
    for sibling in proof:
        node = hash_node(sibling, node) if index & 1 else hash_node(node, sibling)
        index >>= 1
    return node


#: Longest receipt path :func:`path_root` accepts (a request of up to 2**32 jobs).
MAX_PATH = 32


def path_root(leaf: bytes, index: int, path: Sequence[bytes]) -> bytes | None:
    """The root ``path`` rebuilds for ``leaf`` at position ``index`` of a tree of depth
    ``len(path)`` (the receipt's sub-root), or None if the path is malformed: longer than
    :data:`MAX_PATH`, a sibling not 32 bytes, or ``index`` outside ``0..2**len(path) - 1``
    (so one leaf has one index per path: a leaf cannot be claimed at another position)."""
    if len(path) > MAX_PATH or not 0 <= index < (1 << len(path)):
        return None
    if len(leaf) != 32 or any(len(s) != 32 for s in path):
        return None
    return root_from_proof(leaf, index, path)


def verify(proof: Sequence[bytes], root: bytes, leaf: bytes, index: int, count: int) -> bool:
    """True iff ``leaf`` is leaf ``index`` of the ``count``-leaf tree with root ``root``.

    Never raises on bad input: a malformed proof (wrong length, bad sibling sizes, index out of
    range, ``count < 1``) is simply not valid.
    """
    if count < 1 or not 0 <= index < count or len(proof) != tree_depth(count):
        return False
    if len(leaf) != 32 or any(len(s) != 32 for s in proof):
        return False
    return root_from_proof(leaf, index, proof) == bytes(root)
