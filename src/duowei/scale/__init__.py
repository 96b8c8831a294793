"""Scale-out: the end-of-day batch sharded by account, on one process, a pool or a Dask cluster.

See ``docs/scaling.md`` for how the ledger and the batch shard across PostgreSQL nodes.
"""
