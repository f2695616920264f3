"""The long-term store (LangGraph's `BaseStore` over HTTP and in agents): JSON documents under
namespaces, per tenant, with optional time-to-live.

A namespace is a list of non-empty labels without '.', kept joined by '.' (as LangGraph's own
`GET /store/items?namespace=a.b` spells it), so a prefix search is one indexed `LIKE 'a.b.%'`.
TTLs are in minutes, as LangGraph's; a read refreshes an item's TTL unless told not to. Expired
items are never answered and `purge_expired` deletes them (the cron scheduler calls it).

`query` ranks by meaning only through a `SemanticIndex` (the embeddings index the memory work
adds); without one, a query does not filter or reorder, as LangGraph's store without an index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from steward.store.database import Database
from steward.store.platform_tables import StoreItemRow
from steward.store.schema import utcnow

SEPARATOR = "."
MAX_LABELS = 64
# Namespace and key each, in UTF-8 bytes: with the tenant, a primary-key entry stays within
# PostgreSQL's B-tree row limit (~2.7 kB) whatever the characters.
MAX_BYTES = 1000
_OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")


class InvalidNamespace(ValueError):
    pass


def validate_namespace(namespace: Sequence[str], *, allow_empty: bool = False) -> tuple[str, ...]:
    labels = tuple(namespace)
    if not labels and not allow_empty:
        raise InvalidNamespace("a namespace needs at least one label")
    if len(labels) > MAX_LABELS:
        raise InvalidNamespace(f"a namespace has at most {MAX_LABELS} labels")
    for label in labels:
        if not isinstance(label, str) or not label:
            raise InvalidNamespace("namespace labels are non-empty strings")
        if SEPARATOR in label:
            raise InvalidNamespace(f"namespace label {label!r} contains a '.'")
    if len(_joined(labels).encode()) > MAX_BYTES:
        raise InvalidNamespace(f"a namespace is at most {MAX_BYTES} bytes joined by '.'")
    return labels


def validate_key(key: str) -> str:
    if not key or len(key.encode()) > MAX_BYTES:
        raise InvalidNamespace(f"an item key is 1 to {MAX_BYTES} bytes")
    return key


def _joined(labels: Sequence[str]) -> str:
    return SEPARATOR.join(labels)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Item:
    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    score: float | None = None

    def to_json(self, *, with_score: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "namespace": list(self.namespace),
            "key": self.key,
            "value": self.value,
            "created_at": _aware(self.created_at).isoformat(),
            "updated_at": _aware(self.updated_at).isoformat(),
        }
        if with_score:
            body["score"] = self.score
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Item:
        return cls(
            namespace=tuple(body["namespace"]),
            key=body["key"],
            value=body["value"],
            created_at=datetime.fromisoformat(body["created_at"]),
            updated_at=datetime.fromisoformat(body["updated_at"]),
            score=body.get("score"),
        )


def _item(row: StoreItemRow) -> Item:
    return Item(
        namespace=tuple(row.namespace.split(SEPARATOR)),
        key=row.key,
        value=dict(row.value or {}),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SemanticIndex(Protocol):
    """Ranks a tenant's candidate items by meaning against `query` (best first, with scores)."""

    def rank(self, tenant_id: str, query: str, items: list[Item]) -> list[Item]: ...


def matches(value: dict[str, Any], conditions: dict[str, Any] | None) -> bool:
    """LangGraph's store filter: each key equals its value, or meets `{"$gt": 3, …}`."""
    for key, wanted in (conditions or {}).items():
        present = key in value
        actual = value.get(key)
        if isinstance(wanted, dict) and wanted and set(wanted) <= set(_OPERATORS):
            if not all(_compare(present, actual, op, operand) for op, operand in wanted.items()):
                return False
        elif not present or actual != wanted:
            return False
    return True


def _compare(present: bool, actual: Any, op: str, operand: Any) -> bool:
    if op == "$eq":
        return present and bool(actual == operand)
    if op == "$ne":
        return not present or bool(actual != operand)
    if not present:
        return False
    try:
        if op == "$gt":
            return bool(actual > operand)
        if op == "$gte":
            return bool(actual >= operand)
        if op == "$lt":
            return bool(actual < operand)
        return bool(actual <= operand)
    except TypeError:  # a string against a number: no order, no match
        return False


# Called inside the transaction of every put (with the new value) and delete (with None):
# (session, tenant_id, namespace path, key, value). The memory layer's outbox hooks in here.
WriteListener = Callable[[Session, str, str, str, "dict[str, Any] | None"], None]


class ItemStore:
    def __init__(self, db: Database, index: SemanticIndex | None = None) -> None:
        self.db = db
        self.index = index
        self.listeners: list[WriteListener] = []

    def _live(self, tenant_id: str, now: datetime) -> Any:
        return and_(
            StoreItemRow.tenant_id == tenant_id,
            or_(StoreItemRow.expires_at.is_(None), StoreItemRow.expires_at > now),
        )

    def put(
        self,
        tenant_id: str,
        namespace: Sequence[str],
        key: str,
        value: dict[str, Any],
        *,
        ttl_minutes: float | None = None,
    ) -> None:
        path = _joined(validate_namespace(namespace))
        validate_key(key)
        try:
            self._put(tenant_id, path, key, value, ttl_minutes)
        except IntegrityError:  # another put created the item first: replace that one
            self._put(tenant_id, path, key, value, ttl_minutes)

    def _put(
        self,
        tenant_id: str,
        path: str,
        key: str,
        value: dict[str, Any],
        ttl_minutes: float | None,
    ) -> None:
        now = utcnow()
        expires = now + timedelta(minutes=ttl_minutes) if ttl_minutes is not None else None
        with self.db.session() as session:
            row = session.get(StoreItemRow, (tenant_id, path, key))
            if row is None or (row.expires_at is not None and _aware(row.expires_at) <= now):
                if row is not None:
                    session.delete(row)
                    session.flush()
                row = StoreItemRow(tenant_id=tenant_id, namespace=path, key=key, created_at=now)
                session.add(row)
            row.value = value
            row.updated_at = now
            row.ttl_minutes = ttl_minutes
            row.expires_at = expires
            for listener in self.listeners:
                listener(session, tenant_id, path, key, value)

    def get(
        self, tenant_id: str, namespace: Sequence[str], key: str, *, refresh_ttl: bool = True
    ) -> Item | None:
        path = _joined(validate_namespace(namespace))
        validate_key(key)
        now = utcnow()
        with self.db.session() as session:
            row = session.get(StoreItemRow, (tenant_id, path, key))
            if row is None or (row.expires_at is not None and _aware(row.expires_at) <= now):
                return None
            if refresh_ttl:
                _refresh(row, now)
            return _item(row)

    def delete(self, tenant_id: str, namespace: Sequence[str], key: str) -> bool:
        path = _joined(validate_namespace(namespace))
        validate_key(key)
        with self.db.session() as session:
            result = session.execute(
                delete(StoreItemRow).where(
                    StoreItemRow.tenant_id == tenant_id,
                    StoreItemRow.namespace == path,
                    StoreItemRow.key == key,
                )
            )
            for listener in self.listeners:
                listener(session, tenant_id, path, key, None)
            return bool(getattr(result, "rowcount", 0))

    def search(
        self,
        tenant_id: str,
        prefix: Sequence[str],
        *,
        filter: dict[str, Any] | None = None,
        query: str | None = None,
        limit: int = 10,
        offset: int = 0,
        refresh_ttl: bool = True,
    ) -> list[Item]:
        """Items under `prefix`, newest update first (or best match first for a `query` when an
        index is configured), that meet `filter`."""
        labels = validate_namespace(prefix, allow_empty=True)
        now = utcnow()
        statement = select(StoreItemRow).where(self._live(tenant_id, now))
        if labels:
            path = _joined(labels)
            statement = statement.where(
                or_(
                    StoreItemRow.namespace == path,
                    StoreItemRow.namespace.startswith(path + SEPARATOR, autoescape=True),
                )
            )
        statement = statement.order_by(
            StoreItemRow.updated_at.desc(), StoreItemRow.namespace, StoreItemRow.key
        )
        ranked = query is not None and self.index is not None
        picked: list[StoreItemRow] = []
        skipped = 0
        with self.db.session() as session:
            for row in session.scalars(statement.execution_options(yield_per=500)):
                if not matches(row.value or {}, filter):
                    continue
                if not ranked and skipped < offset:
                    skipped += 1
                    continue
                picked.append(row)
                if not ranked and len(picked) >= limit:
                    break
            items = [_item(row) for row in picked]
            if ranked:
                assert self.index is not None and query is not None
                items = self.index.rank(tenant_id, query, items)[offset : offset + limit]
                wanted = {(item.namespace, item.key) for item in items}
                picked = [r for r in picked if (tuple(r.namespace.split(".")), r.key) in wanted]
            if refresh_ttl:
                for row in picked:
                    _refresh(row, now)
        return items

    def namespaces(
        self,
        tenant_id: str,
        *,
        prefix: Sequence[str] | None = None,
        suffix: Sequence[str] | None = None,
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[tuple[str, ...]]:
        """Distinct namespaces holding live items, in order; `*` in a prefix or suffix matches
        any one label; `max_depth` cuts each namespace to that many labels."""
        want_prefix = tuple(prefix or ())
        want_suffix = tuple(suffix or ())
        now = utcnow()
        statement = (
            select(StoreItemRow.namespace)
            .where(self._live(tenant_id, now))
            .distinct()
            .order_by(StoreItemRow.namespace)
        )
        literal = _literal_head(want_prefix)
        if literal:
            path = _joined(literal)
            statement = statement.where(
                or_(
                    StoreItemRow.namespace == path,
                    StoreItemRow.namespace.startswith(path + SEPARATOR, autoescape=True),
                )
            )
        found: dict[tuple[str, ...], None] = {}
        with self.db.session() as session:
            for path in session.scalars(statement):
                labels = tuple(path.split(SEPARATOR))
                if not (_labels_match(labels, want_prefix) and _ends_with(labels, want_suffix)):
                    continue
                found.setdefault(labels[:max_depth] if max_depth else labels, None)
        return sorted(found)[offset : offset + limit]

    def purge_expired(self, now: datetime | None = None) -> int:
        with self.db.session() as session:
            result = session.execute(
                delete(StoreItemRow).where(StoreItemRow.expires_at <= (now or utcnow()))
            )
            return int(getattr(result, "rowcount", 0) or 0)


def _refresh(row: StoreItemRow, now: datetime) -> None:
    if row.ttl_minutes is not None:
        row.expires_at = now + timedelta(minutes=row.ttl_minutes)


def _literal_head(prefix: tuple[str, ...]) -> tuple[str, ...]:
    head: list[str] = []
    for label in prefix:
        if label == "*":
            break
        head.append(label)
    return tuple(head)


def _labels_match(labels: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    if len(labels) < len(pattern):
        return False
    return all(p in ("*", label) for p, label in zip(pattern, labels, strict=False))


def _ends_with(labels: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    if not pattern:
        return True
    return _labels_match(labels[-len(pattern) :], pattern) if len(labels) >= len(pattern) else False
