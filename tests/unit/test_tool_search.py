"""Tool search over a generated 300-tool registry: the right tool in the top 3 for at least 95%
of the 50 queries shipped beside the registry (tests/tool_search/queries.json)."""

from __future__ import annotations

import json
from pathlib import Path

from steward.tools.search import SEARCH_TOOL, ToolIndex, loaded_by, search_tool, terms, visible
from tests.tool_search.registry import build_app, tool_names

QUERIES = json.loads((Path(__file__).parents[1] / "tool_search" / "queries.json").read_text())


def test_the_right_tool_is_in_the_top_3_for_at_least_95_percent_of_queries() -> None:
    app = build_app()
    assert len(app.tools) == 300 and sorted(app.tools) == sorted(tool_names())
    assert len(QUERIES) == 50
    assert {q["tool"] for q in QUERIES} <= set(app.tools)
    index = ToolIndex(app.tools.values())
    found = [q for q in QUERIES if q["tool"] in [h.name for h in index.search(q["query"], 3)]]
    missed = [q["query"] for q in QUERIES if q not in found]
    assert len(found) / len(QUERIES) >= 0.95, missed


def test_names_are_split_and_stemmed_like_the_query() -> None:
    assert terms("createPurchaseOrder") == terms("create purchase_orders")
    assert terms("invoicing invoices invoiced") == terms("invoice") * 3


async def test_the_meta_tool_loads_what_it_found() -> None:
    app = build_app()
    meta = search_tool(app.tools)
    assert not meta.writes
    result = await meta.fn({"query": "refund a damaged order", "limit": 3}, None)
    assert len(result["tools"]) == 3 and result["loaded"][0] == "create_refund"
    shown = visible({**app.tools, SEARCH_TOOL: meta}, loaded_by(result))
    assert [t.name for t in shown] == [SEARCH_TOOL, *result["loaded"]]
