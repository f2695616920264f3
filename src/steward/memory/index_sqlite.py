"""The embedded semantic index: sqlite-vec (`vec0`, cosine KNN partitioned by tenant) and FTS5
in a SQLite file of its own beside Steward's database.

This Python's `sqlite3` cannot load extensions, so the index talks to the file through
`pysqlite3` (a newer SQLite with extension loading). A file of its own keeps Steward's main
database readable by the stdlib driver, which does not know the `vec0` module.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from steward.memory.types import Hit, IndexEntry

_WORD = re.compile(r"\w+", re.UNICODE)
# Words too common to say what a memory is about (PostgreSQL's 'english' configuration drops
# the same kind itself); FTS5 has no stop list. One string reads better than a list of 150.
STOPWORDS = frozenset(
    (  # noqa: SIM905
        "a about above after again all am an and any are as at be because been before being below"
        " between both but by can could did do does doing down during each few for from further"
        " had has have having he her here hers herself him himself his how i if in into is it its"
        " itself just me more most my myself no nor not now of off on once only or other our ours"
        " ourselves out over own same she should so some such than that the their theirs them"
        " themselves then there these they this those through to too under until up very was we"
        " were what when where which while who whom why will with would you your yours yourself"
        " yourselves"
    ).split()
)


def keyword_terms(query: str, limit: int = 32) -> list[str]:
    """The distinct words of a query, lower-cased, at most `limit`."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower()):
        if len(word) > 1 and word not in STOPWORDS:
            seen.setdefault(word, None)
    return list(seen)[:limit]


class SqliteVecIndex:
    def __init__(self, path: str, dimensions: int) -> None:
        try:
            import pysqlite3.dbapi2 as sqlite
            import sqlite_vec
        except ImportError as exc:
            from steward.errors import ConfigError

            raise ConfigError(
                "semantic memory on SQLite needs `pip install pysqlite3-binary sqlite-vec` "
                "(install Steward's `memory` extra)"
            ) from exc
        self.dimensions = dimensions
        self._conn: Any = sqlite.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.enable_load_extension(True)
        sqlite_vec.load(self._conn)
        self._conn.enable_load_extension(False)
        self._lock = threading.Lock()
        self._conn.execute("PRAGMA busy_timeout=10000")
        if path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
        # Erased text must not linger in freed pages of the file.
        self._conn.execute("PRAGMA secure_delete=ON")
        with self._write() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS memory_entries (id INTEGER PRIMARY KEY,"
                " tenant_id TEXT NOT NULL, namespace TEXT NOT NULL, key TEXT NOT NULL,"
                " end_user TEXT, text TEXT NOT NULL, metadata TEXT NOT NULL,"
                " UNIQUE (tenant_id, namespace, key))"
            )
            c.execute(
                "CREATE INDEX IF NOT EXISTS memory_entries_user ON memory_entries"
                " (tenant_id, end_user)"
            )
            c.execute(
                "CREATE VIRTUAL TABLE IF NOT EXISTS memory_vectors USING vec0("
                f"tenant_id TEXT PARTITION KEY, embedding FLOAT[{dimensions}]"
                " distance_metric=cosine)"
            )
            c.execute(
                "CREATE VIRTUAL TABLE IF NOT EXISTS memory_keywords USING fts5(tenant, text,"
                " tokenize='porter unicode61')"
            )

    @contextmanager
    def _write(self) -> Iterator[Any]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def upsert(self, entries: Sequence[IndexEntry]) -> None:
        from sqlite_vec import serialize_float32

        with self._write() as c:
            for e in entries:
                row = c.execute(
                    "SELECT id FROM memory_entries WHERE tenant_id=? AND namespace=? AND key=?",
                    (e.tenant_id, e.namespace, e.key),
                ).fetchone()
                if row is not None:
                    self._remove(c, [row[0]])
                cursor = c.execute(
                    "INSERT INTO memory_entries (tenant_id, namespace, key, end_user, text,"
                    " metadata) VALUES (?, ?, ?, ?, ?, ?)",
                    (e.tenant_id, e.namespace, e.key, e.end_user, e.text, json.dumps(e.metadata)),
                )
                rowid = cursor.lastrowid
                c.execute(
                    "INSERT INTO memory_vectors (rowid, tenant_id, embedding) VALUES (?, ?, ?)",
                    (rowid, e.tenant_id, serialize_float32(e.vector)),
                )
                c.execute(
                    "INSERT INTO memory_keywords (rowid, tenant, text) VALUES (?, ?, ?)",
                    (rowid, _tenant_token(e.tenant_id), e.text),
                )

    @staticmethod
    def _remove(c: Any, ids: Sequence[int]) -> None:
        for rowid in ids:
            c.execute("DELETE FROM memory_entries WHERE id=?", (rowid,))
            c.execute("DELETE FROM memory_vectors WHERE rowid=?", (rowid,))
            c.execute("DELETE FROM memory_keywords WHERE rowid=?", (rowid,))

    def _delete_where(self, where: str, args: tuple[Any, ...]) -> int:
        with self._write() as c:
            ids = [r[0] for r in c.execute(f"SELECT id FROM memory_entries WHERE {where}", args)]
            self._remove(c, ids)
            if ids:
                # Merge FTS segments so deleted terms leave the index's pages, not only its view.
                c.execute("INSERT INTO memory_keywords(memory_keywords) VALUES ('optimize')")
        return len(ids)

    def delete(self, tenant_id: str, namespace: str, key: str) -> None:
        self._delete_where("tenant_id=? AND namespace=? AND key=?", (tenant_id, namespace, key))

    def delete_namespace(self, tenant_id: str, namespace: str) -> int:
        return self._delete_where(
            "tenant_id=? AND (namespace=? OR substr(namespace, 1, ?)=?)",
            (tenant_id, namespace, len(namespace) + 1, namespace + "."),
        )

    def delete_user(self, tenant_id: str, end_user: str) -> int:
        return self._delete_where("tenant_id=? AND end_user=?", (tenant_id, end_user))

    def _hits(self, ranked: Sequence[tuple[int, float | None]], field: str) -> list[Hit]:
        if not ranked:
            return []
        ids = [rowid for rowid, _ in ranked]
        marks = ",".join("?" * len(ids))
        rows = {
            r[0]: r
            for r in self._conn.execute(
                "SELECT id, namespace, key, text, metadata, end_user FROM memory_entries"
                f" WHERE id IN ({marks})",
                ids,
            )
        }
        hits = []
        for rank, (rowid, distance) in enumerate(ranked):
            r = rows.get(rowid)
            if r is None:
                continue
            hits.append(
                Hit(
                    namespace=r[1],
                    key=r[2],
                    text=r[3],
                    metadata=json.loads(r[4]),
                    end_user=r[5],
                    distance=distance,
                    **{field: rank},
                )
            )
        return hits

    def nearest(
        self, tenant_id: str, vector: Sequence[float], k: int, namespace: str | None
    ) -> list[Hit]:
        from sqlite_vec import serialize_float32

        with self._lock:
            ranked = [
                (int(r[0]), float(r[1]))
                for r in self._conn.execute(
                    "SELECT rowid, distance FROM memory_vectors WHERE embedding MATCH ?"
                    " AND k = ? AND tenant_id = ? ORDER BY distance",
                    (serialize_float32(list(vector)), k, tenant_id),
                )
            ]
            hits = self._hits(ranked, "vector_rank")
        return _under(hits, namespace)

    def keyword(self, tenant_id: str, query: str, k: int, namespace: str | None) -> list[Hit]:
        terms = keyword_terms(query)
        if not terms:
            return []
        words = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        # The tenant is a token of its own column, so FTS5 filters and ranks in one index walk.
        match = f"tenant:{_tenant_token(tenant_id)} AND text:({words})"
        with self._lock:
            ranked: list[tuple[int, float | None]] = [
                (int(r[0]), None)
                for r in self._conn.execute(
                    "SELECT rowid FROM memory_keywords WHERE memory_keywords MATCH ?"
                    " ORDER BY rank LIMIT ?",
                    (match, k),
                )
            ]
            hits = self._hits(ranked, "keyword_rank")
        return _under(hits, namespace)

    def vectors(
        self, tenant_id: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], list[float]]:
        import numpy as np

        found: dict[tuple[str, str], list[float]] = {}
        with self._lock:
            for namespace, key in keys:
                row = self._conn.execute(
                    "SELECT v.embedding FROM memory_entries e JOIN memory_vectors v"
                    " ON v.rowid = e.id WHERE e.tenant_id=? AND e.namespace=? AND e.key=?",
                    (tenant_id, namespace, key),
                ).fetchone()
                if row is not None:
                    found[(namespace, key)] = np.frombuffer(row[0], dtype=np.float32).tolist()
        return found

    def count(self, tenant_id: str | None = None) -> int:
        with self._lock:
            if tenant_id is None:
                row = self._conn.execute("SELECT count(*) FROM memory_entries").fetchone()
            else:
                row = self._conn.execute(
                    "SELECT count(*) FROM memory_entries WHERE tenant_id=?", (tenant_id,)
                ).fetchone()
        return int(row[0])

    def raw_rows(self, tenant_id: str) -> list[str]:
        """Every text the index holds for a tenant, in its entries and its keyword table (for
        audits and tests of erasure)."""
        with self._lock:
            texts = [
                r[0]
                for r in self._conn.execute(
                    "SELECT text FROM memory_entries WHERE tenant_id=?", (tenant_id,)
                )
            ]
            orphans = self._conn.execute(
                "SELECT count(*) FROM memory_keywords WHERE rowid NOT IN"
                " (SELECT id FROM memory_entries)"
            ).fetchone()[0]
            vectors = self._conn.execute(
                "SELECT count(*) FROM memory_vectors WHERE tenant_id=?", (tenant_id,)
            ).fetchone()[0]
        return (
            texts
            + ["<orphan keyword row>"] * int(orphans)
            + ["<vector>"] * (int(vectors) - len(texts))
        )

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _tenant_token(tenant_id: str) -> str:
    """One FTS5 token per tenant, whatever characters its id holds."""
    return "t" + tenant_id.encode().hex()


def _under(hits: list[Hit], namespace: str | None) -> list[Hit]:
    if not namespace:
        return hits
    return [h for h in hits if h.namespace == namespace or h.namespace.startswith(namespace + ".")]
