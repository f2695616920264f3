-- Run once by the postgres image on an empty data directory: the pgvector extension in the
-- steward database, for agents that keep embeddings beside their runs.
CREATE EXTENSION IF NOT EXISTS vector;
