"""Agent versions and their rollout: `steward deploy` stores an agent's code as an immutable
version, any worker loads it per run, and promotion to stable is gated by the version's evals."""
