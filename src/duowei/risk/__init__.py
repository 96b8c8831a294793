"""duowei.risk."""
