"""Request and response shapes of the HTTP API; the run paths follow LangGraph Platform's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from steward.runs.run_config import public_metadata, recorded
from steward.server.pagination import DEFAULT_LIMIT, Limit, Offset
from steward.store.schema import Run, Thread

StreamMode = Literal["values", "updates", "messages", "messages-tuple", "custom", "events", "debug"]
_UNSUPPORTED = (
    "after_seconds",
    "interrupt_before",
    "interrupt_after",
    "checkpoint",
    "checkpoint_id",
)
# Deeper values are refused before a run is accepted: near Python's recursion limit a body still
# parses, but echoing it back raises RecursionError after the run has already started.
MAX_JSON_DEPTH = 64


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` has more than `limit` levels of dicts and lists; iterative, stops early."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def _bounded_depth(value: Any) -> Any:
    if _nested_deeper_than(value, MAX_JSON_DEPTH):
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def configurable_object(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """LangGraph's run `config`: its `configurable`, when given, is an object."""
    if config is not None and not isinstance(config.get("configurable", {}), dict):
        raise ValueError("config.configurable must be an object")
    return config


class RunCreate(BaseModel):
    """Body of every run-creating endpoint. Unknown fields are ignored, never assigned."""

    model_config = ConfigDict(extra="ignore")

    assistant_id: str = Field(min_length=1, max_length=200)
    input: Any = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    stream_mode: StreamMode | list[StreamMode] = "values"
    multitask_strategy: Literal["reject", "interrupt", "rollback", "enqueue"] | None = None
    if_not_exists: Literal["create", "reject"] | None = None
    on_disconnect: Literal["cancel", "continue"] | None = None
    on_completion: Literal["delete", "keep"] | None = None
    user: str | None = Field(default=None, max_length=200)
    webhook: str | None = Field(default=None, min_length=1, max_length=2048)
    after_seconds: int | None = None
    command: dict[str, Any] | None = None
    interrupt_before: Any = None
    interrupt_after: Any = None
    checkpoint: Any = None
    checkpoint_id: str | None = None
    stream_resumable: bool = False

    _bounded = field_validator("input", "metadata", "config", "context", "command")(_bounded_depth)

    _configurable = field_validator("config")(configurable_object)

    @model_validator(mode="after")
    def _refuse_unsupported(self) -> RunCreate:
        given = [name for name in _UNSUPPORTED if getattr(self, name) is not None]
        if given:
            raise ValueError(f"not supported by this Steward version: {', '.join(given)}")
        if self.command is not None:
            unknown = set(self.command) - {"resume"}
            if unknown or "resume" not in self.command:
                raise ValueError("command supports only {'resume': <decision>}")
            Resume.from_command(self.command["resume"])
        return self

    def resume(self) -> Resume | None:
        return None if self.command is None else Resume.from_command(self.command["resume"])

    def stream_modes(self) -> set[str]:
        modes = self.stream_mode if isinstance(self.stream_mode, list) else [self.stream_mode]
        return {"messages" if m == "messages-tuple" else m for m in modes}


class ApprovalDecision(BaseModel):
    """A person's decision on a paused tool call."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    arguments: dict[str, Any] | None = None  # edited arguments; only with approve
    comment: str | None = Field(default=None, max_length=4000)

    _bounded = field_validator("arguments")(_bounded_depth)

    @model_validator(mode="after")
    def _arguments_only_when_approving(self) -> ApprovalDecision:
        if self.arguments is not None and self.decision != "approve":
            raise ValueError("edited arguments come only with decision='approve'")
        return self


class Resume(ApprovalDecision):
    """LangGraph's `command: {"resume": …}`: a decision object, or "approve"/"reject"/bool."""

    @classmethod
    def from_command(cls, value: Any) -> Resume:
        if isinstance(value, bool):
            return cls(decision="approve" if value else "reject")
        if isinstance(value, str):
            return cls.model_validate({"decision": value})
        return cls.model_validate(value)


class ThreadCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    thread_id: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] | None = None

    _bounded = field_validator("metadata")(_bounded_depth)


class ThreadSearch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: Limit = DEFAULT_LIMIT
    offset: Offset = 0

    _bounded = field_validator("metadata", "values")(_bounded_depth)


class ThreadPatch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any]

    _bounded = field_validator("metadata")(_bounded_depth)


class ThreadStateUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    values: dict[str, Any]

    _bounded = field_validator("values")(_bounded_depth)


class ThreadHistory(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: Limit = DEFAULT_LIMIT


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite returns naive UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def run_json(run: Run) -> dict[str, Any]:
    settings = recorded(run.meta)
    return {
        "run_id": run.id,
        "thread_id": run.thread_id,
        "assistant_id": settings.assistant_id or run.agent,
        "created_at": iso(run.created_at),
        "updated_at": iso(run.updated_at),
        "started_at": iso(run.started_at),
        "ended_at": iso(run.ended_at),
        "status": run.status,
        "stop_reason": run.stop_reason,
        "metadata": public_metadata(run.meta),
        "multitask_strategy": run.multitask_strategy,
        "kwargs": {"input": run.input, "config": settings.config, "context": settings.context},
        "output": run.output,
        "error": run.error,
        "usage": {
            "steps": run.steps,
            "input_tokens": run.input_tokens,
            "output_tokens": run.output_tokens,
            "cache_read_tokens": run.cache_read_tokens,
            "cost_usd": run.cost_usd,
        },
    }


def thread_json(
    thread: Thread, interrupts: dict[str, list[dict[str, Any]]] | None = None
) -> dict[str, Any]:
    return {
        "thread_id": thread.id,
        "created_at": iso(thread.created_at),
        "updated_at": iso(thread.updated_at),
        "metadata": thread.meta,
        "status": thread.status,
        "values": thread.values,
        "interrupts": interrupts or {},
    }


def run_result(run: Run, interrupts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What `runs.wait` and `runs.join` answer: the output, LangGraph's `__interrupt__` for a
    run paused for approval, or its `__error__` shape."""
    if run.status == "success":
        return run.output or {}
    if interrupts:
        return {"__interrupt__": interrupts}
    error = run.error or {}
    return {
        "__error__": {
            "error": error.get("error", run.stop_reason or run.status),
            "message": error.get("message", f"run ended with status {run.status}"),
            "status": run.status,
            "stop_reason": run.stop_reason,
        }
    }
