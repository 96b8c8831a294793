"""duowei.reports."""
