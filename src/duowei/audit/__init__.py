"""Tamper-evident records: an RFC 9162 Merkle log with a hash chain and signed checkpoints.

``merkle`` is the pure, public verification API that auditors' own scripts use; ``checkpoint``
signs and verifies C2SP checkpoints; ``log`` keeps the log in the ledger's database.
"""
