"""The contract of the semantic index (one implementation per database) and what recall
returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class IndexEntry:
    """What the index holds for one memory: already scrubbed text and its vector."""

    tenant_id: str
    namespace: str  # labels joined by '.'
    key: str
    text: str
    metadata: dict[str, Any]
    end_user: str | None
    vector: list[float]


@dataclass(frozen=True)
class Hit:
    namespace: str
    key: str
    text: str
    metadata: dict[str, Any]
    end_user: str | None
    vector_rank: int | None = None  # 0 = nearest
    keyword_rank: int | None = None
    distance: float | None = None


@dataclass(frozen=True)
class Memory:
    id: str
    namespace: tuple[str, ...]
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    score: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "namespace": list(self.namespace),
            "text": self.text,
            "metadata": self.metadata,
            "score": self.score,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Memory:
        return cls(
            id=body["id"],
            namespace=tuple(body["namespace"]),
            text=body["text"],
            metadata=body.get("metadata") or {},
            score=body.get("score"),
        )


class VectorIndex(Protocol):
    """Vectors plus a keyword index over the same rows; every call is scoped to one tenant."""

    dimensions: int

    def upsert(self, entries: Sequence[IndexEntry]) -> None: ...

    def delete(self, tenant_id: str, namespace: str, key: str) -> None: ...

    def delete_namespace(self, tenant_id: str, namespace: str) -> int:
        """Delete the entries at `namespace` and below it."""

    def delete_user(self, tenant_id: str, end_user: str) -> int: ...

    def nearest(
        self, tenant_id: str, vector: Sequence[float], k: int, namespace: str | None
    ) -> list[Hit]:
        """The `k` nearest entries (cosine), nearest first, under `namespace` when given."""

    def keyword(self, tenant_id: str, query: str, k: int, namespace: str | None) -> list[Hit]:
        """The `k` best keyword matches (full-text rank), best first."""

    def vectors(
        self, tenant_id: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], list[float]]:
        """The stored vectors of these (namespace, key) pairs, where present."""

    def count(self, tenant_id: str | None = None) -> int: ...

    def close(self) -> None: ...
