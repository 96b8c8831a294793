"""Reading a credit data set and screening its columns, for any tabular data.

The target is 0/1 (numbers, "0"/"1", booleans) or labels with a named bad value. Columns that
cannot or must not be used are dropped with a reason a risk analyst can read: excluded by the
analyst, protected by policy, id-like (unique per row), constant, or free text.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from duowei.errors import InvalidInput
from duowei.risk.policy import ProtectedPolicy

log = logging.getLogger(__name__)

ROWS_MIN: Final = 50
ROWS_MAX: Final = 20_000_000
COLUMNS_MAX: Final = 2_000
# A text column with more distinct values than this share of rows is free text or an id.
CATEGORY_SHARE_MAX: Final = 0.5
CATEGORIES_MAX: Final = 1_000
_ID_NAMES: Final = frozenset({"id", "uid", "key", "index", "row", "rowid"})


@dataclass(frozen=True, slots=True)
class Screened:
    """The usable part of a data set."""

    frame: pd.DataFrame  # features only, numeric as float64, categorical as str (NaN = missing)
    y: np.ndarray  # 0/1, 1 = bad
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    dropped: tuple[tuple[str, str], ...]  # (column, reason)
    rows: np.ndarray  # 0-based data row number in the file of each kept row


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_table(path: Path) -> pd.DataFrame:
    """A CSV (optionally gzip-compressed) as a DataFrame."""
    if not path.exists():
        raise InvalidInput(f"data file {path} does not exist")
    try:
        frame = pd.read_csv(path, low_memory=False)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path} as CSV: {exc}") from None
    if not ROWS_MIN <= len(frame) <= ROWS_MAX:
        raise InvalidInput(f"{path}: {len(frame)} rows; need {ROWS_MIN}..{ROWS_MAX}")
    if frame.shape[1] > COLUMNS_MAX:
        raise InvalidInput(f"{path}: {frame.shape[1]} columns; at most {COLUMNS_MAX}")
    return frame


def encode_target(column: pd.Series, bad_value: str | None) -> np.ndarray:
    """1 for bad, 0 for good; rows with a missing target must be removed before."""
    if bad_value is not None:
        labels = column.astype(str).str.strip()
        y = (labels == bad_value.strip()).to_numpy(dtype=np.int8)
        if y.sum() == 0:
            seen = ", ".join(sorted(labels.unique())[:10])
            raise InvalidInput(f"no row has the bad value {bad_value!r}; values seen: {seen}")
    else:
        text = column.astype(str).str.strip().str.lower()
        mapping = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}
        unknown = sorted(set(text.unique()) - set(mapping))
        if unknown:
            raise InvalidInput(
                f"target {column.name!r} is not 0/1 (found {unknown[:5]}); give --bad-value"
            )
        y = np.asarray(text.map(mapping).to_numpy(dtype=np.int8))
    if y.min() == y.max():
        raise InvalidInput(f"target {column.name!r} has only one class")
    out: np.ndarray = np.asarray(y, dtype=np.int8)
    return out


def _drop_reason(name: str, col: pd.Series, policy: ProtectedPolicy) -> str | None:
    n = len(col)
    present = col.dropna()
    distinct = present.nunique()
    if policy.is_excluded(name):
        return "protected attribute (excluded by policy)"
    if distinct <= 1:
        return "constant"
    is_numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    if distinct == n:
        integral = is_numeric and bool(np.all(np.mod(present.to_numpy(dtype=float), 1) == 0))
        if not is_numeric or integral or name.lower() in _ID_NAMES:
            return "id-like (unique per row)"
    if name.lower() in _ID_NAMES and distinct >= 0.95 * n:
        return "id-like (name and nearly unique)"
    if not is_numeric and (distinct > CATEGORY_SHARE_MAX * n or distinct > CATEGORIES_MAX):
        return f"free text ({distinct} distinct values)"
    return None


def screen(
    frame: pd.DataFrame,
    *,
    target: str,
    bad_value: str | None,
    exclude: Sequence[str],
    policy: ProtectedPolicy,
) -> Screened:
    """Encode the target, type the columns and drop the ones a model must not see."""
    if target not in frame.columns:
        raise InvalidInput(f"target column {target!r} not in data; columns: {list(frame.columns)}")
    missing_excl = [c for c in exclude if c not in frame.columns]
    if missing_excl:
        raise InvalidInput(f"--exclude names unknown columns: {missing_excl}")
    keep_rows = frame[target].notna()
    if not keep_rows.all():
        log.warning("dropping %d rows with a missing target", int((~keep_rows).sum()))
    rows = np.flatnonzero(keep_rows.to_numpy())
    frame = frame.loc[keep_rows].reset_index(drop=True)
    y = encode_target(frame[target], bad_value)
    dropped: list[tuple[str, str]] = [(c, "excluded by the analyst") for c in exclude]
    numeric: list[str] = []
    categorical: list[str] = []
    for name in frame.columns:
        if name == target or name in exclude:
            continue
        reason = _drop_reason(name, frame[name], policy)
        if reason:
            dropped.append((name, reason))
        elif pd.api.types.is_numeric_dtype(frame[name]) and not pd.api.types.is_bool_dtype(
            frame[name]
        ):
            numeric.append(name)
        else:
            categorical.append(name)
    for name, reason in dropped:
        log.info("column %s dropped: %s", name, reason)
    if not numeric and not categorical:
        raise InvalidInput("no usable feature columns left after screening")
    out = pd.DataFrame(index=frame.index)
    for name in numeric:
        out[name] = frame[name].astype(np.float64)
    for name in categorical:
        out[name] = (
            frame[name]
            .astype(object)
            .where(frame[name].notna(), np.nan)
            .map(lambda v: v if isinstance(v, float) else str(v))
        )
    return Screened(out, y, tuple(numeric), tuple(categorical), tuple(dropped), rows)
