"""Agent memory in three layers behind `ctx.memory`: session values (hot state), durable records
(the long-term store) and semantic memory (vectors + keywords, written through an outbox)."""
