"""The dashboard's analytics from month-end snapshots: vintages and default rates, by hand
(transitions and roll rates come from the recorded bucket history: tests/batch)."""

from __future__ import annotations

import numpy as np

from duowei.services.demo_book import CHARGED_OFF_BUCKET, MonthSnapshot
from duowei.services.demo_dashboard import vintages
from duowei.services.demo_finance import observed_cdr


def snap(month: int, ids: list[int], dpd: list[int], *, balance: list[int] | None = None,
         cash_loan: list[bool] | None = None, charged_off_fen: list[int] | None = None,
         ) -> MonthSnapshot:  # fmt: skip
    n = len(ids)
    days = np.array(dpd, np.int64)
    bucket = np.minimum((days + 29) // 30, 6)
    charged = np.array(charged_off_fen or [0] * n, np.int64)
    return MonthSnapshot(
        month=month,
        account_id=np.array(ids, np.int64),
        customer_no=np.array(ids, np.int64),
        cash_loan=np.array(cash_loan or [False] * n),
        bucket=np.where(charged > 0, CHARGED_OFF_BUCKET, bucket),
        days_past_due=days,
        balance_fen=np.array(balance or [10_000] * n, np.int64),
        charged_off_fen=charged,
        credit_limit_fen=np.full(n, 100_000, np.int64),
    )


def test_vintage_counts_each_account_once_from_its_first_month() -> None:
    # January opens 1 and 2; February opens 3. Account 2 is 30+ in its second month (Feb),
    # account 3 in its first month (Feb); account 1 never.
    snaps = [
        snap(202601, [1, 2], [0, 0]),
        snap(202602, [1, 2, 3], [0, 31, 45]),
        snap(202603, [1, 2, 3], [0, 61, 0]),
    ]
    curves = vintages(snaps)
    assert curves.vintages == (202601, 202602)
    jan, feb = curves.cumulative_rate
    assert jan[:3].tolist() == [0.0, 0.5, 0.5]
    assert feb[:2].tolist() == [1.0, 1.0]
    assert np.isnan(feb[2])  # February's vintage has been seen for two months only


def test_observed_default_rate_is_charge_offs_over_the_average_balance_per_year() -> None:
    snaps = [
        snap(202601, [1, 2], [0, 0], balance=[100_000, 100_000], cash_loan=[True, True]),
        snap(202602, [1, 2], [0, 0], balance=[100_000, 0], cash_loan=[True, True],
             charged_off_fen=[0, 50_000]),
    ]  # fmt: skip
    # Average outstanding (200,000 + 100,000) / 2 = 150,000 fen; 50,000 charged off in two
    # months: 1/3 over 2 months = 2 a year.
    assert str(observed_cdr(snaps)) == "2.0000"
    assert observed_cdr([snap(202601, [1], [0])]) == 0
