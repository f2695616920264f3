"""Planned control flow: the tool calls a request needs, committed to before untrusted content.

A `Plan` lists calls (tool name, and for each argument the slot it fills: `request` — a value
from the user's request, `result` — a value that may come from the results of named earlier
planned calls, `any` — free text the model composes, or a fixed `value`). It is made from the
trusted request alone (by the planner model call in `Context.tool_loop`, or by the developer
through `ctx.plan`). Once untrusted content is in the run, `PlanState.check` refuses calls outside
the plan and untrusted values outside the slots that may take them; the run goes on, the model is
told why. A write call of the plan runs once unless it is marked `repeat`; reads may repeat.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from steward.policy.privileges import ArgumentRule
from steward.policy.provenance import ArgumentProvenance, ProvenanceRecord, canonical_number
from steward.tools.registry import Tool

SlotKind = Literal["request", "result", "any", "value"]


class PlanError(ValueError):
    """The planner's answer is not a plan."""


@dataclass(frozen=True)
class Slot:
    kind: SlotKind = "request"
    of: tuple[int, ...] = ()  # for `result`: the planned calls whose results it may take
    value: Any = None  # for `value`
    field: str | None = None  # for `result`: only this field of those results (e.g. "from")
    # for `result`: only from the record whose fields equal these (trusted) values, e.g.
    # {"name": "notes.txt"} -- the id of the file the user named, not any id in the list
    where: dict[str, Any] | None = None

    def to_json(self) -> Any:
        if self.kind == "result":
            data: dict[str, Any] = {"from": "result", "of": list(self.of)}
            if self.field:
                data["field"] = self.field
            if self.where:
                data["where"] = self.where
            return data
        if self.kind == "value":
            return {"value": self.value}
        return self.kind


@dataclass(frozen=True)
class PlannedCall:
    tool: str
    args: dict[str, Slot] = field(default_factory=dict)
    repeat: bool | None = None  # None: reads repeat, writes run once

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "tool": self.tool,
            "args": {k: s.to_json() for k, s in self.args.items()},
        }
        if self.repeat is not None:
            data["repeat"] = self.repeat
        return data

    def describe(self) -> str:
        slots = ", ".join(f"{k}<-{_slot_text(s)}" for k, s in self.args.items())
        return f"{self.tool}({slots})"


@dataclass(frozen=True)
class Plan:
    calls: tuple[PlannedCall, ...] = ()
    limits: tuple[ArgumentRule, ...] = ()  # privileges the planner derived from the request

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": [c.to_json() for c in self.calls],
            "limits": [r.to_json() for r in self.limits],
        }

    def describe(self) -> str:
        return "; ".join(f"#{i} {c.describe()}" for i, c in enumerate(self.calls)) or "no calls"

    @classmethod
    def from_json(cls, data: Any, tools: dict[str, Tool] | None = None) -> Plan:
        """Validate a plan; unknown tools, bad slots and forward references raise `PlanError`."""
        if isinstance(data, list):
            data = {"calls": data}
        if not isinstance(data, dict) or not isinstance(data.get("calls", []), list):
            raise PlanError("a plan is an object with a list of `calls`")
        calls: list[PlannedCall] = []
        for index, item in enumerate(data.get("calls", [])):
            if not isinstance(item, dict) or not isinstance(item.get("tool"), str):
                raise PlanError(f"call #{index} needs a `tool` name")
            if tools is not None and item["tool"] not in tools:
                raise PlanError(f"call #{index}: unknown tool {item['tool']!r}")
            args = item.get("args") or {}
            if not isinstance(args, dict):
                raise PlanError(f"call #{index}: `args` must be an object")
            slots = {str(k): _slot(v, index) for k, v in args.items()}
            repeat = item.get("repeat")
            calls.append(
                PlannedCall(item["tool"], slots, repeat if isinstance(repeat, bool) else None)
            )
        limits = tuple(_limit(r) for r in data.get("limits") or [])
        return cls(tuple(calls), limits)


def _slot_text(slot: Slot) -> str:
    if slot.kind == "result":
        where = f"field {slot.field!r} of " if slot.field else ""
        if slot.where:
            where += f"the record with {slot.where} in the "
        return f"{where}result of " + (",".join(f"#{i}" for i in slot.of) or "any earlier call")
    if slot.kind == "value":
        return f"value {slot.value!r}"
    return slot.kind


def _slot(raw: Any, index: int) -> Slot:
    if isinstance(raw, str):
        if raw in ("request", "any"):
            return Slot(raw)  # type: ignore[arg-type]
        if raw.startswith("result"):
            refs = raw.partition(":")[2]
            of = tuple(int(r) for r in refs.split(",") if r.strip().isdigit())
            return _checked(Slot("result", of), index)
    if isinstance(raw, dict):
        if "value" in raw:
            return Slot("value", value=raw["value"])
        if raw.get("from") == "result":
            of_raw = raw.get("of", [])
            of_list = of_raw if isinstance(of_raw, list) else [of_raw]
            if not all(isinstance(i, int) and not isinstance(i, bool) for i in of_list):
                raise PlanError(f"call #{index}: `of` lists call numbers")
            field = raw.get("field")
            if field is not None and not isinstance(field, str):
                raise PlanError(f"call #{index}: `field` names a result field")
            where = raw.get("where")
            if where is not None and (not isinstance(where, dict) or field is None):
                raise PlanError(f"call #{index}: `where` is an object and needs a `field`")
            return _checked(Slot("result", tuple(of_list), field=field, where=where), index)
        if raw.get("from") in ("request", "any"):
            return Slot(raw["from"])
    raise PlanError(f"call #{index}: unknown argument slot {raw!r}")


def _checked(slot: Slot, index: int) -> Slot:
    if any(i < 0 or i >= index for i in slot.of):
        raise PlanError(f"call #{index} may only take results of earlier calls")
    return slot


def _limit(raw: Any) -> ArgumentRule:
    if not isinstance(raw, dict) or "tool" not in raw or "argument" not in raw:
        raise PlanError("a limit names a `tool` and an `argument`")
    allowed = {"one_of", "domains", "max", "min", "prefixes", "pattern"}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("tool", "argument"):
            continue
        if key not in allowed:
            raise PlanError(f"unknown limit {key!r}")
        values[key] = tuple(value) if isinstance(value, list) else value
    return ArgumentRule(tool=str(raw["tool"]), argument=str(raw["argument"]), **values)


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def parse_plan(text: str, tools: dict[str, Tool]) -> Plan:
    """The plan in a planner's answer: a JSON object, bare or in a code fence."""
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end < start:
        raise PlanError("the planner's answer holds no JSON object")
    try:
        data = json.loads(body[start : end + 1])
    except ValueError as exc:
        raise PlanError(f"the planner's answer is not JSON: {exc}") from exc
    return Plan.from_json(data, tools)


@dataclass(frozen=True)
class PlanVerdict:
    allowed: bool
    index: int | None  # the planned call this call fills
    reason: str
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "planned_call": self.index,
            "problems": list(self.problems),
        }


class PlanState:
    """One run's plan, which planned call each executed call filled, and how often."""

    def __init__(self, tools: dict[str, Tool], provenance: ProvenanceRecord | None = None) -> None:
        self.tools = tools
        self.provenance = provenance
        self.plan: Plan | None = None
        self.failed = False  # the planner gave no plan: the taint rule decides instead
        self.bound: dict[str, int] = {}  # call id -> planned call index
        self.results: dict[str, Any] = {}  # call id -> its (journaled) result
        self._used: dict[int, int] = {}

    @property
    def active(self) -> bool:
        return self.plan is not None

    def adopt(self, plan: Plan, history: Sequence[tuple[str, str]]) -> None:
        """Adopt `plan`; calls already made fill its entries (their results become usable),
        except writes an earlier plan already counted: a new plan starts its writes afresh."""
        counted = {c for c in self.bound if self._writes(self._tool_of(c, history))}
        self.plan = plan
        self.failed = False
        self.bound = {}
        self._used = {}
        for name, call_id in history:
            if call_id in counted:
                continue
            index = next((i for i, c in enumerate(plan.calls) if c.tool == name), None)
            if index is not None:
                self.bind(call_id, index)

    def _writes(self, name: str | None) -> bool:
        tool = self.tools.get(name) if name else None
        return tool is not None and tool.writes

    @staticmethod
    def _tool_of(call_id: str, history: Sequence[tuple[str, str]]) -> str | None:
        return next((name for name, c in history if c == call_id), None)

    def bind(self, call_id: str, index: int) -> None:
        self.bound[call_id] = index
        self._used[index] = self._used.get(index, 0) + 1

    def check(self, name: str, arguments: list[ArgumentProvenance]) -> PlanVerdict:
        plan = self.plan
        assert plan is not None
        candidates = [i for i, c in enumerate(plan.calls) if c.tool == name]
        if not candidates:
            return PlanVerdict(
                False,
                None,
                f"{name!r} is not in the plan made from the user's request ({plan.describe()})",
                ("not planned",),
            )
        best: tuple[int, list[str]] | None = None
        for index in candidates:
            call = plan.calls[index]
            problems = self._slot_problems(call, arguments)
            if not problems and self._exhausted(index, call):
                problems = [f"planned call #{index} already ran"]
            if not problems:
                return PlanVerdict(True, index, f"fills planned call #{index}")
            if best is None or len(problems) < len(best[1]):
                best = (index, problems)
        assert best is not None
        index, problems = best
        return PlanVerdict(
            False,
            index,
            f"differs from planned call #{index} "
            f"{plan.calls[index].describe()}: " + "; ".join(problems),
            tuple(problems),
        )

    def _exhausted(self, index: int, call: PlannedCall) -> bool:
        tool = self.tools.get(call.tool)
        repeat = call.repeat if call.repeat is not None else not (tool is not None and tool.writes)
        return not repeat and self._used.get(index, 0) > 0

    def _slot_problems(self, call: PlannedCall, arguments: list[ArgumentProvenance]) -> list[str]:
        problems: list[str] = []
        for arg in arguments:
            top = re.split(r"[.\[]", arg.path, maxsplit=1)[0]
            slot = call.args.get(top, Slot("request"))
            problem = self._slot_problem(slot, arg)
            if problem:
                problems.append(f"{arg.path}={_short(arg.value)} {problem}")
        return problems

    def _slot_problem(self, slot: Slot, arg: ArgumentProvenance) -> str | None:
        if slot.kind == "any" or arg.trusted:
            return None
        if slot.kind == "value":
            same = _same(arg.value, slot.value)
            return None if same else f"is not the planned value {slot.value!r}"
        where = ", ".join(sorted({s.label() for s in arg.sources})) or "no trusted input"
        if slot.kind == "request":
            return f"must come from the user's request but comes from {where}"
        # result slot: untrusted values only from the named calls' results
        if not arg.sources:
            return None  # composed by the model from what it was shown
        allowed = {c for c, i in self.bound.items() if not slot.of or i in slot.of}
        if slot.where is not None and slot.field is not None:
            return self._selected(slot.field, slot.where, arg.value, allowed)
        fitting = [
            s
            for s in arg.sources
            if not s.trusted
            and s.call_id in allowed
            and (slot.field is None or s.field == slot.field)
        ]
        if not fitting:
            return f"comes from {where}, not from the results the plan names"
        if self.provenance is not None and isinstance(arg.value, str):
            rivals = set().union(*(self.provenance.rivals(arg.value, s) for s in fitting))
            if rivals:
                shown = ", ".join(sorted(rivals)[:3])
                return (
                    f"is one of several in the text of {fitting[0].label()} (also {shown}): "
                    "which one to use was the model's choice, not the data's"
                )
        return None

    def _selected(
        self, name: str, where: dict[str, Any], value: Any, calls: set[str]
    ) -> str | None:
        for call_id in calls:
            for record in _records(self.results.get(call_id)):
                if (
                    name in record
                    and _same(record[name], value)
                    and all(_same(record.get(k), v) for k, v in where.items())
                ):
                    return None
        return f"is not the {name} of the record with {where} in the results the plan names"


def _records(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold().strip() == b.casefold().strip()
    return canonical_number(str(a)) == canonical_number(str(b))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"


PLANNER_SYSTEM = """You are the planner of a tool-using assistant. You see only the user's request \
and the developer's instructions, never tool results. List the tool calls the request needs, in \
order, and for each argument say where its value will come from:
- "request": a value written in the user's request (an address, an amount, a file name, an id);
- {"from": "result", "of": [i, ...], "field": f, "where": {k: v}}: a value read from the \
results of earlier calls i (0-based), from their field f, of the record whose field k is the \
value v the request names (e.g. the "id" of the file whose "name" is "notes.txt");
- "any": text you will compose (a summary, a message body);
- {"value": ...}: a fixed value.
Mark a call "repeat": true when it may run several times (e.g. once per item of a list).
You may add "limits" on argument values the request implies, e.g. \
{"tool": "send_money", "argument": "amount", "max": 120}.
Answer with one JSON object only: {"calls": [{"tool": ..., "args": {...}}], "limits": [...]}."""


def planner_prompt(request: str, tools: Sequence[Tool]) -> str:
    """The planner's user message: the tools (names, descriptions, parameters) and the request."""
    described = [
        {
            "name": t.name,
            "description": t.description,
            "parameters": t.definition().parameters,
            "writes": t.writes,
        }
        for t in tools
    ]
    return "Tools:\n" + json.dumps(described, indent=1, sort_keys=True) + "\n\nRequest:\n" + request
