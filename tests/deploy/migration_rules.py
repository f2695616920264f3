"""The expand/contract rule for migrations, checked on their source (docs/upgrading.md).

A migration's `upgrade()` may only *expand* the schema, so that processes of the previous
version keep working while it runs and after it: new tables; new columns that are nullable
or have a server default; new indexes (unique ones only on tables of the same migration);
inserted rows; functions and triggers created with plain `CREATE`. Anything else (dropping,
renaming, altering, a new constraint on an existing table, `UPDATE`/`DELETE`/`ALTER` SQL)
*contracts* it and is refused unless the migration says why it is safe, in a module-level
`NON_ADDITIVE = "..."` string, and the upgrade guide says how to roll it out.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

EXPANDING = {"create_table", "add_column", "create_index", "bulk_insert", "batch_alter_table"}
HARMLESS = {"f", "get_bind", "get_context", "inline_literal"}
SQL_EXPANDING = ("CREATE FUNCTION", "CREATE TRIGGER", "CREATE INDEX", "CREATE TABLE", "INSERT")


@dataclass
class Verdict:
    revision: str
    marked: str | None
    findings: list[str] = field(default_factory=list)

    @property
    def additive(self) -> bool:
        return not self.findings


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _string(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):  # an f-string: its literal parts
        return "".join(
            v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
        )
    return None


def _column_is_additive(call: ast.Call) -> bool:
    column = next((a for a in call.args if isinstance(a, ast.Call)), None)
    if column is None:
        return False
    nullable = _keyword(column, "nullable")
    default = _keyword(column, "server_default")
    explicitly_required = isinstance(nullable, ast.Constant) and nullable.value is False
    return not explicitly_required or default is not None


class _Upgrade(ast.NodeVisitor):
    def __init__(self, module: ast.Module) -> None:
        self.findings: list[str] = []
        self.new_tables: set[str] = set()
        self.batch_tables: dict[str, str] = {}  # `as` name -> table
        self.sql: dict[str, str] = {}  # module-level string constants (names used in execute)
        for node in module.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name) and (text := _string(node.value)) is not None:
                    self.sql[target.id] = text

    def visit_With(self, node: ast.With) -> None:
        for item in node.items:
            call = item.context_expr
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "batch_alter_table"
                and isinstance(item.optional_vars, ast.Name)
                and (table := _string(call.args[0] if call.args else None)) is not None
            ):
                self.batch_tables[item.optional_vars.id] = table
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner, name = func.value.id, func.attr
            if owner == "op" or owner in self.batch_tables:
                self._operation(owner, name, node)
        elif isinstance(func, ast.Attribute) and func.attr == "execute":
            self._connection_execute(node)
        self.generic_visit(node)

    def _operation(self, owner: str, name: str, node: ast.Call) -> None:
        line = f"line {node.lineno}: {owner}.{name}"
        if name in HARMLESS:
            return
        if name not in EXPANDING and name != "execute":
            self.findings.append(f"{line} changes or removes what exists")
            return
        if name == "create_table" and (table := _string(node.args[0] if node.args else None)):
            self.new_tables.add(table)
        elif name == "add_column" and not _column_is_additive(node):
            self.findings.append(f"{line} adds a NOT NULL column without a server default")
        elif name == "create_index":
            self._index(owner, node, line)
        elif name == "execute":
            self._sql(node, line)

    def _index(self, owner: str, node: ast.Call, line: str) -> None:
        unique = _keyword(node, "unique")
        if not (isinstance(unique, ast.Constant) and unique.value is True):
            return
        table = self.batch_tables.get(owner)
        if table is None and len(node.args) >= 2:
            table = _string(node.args[1])
        if table not in self.new_tables:
            self.findings.append(f"{line} adds a unique index to existing table {table!r}")

    def _sql(self, node: ast.Call, line: str) -> None:
        argument = node.args[0] if node.args else None
        text = _string(argument)
        if text is None and isinstance(argument, ast.Name):
            text = self.sql.get(argument.id)
        if text is None or not text.lstrip().upper().startswith(SQL_EXPANDING):
            self.findings.append(f"{line} runs SQL that is not CREATE/INSERT: {text!r:.80}")

    def _connection_execute(self, node: ast.Call) -> None:
        argument = node.args[0] if node.args else None
        while isinstance(argument, ast.Call) and isinstance(argument.func, ast.Attribute):
            if argument.func.attr == "select":
                return  # a read
            argument = argument.func.value  # sa.select(...).where(...) -> sa.select(...)
        if (
            isinstance(argument, ast.Call)
            and isinstance(argument.func, ast.Name)
            and argument.func.id == "select"
        ):
            return
        self.findings.append(f"line {node.lineno}: connection.execute of something not a read")


def check(source: str, revision: str) -> Verdict:
    module = ast.parse(source)
    marked = None
    upgrade = None
    for node in module.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "NON_ADDITIVE" for t in node.targets
        ):
            marked = _string(node.value)
        if isinstance(node, ast.FunctionDef) and node.name == "upgrade":
            upgrade = node
    verdict = Verdict(revision, marked)
    if upgrade is None:
        verdict.findings.append("no upgrade()")
        return verdict
    visitor = _Upgrade(module)
    # Helpers that upgrade() calls are part of it.
    helpers = {n.name: n for n in module.body if isinstance(n, ast.FunctionDef)}
    called = {
        c.func.id
        for c in ast.walk(upgrade)
        if isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id in helpers
    }
    for body in (upgrade, *(helpers[name] for name in sorted(called))):
        visitor.visit(body)
    verdict.findings = visitor.findings
    return verdict
