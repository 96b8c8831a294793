"""duowei.products."""
