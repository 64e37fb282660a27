"""Reader for drug dispensings (one row per dispensing).

Canonical columns
-----------------
``patient_id``
``dispensing_date`` (a date; the patient table then gives ``diagnosis_date``) or
``months_since_diagnosis`` (negative before diagnosis)
``atc``
    WHO ATC code at any level (``N``, ``N06``, ``N06A``, ``N06AB``, ``N06AB06``);
    case and spaces are normalised.
``ddd`` (optional)
    Defined daily doses dispensed (>= 0).
``amount`` (optional)
    Packages or units dispensed (>= 0).

Recognised aliases (:data:`alsfrs.io.ALIASES`): ``subject_id``/``id`` for
``patient_id``, ``date`` for ``dispensing_date``, ``atc_code`` for ``atc``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from alsfrs.io._table import Errors, Table, begin

__all__ = ["ATC_PATTERN", "normalise_atc", "read_dispensings"]

#: A WHO ATC code at level 1 (A), 2 (A01), 3 (A01A), 4 (A01AA) or 5 (A01AA01).
ATC_PATTERN = re.compile(r"^[A-Z](?:\d{2}(?:[A-Z](?:[A-Z](?:\d{2})?)?)?)?$")
#: The canonical columns of a dispensing table.
CANONICAL = ("patient_id", "dispensing_date", "months_since_diagnosis", "atc", "ddd", "amount")


def normalise_atc(codes: pd.Series) -> pd.Series:
    """Upper-case ATC codes with spaces removed (``"n06ab 06"`` -> ``"N06AB06"``)."""
    return codes.astype("string").str.replace(r"\s+", "", regex=True).str.upper()


def read_dispensings(
    source: Any,
    *,
    columns: Mapping[str, str] | None = None,
    errors: Errors = "raise",
    name: str | None = None,
    sep: str | None = None,
    date_format: str | None = None,
    dayfirst: bool = False,
) -> Table:
    """Read and validate a dispensing table.

    Parameters
    ----------
    source
        CSV/Parquet path or DataFrame, one row per dispensing.
    columns
        Mapping from the input's column names to the canonical names.
    errors
        ``"raise"`` (default) or ``"exclude"``, as in :func:`read_visits`.
    name
        Name used for a DataFrame in messages (default ``"<DataFrame>"``).
    sep, date_format, dayfirst
        As in :func:`~alsfrs.read_visits`.

    Returns
    -------
    Table
        ``.data`` with ``patient_id``, the time column, ``atc`` (normalised) and
        optional ``ddd``/``amount``; ``.meta["time"]`` names the time column.
    """
    frame, check = begin(source, kind="dispensings", columns=columns, name=name,
                         canonical=CANONICAL,
                         exclusive=(("dispensing_date", "months_since_diagnosis"),),
                         sep=sep, date_format=date_format, dayfirst=dayfirst)
    check.require_columns("patient_id", "atc")
    time = next((c for c in ("dispensing_date", "months_since_diagnosis") if c in frame), None)
    if time is None:
        check.table_error(
            "missing_column",
            "no time column: give 'dispensing_date' or 'months_since_diagnosis'",
        )
    if check.table_problems:
        check.finish(frame, errors=errors)

    pid = check.identifiers()
    out = pd.DataFrame({"patient_id": pid.astype(object)})
    if time == "dispensing_date":
        out[time] = check.dates(time, required=True, what="dispensing date")
    else:
        out[time] = check.numeric(time, required=True, what="months since diagnosis",
                                  rule_prefix="time")
    raw = frame["atc"]
    atc = normalise_atc(raw)
    missing = atc.isna() | (atc == "")
    check.error(missing, "atc_missing", "ATC code is missing", "atc",
                summary="have no ATC code")
    malformed = ~missing & ~atc.fillna("").str.fullmatch(ATC_PATTERN.pattern)
    check.error(
        malformed,
        "atc_malformed",
        lambda p: f"{raw.iloc[p]!r} is not a WHO ATC code (letter, 2 digits, letter, letter, "
        "2 digits, e.g. N06AB06, or a shorter level such as N06A)",
        "atc",
        summary="are not WHO ATC codes (e.g. N06AB06, or a shorter level such as N06A)",
    )
    out["atc"] = atc.astype(object)
    for c in ("ddd", "amount"):
        if c in frame:
            out[c] = check.numeric(c, lo=0, what=c, rule_prefix=c)
    for c in frame.columns:
        if c not in out.columns:
            out[c] = frame[c]
    return check.finish(out, errors=errors, meta={"time": time})
