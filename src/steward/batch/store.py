"""The batch tables' queries: create, read progress and results, claim items, settle them.

Items are claimed by row update: a process takes a batch's claim lock (an `UPDATE` of the batch
row, which PostgreSQL holds as a row lock and SQLite as its write lock until the transaction
ends), counts the items in flight, and moves at most `concurrency - in_flight` pending items (or
items whose claimer's lease has lapsed) to `claimed` under its own name. So the concurrency and
rate limits hold across every process that works on the batch, and no two live processes hold
the same item.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update

from steward.batch.tables import BatchItemRow, BatchRow
from steward.store.database import Database
from steward.store.runs import ACTIVE, AWAITING_APPROVAL
from steward.store.schema import Run, utcnow

IN_FLIGHT = ("claimed", "submitted")
FINAL = ("succeeded", "failed", "cancelled")
ITEM_STATES = ("pending", *IN_FLIGHT, *FINAL)
_CHUNK = 500


@dataclass(frozen=True)
class Claimed:
    batch_id: str
    tenant_id: str
    agent: str
    idx: int
    attempt: int
    input: Any


def item_thread_id(batch_id: str, idx: int, attempt: int) -> str:
    """The deterministic thread of one attempt at one item: a restart finds its run there."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"steward:batch:{batch_id}:{idx}:{attempt}"))


class BatchStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- the API's side ------------------------------------------------------------------------

    def create(
        self,
        tenant_id: str,
        agent: str,
        items: Sequence[Any],
        *,
        concurrency: int,
        rate_per_s: float | None,
        max_attempts: int,
        metadata: dict[str, Any],
    ) -> BatchRow:
        now = utcnow()
        batch = BatchRow(
            id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            agent=agent,
            status="running",
            total=len(items),
            concurrency=concurrency,
            rate_per_s=rate_per_s,
            max_attempts=max_attempts,
            meta=metadata,
            claim_epoch=0,
            next_start_at=now,
            created_at=now,
            updated_at=now,
        )
        with self.db.session() as session:
            session.add(batch)
            session.flush()
            for start in range(0, len(items), _CHUNK):
                session.execute(
                    insert(BatchItemRow),
                    [
                        {
                            "batch_id": batch.id,
                            "idx": start + offset,
                            "tenant_id": tenant_id,
                            "input": item,
                            "status": "pending",
                            "attempts": 0,
                        }
                        for offset, item in enumerate(items[start : start + _CHUNK])
                    ],
                )
            session.expunge(batch)
        return batch

    def get(self, tenant_id: str, batch_id: str) -> BatchRow | None:
        with self.db.session() as session:
            row = session.scalar(
                select(BatchRow).where(BatchRow.tenant_id == tenant_id, BatchRow.id == batch_id)
            )
            if row is not None:
                session.expunge(row)
            return row

    def list_batches(self, tenant_id: str, limit: int, offset: int) -> list[BatchRow]:
        with self.db.session() as session:
            rows = list(
                session.scalars(
                    select(BatchRow)
                    .where(BatchRow.tenant_id == tenant_id)
                    .order_by(BatchRow.created_at.desc(), BatchRow.id)
                    .limit(limit)
                    .offset(offset)
                )
            )
            session.expunge_all()
            return rows

    def counts(self, batch_id: str) -> dict[str, int]:
        with self.db.session() as session:
            rows = session.execute(
                select(BatchItemRow.status, func.count())
                .where(BatchItemRow.batch_id == batch_id)
                .group_by(BatchItemRow.status)
            ).all()
        counts = dict.fromkeys(ITEM_STATES, 0)
        counts.update({status: int(n) for status, n in rows})
        return counts

    def results(self, batch_id: str) -> Iterator[list[BatchItemRow]]:
        """The items in input order, a page at a time (keyset on the index)."""
        after = -1
        while True:
            with self.db.session() as session:
                page = list(
                    session.scalars(
                        select(BatchItemRow)
                        .where(BatchItemRow.batch_id == batch_id, BatchItemRow.idx > after)
                        .order_by(BatchItemRow.idx)
                        .limit(_CHUNK)
                    )
                )
                session.expunge_all()
            if not page:
                return
            yield page
            after = page[-1].idx

    def set_status(
        self, tenant_id: str, batch_id: str, status: str, *, when: Sequence[str]
    ) -> bool:
        """Move the batch to `status` if it is in one of `when`; whether it moved."""
        with self.db.session() as session:
            moved = session.execute(
                update(BatchRow)
                .where(
                    BatchRow.tenant_id == tenant_id,
                    BatchRow.id == batch_id,
                    BatchRow.status.in_(when),
                )
                .values(status=status, updated_at=utcnow())
            ).rowcount  # type: ignore[attr-defined]
            if moved and status == "cancelled":  # submitted items wait for their runs' cancel
                session.execute(
                    update(BatchItemRow)
                    .where(
                        BatchItemRow.batch_id == batch_id,
                        BatchItemRow.status.in_(("pending", "claimed")),
                    )
                    .values(status="cancelled", finished_at=utcnow(), lease_until=None)
                )
        return bool(moved)

    def in_flight_runs(self, batch_id: str) -> list[str]:
        with self.db.session() as session:
            return [
                run_id
                for run_id in session.scalars(
                    select(BatchItemRow.run_id).where(
                        BatchItemRow.batch_id == batch_id,
                        BatchItemRow.status == "submitted",
                    )
                )
                if run_id
            ]

    def cancel_submitted(self, batch_id: str, run_id: str) -> None:
        """An item whose run was cancelled with its batch: unless it has ended otherwise."""
        with self.db.session() as session:
            session.execute(
                update(BatchItemRow)
                .where(
                    BatchItemRow.batch_id == batch_id,
                    BatchItemRow.run_id == run_id,
                    BatchItemRow.status == "submitted",
                )
                .values(status="cancelled", finished_at=utcnow(), lease_until=None)
            )

    # -- the driver's side ---------------------------------------------------------------------

    def active(self) -> list[BatchRow]:
        with self.db.session() as session:
            rows = list(
                session.scalars(select(BatchRow).where(BatchRow.status.in_(("running", "paused"))))
            )
            session.expunge_all()
            return rows

    def claim(self, batch: BatchRow, owner: str, lease_s: float, limit: int) -> list[Claimed]:
        """Claim up to `limit` items within the batch's concurrency and rate limits."""
        now = utcnow()
        with self.db.session() as session:
            locked = session.execute(  # the claim lock, held to the end of this transaction
                update(BatchRow)
                .where(BatchRow.id == batch.id, BatchRow.status == "running")
                .values(claim_epoch=BatchRow.claim_epoch + 1)
            ).rowcount  # type: ignore[attr-defined]
            if not locked:
                return []
            row = session.get(BatchRow, batch.id, populate_existing=True)
            assert row is not None
            # A claim whose claimer died before it recorded a run is taken over as it stands:
            # the same attempt, so its deterministic thread is where a run it started would be.
            lapsed = list(
                session.scalars(
                    select(BatchItemRow)
                    .where(
                        BatchItemRow.batch_id == batch.id,
                        BatchItemRow.status == "claimed",
                        BatchItemRow.lease_until <= now,
                    )
                    .order_by(BatchItemRow.idx)
                    .limit(limit)
                )
            )
            in_flight = session.scalar(
                select(func.count()).where(
                    BatchItemRow.batch_id == batch.id, BatchItemRow.status.in_(IN_FLIGHT)
                )
            )
            room = min(limit - len(lapsed), row.concurrency - int(in_flight or 0))
            if row.rate_per_s:  # a token bucket whose state is `next_start_at`, burst 1 s
                next_start = _aware(row.next_start_at)
                owed = 1 + int((now - next_start).total_seconds() * row.rate_per_s)
                owed = min(owed, max(1, int(row.rate_per_s))) if next_start <= now else 0
                room = min(room, owed)
            fresh: list[BatchItemRow] = []
            if room > 0:
                fresh = list(
                    session.scalars(
                        select(BatchItemRow)
                        .where(BatchItemRow.batch_id == batch.id, BatchItemRow.status == "pending")
                        .order_by(BatchItemRow.idx)
                        .limit(room)
                    )
                )
            for item in fresh:  # a new attempt
                item.attempts += 1
                item.status = "claimed"
            claimed = []
            for item in [*lapsed, *fresh]:
                item.claimed_by = owner
                item.lease_until = now + timedelta(seconds=lease_s)
                claimed.append(
                    Claimed(batch.id, row.tenant_id, row.agent, item.idx, item.attempts, item.input)
                )
            if row.rate_per_s and fresh:
                start = max(_aware(row.next_start_at), now - timedelta(seconds=1))
                row.next_start_at = start + timedelta(seconds=len(fresh) / row.rate_per_s)
        return claimed

    def submitted(self, item: Claimed, owner: str, thread_id: str, run_id: str) -> bool:
        """Record the item's run; False if the claim was lost meanwhile."""
        with self.db.session() as session:
            return bool(
                session.execute(
                    update(BatchItemRow)
                    .where(
                        BatchItemRow.batch_id == item.batch_id,
                        BatchItemRow.idx == item.idx,
                        BatchItemRow.claimed_by == owner,
                        BatchItemRow.attempts == item.attempt,
                        BatchItemRow.status.in_(IN_FLIGHT),
                    )
                    .values(status="submitted", thread_id=thread_id, run_id=run_id)
                ).rowcount  # type: ignore[attr-defined]
            )

    def refused(self, item: Claimed, owner: str, error: str) -> None:
        """The item can never run (its input fails the agent's validation): failed at once."""
        with self.db.session() as session:
            session.execute(
                update(BatchItemRow)
                .where(
                    BatchItemRow.batch_id == item.batch_id,
                    BatchItemRow.idx == item.idx,
                    BatchItemRow.claimed_by == owner,
                    BatchItemRow.status == "claimed",
                )
                .values(status="failed", error=error, finished_at=utcnow(), lease_until=None)
            )

    def settle(self, batch: BatchRow) -> int:
        """Record the ended runs of submitted items (any process may).

        A successful run makes its item `succeeded`; a failed one sends the item back to
        `pending` for another attempt, or `failed` once `max_attempts` are spent. A submitted
        item is never claimed again: its run is the engine's to finish (or recover).
        """
        now = utcnow()
        settled = 0
        with self.db.session() as session:
            rows = session.execute(
                select(
                    BatchItemRow.idx,
                    BatchItemRow.attempts,
                    Run.status,
                    Run.stop_reason,
                    Run.output,
                    Run.error,
                )
                .join(Run, Run.id == BatchItemRow.run_id)
                .where(
                    BatchItemRow.batch_id == batch.id,
                    BatchItemRow.status == "submitted",
                    Run.tenant_id == batch.tenant_id,
                )
            ).all()
            for idx, attempts, status, stop_reason, output, error in rows:
                paused = status == "interrupted" and stop_reason == AWAITING_APPROVAL
                if status in ACTIVE or paused:
                    continue  # still open
                if status == "success":
                    values: dict[str, Any] = {"status": "succeeded", "output": output}
                elif attempts < batch.max_attempts:
                    values = {"status": "pending", "error": _message(status, error)}
                else:
                    values = {"status": "failed", "error": _message(status, error)}
                if values["status"] != "pending":
                    values["finished_at"] = now
                settled += session.execute(
                    update(BatchItemRow)
                    .where(
                        BatchItemRow.batch_id == batch.id,
                        BatchItemRow.idx == idx,
                        BatchItemRow.status == "submitted",
                        BatchItemRow.attempts == attempts,
                    )
                    .values(lease_until=None, **values)
                ).rowcount  # type: ignore[attr-defined]
            unfinished = session.scalar(
                select(func.count()).where(
                    BatchItemRow.batch_id == batch.id, BatchItemRow.status.not_in(FINAL)
                )
            )
            if not unfinished:
                session.execute(
                    update(BatchRow)
                    .where(BatchRow.id == batch.id, BatchRow.status == "running")
                    .values(status="completed", completed_at=now, updated_at=now)
                )
        return settled


def _message(status: str, error: dict[str, Any] | None) -> str:
    if error and error.get("message"):
        return f"{status}: {error.get('error', '')}: {error['message']}"
    return f"run ended with status {status}"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
