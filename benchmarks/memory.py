"""Semantic memory: recall latency at 10k and 100k memories on SQLite (sqlite-vec + FTS5) and
PostgreSQL (pgvector HNSW + full text), and the write-through lag of `remember`.

    .venv/bin/python benchmarks/memory.py [--sizes 10000,100000] [--queries 200]

The scale test loads the index directly with synthetic texts and RANDOM UNIT VECTORS (embedding
100k texts with the real model takes ~30 min on 2 cores): only the query path is measured there
(vector KNN + keyword search + fusion, the query already embedded). Baseline, same run: exact
brute-force cosine over the same vectors in NumPy; `pg_recall_at_5` is how many of the exact top
5 pgvector's approximate HNSW search returns. The write-through lag (durable commit to index
visible) uses the real local model, as does `embed_query_ms`. Figures on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from sqlalchemy import text

from steward.memory.service import MemoryService
from steward.memory.types import IndexEntry
from steward.store import migrate
from steward.store.database import Database
from steward.store.hot import MemoryHotState
from steward.store.items import ItemStore

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
WORDS = (  # noqa: SIM905
    "invoice harbour tennis garden violin kernel marathon risotto lisbon glacier satellite"
    " orchid ledger compass falcon quartz meadow lantern canyon velvet saffron"
).split()
DIM = 384
_SYLLABLES = ["ka", "lo", "mi", "ru", "te", "ven", "sor", "qui", "bal", "dre"]
VOCABULARY = ["".join(_SYLLABLES[(n // 10**d) % 10] for d in range(5)) for n in range(20_000)]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def synthetic(n: int, seed: int) -> tuple[np.ndarray[Any, Any], list[str]]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    # Words drawn from a Zipf law over a 20,000-word vocabulary, as in real text; a few named
    # words (WORDS) ride along so keyword queries have common and rare terms to find.
    picks = np.minimum(rng.zipf(1.1, size=(n, 12)), len(VOCABULARY)) - 1
    texts = [
        f"note {i} {WORDS[i % len(WORDS)]} " + " ".join(VOCABULARY[j] for j in row)
        for i, row in enumerate(picks)
    ]
    return vectors, texts


def load(service: MemoryService, vectors: np.ndarray[Any, Any], texts: list[str]) -> float:
    """Bulk-load the index (PostgreSQL: rows first, then the HNSW build); seconds taken."""
    index = service.semantic().index
    started = time.perf_counter()
    pg = not service.db.is_sqlite
    table = getattr(index, "table", "")
    if pg:
        with service.db.engine.begin() as c:
            c.execute(text(f"DROP INDEX IF EXISTS {table}_hnsw"))
    batch = 2000
    for start in range(0, len(texts), batch):
        index.upsert(
            [
                IndexEntry("bench", "notes", f"k{i}", texts[i], {"i": i}, None, vectors[i].tolist())
                for i in range(start, min(start + batch, len(texts)))
            ]
        )
    if pg:
        with service.db.engine.begin() as c:
            c.execute(text("SET maintenance_work_mem = '512MB'"))
            c.execute(
                text(
                    f"CREATE INDEX {table}_hnsw ON {table} USING hnsw (embedding vector_cosine_ops)"
                )
            )
            c.execute(text(f"ANALYZE {table}"))
    return time.perf_counter() - started


def query_latency(
    service: MemoryService, vectors: np.ndarray[Any, Any], queries: int, seed: int
) -> dict[str, float]:
    semantic = service.semantic()
    rng = np.random.default_rng(seed)
    probes = rng.standard_normal((queries, DIM)).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    # Two content words of middling frequency (the commonest ones act as stop words, which
    # the keyword search drops from real queries).
    words = [
        " ".join(VOCABULARY[int(r)] for r in rng.integers(50, 5000, 2)) for _ in range(queries)
    ]
    hybrid, exact, found = [], [], 0
    for q, probe in enumerate(probes):
        started = time.perf_counter()
        result = semantic._recall("bench", words[q], probe.tolist(), 5, None, None)
        hybrid.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        truth = np.argpartition(-(vectors @ probe), 5)[:5]
        exact.append((time.perf_counter() - started) * 1000)
        near = semantic.index.nearest("bench", probe.tolist(), 5, None)
        found += len({f"k{i}" for i in truth} & {h.key for h in near})
        assert result  # every query answers
    return {
        "p50": statistics.median(hybrid),
        "p99": pct(hybrid, 0.99),
        "exact_p50": statistics.median(exact),
        "recall_at_5": found / (5 * queries),
    }


async def write_lag(service: MemoryService, count: int) -> tuple[float, float, float]:
    """(p50, p99 ms from durable commit to index visible, p50 ms of one query embedding)."""
    semantic = service.semantic()
    lags = []
    for i in range(count):
        ids = await asyncio.to_thread(
            semantic._write,
            "lag",
            ("memories",),
            uuid.uuid4().hex,
            {"kind": "memory", "text": f"memory number {i} about {WORDS[i % len(WORDS)]}"},
            None,
        )
        started = time.perf_counter()
        await semantic.apply(ids)
        lags.append((time.perf_counter() - started) * 1000)
    embeds = []
    for i in range(count):
        started = time.perf_counter()
        await semantic.embedder.embed([f"what do I know about {WORDS[i % len(WORDS)]}?"])
        embeds.append((time.perf_counter() - started) * 1000)
    return statistics.median(lags), pct(lags, 0.99), statistics.median(embeds)


def service_for(url: str) -> MemoryService:
    migrate.upgrade(url)
    db = Database(url)
    return MemoryService(db, ItemStore(db), MemoryHotState())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--lag-writes", type=int, default=20)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        "scale test: synthetic texts with RANDOM UNIT VECTORS (not embedded); query path only",
        file=sys.stderr,
    )
    figures: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for store in ("sqlite", "pg"):
            for size in sizes:
                name = f"steward_bench_mem_{uuid.uuid4().hex[:8]}"
                if store == "pg":
                    with psycopg.connect(ADMIN, autocommit=True) as conn:
                        conn.execute(f'CREATE DATABASE "{name}"')
                    url = ADMIN.rsplit("/", 1)[0] + "/" + name
                else:
                    url = f"sqlite:///{Path(tmp) / name}.db"
                service = service_for(url)
                try:
                    vectors, texts = synthetic(size, seed=size)
                    loaded = load(service, vectors, texts)
                    stats = query_latency(service, vectors, args.queries, seed=7)
                    label = f"{store}_{size // 1000}k"
                    print(
                        f"{label}: load {loaded:.1f}s, recall p50 {stats['p50']:.2f} ms,"
                        f" p99 {stats['p99']:.2f} ms, exact numpy p50 {stats['exact_p50']:.2f} ms,"
                        f" vector recall@5 {stats['recall_at_5']:.3f}",
                        file=sys.stderr,
                    )
                    figures[f"{label}_p50_ms"] = f"{stats['p50']:.2f}"
                    figures[f"{label}_p99_ms"] = f"{stats['p99']:.2f}"
                    figures[f"{label}_numpy_exact_p50_ms"] = f"{stats['exact_p50']:.2f}"
                    figures[f"{label}_recall_at_5"] = f"{stats['recall_at_5']:.3f}"
                    if size == sizes[0]:
                        lag50, lag99, embed50 = asyncio.run(write_lag(service, args.lag_writes))
                        figures[f"{store}_write_through_lag_p50_ms"] = f"{lag50:.1f}"
                        figures[f"{store}_write_through_lag_p99_ms"] = f"{lag99:.1f}"
                        figures["embed_query_p50_ms"] = f"{embed50:.1f}"
                finally:
                    service.close()
                    service.db.dispose()
                    if store == "pg":
                        with psycopg.connect(ADMIN, autocommit=True) as conn:
                            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    figures["scale_vectors"] = "random_unit"
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
