"""Reader for the patient table (one row per patient).

Canonical columns
-----------------
``patient_id`` (required)
``diagnosis_date``
    A date; required when visits or dispensings are given as dates.
``onset_date`` or ``diagnostic_delay_months`` (optional)
    Symptom onset, as a date (with ``diagnosis_date``) or as months from onset to
    diagnosis (>= 0). Onset may be unknown (column absent or cell blank): the
    patient is kept, ``diagnostic_delay_months`` is missing, and the cohort then
    has no ``months_since_onset`` nor ΔFS for that patient; it counts such
    patients and onset-origin analyses exclude them with a reason
    (:meth:`alsfrs.Cohort.to_frame` with ``time="months_since_onset"``).
``age_at_dx``
    Age at diagnosis in years.
``sex``
    ``F``/``M`` (``female``/``male`` accepted); stored as a categorical F, M.
``onset_site``
    ``spinal`` (``limb`` accepted), ``bulbar`` or ``other``; stored as a
    categorical with ``spinal`` as the reference level.
``death_imv``
    1 if the patient died or started invasive ventilation, 0 if censored.
``death_imv_date`` or ``months_to_death_imv``
    Date of death/invasive ventilation or of censoring, or months from the time
    origin (diagnosis; trial entry for visits timed from entry) to it; required
    with ``death_imv``.

Recognised aliases (:data:`alsfrs.io.ALIASES`): ``subject_id``/``id`` for
``patient_id``, ``date_of_diagnosis``, ``date_of_onset``, ``age_at_diagnosis``,
``gender``, ``site_of_onset`` ... Any other column is kept as a patient-level
covariate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from alsfrs.io._table import Errors, Table, TableCheck, begin
from alsfrs.timeaxis import DAYS_PER_MONTH

__all__ = ["ONSET_SITES", "SEXES", "read_patients"]

SEXES = ("F", "M")
ONSET_SITES = ("spinal", "bulbar", "other")

#: The canonical columns of a patient table.
CANONICAL = ("patient_id", "diagnosis_date", "onset_date", "diagnostic_delay_months",
             "age_at_dx", "sex", "onset_site", "death_imv", "death_imv_date",
             "months_to_death_imv")

_SEX = {
    "f": "F", "female": "F", "woman": "F", "w": "F", "k": "F", "kvinna": "F",
    "m": "M", "male": "M", "man": "M",
}  # fmt: skip
_SITE = {
    "spinal": "spinal", "limb": "spinal", "spinal/limb": "spinal", "onset: limb": "spinal",
    "onset: spine": "spinal", "bulbar": "bulbar", "onset: bulbar": "bulbar",
    "other": "other", "respiratory": "other", "generalized": "other", "generalised": "other",
    "mixed": "other", "onset: other": "other", "onset: limb and bulbar": "other",
}  # fmt: skip


def read_patients(
    source: Any,
    *,
    columns: Mapping[str, str] | None = None,
    errors: Errors = "raise",
    name: str | None = None,
    sep: str | None = None,
    date_format: str | None = None,
    dayfirst: bool = False,
) -> Table:
    """Read and validate the patient table.

    Parameters
    ----------
    source
        CSV/Parquet path or DataFrame, one row per patient.
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
        ``.data`` has ``patient_id``, ``diagnostic_delay_months`` (always; missing
        where onset is unknown), the dates if given, and the covariates;
        ``.exclusions`` the rows not used; ``.notes`` counts patients without onset.
    """
    frame, check = begin(source, kind="patients", columns=columns, name=name,
                         canonical=CANONICAL, sep=sep, date_format=date_format,
                         dayfirst=dayfirst)
    check.require_columns("patient_id")
    if "onset_date" in frame and "diagnostic_delay_months" not in frame and (
        "diagnosis_date" not in frame
    ):
        check.table_error(
            "missing_column",
            "'onset_date' needs 'diagnosis_date' to place onset relative to diagnosis",
        )
    if "death_imv" in frame and not {"death_imv_date", "months_to_death_imv"} & set(frame):
        check.table_error(
            "missing_column",
            "'death_imv' needs the time of the event or censoring: 'death_imv_date' "
            "or 'months_to_death_imv'",
        )
    if check.table_problems:
        check.finish(frame, errors=errors)

    pid = check.identifiers()
    out = pd.DataFrame({"patient_id": pid.astype(object)})
    dx = check.dates("diagnosis_date", what="diagnosis date")
    if "diagnosis_date" in frame:
        out["diagnosis_date"] = dx
    if "onset_date" in frame:
        onset = check.dates("onset_date", what="onset date")
        out["onset_date"] = onset
        delay_from_dates = (dx - onset).dt.days / DAYS_PER_MONTH
    else:
        delay_from_dates = pd.Series(np.nan, index=frame.index)
    if "diagnostic_delay_months" in frame:
        delay = check.numeric("diagnostic_delay_months", what="diagnostic delay (months)",
                              rule_prefix="delay")
        delay = delay.where(delay.notna(), delay_from_dates)
    else:
        delay = delay_from_dates
    onset_unknown = delay.isna() & ~pd.Series(
        [bool(check.row_errors.get(i)) for i in range(len(frame))], index=frame.index
    )
    if onset_unknown.any():
        n = int(onset_unknown.sum())
        check.notes.append(
            f"{check.source}: {n} patient{'s' if n != 1 else ''} without a symptom onset (no "
            "onset date with a diagnosis date, no diagnostic delay): months since onset and "
            "ΔFS are missing for them")
    check.error(
        delay < 0,
        "onset_after_diagnosis",
        lambda p: f"symptom onset is {-delay.iloc[p]:.1f} months after diagnosis",
        "onset_date" if "onset_date" in frame else "diagnostic_delay_months",
    )
    out["diagnostic_delay_months"] = delay

    if "age_at_dx" in frame:
        out["age_at_dx"] = check.numeric(
            "age_at_dx", lo=0, hi=120, required=True, what="age at diagnosis", rule_prefix="age"
        )
    if "sex" in frame:
        out["sex"] = _categorical(check, "sex", _SEX, SEXES, "sex")
    if "onset_site" in frame:
        out["onset_site"] = _categorical(check, "onset_site", _SITE, ONSET_SITES, "site of onset")
    if "death_imv" in frame:
        status = check.numeric("death_imv", lo=0, hi=1, integer=True, required=True,
                               what="death/invasive ventilation status (0/1)",
                               rule_prefix="status")
        out["death_imv"] = status.where(status.isin([0, 1])).astype("Int64")
        if "months_to_death_imv" in frame:
            t = check.numeric("months_to_death_imv", lo=0, required=True,
                              what="months from diagnosis to death/IMV or censoring",
                              rule_prefix="event_time")
        else:
            end = check.dates("death_imv_date", required=True, what="death/IMV or censoring date")
            out["death_imv_date"] = end
            t = (end - dx).dt.days / DAYS_PER_MONTH
            check.error(
                t < 0,
                "event_before_diagnosis",
                lambda p: f"death/IMV or censoring date is {-t.iloc[p]:.1f} months before "
                "diagnosis",
                "death_imv_date",
            )
            check.error(
                t.isna() & end.notna() & dx.isna(),
                "date_missing",
                "a death/IMV date needs the diagnosis date",
                "diagnosis_date",
            )
        out["months_to_death_imv"] = t

    known = {
        "patient_id", "diagnosis_date", "onset_date", "diagnostic_delay_months", "age_at_dx",
        "sex", "onset_site", "death_imv", "death_imv_date", "months_to_death_imv",
    }  # fmt: skip
    for c in frame.columns:
        if c not in known:
            out[c] = frame[c]

    dup = pid.notna() & pid.duplicated(keep=False)
    if dup.any():
        for _key, grp in pid[dup].groupby(pid[dup], sort=False):
            pos = grp.index.to_numpy()
            rows = frame.loc[pos].astype("string").fillna("")
            identical = (rows == rows.iloc[0]).all(axis=None)
            mask = np.zeros(len(frame), dtype=bool)
            if identical:
                mask[pos[1:]] = True
                check.exclude(mask, "duplicate_patient",
                              f"exact duplicate of the patient row {check.labels[int(pos[0])]}")
            else:
                mask[pos] = True
                rows_txt = ", ".join(str(check.labels[int(p)]) for p in pos)
                check.error(mask, "conflicting_patient_rows",
                            f"patient appears in several rows with different values "
                            f"(rows {rows_txt})", "patient_id")
    return check.finish(out, errors=errors)


def _categorical(
    check: TableCheck, column: str, mapping: dict[str, str], levels: tuple[str, ...], what: str
) -> pd.Series:
    raw = check.frame[column]
    text = raw.astype("string").str.strip()
    missing = raw.isna() | (text == "")
    mapped = text.str.lower().map(mapping)
    bad = mapped.isna() & ~missing
    accepted = ", ".join(levels)
    check.error(
        bad,
        f"{column}_invalid",
        lambda p: f"{what} {text.iloc[p]!r} is not recognised (expected one of {accepted})",
        column,
    )
    check.error(missing, f"{column}_missing", f"{what} is missing", column)
    return pd.Series(pd.Categorical(mapped.astype(object), categories=list(levels)),
                     index=raw.index)
