"""duowei.portfolio."""
