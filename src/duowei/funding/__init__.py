"""duowei.funding: the pure, declarative funding core.

Pipeline, as the modules read: ``pool`` (loan tape, eligibility, vectorized projection) ->
``deal`` (YAML deal files) -> ``waterfall`` (one period, integer fen, cash in == cash out) ->
``engine`` (revolving period, triggers, statuses) -> ``results`` / ``analytics`` (WAL, IRR,
duration, break-even, grids). Beside it: ``facilities`` (bank lines, senior notes, cost of
funds), ``joint_lending`` (splits and ledger postings as records), ``limits`` (versioned
regulatory limits), ``liquidity`` (buffer, LCR, headroom warnings), ``feasibility`` (program
economics). No module here does I/O beyond reading a YAML file it is handed.
"""
