"""Signed webhooks out: a finished background run's result POSTed to the URL it named.

Signed per Standard Webhooks, retried with backoff, every attempt recorded, SSRF-guarded.
"""
