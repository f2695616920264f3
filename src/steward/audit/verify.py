"""Verify an exported audit log: recompute every leaf and tree head, check every signature,
and name the first bad record. Works on `AuditLog.export` output, so it also runs offline.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from steward.audit.canonical import NotCanonicalizable, canonical_json
from steward.audit.merkle import leaf_hash, root_hash
from steward.audit.signing import verify_signature


@dataclass(frozen=True)
class Finding:
    seq: int  # the first record affected
    problem: str
    last: int | None = None  # for a failed checkpoint: the bad record lies in seq..last


@dataclass
class Report:
    tenant_id: str
    records: int
    checkpoints: int
    signed_records: int  # records covered by the newest valid checkpoint
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first_bad(self) -> Finding | None:
        """The earliest finding; a failed checkpoint yields to a record found bad in its range."""
        exact = [f.seq for f in self.findings if f.last is None]
        candidates = [
            f
            for f in self.findings
            if f.last is None or not any(f.seq <= seq <= f.last for seq in exact)
        ]
        return min(candidates, key=lambda f: f.seq) if candidates else None


def verify_export(export: dict[str, Any], public_keys: dict[str, Ed25519PublicKey]) -> Report:
    tenant_id = str(export.get("tenant", ""))
    records = list(export.get("records", []))
    checkpoints = list(export.get("checkpoints", []))
    report = Report(tenant_id, len(records), len(checkpoints), 0)
    leaves = _check_records(tenant_id, records, report)
    _check_checkpoints(tenant_id, checkpoints, leaves, public_keys, report)
    return report


def _check_records(tenant_id: str, records: list[dict[str, Any]], report: Report) -> list[bytes]:
    leaves: list[bytes] = []
    for position, row in enumerate(records, start=1):
        seq = row.get("seq")
        if seq != position:
            # A gap means deleted records; a smaller number means reordered ones.
            report.findings.append(
                Finding(position, f"record {position} expected, found seq {seq} (deleted or moved)")
            )
        entry = str(row.get("entry", "")).encode("utf-8")
        leaves.append(leaf_hash(entry))  # the tree is rebuilt from content, never stored hashes
        problem = _entry_problem(tenant_id, position, row, entry)
        if problem is not None:
            report.findings.append(Finding(position, problem))
    return leaves


def _entry_problem(tenant_id: str, seq: int, row: dict[str, Any], entry: bytes) -> str | None:
    try:
        parsed = json.loads(entry)
        # Format 1 entries predate RFC 8785 number forms; they were hashed in the old form.
        legacy = isinstance(parsed, dict) and parsed.get("v") == 1
        canonical = canonical_json(parsed, legacy=legacy)
    except (ValueError, NotCanonicalizable):
        return f"record {seq}: entry is not valid JSON"
    if canonical != entry:
        return f"record {seq}: entry is not in canonical form (edited by hand?)"
    if not isinstance(parsed, dict):
        return f"record {seq}: entry is not an object"
    claimed = (parsed.get("tenant"), parsed.get("seq"), parsed.get("kind"))
    if claimed != (tenant_id, seq, row.get("kind")):
        return f"record {seq}: entry says tenant/seq/kind {claimed}, stored at position {seq}"
    if row.get("leaf_hash") != leaf_hash(entry).hex():
        return f"record {seq}: stored leaf hash does not match its content (modified)"
    return None


def _check_checkpoints(
    tenant_id: str,
    checkpoints: list[dict[str, Any]],
    leaves: list[bytes],
    public_keys: dict[str, Ed25519PublicKey],
    report: Report,
) -> None:
    good_size = 0
    for row in sorted(checkpoints, key=lambda c: int(c.get("tree_size", 0))):
        size = int(row.get("tree_size", 0))
        problem = _checkpoint_problem(tenant_id, row, size, leaves, public_keys)
        if problem is not None:
            # The records after the last good tree head are the first that cannot be trusted.
            report.findings.append(Finding(min(good_size + 1, size), problem, last=size))
            continue
        good_size = max(good_size, size)
    report.signed_records = good_size


def _checkpoint_problem(
    tenant_id: str,
    row: dict[str, Any],
    size: int,
    leaves: list[bytes],
    public_keys: dict[str, Ed25519PublicKey],
) -> str | None:
    key_id = row.get("key_id")
    public_key = public_keys.get(str(key_id))
    if public_key is None:
        return f"checkpoint at {size}: signed by unknown key {key_id!r}"
    statement = str(row.get("statement", "")).encode("utf-8")
    try:
        signature = base64.b64decode(str(row.get("signature", "")), validate=True)
    except binascii.Error:
        return f"checkpoint at {size}: signature is not base64"
    if not verify_signature(public_key, statement, signature):
        return f"checkpoint at {size}: signature does not verify (forged checkpoint)"
    try:
        signed = json.loads(statement)
    except ValueError:
        return f"checkpoint at {size}: statement is not JSON"
    expected = {
        "tenant": tenant_id,
        "tree_size": size,
        "root_hash": row.get("root_hash"),
        "key_id": key_id,
    }
    if any(signed.get(name) != value for name, value in expected.items()):
        return f"checkpoint at {size}: stored columns differ from the signed statement"
    if size > len(leaves):
        return f"checkpoint at {size}: only {len(leaves)} records exist (truncated)"
    if root_hash(leaves[:size]).hex() != signed["root_hash"]:
        return f"checkpoint at {size}: records up to {size} no longer match the signed root"
    return None
