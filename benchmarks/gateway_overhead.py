"""What the gateway proxy costs: the same Chat Completions request sent straight to the
wire-compatible upstream and through `steward dev`'s `/v1/chat/completions`, in the same run.

Two proxy cases: an *unpriced* model from a tenant with no spend caps (auth, limits, forward,
span, ledger row), and a *priced* model (`gpt-4.1-mini`) from a tenant with a monthly cap, so
every request also reserves against the spend counters before the call and settles after.

Figures, all measured in this run: sequential added latency (median of proxy minus median of
direct, requests interleaved in rounds so drift hits both sides), server CPU per request (user +
system time of the `steward dev` process tree from /proc, over each phase), and req/s with p99
at `--clients` concurrent clients. The direct run at the same concurrency is the harness
ceiling: load generator and upstream alone on this machine, which the proxy shares with them.

`--litellm-venv DIR` also runs a LiteLLM proxy from that virtualenv (never a Steward dependency)
against the same upstream and reports its figures with a `litellm_` prefix. Without it no peer
figure is printed: published peer figures are references in the README, not measurements.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
STEWARD = str(Path(sys.executable).with_name("steward"))
UNPRICED_MODEL = "bench-unpriced"  # not in the price table: estimate 0, no caps to reserve
PRICED_MODEL = "gpt-4.1-mini"
PRICED_TENANT = "priced"
CLOCK_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def body(model: str) -> bytes:
    return json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": "Say something short."}],
            "max_tokens": 32,
        }
    ).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited early")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the server on port {port} did not start")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def process_tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid` and its live descendants (all threads included)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state, ppid, ... utime is field 14 and stime 15 of stat(5).
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) * CLOCK_TICK_S
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(times.get(p, 0.0) for p in tree)


@dataclass
class Side:
    """One way to reach the upstream: straight, or through a proxy process we can meter."""

    name: str
    url: str
    headers: dict[str, str]
    payload: bytes
    pid: int | None = None  # the proxy process whose CPU we meter


async def one(session: aiohttp.ClientSession, side: Side) -> float:
    started = time.perf_counter()
    async with session.post(side.url, data=side.payload, headers=side.headers) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"{side.name} answered {response.status}: {await response.text()}")
    return (time.perf_counter() - started) * 1000


async def sequential(sides: list[Side], n: int, rounds: int, out: dict[str, float]) -> None:
    """`n` requests per side, interleaved in `rounds` blocks so drift affects every side."""
    latencies: dict[str, list[float]] = {s.name: [] for s in sides}
    cpu: dict[str, float] = {s.name: 0.0 for s in sides}
    async with aiohttp.ClientSession() as session:
        for side in sides:
            for _ in range(50):  # warm-up: connections, caches, the key cache
                await one(session, side)
        for _ in range(rounds):
            for side in sides:
                before = process_tree_cpu_s(side.pid) if side.pid else 0.0
                for _ in range(n // rounds):
                    latencies[side.name].append(await one(session, side))
                if side.pid:
                    cpu[side.name] += process_tree_cpu_s(side.pid) - before
    direct = statistics.median(latencies["direct"])
    out["seq_direct_median_ms"] = direct
    for side in sides:
        if side.name == "direct":
            continue
        median = statistics.median(latencies[side.name])
        out[f"seq_{side.name}_median_ms"] = median
        out[f"seq_{side.name}_added_ms"] = median - direct
        out[f"seq_{side.name}_cpu_ms_per_req"] = cpu[side.name] * 1000 / len(latencies[side.name])


async def concurrent(side: Side, n: int, clients: int, out: dict[str, float]) -> None:
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one(session, side) for _ in range(clients)))
        latencies: list[float] = []
        queue = iter(range(n))

        async def worker() -> None:
            for _ in queue:
                latencies.append(await one(session, side))

        before = process_tree_cpu_s(side.pid) if side.pid else 0.0
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
        if side.pid:
            used = process_tree_cpu_s(side.pid) - before
            out[f"c{clients}_{side.name}_cpu_ms_per_req"] = used * 1000 / n
    out[f"c{clients}_{side.name}_rps"] = n / elapsed
    out[f"c{clients}_{side.name}_p50_ms"] = statistics.median(latencies)
    out[f"c{clients}_{side.name}_p99_ms"] = percentile(latencies, 0.99)


async def measure(sides: list[Side], args: argparse.Namespace) -> dict[str, float]:
    out: dict[str, float] = {"machine_load_1m": os.getloadavg()[0]}
    # What each proxy burns with no request at all (background threads): part of every
    # per-request CPU figure below, at a share that falls as the request rate rises.
    metered = {s.pid: s.name for s in reversed(sides) if s.pid}
    before = {pid: process_tree_cpu_s(pid) for pid in metered}
    await asyncio.sleep(args.idle_s)
    for pid, name in metered.items():
        owner = "litellm" if name == "litellm" else "steward"
        used = process_tree_cpu_s(pid) - before[pid]
        out[f"{owner}_idle_cpu_ms_per_s"] = used * 1000 / args.idle_s
    await sequential(sides, args.requests, args.rounds, out)
    for side in sides:
        spies = profile(side, args.profile)
        try:
            await concurrent(side, args.concurrent_requests, args.clients, out)
        finally:
            for spy in spies:
                spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            for spy in spies:
                spy.wait(60)
    ceiling = out[f"c{args.clients}_direct_rps"]
    for side in sides:
        if side.name != "direct":
            out[f"c{args.clients}_{side.name}_over_ceiling"] = (
                out[f"c{args.clients}_{side.name}_rps"] / ceiling
            )
    return out


def profile(side: Side, directory: Path | None) -> list[subprocess.Popen[bytes]]:
    """py-spy (needs root or ptrace rights) over the side's concurrent phase, if asked: a flame
    graph (`gateway-<side>.svg`) and the collapsed stacks it draws (`.txt`, for tallying)."""
    if directory is None or side.pid is None or side.name == "litellm":
        return []
    directory.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    spies = []
    for fmt, suffix in (("flamegraph", "svg"), ("raw", "txt")):
        out = directory / f"gateway-{side.name}.{suffix}"
        cmd = [spy, "record", "--pid", str(side.pid), "--output", str(out), "--format", fmt]
        spies.append(subprocess.Popen([*cmd, "--rate", "100"], stdout=subprocess.DEVNULL))
    time.sleep(1.0)  # let them attach before the load starts
    return spies


# Where a sampled stack's time belongs: the deepest frame matching one of these (in stack order)
# names the layer, so SQLAlchemy under the key lookup counts as authentication.
LAYERS = (
    ("asyncio/", "event loop"),
    ("uvicorn/", "HTTP server (uvicorn, httptools)"),
    ("starlette/", "Starlette/FastAPI routing and middleware"),
    ("fastapi/", "Starlette/FastAPI routing and middleware"),
    ("steward/server/outage.py", "Steward middleware (outage, guard, idempotency)"),
    ("steward/server/guards.py", "Steward middleware (outage, guard, idempotency)"),
    ("steward/server/idempotency.py", "Steward middleware (outage, guard, idempotency)"),
    ("steward/server/auth.py", "auth gate"),
    ("KeyStore.", "auth: key lookup"),
    ("rate_limit", "rate limits"),
    ("steward/server/routes/proxy.py", "proxy route (parse, validate)"),
    ("steward/models/gateway.py", "gateway bookkeeping (spans, metrics, pricing)"),
    ("opentelemetry/", "gateway bookkeeping (spans, metrics, pricing)"),
    ("prometheus_client/", "gateway bookkeeping (spans, metrics, pricing)"),
    ("steward/models/budget/", "spend reservation and settlement"),
    ("steward/store/spend.py", "spend ledger"),
    ("steward/models/passthrough.py", "upstream forward (aiohttp)"),
    ("aiohttp/", "upstream forward (aiohttp)"),
    ("json/", "JSON"),
    ("BatchProcessor.", "span export thread (redaction, trace store)"),
    ("concurrent/futures/thread.py", "thread pool hand-off"),
    ("Thread._bootstrap (threading.py", "thread pool hand-off"),
    ("dbos/", "DBOS background threads"),
    ("steward/durable/", "DBOS background threads"),
    ("steward/audit/", "audit writer thread"),
)
# py-spy cannot always tell a blocked thread from a running one: stacks ending in these waits
# are idle, not CPU, and are left out of the shares.
IDLE_LEAVES = (
    "Condition.wait (threading.py",
    "_worker (concurrent/futures/thread.py:81)",  # a pool thread waiting for work
    "EpollSelector.select (selectors.py",
    "Runner.run (asyncio/runners.py",  # uvloop's loop waiting, in C
    "._notification_listener_polling (dbos/_sys_db.py:4250)",  # time.sleep
    "BackgroundRecorder._write (steward/audit/background.py:41)",  # queue.get
)


def tally(collapsed: Path) -> list[tuple[str, float]]:
    """Share of busy samples per layer in py-spy's collapsed stacks (`frame;frame;... count`)."""
    counts: dict[str, int] = {}
    for line in collapsed.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        leaf = stack.split(";")[-1]
        if any(idle in leaf for idle in IDLE_LEAVES):
            continue
        layer = "other"
        for frame in stack.split(";"):
            for needle, name in LAYERS:
                if needle in frame:
                    layer = name
                    break
        counts[layer] = counts.get(layer, 0) + int(number)
    total = sum(counts.values()) or 1
    return sorted(((k, 100 * v / total) for k, v in counts.items()), key=lambda kv: -kv[1])


def start(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT)


def create_key(env: dict[str, str], home: Path, *options: str) -> str:
    done = subprocess.run(
        [STEWARD, "keys", "create", "--name", "bench", *options],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


LITELLM_KEY = "sk-bench-" + "0" * 32  # its proxy refuses to start without a master key


def litellm_config(home: Path, upstream: str) -> Path:
    path = home / "litellm.yaml"
    path.write_text(
        f"general_settings:\n  master_key: {LITELLM_KEY}\n"
        "model_list:\n"
        f"  - model_name: {UNPRICED_MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{UNPRICED_MODEL}\n"
        f"      api_base: {upstream}/v1\n"
        "      api_key: sk-up\n"
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=600, help="sequential requests per side")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved sequential blocks")
    parser.add_argument("--concurrent-requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--idle-s", type=float, default=3.0, help="idle CPU sampling window")
    parser.add_argument(
        "--litellm-venv",
        type=Path,
        default=None,
        help="a virtualenv with litellm[proxy] installed: measure it in the same run too",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="write py-spy flame graphs of each proxy's concurrent phase into this directory",
    )
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="steward-gw-bench-"))
    up_port, proxy_port, peer_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    env.update(
        STEWARD_HOME=str(home),
        STEWARD_MODEL="local",
        STEWARD_SANDBOX_POOL_SIZE="0",
        OPENAI_API_KEY="sk-up",
        STEWARD_OPENAI_BASE_URL=f"{upstream}/v1",
        # One key sends thousands of requests a minute: measure the proxy, not refusals.
        STEWARD_RATE_LIMIT_PER_MINUTE="10000000",
        # The priced tenant has a cap, so each of its calls reserves and settles.
        STEWARD_GATEWAY=json.dumps(
            {"caps": {"tenants": {PRICED_TENANT: {"tenant_monthly_usd": 1_000_000}}}}
        ),
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        up = start(
            [
                sys.executable,
                "-m",
                "steward.upstream",
                "--port",
                str(up_port),
                "--log-level=warning",
            ],
            env,
            home,
            home / "upstream.log",
        )
        procs.append(up)
        unpriced_key = create_key(env, home)
        priced_key = create_key(env, home, "--tenant", PRICED_TENANT)
        server = start(
            [STEWARD, "dev", str(ROOT / "examples" / "support.py"), "--port", str(proxy_port)],
            env,
            home,
            home / "steward.log",
        )
        procs.append(server)
        wait_ready(up_port, up)
        wait_ready(proxy_port, server)
        json_type = {"content-type": "application/json"}
        sides = [
            Side(
                "direct",
                f"{upstream}/v1/chat/completions",
                {**json_type, "authorization": "Bearer sk-up"},
                body(UNPRICED_MODEL),
            ),
            Side(
                "unpriced",
                f"http://127.0.0.1:{proxy_port}/v1/chat/completions",
                {**json_type, "authorization": f"Bearer {unpriced_key}"},
                body(UNPRICED_MODEL),
                server.pid,
            ),
            Side(
                "priced",
                f"http://127.0.0.1:{proxy_port}/v1/chat/completions",
                {**json_type, "authorization": f"Bearer {priced_key}"},
                body(PRICED_MODEL),
                server.pid,
            ),
        ]
        if args.litellm_venv is not None:
            peer = start(
                [
                    str(args.litellm_venv / "bin" / "litellm"),
                    f"--port={peer_port}",
                    f"--config={litellm_config(home, upstream)}",
                    "--num_workers=1",
                ],
                env,
                home,
                home / "litellm.log",
            )
            procs.append(peer)
            wait_ready(peer_port, peer)
            sides.append(
                Side(
                    "litellm",
                    f"http://127.0.0.1:{peer_port}/v1/chat/completions",
                    {**json_type, "authorization": f"Bearer {LITELLM_KEY}"},
                    body(UNPRICED_MODEL),
                    peer.pid,
                )
            )
        time.sleep(1.0)
        try:
            figures = asyncio.run(measure(sides, args))
        except RuntimeError:
            for log in sorted(home.glob("*.log")):  # why a side failed, before they are deleted
                print(f"--- {log.name}\n{log.read_text()[-4000:]}", file=sys.stderr)
            raise
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(home, ignore_errors=True)
    if args.profile is not None:
        for collapsed in sorted(args.profile.glob("gateway-*.txt")):
            print(f"# {collapsed.stem}: share of sampled server time by layer")
            for layer, share in tally(collapsed):
                print(f"#   {share:5.1f}%  {layer}")
    for name, value in figures.items():
        print(f"{name:36s} {value:10.3f}")
    print(" ".join(f"{name}={value:.3f}" for name, value in figures.items()))


if __name__ == "__main__":
    main()
