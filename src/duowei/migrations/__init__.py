"""Alembic migrations of every area (revision 0001 is the ledger; others build on it)."""
