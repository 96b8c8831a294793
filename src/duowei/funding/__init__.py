"""duowei.funding."""
