"""The chart of accounts of a consumer-credit business, as account codes and id conventions.

Money accounts live on the ledger of their currency (ISO 4217 numeric: CNY = 156). Credit
limits live on a separate ledger per currency (``LIMIT_LEDGER_BASE + numeric``): each line has
a ``LINE_AVAILABLE`` account flagged debits-must-not-exceed-credits, funded by a grant equal to
the limit, so the ledger itself refuses any authorization or draw beyond the line, however
requests interleave (TigerBeetle's balance-bounds recipe).
"""

from __future__ import annotations

import enum
from typing import Final

from duowei.ledger.model import AccountFlags, AccountSpec

LIMIT_LEDGER_BASE: Final = 100_000
CUSTOMER_ID_STRIDE: Final = 1_000
CUSTOMER_NO_MAX: Final = (2**63 - 1) // CUSTOMER_ID_STRIDE - 1
PLATFORM_ID_MAX: Final = 999


class Normal(enum.Enum):
    DEBIT = "debit"
    CREDIT = "credit"


class AccountCode(enum.IntEnum):
    # Assets (debit-normal).
    SETTLEMENT_CASH = 1001
    RECEIVABLE_PRINCIPAL = 1101
    RECEIVABLE_INTEREST = 1102
    RECEIVABLE_FEES = 1103
    RECEIVABLE_PENALTY = 1104
    INSTALLMENT_PRINCIPAL = 1105
    SPV_RECEIVABLE = 1201
    LOSS_ALLOWANCE = 1901  # contra-asset (credit-normal)
    # Liabilities (credit-normal).
    MERCHANT_PAYABLE = 2001
    FUNDING_LIABILITY = 2101
    PARTNER_SHARE_PAYABLE = 2201
    CUSTOMER_CREDIT_BALANCE = 2301
    # Equity.
    EQUITY = 3001
    # Income.
    INTEREST_INCOME = 4001
    FEE_INCOME = 4002
    PENALTY_INCOME = 4003
    MERCHANT_DISCOUNT_INCOME = 4004
    SERVICING_FEE_INCOME = 4005
    # Expenses.
    WRITE_OFF_EXPENSE = 5001
    PROVISION_EXPENSE = 5002
    FUNDING_COST = 5003
    # Off-balance credit limits (on the limit ledger).
    LIMIT_GRANTOR = 9001
    LINE_AVAILABLE = 9002
    LINE_IN_USE = 9003
    # Appended for funding (ABS true sale, notes, bank lines, joint lending).
    RECEIVABLES_SOLD = 1902  # contra-asset: receivables sold to an SPV, still serviced here
    RETAINED_NOTES = 1301  # the originator's holding of its own deals' notes (risk retention)
    JOINT_RECEIVABLE = 1106  # a joint-lending partner's share of a loan's principal
    NOTES_PAYABLE = 2102  # an SPV's asset-backed notes
    BANK_LOANS = 2103  # drawn bank credit lines
    JOINT_FUNDING_PAYABLE = 2202  # what a joint-lending partner is owed for its share
    SPV_EQUITY = 3002  # an SPV's residual (paid to the holder of the subordinated class)
    # An SPV's purchased loans: a code of their own, so that sums of customer receivables by code
    # (end-of-day and compliance reconciliations) never count them.
    SPV_LOANS = 1203


CREDIT_NORMAL: Final = frozenset(
    {
        AccountCode.LOSS_ALLOWANCE,
        AccountCode.MERCHANT_PAYABLE,
        AccountCode.FUNDING_LIABILITY,
        AccountCode.PARTNER_SHARE_PAYABLE,
        AccountCode.CUSTOMER_CREDIT_BALANCE,
        AccountCode.EQUITY,
        AccountCode.INTEREST_INCOME,
        AccountCode.FEE_INCOME,
        AccountCode.PENALTY_INCOME,
        AccountCode.MERCHANT_DISCOUNT_INCOME,
        AccountCode.SERVICING_FEE_INCOME,
        AccountCode.LIMIT_GRANTOR,
        AccountCode.LINE_AVAILABLE,
    }
)


def normal_balance(code: int) -> Normal:
    return Normal.CREDIT if code in CREDIT_NORMAL else Normal.DEBIT


def limit_ledger(currency_ledger: int) -> int:
    return LIMIT_LEDGER_BASE + currency_ledger


# Per-customer account slots: the account id is customer_no * 1000 + slot.
CUSTOMER_SLOTS: Final[dict[AccountCode, int]] = {
    AccountCode.RECEIVABLE_PRINCIPAL: 1,
    AccountCode.RECEIVABLE_INTEREST: 2,
    AccountCode.RECEIVABLE_FEES: 3,
    AccountCode.RECEIVABLE_PENALTY: 4,
    AccountCode.INSTALLMENT_PRINCIPAL: 5,
    AccountCode.CUSTOMER_CREDIT_BALANCE: 6,
    AccountCode.LINE_AVAILABLE: 11,
    AccountCode.LINE_IN_USE: 12,
}


def customer_account_id(customer_no: int, code: AccountCode) -> int:
    if not 1 <= customer_no <= CUSTOMER_NO_MAX:
        raise ValueError(f"customer number must be 1..{CUSTOMER_NO_MAX}")
    return customer_no * CUSTOMER_ID_STRIDE + CUSTOMER_SLOTS[code]


def customer_accounts(customer_no: int, currency_ledger: int) -> list[AccountSpec]:
    """The accounts one borrower needs on both ledgers."""
    specs = []
    for code in CUSTOMER_SLOTS:
        on_limit = code in (AccountCode.LINE_AVAILABLE, AccountCode.LINE_IN_USE)
        flags = (
            AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
            if code is AccountCode.LINE_AVAILABLE
            else AccountFlags.NONE
        )
        specs.append(
            AccountSpec(
                id=customer_account_id(customer_no, code),
                ledger=limit_ledger(currency_ledger) if on_limit else currency_ledger,
                code=int(code),
                flags=int(flags),
                name=f"customer:{customer_no}:{code.name.lower()}",
            )
        )
    return specs


# Platform accounts: small fixed ids per currency; names say what they are.
PLATFORM_ACCOUNTS: Final[dict[str, tuple[int, AccountCode, bool]]] = {
    # name: (id offset, code, on the limit ledger)
    "settlement_cash": (1, AccountCode.SETTLEMENT_CASH, False),
    "merchant_payable": (2, AccountCode.MERCHANT_PAYABLE, False),
    "equity": (3, AccountCode.EQUITY, False),
    "interest_income": (4, AccountCode.INTEREST_INCOME, False),
    "fee_income": (5, AccountCode.FEE_INCOME, False),
    "penalty_income": (6, AccountCode.PENALTY_INCOME, False),
    "merchant_discount_income": (7, AccountCode.MERCHANT_DISCOUNT_INCOME, False),
    "write_off_expense": (8, AccountCode.WRITE_OFF_EXPENSE, False),
    "provision_expense": (9, AccountCode.PROVISION_EXPENSE, False),
    "loss_allowance": (10, AccountCode.LOSS_ALLOWANCE, False),
    "funding_liability": (11, AccountCode.FUNDING_LIABILITY, False),
    "funding_cost": (12, AccountCode.FUNDING_COST, False),
    "partner_share_payable": (13, AccountCode.PARTNER_SHARE_PAYABLE, False),
    "spv_receivable": (14, AccountCode.SPV_RECEIVABLE, False),
    "servicing_fee_income": (15, AccountCode.SERVICING_FEE_INCOME, False),
    "limit_grantor": (50, AccountCode.LIMIT_GRANTOR, True),
    # GL control accounts of the product sub-ledgers (end-of-day posts aggregated accruals here).
    "credit_pay_interest_receivable": (16, AccountCode.RECEIVABLE_INTEREST, False),
    "credit_pay_penalty_receivable": (17, AccountCode.RECEIVABLE_PENALTY, False),
    "cash_loan_interest_receivable": (18, AccountCode.RECEIVABLE_INTEREST, False),
    "cash_loan_penalty_receivable": (19, AccountCode.RECEIVABLE_PENALTY, False),
    # Appended for funding.
    "receivables_sold": (20, AccountCode.RECEIVABLES_SOLD, False),
    "retained_notes": (21, AccountCode.RETAINED_NOTES, False),
    "bank_loans": (22, AccountCode.BANK_LOANS, False),
    "joint_receivable": (23, AccountCode.JOINT_RECEIVABLE, False),
    # Joint loans drawn before revision 0011 only: partners now have their own accounts
    # (joint_partner_account_id); the first settlement moves this one's balance to them.
    "joint_funding_payable": (24, AccountCode.JOINT_FUNDING_PAYABLE, False),
    # Losses on sold loans moved to their SPV (offsets write_off_expense, which end-of-day
    # reconciles with the sub-ledger's charge-offs and so must not be touched).
    "write_off_transferred": (25, AccountCode.WRITE_OFF_EXPENSE, False),
    # The originator's losses on its interests in its deals when a deal ends: retained notes
    # left unpaid and the cash-reserve advance never repaid.
    "deal_losses": (26, AccountCode.FUNDING_COST, False),
    # Payments on charged-off loans (recoveries of written-off amounts): a contra-expense under
    # the write-off code, so net charge-offs = write_off_expense debits - these credits, and
    # write_off_expense's debits stay the sub-ledger's gross charge-offs.
    "recoveries": (27, AccountCode.WRITE_OFF_EXPENSE, False),
}


def platform_account_id(name: str, currency_ledger: int) -> int:
    """Platform account ids: the currency's slot (0-9 by ISO order of use) would be clumsy, so
    ids are ``offset`` for CNY and ``offset + 100 * k`` for the k-th other currency."""
    slot = {156: 0, 344: 1, 840: 2, 978: 3, 702: 4, 360: 5, 458: 6, 764: 7, 608: 8}[currency_ledger]
    return PLATFORM_ACCOUNTS[name][0] + 100 * slot


def platform_accounts(currency_ledger: int) -> list[AccountSpec]:
    return [
        AccountSpec(
            id=platform_account_id(name, currency_ledger),
            ledger=limit_ledger(currency_ledger) if on_limit else currency_ledger,
            code=int(code),
            name=f"platform:{currency_ledger}:{name}",
        )
        for name, (_offset, code, on_limit) in PLATFORM_ACCOUNTS.items()
    ]


# SPV accounts of ABS deals (appended for funding). Deal ``deal_no`` (1..SPV_DEALS_MAX) owns a
# block of ids at the top of the customer range: the block of customer number
# ``CUSTOMER_NO_MAX - deal_no`` at slots from SPV_SLOT_BASE. Customer accounts use slots below
# 100 only, so an SPV id can never collide with a customer's, whatever numbers are issued.
SPV_DEALS_MAX: Final = 999
SPV_SLOT_BASE: Final = 100
SPV_TRANCHE_SLOT: Final = 20  # tranche i's notes account is at slot SPV_TRANCHE_SLOT + i
SPV_TRANCHES_MAX: Final = 16
SPV_ACCOUNTS: Final[dict[str, tuple[int, AccountCode]]] = {
    # name: (slot, code)
    "collections": (0, AccountCode.SETTLEMENT_CASH),
    "reserve": (1, AccountCode.SETTLEMENT_CASH),
    "receivable_principal": (2, AccountCode.SPV_LOANS),
    "interest_income": (3, AccountCode.INTEREST_INCOME),
    "fees_expense": (4, AccountCode.FUNDING_COST),
    "note_interest_expense": (5, AccountCode.FUNDING_COST),
    "credit_losses": (6, AccountCode.WRITE_OFF_EXPENSE),
    "originator_advance": (7, AccountCode.FUNDING_LIABILITY),
    "liquidity_facility": (8, AccountCode.FUNDING_LIABILITY),
    "residual": (9, AccountCode.SPV_EQUITY),
    # What the SPV no longer owes when the deal ends (notes left unpaid, the originator's
    # reserve advance never repaid): its funders' losses, written off its liabilities.
    "notes_written_down": (10, AccountCode.SPV_EQUITY),
}


def spv_account_id(deal_no: int, name: str, *, tranche: int | None = None) -> int:
    """The id of an SPV account: a named one, or tranche ``tranche``'s notes (name "notes")."""
    if not 1 <= deal_no <= SPV_DEALS_MAX:
        raise ValueError(f"deal number must be 1..{SPV_DEALS_MAX}")
    if name == "notes":
        if tranche is None or not 0 <= tranche < SPV_TRANCHES_MAX:
            raise ValueError(f"tranche must be 0..{SPV_TRANCHES_MAX - 1}")
        slot = SPV_TRANCHE_SLOT + tranche
    else:
        slot = SPV_ACCOUNTS[name][0]
    return (CUSTOMER_NO_MAX - deal_no) * CUSTOMER_ID_STRIDE + SPV_SLOT_BASE + slot


def spv_accounts(deal_no: int, currency_ledger: int, tranches: int) -> list[AccountSpec]:
    """The accounts of one deal's SPV: cash, receivables, income, expenses, notes by class."""
    specs = [
        AccountSpec(
            id=spv_account_id(deal_no, name),
            ledger=currency_ledger,
            code=int(code),
            name=f"spv:{deal_no}:{name}",
        )
        for name, (_slot, code) in SPV_ACCOUNTS.items()
    ]
    specs += [
        AccountSpec(
            id=spv_account_id(deal_no, "notes", tranche=i),
            ledger=currency_ledger,
            code=int(AccountCode.NOTES_PAYABLE),
            name=f"spv:{deal_no}:notes:{i}",
        )
        for i in range(tranches)
    ]
    return specs


# Joint-lending partners' accounts (appended for funding). Partner ``partner_no``
# (1..JOINT_PARTNERS_MAX, assigned once in the ``joint_partners`` table) owns slots from
# JOINT_PARTNER_SLOT_BASE in the block of customer number ``CUSTOMER_NO_MAX - partner_no``: the
# SPVs' blocks, above their slots (100-135) and the customers' (below 100), so no id collides.
JOINT_PARTNERS_MAX: Final = 999
JOINT_PARTNER_SLOT_BASE: Final = 200
JOINT_PARTNER_ACCOUNTS: Final[dict[str, tuple[int, AccountCode]]] = {
    # What the platform owes the partner: its share of the principal still outstanding.
    "funding_payable": (0, AccountCode.JOINT_FUNDING_PAYABLE),
}


def joint_partner_account_id(partner_no: int, name: str) -> int:
    if not 1 <= partner_no <= JOINT_PARTNERS_MAX:
        raise ValueError(f"partner number must be 1..{JOINT_PARTNERS_MAX}")
    slot = JOINT_PARTNER_ACCOUNTS[name][0]
    return (CUSTOMER_NO_MAX - partner_no) * CUSTOMER_ID_STRIDE + JOINT_PARTNER_SLOT_BASE + slot


def joint_partner_accounts(partner_no: int, currency_ledger: int) -> list[AccountSpec]:
    """The accounts of one joint-lending partner."""
    return [
        AccountSpec(
            id=joint_partner_account_id(partner_no, name),
            ledger=currency_ledger,
            code=int(code),
            name=f"partner:{partner_no}:{name}",
        )
        for name, (_slot, code) in JOINT_PARTNER_ACCOUNTS.items()
    ]
