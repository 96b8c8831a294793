"""Chinese resident identity numbers (GB 11643-1999) and mobile phone numbers.

A resident ID has 17 digits (6 region, 8 birth date YYYYMMDD, 3 sequence, the last odd for men)
and a check character computed by ISO 7064 MOD 11-2: ``11010519491231002X`` is valid.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Final

_WEIGHTS: Final = tuple(pow(2, 17 - i, 11) for i in range(17))  # 7, 9, 10, 5, 8, 4, 2, ...
_CHECK_CHARS: Final = "10X98765432"
_ID_PATTERN: Final = re.compile(r"^[1-9]\d{16}[\dX]$")
_PHONE_PATTERN: Final = re.compile(r"^1[3-9]\d{9}$")


def resident_id_check_char(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits."""
    if len(first17) != 17 or not first17.isdigit() or not first17.isascii():
        raise ValueError("a resident ID body is 17 ASCII digits")
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def resident_id_birth_date(id_number: str) -> date | None:
    """The birth date encoded in a well-formed ID number, or None if it is not a real date."""
    try:
        return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    except ValueError:
        return None


def is_valid_resident_id(id_number: str) -> bool:
    """True for an 18-character ID with a real birth date and a correct check character."""
    if not isinstance(id_number, str) or not _ID_PATTERN.match(id_number):
        return False
    if resident_id_birth_date(id_number) is None:
        return False
    return resident_id_check_char(id_number[:17]) == id_number[17]


def make_resident_id(*, region_code: str, birth_date: date, sequence: int) -> str:
    """Build a valid ID number (for simulations): region, birth date, 3-digit sequence, check."""
    if len(region_code) != 6 or not region_code.isdigit() or region_code[0] == "0":
        raise ValueError("region code is 6 digits, not starting with 0")
    if not 0 <= sequence <= 999:
        raise ValueError("sequence is 0..999")
    body = f"{region_code}{birth_date:%Y%m%d}{sequence:03d}"
    return body + resident_id_check_char(body)


def is_valid_mobile(phone: str) -> bool:
    """A mainland mobile number: 11 digits starting 13-19."""
    return isinstance(phone, str) and bool(_PHONE_PATTERN.match(phone))
