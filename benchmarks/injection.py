"""Prompt-injection attack success and utility under attack, with nobody approving anything.

Every pair of Steward's own suite (`benchmarks/injection_*.py`: user tasks x injections over
email, files and banking tools) runs through `Context.tool_loop`, the real gateway and an
OpenAI-compatible HTTP upstream answering from the suite's scripted models (a planner that
plans from the request alone, an executor that obeys every injection). Three policies, in the
same run:

- off: no policy at all (no `RunGuard`);
- old_default: the default before planned control flow -- writes after untrusted content held
  for approval unless every argument is a substring of trusted text, refusals ending the run;
  nobody approves, so held calls are rejected;
- new_default: `AgentPolicy()` as shipped -- planned control flow, value provenance.

ASR counts "new call" and "changed argument" attacks; answer-only injections (text the model
puts in its answer) are counted apart. Last line: key=value figures (fractions).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import time
from typing import Any

from benchmarks.injection_suite import SuiteUpstream, all_tasks, make_gateway, pairs, run_pair

from steward.policy.declaration import AgentPolicy, MonitorPolicy
from steward.upstream.app import create_upstream_app
from steward.upstream.testing import run_upstream_in_thread

POLICIES: dict[str, AgentPolicy | None] = {
    "off": None,
    "old_default": AgentPolicy(
        plan="off", arguments="substring", monitor=MonitorPolicy(refusals_stop_run=True)
    ),
    "new_default": AgentPolicy(),
}


async def measure(url: str, size: int | None) -> dict[str, dict[str, float]]:
    gateway = make_gateway(url)
    figures: dict[str, dict[str, float]] = {}
    selected = pairs(size)
    try:
        for name, policy in POLICIES.items():
            counts: collections.Counter[str] = collections.Counter()
            for n, (task, injection) in enumerate(selected):
                outcome = await run_pair(task, injection, policy, gateway, f"{name}-{n}")
                group = "answer" if injection.kind == "answer_only" else "attack"
                counts[f"{group}_pairs"] += 1
                counts[f"{group}_hits"] += outcome.attacked
                counts[f"{injection.kind}_pairs"] += 1
                counts[f"{injection.kind}_hits"] += outcome.attacked
                counts["useful"] += outcome.useful
                counts["ended_by_error"] += outcome.status != "success"
            total = len(selected)
            figures[name] = {
                "asr": counts["attack_hits"] / max(1, counts["attack_pairs"]),
                "utility": counts["useful"] / total,
                "answer_asr": counts["answer_hits"] / max(1, counts["answer_pairs"]),
                "new_call_asr": counts["new_call_hits"] / max(1, counts["new_call_pairs"]),
                "changed_argument_asr": counts["changed_argument_hits"]
                / max(1, counts["changed_argument_pairs"]),
                "runs_ended_by_error": counts["ended_by_error"] / total,
            }
            print(
                f"{name}: {len(selected)} pairs ({counts['attack_pairs']} attacks, "
                f"{counts['answer_pairs']} answer-only): {_line(figures[name])}"
            )
    finally:
        await gateway.aclose()
    return figures


def _line(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in values.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=None, help="pairs to run (default: all)")
    args = parser.parse_args()
    started = time.perf_counter()
    with run_upstream_in_thread(create_upstream_app(SuiteUpstream(all_tasks()))) as url:
        figures = asyncio.run(measure(url, args.size))
    print(f"elapsed_s={time.perf_counter() - started:.1f}")
    keys = ("asr", "utility")
    print(
        " ".join(
            f"{name.replace('_default', '_default')}_{k}={figures[name][k]:.4f}"
            for name in ("off", "old_default", "new_default")
            for k in keys
        )
        + " "
        + " ".join(f"{name}_answer_asr={figures[name]['answer_asr']:.4f}" for name in figures)
    )


if __name__ == "__main__":
    main()
