"""Append-only guards shared by the migrations: the database refuses to rewrite history.

SQLite gets one trigger per table and operation; PostgreSQL row triggers for UPDATE and DELETE
and a statement trigger for TRUNCATE, all calling ``duowei_refuse()`` (created by revision 0001).
"""

from __future__ import annotations

from collections.abc import Iterable


def append_only(dialect: str, tables: Iterable[str], *, why: str) -> list[str]:
    """Statements that make each table refuse UPDATE, DELETE and TRUNCATE."""
    statements = []
    for t in tables:
        if dialect == "sqlite":
            statements += [
                f"CREATE TRIGGER {t}_no_{o} BEFORE {o.upper()} ON {t} "
                f"BEGIN SELECT RAISE(ABORT, '{t} are append-only: {o} refused'); END"
                for o in ("update", "delete")
            ]
        else:
            statements += [
                f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} FOR EACH ROW "
                f"EXECUTE FUNCTION duowei_refuse('{why}')",
                f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} FOR EACH STATEMENT "
                f"EXECUTE FUNCTION duowei_refuse('{why}')",
            ]
    return statements


def never_deleted(dialect: str, tables: Iterable[str], *, why: str) -> list[str]:
    """Statements that make each table refuse DELETE and TRUNCATE (updates stay allowed)."""
    statements = []
    for t in tables:
        if dialect == "sqlite":
            statements.append(
                f"CREATE TRIGGER {t}_no_delete BEFORE DELETE ON {t} "
                f"BEGIN SELECT RAISE(ABORT, '{why}'); END"
            )
        else:
            statements += [
                f"CREATE TRIGGER {t}_no_delete BEFORE DELETE ON {t} FOR EACH ROW "
                f"EXECUTE FUNCTION duowei_refuse('{why}')",
                f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} FOR EACH STATEMENT "
                f"EXECUTE FUNCTION duowei_refuse('{why}')",
            ]
    return statements


def guard_update(dialect: str, name: str, table: str, refuse_when: str, *, why: str) -> str:
    """A trigger refusing any UPDATE of ``table`` for which ``refuse_when`` holds."""
    if dialect == "sqlite":
        return (
            f"CREATE TRIGGER {name} BEFORE UPDATE ON {table} WHEN {refuse_when} "
            f"BEGIN SELECT RAISE(ABORT, '{why}'); END"
        )
    return (
        f"CREATE TRIGGER {name} BEFORE UPDATE ON {table} FOR EACH ROW WHEN ({refuse_when}) "
        f"EXECUTE FUNCTION duowei_refuse('{why}')"
    )
