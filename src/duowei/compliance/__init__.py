"""duowei.compliance."""
