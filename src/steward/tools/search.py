"""Tool search: with hundreds of tools, the model gets one `search_tools` meta-tool and loads
only the schemas it picks, instead of every schema on every model call.

```python
@app.agent(tool_search=True)
async def ops(ctx: Context, input: Ask) -> str:
    return (await ctx.tool_loop(input.message)).text
```

The index is BM25 over each tool's name (split on `_`, `-`, `.` and camelCase, weighted up),
description and parameter names and descriptions, with light stemming so "invoices",
"invoicing" and "invoice" meet. `search_tools` answers with the best matches' names and
descriptions; from then on their schemas are offered to the model with the meta-tool, and the
model calls them as usual. The result is journaled like any tool's, so a resumed run loads the
same tools in the same order.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from steward.policy.declaration import AgentPolicy
from steward.tools.registry import Tool, ToolContext
from steward.tools.schema_tools import SchemaTool, make_schema_tool

SEARCH_TOOL = "search_tools"
DEFAULT_LIMIT = 5
MAX_LIMIT = 20
NAME_WEIGHT = 3
PARAMETER_WEIGHT = 1
EXPANSION_WEIGHT = 0.6
_K1 = 1.2
_B = 0.75
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "to",
        "for",
        "in",
        "on",
        "at",
        "by",
        "with",
        "from",
        "as",
        "is",
        "are",
        "be",
        "this",
        "that",
        "it",
        "its",
        "into",
        "me",
        "my",
        "our",
        "we",
        "you",
        "your",
        "i",
        "please",
        "can",
        "could",
        "would",
        "should",
        "will",
        "do",
        "does",
        "how",
        "what",
        "which",
        "who",
        "when",
        "where",
        "all",
        "any",
        "some",
        "one",
    ]
)
_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "ers", "er", "es", "ed", "ly", "s")


# How people ask for the usual operations, mapped onto the verbs tools are named with. Added to
# a query at a lower weight than its own words; nothing domain-specific.
_INTENTS: dict[str, tuple[str, ...]] = {
    "find": ("search", "list"),
    "which": ("search", "list"),
    "list": ("search",),
    "look": ("get", "search"),
    "lookup": ("get", "search"),
    "what": ("get",),
    "where": ("get",),
    "show": ("get", "list"),
    "fetch": ("get",),
    "read": ("get",),
    "how": ("count",),
    "many": ("count",),
    "number": ("count",),
    "total": ("count",),
    "make": ("create",),
    "add": ("create",),
    "new": ("create",),
    "open": ("create",),
    "start": ("create",),
    "book": ("create",),
    "submit": ("create",),
    "change": ("update",),
    "edit": ("update",),
    "modify": ("update",),
    "set": ("update",),
    "move": ("update",),
    "rename": ("update",),
    "remove": ("delete",),
    "cancel": ("delete",),
    "erase": ("delete",),
    "revoke": ("delete",),
    "hide": ("archive",),
    "retire": ("archive",),
    "give": ("assign",),
    "hand": ("assign",),
    "delegate": ("assign",),
    "download": ("export",),
    "csv": ("export",),
    "who": ("history",),
    "changed": ("history",),
    "log": ("history",),
}


def stem(word: str) -> str:
    """A light suffix stripper: enough for "invoice", "invoices", "invoicing" and "invoiced"
    to meet (a final "e" is dropped too, so "create" meets "created")."""
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            if suffix == "s" and word.endswith("ss"):
                break
            word = word[: -len(suffix)]
            if suffix in ("ies", "ied"):
                word += "y"
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def terms(text: str) -> list[str]:
    text = _CAMEL.sub(" ", text).replace("_", " ").replace("-", " ").replace(".", " ")
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


def _document(tool: Tool) -> list[str]:
    schema = tool.definition().parameters
    properties = schema.get("properties") if isinstance(schema, dict) else None
    words = terms(tool.name) * NAME_WEIGHT + terms(tool.description)
    for name, spec in (properties or {}).items():
        words += terms(str(name)) * PARAMETER_WEIGHT
        if isinstance(spec, dict) and isinstance(spec.get("description"), str):
            words += terms(spec["description"])
    return words


@dataclass(frozen=True)
class Hit:
    name: str
    score: float


class ToolIndex:
    """BM25 over a fixed set of tools (built once per agent tool set, in milliseconds)."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self.tools = {tool.name: tool for tool in tools}
        self._docs = {name: Counter(_document(tool)) for name, tool in self.tools.items()}
        self._lengths = {name: sum(doc.values()) for name, doc in self._docs.items()}
        count = max(1, len(self._docs))
        self._average = sum(self._lengths.values()) / count
        frequency: Counter[str] = Counter()
        for doc in self._docs.values():
            frequency.update(doc.keys())
        self._idf = {
            term: math.log(1 + (count - seen + 0.5) / (seen + 0.5))
            for term, seen in frequency.items()
        }

    def search(self, query: str, limit: int = DEFAULT_LIMIT) -> list[Hit]:
        wanted = weighted_terms(query)
        hits = []
        for name, doc in self._docs.items():
            norm = _K1 * (1 - _B + _B * self._lengths[name] / (self._average or 1))
            score = 0.0
            for term, weight in wanted.items():
                tf = doc.get(term, 0)
                if tf:
                    score += weight * self._idf[term] * tf * (_K1 + 1) / (tf + norm)
            if score > 0:
                hits.append(Hit(name, score))
        hits.sort(key=lambda hit: (-hit.score, hit.name))
        return hits[:limit]


def weighted_terms(query: str) -> dict[str, float]:
    """The query's own terms (weight 1) and the operation verbs its wording implies."""
    text = query.lower()
    words = _WORD.findall(text)
    wanted: dict[str, float] = dict.fromkeys(terms(query), 1.0)
    for word in words:
        for verb in _INTENTS.get(word, ()):
            wanted.setdefault(stem(verb), EXPANSION_WEIGHT)
    return wanted


def search_tool(tools: Mapping[str, Tool]) -> SchemaTool:
    """The `search_tools` meta-tool over `tools` (the agent's own, without itself)."""
    index = ToolIndex(tool for name, tool in tools.items() if name != SEARCH_TOOL)

    async def search(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        hits = index.search(str(args["query"]), int(args.get("limit", DEFAULT_LIMIT)))
        return {
            "loaded": [hit.name for hit in hits],
            "tools": [
                {"name": hit.name, "description": index.tools[hit.name].description} for hit in hits
            ],
        }

    return make_schema_tool(
        name=SEARCH_TOOL,
        description=(
            f"Search the {len(index.tools)} available tools by what you need to do. The tools "
            "found are loaded: call them by name afterwards. Search again for other tasks."
        ),
        input_schema={
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": 500},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        handler=search,
    )


def visible(tools: Mapping[str, Tool], loaded: Iterable[str]) -> list[Tool]:
    """What a tool-search agent's model is offered: the meta-tool and the tools it loaded."""
    shown = [tools[SEARCH_TOOL]] if SEARCH_TOOL in tools else []
    return shown + [tools[name] for name in dict.fromkeys(loaded) if name in tools]


def loaded_by(result: Any) -> list[str]:
    """The tool names a `search_tools` result loaded."""
    names = result.get("loaded") if isinstance(result, dict) else None
    return [str(name) for name in names] if isinstance(names, list) else []


def with_search_trusted(policy: AgentPolicy) -> AgentPolicy:
    """The agent's policy with `search_tools` trusted: its results are the app's own tool
    names and descriptions, not outside content, so searching does not taint the run."""
    if SEARCH_TOOL in policy.trusted_tools:
        return policy
    return replace(policy, trusted_tools=(*policy.trusted_tools, SEARCH_TOOL))
