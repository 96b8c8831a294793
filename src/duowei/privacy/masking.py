"""Masking of personal data wherever it is shown, and a logging filter that masks it in logs.

Patterns (JR/T 0171-2020 C2 data, displayed masked): resident ID numbers keep the first 6 and
last 4 characters (``110105********002X``), mobile numbers the first 3 and last 4
(``138****1234``), bank cards the first 6 and last 4, names their first character.

The log filter does not trust callers: it formats each record, then masks anything that looks
like an 18-character resident ID (a real birth date in it; the check digit is not required, a
mistyped ID is still personal data), a mainland mobile number or a Luhn-valid run of 16-19
digits (a card number), and replaces the message so the plaintext never reaches a handler.
"""

from __future__ import annotations

import logging
import re
from typing import Final

ID_KEEP_HEAD: Final = 6
ID_KEEP_TAIL: Final = 4
PHONE_KEEP_HEAD: Final = 3
PHONE_KEEP_TAIL: Final = 4
CARD_KEEP_HEAD: Final = 6
CARD_KEEP_TAIL: Final = 4

ID_LIKE: Final = re.compile(
    r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
    r"\d{3}[0-9Xx](?![0-9A-Za-z])"
)
PHONE_LIKE: Final = re.compile(r"(?<![0-9])(?:\+?86[- ]?)?1[3-9]\d{9}(?![0-9])")
CARD_LIKE: Final = re.compile(r"(?<![0-9])\d{16,19}(?![0-9])")


def _mask(value: str, head: int, tail: int) -> str:
    if len(value) <= head + tail:
        return "*" * len(value)
    return value[:head] + "*" * (len(value) - head - tail) + value[-tail:]


def mask_id_number(id_number: str) -> str:
    """``11010519491231002X`` -> ``110105********002X``."""
    return _mask(id_number, ID_KEEP_HEAD, ID_KEEP_TAIL)


def mask_phone(phone: str) -> str:
    """``13812341234`` -> ``138****1234``."""
    return _mask(phone, PHONE_KEEP_HEAD, PHONE_KEEP_TAIL)


def mask_bank_card(card: str) -> str:
    return _mask(card, CARD_KEEP_HEAD, CARD_KEEP_TAIL)


def mask_name(name: str) -> str:
    """Keep the family name (the first character): ``张三丰`` -> ``张**``."""
    return name[:1] + "*" * (len(name) - 1) if name else name


def luhn_ok(digits: str) -> bool:
    """The Luhn check of bank card numbers (keeps timestamps and ids mostly unmasked)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def mask_text(text: str) -> str:
    """Mask every ID-like, phone-like and card-like string in free text."""
    text = ID_LIKE.sub(lambda m: mask_id_number(m.group(0)), text)
    text = CARD_LIKE.sub(
        lambda m: mask_bank_card(m.group(0)) if luhn_ok(m.group(0)) else m.group(0), text
    )

    def phone(m: re.Match[str]) -> str:
        digits = m.group(0)
        return digits[:-11] + mask_phone(digits[-11:])

    return PHONE_LIKE.sub(phone, text)


class PiiMaskingFilter(logging.Filter):
    """Masks personal data in every record that passes (attach to handlers or loggers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = mask_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True


def install_log_masking(logger: logging.Logger | None = None) -> PiiMaskingFilter:
    """Attach the masking filter to every handler of ``logger`` (the root logger by default).

    Filters on handlers see records from every child logger, which filters on a logger do not.
    """
    target = logger or logging.getLogger()
    pii_filter = PiiMaskingFilter()
    for handler in target.handlers:
        if not any(isinstance(f, PiiMaskingFilter) for f in handler.filters):
            handler.addFilter(pii_filter)
    target.addFilter(pii_filter)
    return pii_filter
