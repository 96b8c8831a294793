"""Monthly regulatory statistics that reconcile to the ledger, to the fen.

Pure builders take plain records (``LoanPosition`` per loan at month end, ``FundingPosition``)
and return a ``StatisticsReport`` of rows. ``reconcile`` compares the report's balances with
the ledger's customer accounts by account code (and per customer) and the loss allowance with
its platform account; ``compute_statistics`` does it all in one unit of work and names the
signed audit checkpoint the figures were computed at, so a supervisor can verify them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Final

from duowei.audit import checkpoint as cp
from duowei.audit.service import StoredCheckpoint, make_checkpoint
from duowei.clock import Clock
from duowei.compliance.rules import Rule, rule_by_kind, rules_in_force
from duowei.db import UnitOfWork
from duowei.errors import InvalidInput
from duowei.ledger.chart import CUSTOMER_ID_STRIDE, AccountCode, platform_account_id
from duowei.products.delinquency import bucket_index
from duowei.products.terms import DelinquencyTerms, load_terms

CNY_LEDGER: Final = 156
TOP_BORROWERS: Final = 10
SHARE_DIGITS: Final = Decimal("0.000001")
PRODUCT_TERMS: Final = {"credit_pay": "credit_pay_standard", "cash_loan": "cash_loan_standard"}
FIVE_CLASSES: Final = ("normal", "special_mention", "substandard", "doubtful", "loss")
Value = int | str


@dataclass(frozen=True, slots=True)
class LoanPosition:
    """One loan at month end, as the loan tables know it (the adapter builds these)."""

    loan_id: str
    customer_no: int
    borrower_ref: str
    product: str  # credit_pay | cash_loan
    principal_fen: int
    interest_fen: int
    fees_fen: int
    penalty_fen: int
    apr: Decimal
    days_past_due: int
    five_class: str
    provision_fen: int
    opened_on: date
    partner: str | None = None  # joint lending partner, if any
    partner_principal_fen: int = 0  # the partner's funded part of the principal


@dataclass(frozen=True, slots=True)
class FundingPosition:
    """Funding measures in fen (the names of ``duowei.funding.limits.MEASURES``)."""

    measures_fen: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Row:
    section: str
    key: str
    metric: str
    value: Value


@dataclass(frozen=True, slots=True)
class ReconLine:
    what: str
    report_fen: int
    ledger_fen: int

    @property
    def ok(self) -> bool:
        return self.report_fen == self.ledger_fen


@dataclass(frozen=True, slots=True)
class StatisticsReport:
    month: str
    as_of: date
    rows: tuple[Row, ...]
    reconciliation: tuple[ReconLine, ...] = ()
    checkpoint_size: int | None = None
    checkpoint_root_hex: str | None = None
    rules_applied: tuple[tuple[str, str], ...] = field(default=())

    @property
    def reconciled(self) -> bool:
        return bool(self.reconciliation) and all(line.ok for line in self.reconciliation)

    def section(self, name: str) -> dict[tuple[str, str], Value]:
        return {(r.key, r.metric): r.value for r in self.rows if r.section == name}


def _share(part: int, whole: int) -> str:
    if whole == 0:
        return "0"
    return str((Decimal(part) / Decimal(whole)).quantize(SHARE_DIGITS))


def _balances(loans: Sequence[LoanPosition]) -> list[Row]:
    rows = []
    for product in sorted({x.product for x in loans}):
        of = [x for x in loans if x.product == product]
        rows += [
            Row("balances", product, "accounts", len(of)),
            Row("balances", product, "principal_fen", sum(x.principal_fen for x in of)),
            Row("balances", product, "interest_fen", sum(x.interest_fen for x in of)),
            Row("balances", product, "fees_fen", sum(x.fees_fen for x in of)),
            Row("balances", product, "penalty_fen", sum(x.penalty_fen for x in of)),
        ]
    return rows


def _new_loans(loans: Sequence[LoanPosition], month: str) -> list[Row]:
    rows = []
    fresh = [x for x in loans if x.opened_on.strftime("%Y-%m") == month]
    for product in sorted({x.product for x in fresh}):
        of = [x for x in fresh if x.product == product]
        rows += [
            Row("new_loans", product, "count", len(of)),
            Row("new_loans", product, "principal_fen", sum(x.principal_fen for x in of)),
        ]
    return rows


def _delinquency(loans: Sequence[LoanPosition], terms: Mapping[str, DelinquencyTerms]) -> list[Row]:
    count: dict[str, int] = defaultdict(int)
    principal: dict[str, int] = defaultdict(int)
    for x in loans:
        t = terms[x.product]
        name = t.bucket_names[bucket_index(x.days_past_due, t)]
        count[name] += 1
        principal[name] += x.principal_fen
    return [
        row
        for name in sorted(count)
        for row in (Row("delinquency", name, "count", count[name]),
                    Row("delinquency", name, "principal_fen", principal[name]))
    ]  # fmt: skip


def _five_level(loans: Sequence[LoanPosition]) -> list[Row]:
    rows = []
    for cls in FIVE_CLASSES:
        of = [x for x in loans if x.five_class == cls]
        rows += [
            Row("five_level", cls, "count", len(of)),
            Row("five_level", cls, "principal_fen", sum(x.principal_fen for x in of)),
            Row("provisions", cls, "provision_fen", sum(x.provision_fen for x in of)),
        ]
    total = sum(x.provision_fen for x in loans)
    return [*rows, Row("provisions", "total", "provision_fen", total)]


def _apr_bands(loans: Sequence[LoanPosition], rule: Rule) -> list[Row]:
    total = sum(x.principal_fen for x in loans)
    rows = []
    for band in rule.param("bands").split(","):
        above = [x for x in loans if x.apr > Decimal(band)]
        balance = sum(x.principal_fen for x in above)
        rows += [
            Row("apr_distribution", f"above_{band}", "count", len(above)),
            Row("apr_distribution", f"above_{band}", "principal_fen", balance),
            Row("apr_distribution", f"above_{band}", "share_of_principal", _share(balance, total)),
        ]
    return rows


def _concentration(loans: Sequence[LoanPosition]) -> list[Row]:
    by_borrower: dict[str, int] = defaultdict(int)
    for x in loans:
        by_borrower[x.borrower_ref] += x.principal_fen
    total = sum(by_borrower.values())
    top = sorted(by_borrower.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_BORROWERS]
    rows = [Row("concentration", f"{i + 1:02d}:{ref}", "principal_fen", v)
            for i, (ref, v) in enumerate(top)]  # fmt: skip
    top_sum = sum(v for _, v in top)
    return [*rows, Row("concentration", "top10", "share_of_principal", _share(top_sum, total))]


def _joint_lending(loans: Sequence[LoanPosition], rule: Rule) -> list[Row]:
    rows = []
    minimum = Fraction(Decimal(rule.param("limit")))
    for partner in sorted({x.partner for x in loans if x.partner is not None}):
        of = [x for x in loans if x.partner == partner]
        principal = sum(x.principal_fen for x in of)
        partner_fen = sum(x.partner_principal_fen for x in of)
        below = [
            x for x in of if x.principal_fen - x.partner_principal_fen < minimum * x.principal_fen
        ]
        rows += [
            Row("joint_lending", partner, "principal_fen", principal),
            Row("joint_lending", partner, "partner_principal_fen", partner_fen),
            Row("joint_lending", partner, "platform_share",
                _share(principal - partner_fen, principal)),
            Row("joint_lending", partner, f"loans_below_{rule.rule_id}", len(below)),
        ]  # fmt: skip
    return rows


def _funding(funding: FundingPosition, rules: Sequence[Rule]) -> list[Row]:
    m = funding.measures_fen
    rows = []
    for rule in rules:
        if rule.kind not in ("max_ratio", "min_ratio") or rule.param("denominator") == "joint_loan":
            continue
        numerator = sum(m.get(k, 0) for k in rule.param("numerator").split(","))
        denominator = m.get(rule.param("denominator"), 0)
        value = Fraction(numerator, denominator) if denominator else None
        limit = Fraction(Decimal(rule.param("limit")))
        ok = value is None or (value <= limit if rule.kind == "max_ratio" else value >= limit)
        shown = "n/a" if value is None else str(Decimal(value.numerator) / value.denominator)
        rows += [
            Row("leverage", f"{rule.rule_id} v{rule.version}", "ratio", shown[:12]),
            Row("leverage", f"{rule.rule_id} v{rule.version}", "limit", rule.param("limit")),
            Row("leverage", f"{rule.rule_id} v{rule.version}", "passed", "yes" if ok else "no"),
        ]
    sources = ("bank_loans", "shareholder_loans", "bonds", "abs", "joint_loan")
    total = sum(m.get(k, 0) for k in sources)
    for k in sources:
        rows += [Row("funding_mix", k, "amount_fen", m.get(k, 0)),
                 Row("funding_mix", k, "share", _share(m.get(k, 0), total))]  # fmt: skip
    return rows


def build_statistics(
    *, month: str, as_of: date, loans: Sequence[LoanPosition], funding: FundingPosition,
    rules: Sequence[Rule],
) -> StatisticsReport:  # fmt: skip
    """Every section of the monthly report from plain records (no I/O)."""
    unknown = {x.product for x in loans} - set(PRODUCT_TERMS)
    if unknown:
        raise InvalidInput(f"unknown products {sorted(unknown)}")
    terms = {p: load_terms(name, on=as_of).delinquency for p, name in PRODUCT_TERMS.items()}
    bands = rule_by_kind(rules, "apr_bands")
    joint = next(
        r for r in rules if r.kind == "min_ratio" and r.param("denominator") == "joint_loan"
    )
    rows = [
        *_balances(loans), *_new_loans(loans, month), *_delinquency(loans, terms),
        *_five_level(loans), *_apr_bands(loans, bands), *_concentration(loans),
        *_joint_lending(loans, joint), *_funding(funding, rules),
    ]  # fmt: skip
    applied = tuple((r.rule_id, r.version) for r in rules
                    if r.kind in ("apr_bands", "max_ratio", "min_ratio"))  # fmt: skip
    return StatisticsReport(month, as_of, tuple(rows), rules_applied=applied)


# ----------------------------------------------------------------------------- the ledger side

_PRINCIPAL_CODES: Final = (
    int(AccountCode.RECEIVABLE_PRINCIPAL),
    int(AccountCode.INSTALLMENT_PRINCIPAL),
)
_COMPONENTS: Final = {
    "principal_fen": _PRINCIPAL_CODES,
    "interest_fen": (int(AccountCode.RECEIVABLE_INTEREST),),
    "fees_fen": (int(AccountCode.RECEIVABLE_FEES),),
    "penalty_fen": (int(AccountCode.RECEIVABLE_PENALTY),),
}  # fmt: skip


def ledger_receivables(uow: UnitOfWork) -> dict[tuple[int, int], int]:
    """(customer no, account code) -> posted debit balance of customer receivable accounts."""
    codes = sorted({c for cs in _COMPONENTS.values() for c in cs})
    rows = uow.fetchall(
        "SELECT id, code, debits_posted - credits_posted FROM accounts WHERE ledger = ? "
        f"AND id >= ? AND code IN ({','.join('?' * len(codes))})",
        (CNY_LEDGER, CUSTOMER_ID_STRIDE, *codes),
    )
    return {(int(i) // CUSTOMER_ID_STRIDE, int(c)): int(b) for i, c, b in rows}


# End-of-day accrues interest and penalties per product on platform control accounts (the
# product sub-ledger holds them per account), not on each customer's receivable accounts.
_CONTROL_ACCOUNTS: Final = {
    "interest_fen": ("credit_pay_interest_receivable", "cash_loan_interest_receivable"),
    "penalty_fen": ("credit_pay_penalty_receivable", "cash_loan_penalty_receivable"),
}


def _control_balances(uow: UnitOfWork) -> dict[str, int]:
    out = {}
    for component, names in _CONTROL_ACCOUNTS.items():
        ids = [platform_account_id(name, CNY_LEDGER) for name in names]
        row = uow.fetchone(
            "SELECT COALESCE(SUM(debits_posted - credits_posted), 0) FROM accounts "
            f"WHERE id IN ({','.join('?' * len(ids))})",
            ids,
        )
        out[component] = int(row[0]) if row else 0
    return out


def reconcile(uow: UnitOfWork, loans: Iterable[LoanPosition]) -> tuple[ReconLine, ...]:
    """Report totals vs ledger balances: per component, per customer's principal, allowance."""
    ledger = ledger_receivables(uow)
    loans = list(loans)
    lines = []
    control = _control_balances(uow)
    for component, codes in _COMPONENTS.items():
        report = sum(getattr(x, component) for x in loans)
        book = sum(v for (_, c), v in ledger.items() if c in codes) + control.get(component, 0)
        lines.append(ReconLine(f"total {component}", report, book))
    per_customer: dict[int, int] = defaultdict(int)
    for x in loans:
        per_customer[x.customer_no] += x.principal_fen
    for (no, code), balance in ledger.items():
        if code in _PRINCIPAL_CODES and balance and no not in per_customer:
            per_customer[no] += 0  # a ledger balance the report does not know about
    for no in sorted(per_customer):
        book = sum(ledger.get((no, c), 0) for c in _PRINCIPAL_CODES)
        if book != per_customer[no]:
            lines.append(ReconLine(f"customer {no} principal_fen", per_customer[no], book))
    row = uow.fetchone(
        "SELECT credits_posted - debits_posted FROM accounts WHERE id = ?",
        (platform_account_id("loss_allowance", CNY_LEDGER),),
    )
    allowance = 0 if row is None else int(row[0])
    lines.append(ReconLine("loss allowance", sum(x.provision_fen for x in loans), allowance))
    return tuple(lines)


def compute_statistics(
    uow: UnitOfWork, *, month: str, loans: Sequence[LoanPosition], funding: FundingPosition,
    signer: cp.NoteSigner, origin: str, clock: Clock,
) -> StatisticsReport:  # fmt: skip
    """The month's report, reconciled and pinned to a signed checkpoint, in one transaction:
    the checkpoint and the balances are read under the same snapshot."""
    as_of = clock.today()
    rules = rules_in_force(as_of)
    report = build_statistics(month=month, as_of=as_of, loans=loans, funding=funding, rules=rules)
    stored: StoredCheckpoint = make_checkpoint(uow, signer, origin, clock)
    return StatisticsReport(
        report.month, report.as_of, report.rows, reconcile(uow, loans), stored.size,
        stored.root_hash.hex(), report.rules_applied,
    )  # fmt: skip
