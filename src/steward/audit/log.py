"""The audit log: an append-only, per-tenant sequence of canonical-JSON events, Merkle-hashed,
with signed checkpoints (tree heads) every N events or T seconds.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from steward.audit.canonical import canonical_json
from steward.audit.merkle import extend_frontier, frontier_root, leaf_hash
from steward.audit.signing import CheckpointSigner
from steward.store.database import Database
from steward.store.security_tables import AuditCheckpoint, AuditRecord

log = logging.getLogger("steward.audit")
# Entry format 2 writes numbers as RFC 8785 does (ECMAScript); format 1 entries (Python's float
# repr) stay as stored and are re-checked with the legacy number form.
ENTRY_VERSION = 2
STATEMENT_VERSION = 1
_APPEND_ATTEMPTS = 20


@dataclass(frozen=True)
class Checkpoint:
    tenant_id: str
    tree_size: int
    root_hash: str
    key_id: str
    statement: str
    signature: str


@dataclass
class Pending:
    """One event on its way into the log. `tried` remembers each (seq, leaf hash) whose commit
    may have happened before an error hid the outcome, so a retry never appends it twice."""

    tenant_id: str
    kind: str
    data: Any
    at: str
    tried: dict[int, str] = field(default_factory=dict)


def entry_bytes(tenant_id: str, seq: int, kind: str, at: str, data: Any) -> bytes:
    entry = {"v": ENTRY_VERSION, "tenant": tenant_id, "seq": seq, "kind": kind, "time": at}
    return canonical_json({**entry, "data": data})


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditLog:
    def __init__(
        self,
        db: Database,
        signer: CheckpointSigner,
        *,
        checkpoint_every: int = 100,
        checkpoint_interval_s: float = 60.0,
    ) -> None:
        self.db = db
        self.signer = signer
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval_s = checkpoint_interval_s
        self._heads: dict[str, int] = {}  # tenant -> the last sequence number this log wrote
        self._heads_lock = threading.Lock()

    # -- writing ------------------------------------------------------------------------------

    @staticmethod
    def payload(data: dict[str, Any] | None) -> Any:
        # A JSON round trip turns datetimes and other stray types into strings up front, so
        # the hashed bytes are exactly what an export later shows.
        return json.loads(json.dumps(data or {}, default=str))

    def record(self, tenant_id: str, kind: str, data: dict[str, Any] | None = None) -> int:
        """Append one event to the tenant's log; returns its sequence number (from 1)."""
        return self.append(Pending(tenant_id, kind, self.payload(data), now_text()))

    def append(self, event: Pending) -> int:
        """Append `event` once; returns its sequence number.

        A database error propagates; calling again with the same `event` afterwards appends it
        only if the failed attempt did not commit after all (a connection lost during COMMIT).
        """
        return self.append_many([event])[0]

    def append_many(self, events: Sequence[Pending]) -> list[int]:
        """Append `events` in their order in one transaction (group commit); returns their
        sequence numbers. Each tenant's events take consecutive numbers after its head.

        As with `append`, a database error propagates, and calling again with the same events
        appends only those that the failed attempt did not commit.
        """
        seqs: list[int | None] = [None] * len(events)
        for _ in range(_APPEND_ATTEMPTS):
            for index, seq in self._landed(events).items():
                seqs[index] = seq
            todo = [index for index, seq in enumerate(seqs) if seq is None]
            if not todo:
                break
            try:
                appended = self._append([events[index] for index in todo])
            except IntegrityError:  # another writer took these sequence numbers: take the next
                for index in todo:
                    events[index].tried.clear()  # refused for certain: none of them landed
                time.sleep(0.005)
                continue
            for index, seq in zip(todo, appended, strict=True):
                seqs[index] = seq
            break
        else:
            tenants = sorted({event.tenant_id for event in events})
            raise RuntimeError(f"could not append to the audit log of tenants {tenants!r}")
        written = [seq for seq in seqs if seq is not None]
        self._checkpoint_crossed(events, written)
        return written

    def _checkpoint_crossed(self, events: Sequence[Pending], seqs: list[int]) -> None:
        """Sign each tenant whose batch reached a multiple of `checkpoint_every`."""
        spans: dict[str, tuple[int, int]] = {}
        for event, seq in zip(events, seqs, strict=True):
            low, high = spans.get(event.tenant_id, (seq, seq))
            spans[event.tenant_id] = (min(low, seq), max(high, seq))
        for tenant_id, (low, high) in spans.items():
            if high // self.checkpoint_every == (low - 1) // self.checkpoint_every:
                continue
            try:
                self.checkpoint(tenant_id)
            except Exception:  # the events are in; the periodic checkpointer signs them later
                log.warning("could not sign the checkpoint at %s of %s", high, tenant_id)

    def _landed(self, events: Sequence[Pending]) -> dict[int, int]:
        """Index -> sequence number of each event whose earlier attempt committed after all."""
        tried: dict[str, set[int]] = {}
        for event in events:
            if event.tried:
                tried.setdefault(event.tenant_id, set()).update(event.tried)
        if not tried:
            return {}
        stored: dict[tuple[str, int], str] = {}
        with self.db.session() as session:
            for tenant_id, seqs in tried.items():
                rows = session.execute(
                    select(AuditRecord.seq, AuditRecord.leaf_hash).where(
                        AuditRecord.tenant_id == tenant_id, AuditRecord.seq.in_(seqs)
                    )
                ).all()
                stored.update(((tenant_id, int(seq)), str(digest)) for seq, digest in rows)
        landed: dict[int, int] = {}
        for index, event in enumerate(events):
            for seq, digest in event.tried.items():
                if stored.get((event.tenant_id, seq)) == digest:
                    landed[index] = seq
                    break
            else:
                event.tried.clear()
        return landed

    def _append(self, events: Sequence[Pending]) -> list[int]:
        """One transaction: number the events after each tenant's head, insert them all.

        The heads this log wrote last are remembered; a head moved by another writer (another
        process, a concurrent `record`) makes the `INSERT` collide on `(tenant_id, seq)`, and
        any failure forgets the heads, so the next attempt reads them afresh.
        """
        tenants = {event.tenant_id for event in events}
        rows: list[dict[str, Any]] = []
        seqs: list[int] = []
        try:
            with self.db.engine.begin() as conn:
                heads = self._heads_of(conn, tenants)
                for event in events:
                    seq = heads[event.tenant_id] + 1
                    heads[event.tenant_id] = seq
                    entry = entry_bytes(event.tenant_id, seq, event.kind, event.at, event.data)
                    digest = leaf_hash(entry).hex()
                    event.tried[seq] = digest
                    seqs.append(seq)
                    rows.append(
                        {
                            "tenant_id": event.tenant_id,
                            "seq": seq,
                            "kind": event.kind,
                            "entry": entry.decode("utf-8"),
                            "leaf_hash": digest,
                        }
                    )
                conn.execute(insert(AuditRecord), rows)
        except BaseException:
            with self._heads_lock:
                for tenant_id in tenants:
                    self._heads.pop(tenant_id, None)
            raise
        with self._heads_lock:
            self._heads.update((t, heads[t]) for t in tenants)
        return seqs

    def _heads_of(self, conn: Any, tenants: set[str]) -> dict[str, int]:
        with self._heads_lock:
            heads = {t: self._heads[t] for t in tenants if t in self._heads}
        unknown = sorted(tenants - heads.keys())
        if unknown:
            found = conn.execute(
                select(AuditRecord.tenant_id, func.max(AuditRecord.seq))
                .where(AuditRecord.tenant_id.in_(unknown))
                .group_by(AuditRecord.tenant_id)
            ).all()
            heads.update({t: 0 for t in unknown})
            heads.update({str(t): int(last) for t, last in found})
        return heads

    def checkpoint(self, tenant_id: str) -> Checkpoint | None:
        """Sign the tree head over all of the tenant's records; None if nothing is new.

        Only the records after the newest checkpoint are read: its stored frontier (compact
        range) stands for everything before.
        """
        with self.db.session() as session:
            signed, frontier = self._latest_frontier(session, tenant_id)
            new_leaves = [
                bytes.fromhex(h)
                for h in session.scalars(
                    select(AuditRecord.leaf_hash)
                    .where(AuditRecord.tenant_id == tenant_id, AuditRecord.seq > signed)
                    .order_by(AuditRecord.seq)
                )
            ]
        if not new_leaves:
            return None
        size = signed + len(new_leaves)
        frontier = extend_frontier(signed, frontier, new_leaves)
        root = frontier_root(frontier).hex()
        statement = canonical_json(
            {
                "v": STATEMENT_VERSION,
                "tenant": tenant_id,
                "tree_size": size,
                "root_hash": root,
                "key_id": self.signer.key_id,
                "time": now_text(),
            }
        )
        checkpoint = Checkpoint(
            tenant_id,
            size,
            root,
            self.signer.key_id,
            statement.decode("utf-8"),
            base64.b64encode(self.signer.sign(statement)).decode("ascii"),
        )
        try:
            with self.db.session() as session:
                session.add(
                    AuditCheckpoint(
                        tenant_id=tenant_id,
                        tree_size=size,
                        root_hash=root,
                        key_id=checkpoint.key_id,
                        statement=checkpoint.statement,
                        signature=checkpoint.signature,
                        frontier=",".join(digest.hex() for digest in frontier),
                    )
                )
        except IntegrityError:
            return None  # another process signed the same tree head first
        return checkpoint

    @staticmethod
    def _latest_frontier(session: Any, tenant_id: str) -> tuple[int, list[bytes]]:
        """(tree size, frontier) of the newest checkpoint that stored one; (0, []) if none."""
        row = session.execute(
            select(AuditCheckpoint.tree_size, AuditCheckpoint.frontier)
            .where(AuditCheckpoint.tenant_id == tenant_id, AuditCheckpoint.frontier.is_not(None))
            .order_by(AuditCheckpoint.tree_size.desc())
            .limit(1)
        ).first()
        if row is None:  # no checkpoint yet, or only ones signed before frontiers were stored
            return 0, []
        size, text = int(row[0]), str(row[1])
        return size, [bytes.fromhex(part) for part in text.split(",") if part]

    def checkpoint_pending(self) -> list[Checkpoint]:
        """Checkpoint every tenant whose newest records are older than the interval and unsigned."""
        made: list[Checkpoint] = []
        for tenant_id in self.tenants_with_unsigned_records(self.checkpoint_interval_s):
            checkpoint = self.checkpoint(tenant_id)
            if checkpoint is not None:
                made.append(checkpoint)
        return made

    def tenants_with_unsigned_records(self, older_than_s: float = 0.0) -> list[str]:
        cutoff = time.time() - older_than_s
        with self.db.session() as session:
            sizes = dict(
                session.execute(
                    select(AuditCheckpoint.tenant_id, func.max(AuditCheckpoint.tree_size)).group_by(
                        AuditCheckpoint.tenant_id
                    )
                ).all()
            )
            heads = session.execute(
                select(AuditRecord.tenant_id, func.max(AuditRecord.seq)).group_by(
                    AuditRecord.tenant_id
                )
            ).all()
        pending = []
        for tenant_id, seq in heads:
            if seq > sizes.get(tenant_id, 0) and self._oldest_unsigned_before(
                tenant_id, sizes.get(tenant_id, 0), cutoff
            ):
                pending.append(tenant_id)
        return pending

    def _oldest_unsigned_before(self, tenant_id: str, signed: int, cutoff: float) -> bool:
        with self.db.session() as session:
            created = session.scalar(
                select(AuditRecord.created_at).where(
                    AuditRecord.tenant_id == tenant_id, AuditRecord.seq == signed + 1
                )
            )
        if created is None:
            return False
        if created.tzinfo is None:  # SQLite hands back naive UTC datetimes
            created = created.replace(tzinfo=UTC)
        return created.timestamp() <= cutoff

    # -- reading ------------------------------------------------------------------------------

    def tenants(self) -> list[str]:
        with self.db.session() as session:
            return list(session.scalars(select(AuditRecord.tenant_id).distinct()))

    def export(self, tenant_id: str) -> dict[str, Any]:
        """The tenant's whole log and checkpoints as JSON, verifiable offline."""
        with self.db.session() as session:
            records = session.scalars(
                select(AuditRecord)
                .where(AuditRecord.tenant_id == tenant_id)
                .order_by(AuditRecord.seq)
            ).all()
            checkpoints = session.scalars(
                select(AuditCheckpoint)
                .where(AuditCheckpoint.tenant_id == tenant_id)
                .order_by(AuditCheckpoint.tree_size)
            ).all()
            return {
                "tenant": tenant_id,
                "records": [
                    {"seq": r.seq, "kind": r.kind, "entry": r.entry, "leaf_hash": r.leaf_hash}
                    for r in records
                ],
                "checkpoints": [
                    {
                        "tree_size": c.tree_size,
                        "root_hash": c.root_hash,
                        "key_id": c.key_id,
                        "statement": c.statement,
                        "signature": c.signature,
                    }
                    for c in checkpoints
                ],
            }
