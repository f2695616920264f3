"""Promotion to stable, gated by the version's recorded eval: refused while the gate fails (or
nothing was evaluated), unless forced with a reason; rollback to the version stable before.
Every decision is an audit event."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from steward.errors import Conflict, UserError
from steward.rollout.versions import VersionStore

Record = Callable[[str, str, dict[str, Any]], object]
"""Appends an audit event: `record(tenant_id, kind, data)` (e.g. `AuditLog.record`)."""


class PromotionRefused(Conflict):
    def __init__(self, detail: str) -> None:
        super().__init__("promotion-refused", detail)


@dataclass(frozen=True)
class Promotion:
    agent: str
    version: int
    previous: int | None
    forced: bool


def gate_failure(evaluation: dict[str, Any] | None) -> str | None:
    """Why the recorded eval does not allow promotion, or None when it does."""
    if evaluation is None:
        return "no eval recorded: run `steward rollout eval AGENT VERSION SUITE` first"
    if evaluation.get("passed") is not True:
        reasons = "; ".join(evaluation.get("reasons") or []) or "the gate failed"
        return f"its eval gate failed ({evaluation.get('suite')}): {reasons}"
    return None


def promote(
    store: VersionStore,
    agent: str,
    version: int,
    *,
    record: Record,
    tenant_id: str,
    actor: str,
    force: bool = False,
    reason: str | None = None,
) -> Promotion:
    if force and not (reason and reason.strip()):
        raise UserError("--force needs --reason: a forced promotion is audited with its reason")
    target = store.get(agent, version)
    failure = gate_failure(target.evaluation)
    event = {"agent": agent, "version": version, "actor": actor, "code_hash": target.code_hash}
    if failure is not None and not force:
        record(tenant_id, "rollout.refused", {**event, "why": failure})
        raise PromotionRefused(f"version {version} of {agent!r} cannot be promoted: {failure}")
    previous = store.set_stable(agent, version)
    record(
        tenant_id,
        "rollout.promoted",
        {
            **event,
            "previous": previous,
            "forced": failure is not None,
            "reason": reason if failure is not None else None,
            "gate": failure or "passed",
        },
    )
    return Promotion(agent, version, previous, forced=failure is not None)


def roll_back(
    store: VersionStore,
    agent: str,
    *,
    record: Record,
    tenant_id: str,
    actor: str,
    reason: str | None = None,
) -> tuple[int, int]:
    """Return new runs to the version that was stable before (no gate: it served already)."""
    moved = store.roll_back(agent)
    if moved is None:
        raise Conflict("nothing-to-roll-back", f"agent {agent!r} has no earlier stable version")
    record(
        tenant_id,
        "rollout.rolled_back",
        {"agent": agent, "from": moved[0], "to": moved[1], "actor": actor, "reason": reason},
    )
    return moved
