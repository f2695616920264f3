"""The scale-out semantic index: pgvector (HNSW, cosine) and PostgreSQL full-text search on one
table in Steward's database, created on first use (its width follows the embedding model)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from steward.errors import ConfigError
from steward.memory.index_sqlite import keyword_terms
from steward.memory.types import Hit, IndexEntry
from steward.store.database import Database

_COLUMNS = "namespace, key, text, metadata, end_user"


def _literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


class PgVectorIndex:
    def __init__(self, db: Database, dimensions: int, *, ef_search: int = 100) -> None:
        self.db = db
        self.dimensions = dimensions
        self.table = f"memory_vectors_{int(dimensions)}"
        self._ef_search = int(ef_search)
        t = self.table
        try:
            with db.engine.begin() as c:
                # One creator at a time: concurrent CREATE … IF NOT EXISTS can still collide.
                c.execute(text("SELECT pg_advisory_xact_lock(hashtext(:t))"), {"t": t})
                c.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
                c.execute(
                    text(
                        f"CREATE TABLE IF NOT EXISTS {t} (id BIGSERIAL PRIMARY KEY,"
                        " tenant_id VARCHAR(64) NOT NULL, namespace VARCHAR(1000) NOT NULL,"
                        " key VARCHAR(1000) NOT NULL, end_user VARCHAR(200), text TEXT NOT NULL,"
                        f" metadata JSONB NOT NULL, embedding vector({int(dimensions)}) NOT NULL,"
                        " keywords tsvector GENERATED ALWAYS AS (to_tsvector('english', text))"
                        " STORED, UNIQUE (tenant_id, namespace, key))"
                    )
                )
                c.execute(
                    text(
                        f"CREATE INDEX IF NOT EXISTS {t}_hnsw ON {t}"
                        " USING hnsw (embedding vector_cosine_ops)"
                    )
                )
                c.execute(text(f"CREATE INDEX IF NOT EXISTS {t}_fts ON {t} USING gin (keywords)"))
                c.execute(text(f"CREATE INDEX IF NOT EXISTS {t}_user ON {t} (tenant_id, end_user)"))
        except DBAPIError as exc:
            raise ConfigError(
                "semantic memory on PostgreSQL needs the pgvector extension "
                "(scripts/ensure-services builds it for PostgreSQL 15)"
            ) from exc

    def upsert(self, entries: Sequence[IndexEntry]) -> None:
        if not entries:
            return
        with self.db.engine.begin() as c:
            for e in entries:
                c.execute(
                    text(
                        f"INSERT INTO {self.table} (tenant_id, namespace, key, end_user, text,"
                        " metadata, embedding) VALUES (:tenant, :ns, :key, :user, :text,"
                        " CAST(:meta AS jsonb), CAST(:vec AS vector)) ON CONFLICT"
                        " (tenant_id, namespace, key) DO UPDATE SET end_user = EXCLUDED.end_user,"
                        " text = EXCLUDED.text, metadata = EXCLUDED.metadata,"
                        " embedding = EXCLUDED.embedding"
                    ),
                    {
                        "tenant": e.tenant_id,
                        "ns": e.namespace,
                        "key": e.key,
                        "user": e.end_user,
                        "text": e.text,
                        "meta": json.dumps(e.metadata),
                        "vec": _literal(e.vector),
                    },
                )

    def _delete(self, where: str, args: dict[str, Any]) -> int:
        with self.db.engine.begin() as c:
            result = c.execute(text(f"DELETE FROM {self.table} WHERE {where}"), args)
            return int(result.rowcount or 0)

    def delete(self, tenant_id: str, namespace: str, key: str) -> None:
        self._delete(
            "tenant_id = :t AND namespace = :ns AND key = :k",
            {"t": tenant_id, "ns": namespace, "k": key},
        )

    def delete_namespace(self, tenant_id: str, namespace: str) -> int:
        return self._delete(
            "tenant_id = :t AND (namespace = :ns OR left(namespace, :n) = :prefix)",
            {"t": tenant_id, "ns": namespace, "n": len(namespace) + 1, "prefix": namespace + "."},
        )

    def delete_user(self, tenant_id: str, end_user: str) -> int:
        return self._delete("tenant_id = :t AND end_user = :u", {"t": tenant_id, "u": end_user})

    @staticmethod
    def _scope(namespace: str | None) -> tuple[str, dict[str, Any]]:
        if not namespace:
            return "", {}
        return (
            " AND (namespace = :ns OR left(namespace, :n) = :prefix)",
            {"ns": namespace, "n": len(namespace) + 1, "prefix": namespace + "."},
        )

    def nearest(
        self, tenant_id: str, vector: Sequence[float], k: int, namespace: str | None
    ) -> list[Hit]:
        scope, args = self._scope(namespace)
        with self.db.engine.begin() as c:
            # Filtered HNSW scans keep walking the graph until `k` rows pass the filter.
            c.execute(text(f"SET LOCAL hnsw.ef_search = {max(self._ef_search, k)}"))
            c.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            rows = c.execute(
                text(
                    f"SELECT {_COLUMNS}, embedding <=> CAST(:vec AS vector) AS distance"
                    f" FROM {self.table} WHERE tenant_id = :t{scope}"
                    " ORDER BY distance LIMIT :k"
                ),
                {"vec": _literal(vector), "t": tenant_id, "k": k, **args},
            ).all()
        return [_hit(r, vector_rank=i, distance=float(r[5])) for i, r in enumerate(rows)]

    def keyword(self, tenant_id: str, query: str, k: int, namespace: str | None) -> list[Hit]:
        terms = keyword_terms(query)
        if not terms:
            return []
        scope, args = self._scope(namespace)
        with self.db.engine.begin() as c:
            rows = c.execute(
                text(
                    f"WITH q AS (SELECT to_tsquery('english', :terms) AS query)"
                    f" SELECT {_COLUMNS} FROM {self.table}, q WHERE tenant_id = :t{scope}"
                    " AND keywords @@ q.query ORDER BY ts_rank(keywords, q.query) DESC LIMIT :k"
                ),
                {
                    "terms": " | ".join("'" + t.replace("'", "''") + "'" for t in terms),
                    "t": tenant_id,
                    "k": k,
                    **args,
                },
            ).all()
        return [_hit(r, keyword_rank=i) for i, r in enumerate(rows)]

    def vectors(
        self, tenant_id: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], list[float]]:
        found: dict[tuple[str, str], list[float]] = {}
        with self.db.engine.begin() as c:
            for namespace, key in keys:
                row = c.execute(
                    text(
                        f"SELECT embedding::text FROM {self.table}"
                        " WHERE tenant_id = :t AND namespace = :ns AND key = :k"
                    ),
                    {"t": tenant_id, "ns": namespace, "k": key},
                ).first()
                if row is not None:
                    found[(namespace, key)] = [float(x) for x in row[0].strip("[]").split(",")]
        return found

    def count(self, tenant_id: str | None = None) -> int:
        with self.db.engine.begin() as c:
            if tenant_id is None:
                return int(c.execute(text(f"SELECT count(*) FROM {self.table}")).scalar_one())
            return int(
                c.execute(
                    text(f"SELECT count(*) FROM {self.table} WHERE tenant_id = :t"),
                    {"t": tenant_id},
                ).scalar_one()
            )

    def raw_rows(self, tenant_id: str) -> list[str]:
        with self.db.engine.begin() as c:
            return [
                str(r[0])
                for r in c.execute(
                    text(f"SELECT text FROM {self.table} WHERE tenant_id = :t"), {"t": tenant_id}
                )
            ]

    def close(self) -> None:
        return None


def _hit(row: Any, **ranks: Any) -> Hit:
    metadata = row[3] if isinstance(row[3], dict) else json.loads(row[3])
    return Hit(
        namespace=row[0], key=row[1], text=row[2], metadata=metadata, end_user=row[4], **ranks
    )
