"""Eval suites as code and data: cases under `evals/<agent>/`, scorers, an anchored LLM judge,
runs through the real runtime, a paired comparison against a baseline, and reports."""
