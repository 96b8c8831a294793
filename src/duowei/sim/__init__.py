"""duowei.sim."""
