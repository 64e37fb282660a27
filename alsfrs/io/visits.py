"""Reader for ALSFRS-R visits in the alsfrs long format (one row per patient visit).

Canonical columns
-----------------
``patient_id``
    The patient identifier (text).
time, one of (the first present is used unless ``time=`` names one)
    ``visit_date`` (a date; the patient table then gives ``diagnosis_date``),
    ``days_since_diagnosis``, ``months_since_diagnosis``, ``months_since_onset``
    (the patient table then needs the symptom onset), or ``days_since_entry``,
    ``months_since_entry`` (time from entry into a trial, e.g. PRO-ACT without
    the ALS history table; the cohort's time origin is then trial entry).
items (0-4, whole numbers)
    ``speech``, ``salivation``, ``swallowing``, ``handwriting``, ``cutting_food``
    (5a) or ``cutting_food_gastrostomy`` (5b), ``dressing_hygiene``,
    ``turning_in_bed``, ``walking``, ``climbing_stairs``, ``dyspnea``,
    ``orthopnea``, ``respiratory_insufficiency``.
total
    ``alsfrs_r`` (0-48).

A visit may carry the items, the total, or both; where both, they must agree.
A visit with some items blank and a total is checked as far as it can be: a
total that no score of the blank items could reach is an error
(``total_mismatch``); otherwise the total cannot be verified and the visit is
excluded with rule ``total_unverifiable`` (to use totals alone, leave the item
columns out). Items without a total must be complete (else ``incomplete_items``).

Recognised aliases (see :data:`alsfrs.io.ALIASES`): ``subject_id``, ``id`` ... for
``patient_id``; ``date`` for ``visit_date``; ``ALSFRS_R_total``, ``ALSFRS-R``,
``total`` ... for ``alsfrs_r``. Other columns are carried along untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from alsfrs.instrument import (
    ITEM5A,
    ITEM5B,
    ITEM_COLUMNS,
    MAX_ITEM,
    MAX_TOTAL,
    ORIGINAL_ALSFRS_MARKERS,
)
from alsfrs.io._table import Errors, Table, TableCheck, begin

__all__ = ["TIME_COLUMNS", "TOTAL", "read_visits"]

#: The time columns a visits table may use, in order of preference.
TIME_COLUMNS = (
    "visit_date", "days_since_diagnosis", "months_since_diagnosis", "months_since_onset",
    "days_since_entry", "months_since_entry",
)
TOTAL = "alsfrs_r"
R_ITEMS = ("dyspnea", "orthopnea", "respiratory_insufficiency")
#: The canonical columns of a visits table.
CANONICAL = ("patient_id", *TIME_COLUMNS, *ITEM_COLUMNS, TOTAL)


def read_visits(
    source: Any,
    *,
    columns: Mapping[str, str] | None = None,
    time: str | None = None,
    errors: Errors = "raise",
    name: str | None = None,
    sep: str | None = None,
    date_format: str | None = None,
    dayfirst: bool = False,
) -> Table:
    """Read and validate ALSFRS-R visits in long format.

    Parameters
    ----------
    source
        Path to a CSV or Parquet file, or a DataFrame, one row per patient visit.
    columns
        Mapping from the input's column names to the canonical names, e.g.
        ``{"pnr": "patient_id", "Q1": "speech"}``. Common aliases are recognised
        without it (:data:`alsfrs.io.ALIASES`); unknown names close to a canonical
        one give an :class:`~alsfrs.InputWarning`.
    time
        Which time column to use when the input has several.
    errors
        ``"raise"`` (default): any bad row raises one :class:`~alsfrs.ValidationError`
        listing every problem. ``"exclude"``: bad rows go to the exclusions
        ledger with their reasons and the rest is used.
    name
        Name used for a DataFrame in messages (default ``"<DataFrame>"``).
    sep
        Field separator of a text file (default: ``,``, tab for ``.tsv``; a
        semicolon-, tab- or pipe-separated header is detected and noted).
    date_format
        ``strftime`` format of the dates, e.g. ``"%d/%m/%Y"``; ISO dates
        (``YYYY-MM-DD``) are always accepted too.
    dayfirst
        Also accept day-first dates (``DD/MM/YYYY``, ``DD.MM.YYYY``, ``DD-MM-YYYY``).

    Returns
    -------
    Table
        ``.data`` holds the visits used (items as floats, ``alsfrs_r`` always
        filled), ``.exclusions`` every row not used with its reason.

    Raises
    ------
    ValidationError
        Missing columns, the original ALSFRS, or (with ``errors="raise"``) any
        bad row: scores out of range or not whole numbers, both forms of item 5,
        items and total that disagree, conflicting duplicate visits, bad times.
    """
    frame, check = begin(source, kind="visits", columns=columns, name=name, canonical=CANONICAL,
                         exclusive=(TIME_COLUMNS,), sep=sep, date_format=date_format,
                         dayfirst=dayfirst)

    lower = {str(c).lower(): c for c in frame.columns}
    has_r = any(c in frame.columns for c in R_ITEMS)
    marker = next((lower[m] for m in ORIGINAL_ALSFRS_MARKERS if m in lower), None)
    if marker is not None and not has_r:
        check.table_error(
            "original_alsfrs",
            f"column '{marker}' is the original ALSFRS (10 items, total 0-40, one breathing "
            "item), which is not the ALSFRS-R (12 items, 0-48, respiratory items R1-R3) and "
            "cannot be mixed with it; supply ALSFRS-R visits",
            column=marker,
        )
    check.require_columns("patient_id")
    present_times = [c for c in TIME_COLUMNS if c in frame.columns]
    if time is not None:
        if time not in TIME_COLUMNS:
            check.table_error(
                "bad_time_axis", f"time must be one of {', '.join(TIME_COLUMNS)}, not {time!r}"
            )
        elif time not in frame.columns:
            check.table_error("missing_column", f"time column '{time}' is missing", column=time)
    elif not present_times:
        check.table_error(
            "missing_column",
            "no time column: give one of " + ", ".join(TIME_COLUMNS),
        )
    elif len(present_times) > 1:
        time = present_times[0]
    else:
        time = present_times[0]
    items_present = [c for c in ITEM_COLUMNS if c in frame.columns]
    if not items_present and TOTAL not in frame.columns:
        check.table_error(
            "missing_column",
            f"no ALSFRS-R scores: give the 12 item columns, the total '{TOTAL}', or both",
        )
    if check.table_problems:
        check.finish(frame, errors=errors)  # raises

    pid = check.identifiers()
    out = pd.DataFrame({"patient_id": pid.astype(object)})
    if time == "visit_date":
        out[time] = check.dates(time, required=True, what="visit date")
    else:
        out[time] = check.numeric(
            time, required=True, what=time.replace("_", " "), rule_prefix="time"
        )

    items = pd.DataFrame(index=frame.index)
    for c in ITEM_COLUMNS:
        items[c] = check.numeric(
            c, integer=True, lo=0, hi=MAX_ITEM, what=f"item '{c}'", rule_prefix="item"
        )
    total_given = check.numeric(
        TOTAL, integer=True, lo=0, hi=MAX_TOTAL, what="ALSFRS-R total", rule_prefix="total"
    )

    both5 = items[ITEM5A].notna() & items[ITEM5B].notna()
    check.error(
        both5,
        "item5_both_forms",
        "item 5 is scored in both forms (5a cutting_food and 5b cutting_food_gastrostomy); "
        "exactly one applies at a visit",
        ITEM5B,
    )
    item5 = items[ITEM5A].where(items[ITEM5A].notna(), items[ITEM5B])
    others = items.drop(columns=[ITEM5A, ITEM5B])
    n_scored = others.notna().sum(axis=1) + item5.notna()
    complete = n_scored == 12
    item_sum = others.sum(axis=1) + item5.fillna(0)
    item_bad = np.zeros(len(frame), dtype=bool)
    for pos, probs in check.row_errors.items():
        item_bad[pos] = any(p.rule.startswith("item") for p in probs)
    # a total cannot be checked against items that are themselves wrong
    mismatch = complete & total_given.notna() & (item_sum != total_given) & ~item_bad
    check.error(
        mismatch,
        "total_mismatch",
        lambda p: f"ALSFRS-R total {_fmt(total_given.iloc[p])} disagrees with the sum of "
        f"the 12 items, {_fmt(item_sum.iloc[p])}",
        TOTAL,
        summary="have a total that disagrees with the sum of the 12 items",
    )
    # some items blank next to a total: check what can be checked
    blank = others.isna().assign(cutting_food=item5.isna())

    def blank_names(p: int) -> str:
        return ", ".join(c for c in blank.columns if blank[c].iloc[p])

    partial_total = (n_scored > 0) & ~complete & total_given.notna() & ~item_bad
    most = item_sum + MAX_ITEM * (12 - n_scored)
    impossible = partial_total & ((total_given < item_sum) | (total_given > most))
    check.error(
        impossible,
        "total_mismatch",
        lambda p: f"ALSFRS-R total {_fmt(total_given.iloc[p])} cannot match the items: the "
        f"{int(n_scored.iloc[p])} items scored sum to {_fmt(item_sum.iloc[p])} and the blank "
        f"ones ({blank_names(p)}) add 0 to {MAX_ITEM * (12 - int(n_scored.iloc[p]))}",
        TOTAL,
        summary="have a total that no score of their blank items could reach",
    )
    check.exclude(
        partial_total & ~impossible,
        "total_unverifiable",
        lambda p: f"item(s) {blank_names(p)} blank: the total {_fmt(total_given.iloc[p])} "
        "cannot be checked against the items (give every item, or leave the item columns "
        "out to use the totals alone)",
        TOTAL,
    )
    total = total_given.where(total_given.notna(), item_sum.where(complete))

    no_score = (n_scored == 0) & total_given.isna()
    check.exclude(no_score, "no_score", "no ALSFRS-R items or total recorded at this visit")
    partial = (n_scored > 0) & ~complete & total_given.isna()
    check.exclude(
        partial,
        "incomplete_items",
        lambda p: f"only {int(n_scored.iloc[p])} of 12 items scored and no total given",
    )

    _check_duplicates(check, pid, out[time], items, total, time)

    for c in ITEM_COLUMNS:
        out[c] = items[c]
    out[TOTAL] = total
    extra = [c for c in frame.columns if c not in out.columns and c != "patient_id"]
    for c in extra:
        out[c] = frame[c]
    return check.finish(out, errors=errors, meta={"time": time})


def _fmt(x: float) -> str:
    return str(int(x)) if np.isfinite(x) and float(x).is_integer() else f"{x:g}"


def _check_duplicates(
    check: TableCheck,
    pid: pd.Series,
    when: pd.Series,
    items: pd.DataFrame,
    total: pd.Series,
    time: str,
) -> None:
    """Exact duplicate visits are excluded; conflicting ones are errors."""
    usable = pid.notna() & when.notna()
    key = pd.DataFrame({"pid": pid, "t": when})[usable]
    dup = key.duplicated(keep=False)
    if not dup.any():
        return
    scores = pd.concat([items, total.rename(TOTAL)], axis=1)
    for _, grp in key[dup].groupby(["pid", "t"], sort=False):
        pos = grp.index.to_numpy()
        block = scores.loc[pos]
        first = int(pos[0])
        same = block.apply(
            lambda r, ref=block.iloc[0]: bool(((r == ref) | (r.isna() & ref.isna())).all()),
            axis=1,
        )
        if same.all():
            mask = np.zeros(len(pid), dtype=bool)
            mask[pos[1:]] = True
            check.exclude(
                mask,
                "duplicate_visit",
                f"exact duplicate of the visit at row {check.labels[first]}",
            )
        else:
            mask = np.zeros(len(pid), dtype=bool)
            mask[pos] = True
            rows = ", ".join(str(check.labels[int(p)]) for p in pos)
            check.error(
                mask,
                "conflicting_visits",
                f"several visits at the same {time.replace('_', ' ')} with different scores "
                f"(rows {rows})",
                time,
            )
