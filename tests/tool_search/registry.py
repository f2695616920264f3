"""A generated registry of 300 tools (30 business objects x 10 actions), shaped like a large
company's internal tool set: each tool has a name, a one-line description naming what it
touches, and typed parameters. Used by the tool-search accuracy test and the token benchmark."""

from __future__ import annotations

from typing import Any

from steward import Steward, ToolContext

# object name -> (plural, what it is, its fields)
OBJECTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "invoice": ("invoices", "a bill sent to a customer", ("amount", "due_date", "line_items")),
    "customer": (
        "customers",
        "a company or person who buys from us",
        ("email", "phone", "segment"),
    ),
    "order": (
        "orders",
        "a purchase a customer placed in the shop",
        ("items", "quantity", "coupon"),
    ),
    "shipment": (
        "shipments",
        "a parcel on its way with a carrier",
        ("carrier", "tracking_number", "address"),
    ),
    "ticket": ("tickets", "a support request from a customer", ("priority", "subject", "assignee")),
    "refund": (
        "refunds",
        "money returned to a customer for an order",
        ("amount", "reason", "order_id"),
    ),
    "subscription": ("subscriptions", "a recurring paid plan", ("plan", "billing_cycle", "seats")),
    "product": ("products", "an item in the catalog", ("sku", "price", "category")),
    "stock_level": (
        "stock_levels",
        "inventory on hand for a product in a warehouse",
        ("sku", "warehouse", "quantity"),
    ),
    "warehouse": (
        "warehouses",
        "a storage site that ships goods",
        ("location", "capacity", "manager"),
    ),
    "employee": ("employees", "a person on the staff", ("department", "title", "start_date")),
    "payroll_run": (
        "payroll_runs",
        "salary payments for a pay period",
        ("period", "total", "currency"),
    ),
    "expense_report": (
        "expense_reports",
        "costs an employee claims back, with receipts",
        ("receipts", "total", "project"),
    ),
    "purchase_order": (
        "purchase_orders",
        "goods we buy from a supplier",
        ("supplier", "items", "delivery_date"),
    ),
    "supplier": (
        "suppliers",
        "a vendor we buy goods from",
        ("contact", "payment_terms", "country"),
    ),
    "contract": ("contracts", "a signed legal agreement", ("party", "term", "renewal_date")),
    "meeting": (
        "meetings",
        "a calendar meeting with attendees",
        ("attendees", "start_time", "room"),
    ),
    "email_campaign": (
        "email_campaigns",
        "a marketing newsletter sent to a mailing list",
        ("audience", "subject_line", "send_time"),
    ),
    "lead": ("leads", "a sales prospect who showed interest", ("source", "score", "company")),
    "opportunity": (
        "opportunities",
        "a sales deal in the pipeline",
        ("stage", "value", "close_date"),
    ),
    "help_article": (
        "help_articles",
        "a knowledge base page that answers a common question",
        ("title", "body", "tags"),
    ),
    "user_account": ("user_accounts", "a login to our app", ("username", "role", "password_reset")),
    "api_key": ("api_keys", "a credential for the public API", ("scopes", "expires_at", "owner")),
    "server": ("servers", "a virtual machine in the cloud", ("region", "size", "image")),
    "database_backup": (
        "database_backups",
        "a snapshot of a production database",
        ("database", "retention", "snapshot_time"),
    ),
    "deployment": (
        "deployments",
        "a release of a service to production",
        ("service", "version", "environment"),
    ),
    "incident": (
        "incidents",
        "an outage or production problem being handled on call",
        ("severity", "status_page", "responder"),
    ),
    "feature_flag": (
        "feature_flags",
        "a switch that turns a product feature on for some users",
        ("rollout_percent", "audience", "flag_key"),
    ),
    "document": ("documents", "a file in the shared drive", ("folder", "filename", "sharing")),
    "survey": (
        "surveys",
        "a questionnaire with customer feedback and NPS scores",
        ("questions", "responses", "nps"),
    ),
}

# action -> (description template, extra parameters, writes)
ACTIONS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "create": ("Create a new {what_one} ({what}).", (), True),
    "get": ("Get one {what_one} ({what}) by id with all its details.", ("{obj}_id",), False),
    "search": ("Search and list {plural} ({what}) matching filters.", ("query", "limit"), False),
    "update": ("Update fields of an existing {what_one} ({what}).", ("{obj}_id",), True),
    "delete": ("Delete a {what_one} ({what}) permanently.", ("{obj}_id",), True),
    "archive": ("Archive a {what_one} ({what}) so it is hidden but kept.", ("{obj}_id",), True),
    "export": (
        "Export {plural} ({what}) to a CSV spreadsheet file.",
        ("date_from", "date_to"),
        False,
    ),
    "count": (
        "Count {plural} ({what}) and report totals per period for a dashboard.",
        ("group_by",),
        False,
    ),
    "assign": (
        "Assign a {what_one} ({what}) to a person or team who will own it.",
        ("{obj}_id", "owner"),
        True,
    ),
    "history": (
        "Show the change history and audit log of a {what_one} ({what}).",
        ("{obj}_id",),
        False,
    ),
}


def tool_names() -> list[str]:
    return [f"{action}_{obj}" for obj in OBJECTS for action in ACTIONS]


def _schema(obj: str, action: str) -> dict[str, Any]:
    fields = OBJECTS[obj][2]
    extra = ACTIONS[action][1]
    names = [p.format(obj=obj) for p in extra]
    if action in ("create", "update"):
        names += list(fields)
    properties: dict[str, Any] = {}
    for name in names:
        kind = "integer" if name in ("limit", "quantity", "seats", "capacity") else "string"
        properties[name] = {"type": kind}
    required = [n for n in names if n.endswith("_id")]
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def description(obj: str, action: str) -> str:
    plural, what, _ = OBJECTS[obj]
    template = ACTIONS[action][0]
    what_one = obj.replace("_", " ")
    return template.format(what_one=what_one, what=what, plural=plural.replace("_", " "))


def build_app() -> Steward:
    """A Steward app declaring all 300 tools through `add_tool` (JSON Schema tools)."""
    app = Steward()
    for obj in OBJECTS:
        for action in ACTIONS:
            name = f"{action}_{obj}"

            async def handler(
                args: dict[str, Any], ctx: ToolContext, name: str = name
            ) -> dict[str, Any]:
                return {"tool": name, "arguments": args, "ok": True}

            app.add_tool(
                name=name,
                description=description(obj, action),
                input_schema=_schema(obj, action),
                handler=handler,
                writes=ACTIONS[action][2],
            )
    return app
