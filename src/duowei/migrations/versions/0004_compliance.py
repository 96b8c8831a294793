"""Compliance and privacy: encrypted people, wrapped data keys, consents, the negative-information
notice outbox, credit-report submissions and the reported-record history.

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-27

Personal data is held only as AES-GCM ciphertext plus keyed blind indexes (HMAC-SHA256): the
key-encryption key lives outside the database, so a copy of the database file reveals no name,
ID number, phone or card. Consents and submissions are records of history: append-only by
trigger. People rows may change only to be anonymized (ciphertexts and indexes cleared); the
reported-record history may be deleted, because negative information must not be kept longer
than five years (Regulation on the Administration of the Credit Reporting Industry, Art. 16).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from duowei.migrations.guards import append_only

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None

_APPEND_ONLY = ("privacy_consents", "credit_report_submissions")


def _privacy_tables() -> None:
    op.create_table(
        "privacy_data_keys",
        sa.Column("key_id", sa.Text, primary_key=True),
        sa.Column("kek_id", sa.Text, nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("rewrapped_us", sa.BigInteger),
    )
    op.create_table(
        "people",
        sa.Column("person_ref", sa.Text, primary_key=True),
        sa.Column("key_id", sa.Text, sa.ForeignKey("privacy_data_keys.key_id"), nullable=False),
        sa.Column("id_number_index", sa.LargeBinary, unique=True),
        sa.Column("phone_index", sa.LargeBinary),
        sa.Column("name_ct", sa.LargeBinary),
        sa.Column("id_number_ct", sa.LargeBinary),
        sa.Column("phone_ct", sa.LargeBinary),
        sa.Column("bank_card_ct", sa.LargeBinary),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("relationship_ended_on", sa.Text),
        sa.Column("anonymized_us", sa.BigInteger),
        sa.CheckConstraint(
            "anonymized_us IS NULL OR (name_ct IS NULL AND id_number_ct IS NULL "
            "AND phone_ct IS NULL AND bank_card_ct IS NULL AND id_number_index IS NULL "
            "AND phone_index IS NULL)",
            name="people_anonymized_holds_nothing",
        ),
        sa.CheckConstraint(
            "anonymized_us IS NOT NULL "
            "OR (id_number_ct IS NOT NULL AND id_number_index IS NOT NULL)",
            name="people_active_has_id",
        ),
    )
    op.create_index("people_phone_index", "people", ["phone_index"])
    op.create_table(
        "privacy_consents",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("person_ref", sa.Text, sa.ForeignKey("people.person_ref"), nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("sensitive", sa.Boolean, nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("text_version", sa.Text, nullable=False),
        sa.Column("recorded_us", sa.BigInteger, nullable=False),
    )
    op.create_index("privacy_consents_person", "privacy_consents", ["person_ref", "purpose"])


def _credit_report_tables() -> None:
    op.create_table(
        "negative_info_notices",
        sa.Column("notice_id", sa.Text, primary_key=True),
        sa.Column("person_ref", sa.Text, nullable=False, unique=True),
        sa.Column("account_code", sa.Text, nullable=False),
        sa.Column("first_negative_month", sa.Text, nullable=False),
        sa.Column("overdue_fen", sa.BigInteger, nullable=False),
        sa.Column("rule_id", sa.Text, nullable=False),
        sa.Column("rule_version", sa.Integer, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("sent_us", sa.BigInteger),
        sa.CheckConstraint("overdue_fen >= 0", name="notice_overdue_non_negative"),
    )
    op.create_table(
        "credit_report_submissions",
        sa.Column("submission_id", sa.Text, primary_key=True),
        sa.Column("month", sa.Text, nullable=False),
        sa.Column("records", sa.Integer, nullable=False),
        sa.Column("withheld", sa.Integer, nullable=False),
        sa.Column("xml_sha256", sa.Text, nullable=False),
        sa.Column("audit_seq", sa.BigInteger, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "credit_report_history",
        sa.Column("account_code", sa.Text, nullable=False),
        sa.Column("month", sa.Text, nullable=False),
        sa.Column("person_ref", sa.Text, nullable=False),
        sa.Column("negative", sa.Boolean, nullable=False),
        sa.Column("negative_ended_on", sa.Text),
        sa.Column("record_json", sa.Text, nullable=False),
        sa.Column("submission_id", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("account_code", "month", name="credit_report_history_pk"),
    )
    op.create_index("credit_report_history_person", "credit_report_history", ["person_ref"])


_PEOPLE_GUARD = (
    "NEW.person_ref <> OLD.person_ref OR OLD.anonymized_us IS NOT NULL "
    "OR (NEW.anonymized_us IS NULL AND (NEW.id_number_index <> OLD.id_number_index "
    "OR NEW.id_number_ct IS NULL))"
)


def _sqlite_triggers() -> list[str]:
    statements = append_only("sqlite", _APPEND_ONLY, why="")
    statements += [
        "CREATE TRIGGER people_no_delete BEFORE DELETE ON people "
        "BEGIN SELECT RAISE(ABORT, 'people are anonymized, never deleted'); END",
        f"CREATE TRIGGER people_guard BEFORE UPDATE ON people WHEN {_PEOPLE_GUARD} "
        "BEGIN SELECT RAISE(ABORT, 'a person changes only by re-encryption or anonymization'); "
        "END",
        "CREATE TRIGGER notices_sent_once BEFORE UPDATE ON negative_info_notices WHEN "
        "OLD.sent_us IS NOT NULL OR NEW.person_ref <> OLD.person_ref "
        "OR NEW.notice_id <> OLD.notice_id "
        "BEGIN SELECT RAISE(ABORT, 'a notice is marked sent once and never changed'); END",
    ]
    return statements


def _pg_triggers() -> list[str]:
    statements = append_only("postgresql", _APPEND_ONLY, why="rows are never changed or removed")
    statements += [
        "CREATE TRIGGER people_no_delete BEFORE DELETE ON people FOR EACH ROW "
        "EXECUTE FUNCTION duowei_refuse('people are anonymized, never deleted')",
        "CREATE TRIGGER people_guard BEFORE UPDATE ON people FOR EACH ROW WHEN "
        f"({_PEOPLE_GUARD.replace('<>', 'IS DISTINCT FROM')}) "
        "EXECUTE FUNCTION duowei_refuse('a person changes only by re-encryption or anonymization')",
        "CREATE TRIGGER notices_sent_once BEFORE UPDATE ON negative_info_notices FOR EACH ROW "
        "WHEN (OLD.sent_us IS NOT NULL OR NEW.person_ref <> OLD.person_ref "
        "OR NEW.notice_id <> OLD.notice_id) "
        "EXECUTE FUNCTION duowei_refuse('a notice is marked sent once and never changed')",
    ]
    return statements


def upgrade() -> None:
    _privacy_tables()
    _credit_report_tables()
    dialect = op.get_bind().dialect.name
    for statement in _sqlite_triggers() if dialect == "sqlite" else _pg_triggers():
        op.execute(statement)


def downgrade() -> None:
    raise RuntimeError("compliance records are never downgraded: they are records of history")
