"""RFC 6962 Merkle tree hashing: the audit log's tree head over every record of a tenant.

leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right), the tree split at the
largest power of two below its size; the empty tree hashes to SHA-256 of nothing.

A tree of size n is fully summarised, for appending, by its compact range (the "frontier"):
the roots of its complete subtrees, one per set bit of n, largest (leftmost) first. A checkpoint
stores it, so the next one hashes only the records appended since.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_hash(leaves: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash (RFC 6962 §2.1) of already leaf-hashed entries."""
    return frontier_root(extend_frontier(0, [], leaves))


def subtree_sizes(tree_size: int) -> list[int]:
    """The sizes of the complete subtrees of a tree of `tree_size` leaves, largest first."""
    return [1 << bit for bit in reversed(range(tree_size.bit_length())) if tree_size >> bit & 1]


def extend_frontier(
    tree_size: int, frontier: Sequence[bytes], leaves: Iterable[bytes]
) -> list[bytes]:
    """The frontier of the tree of `tree_size` leaves (whose frontier is given) after appending
    `leaves`: O(new leaves) time, O(log n) memory."""
    sizes = subtree_sizes(tree_size)
    if len(sizes) != len(frontier):
        raise ValueError(f"a tree of {tree_size} leaves has {len(sizes)} subtrees in its frontier")
    stack = list(zip(sizes, frontier, strict=True))  # sizes strictly decreasing
    for leaf in leaves:
        size, digest = 1, leaf
        while stack and stack[-1][0] == size:
            left_size, left = stack.pop()
            size, digest = left_size + size, node_hash(left, digest)
        stack.append((size, digest))
    return [digest for _, digest in stack]


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """The tree head from a frontier: the subtrees joined right to left."""
    if not frontier:
        return EMPTY_ROOT
    digest = frontier[-1]
    for left in reversed(frontier[:-1]):
        digest = node_hash(left, digest)
    return digest
