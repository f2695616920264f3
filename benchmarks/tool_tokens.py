"""Input tokens per task: every tool schema on every model call vs tool search vs code execution.

One app declares a generated registry of 300 tools (tests/tool_search/registry.py); a task needs
three of them in turn (search invoices -> get the customer -> create a refund) and the invoice
search returns a large intermediate result (~`--invoices` invoices). Two agents run the same task
in this process against the wire-compatible test upstream, which plays the model from a script:
`all_tools` (every schema offered on each call: the baseline), `tool_search` (the model gets
`search_tools` and calls the tools it loads) and `code_execution` (`ctx.code_mode()`: the model
writes one program against the 300 tools' typed signatures; it runs in a bubblewrap sandbox and
only its printed summary returns). Input tokens are counted from the request bodies the
upstream received, messages and tool schemas, at 4 characters a token (the upstream's own rule
for messages). Last line: key=value figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.tool_search.registry import build_app  # noqa: E402

from steward import Context, ToolContext  # noqa: E402
from steward.config import Settings  # noqa: E402
from steward.policy.declaration import AgentPolicy, MonitorPolicy  # noqa: E402
from steward.runs.engine import RunRequest  # noqa: E402
from steward.runtime import Runtime  # noqa: E402
from steward.tools.code_mode import CODE_TOOL  # noqa: E402
from steward.upstream.testing import UpstreamControl, run_upstream_in_thread  # noqa: E402


class Task(BaseModel):
    message: str


TASK = "Customer 42 was double charged: find their invoices, check the customer, refund 30 EUR."


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def scripts() -> dict[str, list[dict[str, Any]]]:
    invoice = call("search_invoice", query="customer 42", limit=200)
    customer = call("get_customer", customer_id="42")
    refund = call("create_refund", amount="30 EUR", reason="double charge", order_id="42")
    done = {"text": "Refunded 30 EUR to customer 42."}
    return {
        "all_tools": [invoice, customer, refund, done],
        "tool_search": [
            call("search_tools", query="search invoices of a customer"),
            invoice,
            call("search_tools", query="get customer details"),
            customer,
            call("search_tools", query="create a refund for a customer"),
            refund,
            done,
        ],
        "code_execution": [
            {"tool_calls": [{"name": CODE_TOOL, "arguments": {"code": PROGRAM}}]},
            done,
        ],
    }


PROGRAM = """
found = tools.search_invoice(query="customer 42", limit=200)
customer = tools.get_customer(customer_id="42")
refund = tools.create_refund(amount="30 EUR", reason="double charge", order_id="42")
print(found["total"], "invoices;", customer["ok"], refund["ok"])
"""


def build(invoices: int) -> Any:
    app = build_app()

    async def search_invoice(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        rows = [
            {"id": f"INV-{n:05d}", "customer_id": 42, "amount_eur": 30 + n % 7, "status": "paid"}
            for n in range(invoices)
        ]
        return {"invoices": rows, "total": len(rows)}

    # The search tool of the registry, answering with a large intermediate result.
    app.tools["search_invoice"] = app.tools["search_invoice"].__class__(
        **{**app.tools["search_invoice"].__dict__, "fn": search_invoice}
    )

    async def agent(ctx: Context, input: Task) -> str:
        return (await ctx.tool_loop(input.message)).text

    # The large result is a legitimate jump in tokens: the monitor reports it, without stopping.
    policy = AgentPolicy(monitor=MonitorPolicy(stop_run=False))
    app.agent(name="all_tools", max_steps=20, policy=policy)(agent)
    app.agent(name="tool_search", max_steps=20, tool_search=True, policy=policy)(agent)

    async def coder(ctx: Context, input: Task) -> str:
        return (await ctx.code_mode().loop(input.message)).text

    app.agent(name="code_execution", max_steps=20, policy=policy)(coder)
    return app


def tokens(body: dict[str, Any]) -> int:
    sent = {"messages": body.get("messages"), "tools": body.get("tools")}
    return math.ceil(len(json.dumps(sent)) / 4)


async def measure(invoices: int) -> dict[str, Any]:
    with run_upstream_in_thread() as upstream, tempfile.TemporaryDirectory() as home:
        os.environ["OPENAI_API_KEY"] = "sk-bench"
        os.environ["STEWARD_OPENAI_BASE_URL"] = f"{upstream}/v1"
        settings = Settings(
            home=Path(home), model="openai:gpt-4.1-mini", apps=[], sandbox_pool_size=0
        )
        runtime = Runtime.build(settings, build(invoices), execute=True)
        await runtime.start()
        control = UpstreamControl(upstream)
        figures: dict[str, Any] = {}
        try:
            for agent, script in scripts().items():
                control.reset()
                control.script(*script)
                run = await runtime.engine.submit(
                    RunRequest(tenant_id="default", agent=agent, input={"message": TASK})
                )
                done = await asyncio.wait_for(runtime.engine.wait("default", run.id), 120)
                assert done.status == "success", done.error
                bodies = [r["body"] for r in control.requests()]
                if agent == "code_execution":  # the program really ran and made its calls
                    [ran] = [m["content"] for m in bodies[-1]["messages"] if m["role"] == "tool"]
                    assert json.loads(ran)["exit_code"] == 0, ran
                    assert json.loads(ran)["tool_calls"] == 3, ran
                figures[agent] = {
                    "model_calls": len(bodies),
                    "input_tokens": sum(tokens(b) for b in bodies),
                    "schemas_per_call": [len(b.get("tools") or []) for b in bodies],
                }
        finally:
            await runtime.stop()
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invoices", type=int, default=200, help="rows in the large result")
    args = parser.parse_args()
    figures = asyncio.run(measure(args.invoices))
    for agent, data in figures.items():
        print(f"{agent}: {data}")
    full = figures["all_tools"]["input_tokens"]
    searched = figures["tool_search"]["input_tokens"]
    coded = figures["code_execution"]["input_tokens"]
    print(
        f"tools=300 invoices={args.invoices} all_tools_input_tokens={full} "
        f"tool_search_input_tokens={searched} code_execution_input_tokens={coded} "
        f"all_over_search={full / searched:.2f} all_over_code={full / coded:.2f} "
        f"all_tools_model_calls={figures['all_tools']['model_calls']} "
        f"tool_search_model_calls={figures['tool_search']['model_calls']} "
        f"code_execution_model_calls={figures['code_execution']['model_calls']}"
    )


if __name__ == "__main__":
    main()
