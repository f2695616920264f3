"""Per-layer CPU breakdown of a py-spy profile in raw (collapsed-stack) form.

Each sample is charged to the innermost frame of a recognised layer (SQLAlchemy is charged to
whoever called it, and its share is shown apart). Make the profile with
`compare_langgraph.py --py-spy --gil --nonblocking --format raw -o steward.txt`, then
`python benchmarks/profile_layers.py steward.txt --cpu-ms-per-run 29.7`. Last line: key=value.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "auth_audit",
        (
            "steward/audit/",
            "steward/server/auth.py",
            "steward/security/",
            "steward/server/guards.py",
        ),
    ),
    ("webhooks", ("steward/webhooks/",)),
    ("thread_state", ("steward/store/threads.py", "RunStore.thread_values", "create_thread")),
    ("hot_state_events", ("steward/store/hot",)),
    ("spans_trace_store", ("steward/observe/", "opentelemetry/")),
    ("policy_redaction", ("steward/policy/", "steward/security/redaction.py")),
    ("model_gateway", ("steward/models/",)),
    ("dbos", ("dbos/",)),
    ("engine_journal", ("steward/runs/", "steward/store/", "steward/durable/", "agent3_app")),
    ("http_validation", ("steward/server/", "fastapi/", "starlette/", "uvicorn/", "pydantic")),
)
OTHER = "event_loop_threads"


# Helpers every layer calls (the session context manager): charged to their caller's layer.
PASS_THROUGH = ("steward/store/database.py",)


def owner(frames: list[str]) -> str:
    for frame in reversed(frames):
        if any(helper in frame for helper in PASS_THROUGH):
            continue
        for name, patterns in LAYERS:
            if any(pattern in frame for pattern in patterns):
                return name
    return OTHER


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--cpu-ms-per-run", type=float, default=None)
    options = parser.parse_args()
    counts: collections.Counter[str] = collections.Counter()
    through_sqlalchemy: collections.Counter[str] = collections.Counter()
    for line in options.profile.read_text().splitlines():
        match = re.fullmatch(r"(.*) (\d+)", line)
        if match is None:
            continue
        frames = match.group(1).split(";")
        layer = owner(frames)
        counts[layer] += int(match.group(2))
        if any("sqlalchemy/" in frame for frame in frames):
            through_sqlalchemy[layer] += int(match.group(2))
    total = sum(counts.values())
    cpu = options.cpu_ms_per_run
    print("| layer | share | of which in SQLAlchemy |" + (" ms per run |" if cpu else ""))
    print("|---|---|---|" + ("---|" if cpu else ""))
    for layer, samples in counts.most_common():
        row = f"| {layer} | {samples / total:.1%} | {through_sqlalchemy[layer] / total:.1%} |"
        print(row + (f" {cpu * samples / total:.1f} |" if cpu else ""))
    shares = " ".join(f"{layer}={samples / total:.3f}" for layer, samples in counts.most_common())
    sqlalchemy = sum(through_sqlalchemy.values()) / total
    print(f"samples={total} sqlalchemy={sqlalchemy:.3f} {shares}")


if __name__ == "__main__":
    main()
