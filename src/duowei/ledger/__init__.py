"""duowei.ledger."""
