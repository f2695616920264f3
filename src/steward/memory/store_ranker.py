"""The long-term store's semantic `query` (`POST /store/items/search` with `query`, LangGraph's
`store.search(query=…)`): candidates ranked by cosine similarity to the query with the memory
layer's embedding model. Memories reuse their indexed vectors; other items are embedded on the
fly (their `text` field, else their JSON), only the newest `MAX_EMBEDDED` of them (a search
embeds at most that many texts); the rest follow, unscored, in the store's order."""

from __future__ import annotations

import json
from dataclasses import replace

from steward.memory.service import MemoryService
from steward.store.items import SEPARATOR, Item

MAX_EMBEDDED = 16


def item_text(item: Item) -> str:
    text = item.value.get("text")
    return text if isinstance(text, str) else json.dumps(item.value, sort_keys=True)


class StoreRanker:
    """A `store.items.SemanticIndex` over the memory service's (local) embedding model."""

    def __init__(self, service: MemoryService) -> None:
        self._service = service

    def rank(self, tenant_id: str, query: str, items: list[Item]) -> list[Item]:
        if not items or not query.strip():
            return items
        semantic = self._service.semantic()
        embed_sync = getattr(semantic.embedder, "embed_sync", None)
        if embed_sync is None:  # a remote model is not called from the store's worker thread
            return items
        keys = [(SEPARATOR.join(i.namespace), i.key) for i in items]
        known = semantic.index.vectors(tenant_id, keys)
        missing = [n for n, k in enumerate(keys) if k not in known][:MAX_EMBEDDED]
        texts = [query] + [semantic.privacy.clean(tenant_id, item_text(items[n])) for n in missing]
        vectors = embed_sync(texts).vectors
        probe = vectors[0]
        found = {keys[n]: v for n, v in zip(missing, vectors[1:], strict=True)}
        found.update(known)
        scored = []
        for ident, item in zip(keys, items, strict=True):
            vector = found.get(ident)
            score = sum(a * b for a, b in zip(probe, vector, strict=True)) if vector else None
            scored.append(replace(item, score=None if score is None else round(score, 6)))
        return sorted(scored, key=lambda i: -(i.score if i.score is not None else -2.0))
