"""Scan files for plaintext personal data: the check behind "no ID number in the database file,
the logs or any output".

Two kinds of finding: a *known value* (an ID number, phone, name or card we registered) found
as UTF-8 or UTF-16 bytes anywhere in a file; and a *pattern* hit, any 18-character string with a
valid GB 11643 check character, whether we registered it or not. Binary files (SQLite pages,
XLSX zip members are compressed, so the scanner unzips them) are scanned as bytes.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from duowei.identity import is_valid_resident_id
from duowei.privacy.masking import mask_text

FILE_BYTES_MAX: Final = 512 * 1024 * 1024
FILES_MAX: Final = 100_000
ZIP_MEMBER_BYTES_MAX: Final = 64 * 1024 * 1024
NEEDLE_BYTES_MIN: Final = 6  # see scan_for_plaintext_pii
_ID_BYTES: Final = re.compile(rb"(?<![0-9])[1-9][0-9]{16}[0-9X](?![0-9])")


@dataclass(frozen=True, slots=True)
class PiiFinding:
    path: str
    what: str  # "known_value" or "id_pattern"
    value_masked: str
    offset: int


def _files(paths: Iterable[Path]) -> Iterator[Path]:
    count = 0
    for root in paths:
        candidates = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in candidates:
            count += 1
            if count > FILES_MAX:
                raise ValueError(f"more than {FILES_MAX} files to scan")
            yield path


def _blobs(path: Path) -> Iterator[tuple[str, bytes]]:
    data = path.read_bytes()
    if len(data) > FILE_BYTES_MAX:
        raise ValueError(f"{path} is over {FILE_BYTES_MAX} bytes")
    yield str(path), data
    if data[:4] == b"PK\x03\x04":  # XLSX, DOCX, zip: members are compressed
        try:
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if info.file_size <= ZIP_MEMBER_BYTES_MAX:
                        yield f"{path}!{info.filename}", archive.read(info)
        except zipfile.BadZipFile:
            pass


def scan_for_plaintext_pii(
    paths: Iterable[Path | str], known_values: Iterable[str] = ()
) -> list[PiiFinding]:
    """Every plaintext occurrence of a known value or a valid resident ID in the files."""
    needles: list[tuple[str, bytes]] = []
    for value in dict.fromkeys(v for v in known_values if v):
        for encoding in ("utf-8", "utf-16-le"):
            needle = value.encode(encoding)
            # A shorter needle turns up by chance in encrypted files: a two-character name is
            # 4 bytes in UTF-16, found in a few hundred kB of ciphertext about once in twenty
            # runs over a demo's people. Six bytes (2^-48 a position) never does.
            if len(needle) >= NEEDLE_BYTES_MIN:
                needles.append((value, needle))
    findings: list[PiiFinding] = []
    for path in _files(Path(p) for p in paths):
        for name, data in _blobs(path):
            for value, needle in needles:
                at = data.find(needle)
                if at >= 0:
                    findings.append(PiiFinding(name, "known_value", _masked(value), at))
            for match in _ID_BYTES.finditer(data):
                text = match.group(0).decode("ascii")
                if is_valid_resident_id(text):
                    findings.append(PiiFinding(name, "id_pattern", _masked(text), match.start()))
    return findings


def _masked(value: str) -> str:
    masked = mask_text(value)
    return masked if masked != value else value[:1] + "*" * max(len(value) - 1, 0)
