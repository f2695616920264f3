"""RFC 6962 Merkle tree hashing: the audit log's tree head over every record of a tenant.

leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right), the tree split at the
largest power of two below its size; the empty tree hashes to SHA-256 of nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_hash(leaves: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash (RFC 6962 §2.1) of already leaf-hashed entries."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    # Fold complete subtrees left to right (a compact range): the same result as the recursive
    # definition, in O(n) time and O(log n) memory.
    stack: list[tuple[int, bytes]] = []  # (subtree size, hash), sizes strictly decreasing
    for leaf in leaves:
        size, digest = 1, leaf
        while stack and stack[-1][0] == size:
            left_size, left = stack.pop()
            size, digest = left_size + size, node_hash(left, digest)
        stack.append((size, digest))
    _, digest = stack.pop()
    while stack:
        _, left = stack.pop()
        digest = node_hash(left, digest)
    return digest
