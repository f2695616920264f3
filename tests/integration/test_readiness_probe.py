"""A readiness check against a database that hangs leaves one thread behind, not one per call."""

from __future__ import annotations

import asyncio
import socket

import psycopg
import pytest

from steward.server.routes.health import SingleFlightProbe


async def test_probes_of_a_hanging_database_share_the_one_check_in_flight() -> None:
    black_hole = socket.socket()  # accepts connections and never says a word
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(64)
    black_hole.setblocking(False)
    port = black_hole.getsockname()[1]

    def ping() -> None:
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/x", connect_timeout=3).close()

    probe = SingleFlightProbe(ping)
    try:
        for _ in range(10):
            with pytest.raises(TimeoutError):
                await probe(0.05)
        await asyncio.sleep(0.2)  # let any connection attempt reach the listener's queue
        accepted = []
        while True:
            try:
                accepted.append(black_hole.accept()[0])
            except BlockingIOError:
                break
        assert len(accepted) == 1
        for conn in accepted:
            conn.close()
        with pytest.raises(psycopg.OperationalError):  # the check in flight ends by itself
            await probe(10)
    finally:
        black_hole.close()
