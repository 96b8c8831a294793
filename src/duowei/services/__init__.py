"""duowei.services."""
