"""Every migration in src/steward/store/migrations/versions only expands the schema, or says
why it may do more (`NON_ADDITIVE`); the rule is in tests/deploy/migration_rules.py and
docs/upgrading.md. Migrations that came before the rule are reviewed here once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from steward.store.migrate import MIGRATIONS_DIR
from tests.deploy.migration_rules import check

VERSIONS = sorted((MIGRATIONS_DIR / "versions").glob("*.py"))

# Migrations written before the rule, which cannot be edited to carry the mark. Each entry
# says what it does beyond expanding and how docs/upgrading.md has it rolled out.
REVIEWED_BEFORE_THE_RULE = {
    "0008": "replaces the one-active-run-per-thread index (status IN (pending, running)) by one "
    "on the new `active` column and marks the open runs active. Processes of an older version "
    "write runs without `active`, so this upgrade stops them all first (docs/upgrading.md, "
    "'Crossing 0008').",
}


def revision_of(path: Path) -> str:
    match = re.match(r"(\d+)_", path.name)
    assert match is not None, f"{path.name}: a migration file starts with its revision"
    return match.group(1)


@pytest.mark.parametrize("path", VERSIONS, ids=[p.name for p in VERSIONS])
def test_migration_expands_only_or_says_why_not(path: Path) -> None:
    revision = revision_of(path)
    verdict = check(path.read_text(), revision)
    if revision in REVIEWED_BEFORE_THE_RULE:
        # The review stays true: the checker still sees why it was needed.
        assert not verdict.additive, f"{revision} is additive now; drop it from the review"
        return
    if verdict.marked is not None:
        assert len(verdict.marked.strip()) >= 40, "NON_ADDITIVE must say why it is safe"
        return
    assert verdict.additive, f"{path}: " + "; ".join(verdict.findings)


def test_the_review_names_only_migrations_that_exist() -> None:
    assert set(REVIEWED_BEFORE_THE_RULE) <= {revision_of(p) for p in VERSIONS}


ADDITIVE = """
def upgrade():
    op.create_table("things", sa.Column("id", sa.Integer(), nullable=False))
    op.create_index("ux_things", "things", ["id"], unique=True)
    with op.batch_alter_table("runs") as batch_op:
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("n", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_index("ix_runs_note", ["note"], unique=False)
    op.execute("CREATE TRIGGER t BEFORE UPDATE ON things FOR EACH ROW EXECUTE FUNCTION f()")
    op.get_bind().execute(sa.select(things.c.id).where(things.c.id == 1)).first()
"""


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ('op.drop_column("runs", "input")', "changes or removes"),
        ('op.drop_table("runs")', "changes or removes"),
        ('op.alter_column("runs", "agent", new_column_name="assistant")', "changes or removes"),
        ('op.rename_table("runs", "jobs")', "changes or removes"),
        ('op.add_column("runs", sa.Column("x", sa.Integer(), nullable=False))', "NOT NULL"),
        ('op.create_index("ux", "runs", ["agent"], unique=True)', "unique index"),
        ('op.execute("UPDATE runs SET status = 1")', "not CREATE/INSERT"),
        ('op.drop_index("ix_runs_tenant_created", table_name="runs")', "changes or removes"),
        ('op.create_foreign_key("fk", "runs", "threads", ["t"], ["id"])', "changes or removes"),
        ('op.get_bind().execute(sa.text("DELETE FROM runs"))', "not a read"),
    ],
)
def test_the_checker_refuses_what_contracts(statement: str, reason: str) -> None:
    assert check(ADDITIVE, "x").additive, check(ADDITIVE, "x").findings
    verdict = check(ADDITIVE + f"    {statement}\n", "x")
    assert not verdict.additive
    assert reason in " ".join(verdict.findings)


def test_a_marked_migration_carries_its_reason() -> None:
    source = 'NON_ADDITIVE = "old workers never read this column"\n' + ADDITIVE
    source += '    op.drop_column("runs", "unused")\n'
    verdict = check(source, "x")
    assert verdict.marked == "old workers never read this column"
    assert not verdict.additive
