"""Portfolio risk, pure: IRB capital, Vasicek, IFRS 9 provisioning, stress tests, Monte Carlo.

- ``capital``: Basel IRB retail K, RWA, EL, UL (oracle R1); ``vasicek``: closed form (R2).
- ``provisioning``: staging rules as data, 12-month / lifetime ECL, roll-rate loss (R3, R4);
  ``movement``: the allowance movement report; ``ecl_book``: ECL of the live book (parameters
  as data, PD term structures, CCF on undrawn lines).
- ``analytics`` and ``figures``: vintage curves, transition matrices, roll rates; Plotly figures.
- ``stress``: scenario library (YAML) through a satellite model to losses, provisions, capital.
- ``montecarlo`` / ``montecarlo_backends`` / ``philox``: exact-per-seed simulation on one process,
  a process pool, a Dask cluster or a GPU. See docs/portfolio.md.
"""
