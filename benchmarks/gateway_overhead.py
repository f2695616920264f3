"""Latency the gateway proxy adds: the same Chat Completions request sent straight to the
wire-compatible upstream and through `steward dev`'s `/v1/chat/completions`, in the same run.

The upstream and Steward run as subprocesses; this process is only the client (aiohttp).
Sequential median and p99, then throughput and p99 at 50 concurrent clients. Last line:
key=value figures, with LiteLLM's measured 20.3 ms (REFERENCE.md) as the peer reference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
STEWARD = str(Path(sys.executable).with_name("steward"))
LITELLM_ADDED_MS = 20.3
BODY = json.dumps(
    {
        "model": "gpt-4.1-mini",
        "messages": [{"role": "user", "content": "Say something short."}],
        "max_tokens": 32,
    }
).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited early")
        try:
            with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), 0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    async with session.post(url, data=BODY, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}: {await response.text()}")
    return (time.perf_counter() - started) * 1000


async def sequential(url: str, headers: dict[str, str], n: int) -> list[float]:
    async with aiohttp.ClientSession() as session:
        for _ in range(20):  # warm-up: connections, caches
            await one(session, url, headers)
        return [await one(session, url, headers) for _ in range(n)]


async def concurrent(
    url: str, headers: dict[str, str], n: int, clients: int
) -> tuple[float, list[float]]:
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one(session, url, headers) for _ in range(clients)))
        latencies: list[float] = []
        queue = iter(range(n))

        async def worker() -> None:
            for _ in queue:
                latencies.append(await one(session, url, headers))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return n / (time.perf_counter() - started), latencies


async def measure(
    upstream: str, proxy: str, key: str, n: int, n_concurrent: int, clients: int
) -> dict[str, float]:
    direct_url = f"{upstream}/v1/chat/completions"
    proxy_url = f"{proxy}/v1/chat/completions"
    direct_headers = {"content-type": "application/json", "authorization": "Bearer sk-up"}
    proxy_headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    direct = await sequential(direct_url, direct_headers, n)
    via = await sequential(proxy_url, proxy_headers, n)
    direct_rps, direct_c = await concurrent(direct_url, direct_headers, n_concurrent, clients)
    proxy_rps, proxy_c = await concurrent(proxy_url, proxy_headers, n_concurrent, clients)
    added = statistics.median(via) - statistics.median(direct)
    return {
        "seq_direct_median_ms": statistics.median(direct),
        "seq_proxy_median_ms": statistics.median(via),
        "seq_median_added_ms": added,
        "seq_p99_added_ms": percentile(via, 0.99) - percentile(direct, 0.99),
        f"c{clients}_direct_rps": direct_rps,
        f"c{clients}_proxy_rps": proxy_rps,
        f"c{clients}_throughput_ratio": proxy_rps / direct_rps,
        f"c{clients}_direct_p99_ms": percentile(direct_c, 0.99),
        f"c{clients}_proxy_p99_ms": percentile(proxy_c, 0.99),
        "litellm_added_ms": LITELLM_ADDED_MS,
        "litellm_over_steward_added": LITELLM_ADDED_MS / max(added, 1e-3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=400, help="sequential requests per side")
    parser.add_argument("--concurrent-requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="steward-gw-bench-"))
    up_port, proxy_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    env.update(
        STEWARD_HOME=str(home),
        STEWARD_MODEL="local",
        OPENAI_API_KEY="sk-up",
        STEWARD_OPENAI_BASE_URL=f"http://127.0.0.1:{up_port}/v1",
        # The benchmark's one key sends thousands of requests a minute: measure the proxy,
        # not the rate limiter's refusals.
        STEWARD_RATE_LIMIT_PER_MINUTE="10000000",
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        upstream = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "steward.upstream",
                "--port",
                str(up_port),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(upstream)
        key = (
            subprocess.run(
                [STEWARD, "keys", "create", "--name", "bench"],
                env=env,
                cwd=home,
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        server = subprocess.Popen(
            [STEWARD, "dev", str(ROOT / "examples" / "support.py"), "--port", str(proxy_port)],
            env=env,
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(server)
        wait_ready(f"http://127.0.0.1:{up_port}", upstream)
        wait_ready(f"http://127.0.0.1:{proxy_port}", server)
        time.sleep(1.0)
        figures = asyncio.run(
            measure(
                f"http://127.0.0.1:{up_port}",
                f"http://127.0.0.1:{proxy_port}",
                key,
                args.requests,
                args.concurrent_requests,
                args.clients,
            )
        )
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(15)
        shutil.rmtree(home, ignore_errors=True)
    for name, value in figures.items():
        print(f"{name:32s} {value:10.2f}")
    print(" ".join(f"{name}={value:.2f}" for name, value in figures.items()))


if __name__ == "__main__":
    main()
