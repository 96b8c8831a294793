"""duowei.api."""
