"""Batch jobs: one run per item of a dataset on a chosen agent, durable and resumable."""
