"""duowei.sim: seeded synthetic books (customers, lines, purchases, installments, cash loans,
repayment behaviour) as frozen records or columnar end-of-day state; deterministic per seed."""
