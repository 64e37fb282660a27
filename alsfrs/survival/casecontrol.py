"""Matched case-control data: the sets table, dispensings, and exposures by window.

The canonical case-control format is two tables:

``sets``
    One row per person: ``set_id`` (the matched set), ``patient_id``, ``case``
    (1 = case, 0 = control), ``index_date`` (the case's diagnosis date, shared by
    its controls), ``age_at_index`` and ``sex`` (the matching factors).
``dispensings``
    The canonical dispensings table (:func:`alsfrs.read_dispensings`), dated.

:func:`read_case_control` checks them and returns a :class:`CaseControlStudy`,
whose :meth:`~CaseControlStudy.to_frame` derives the exposures by class and
window (:func:`alsfrs.derive_exposures` with ``windows``; time is measured back
from each person's index date) so that::

    study = alsfrs.read_case_control("sets.csv", "dispensings.csv")
    fit = alsfrs.fit_clogit("case ~ anxiolytic_0_1y + ... + strata(set_id)", study)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alsfrs.errors import Problem, ValidationError

__all__ = ["DEFAULT_WINDOWS", "CaseControlStudy", "exposure_terms", "read_case_control"]

#: Chourpiliadis 2025: 0-1, 1-5 and more than 5 years before diagnosis (months).
DEFAULT_WINDOWS: tuple[tuple[float, float | None], ...] = ((0, 12), (12, 60), (60, None))

SET_COLUMNS = ("set_id", "patient_id", "case", "index_date", "age_at_index", "sex")


@dataclass
class CaseControlStudy:
    """Matched sets with dispensing histories.

    Attributes
    ----------
    sets : DataFrame
        One row per person (see the module docstring).
    dispensings : DataFrame or path
        Dated dispensings (canonical format).
    windows : tuple of (from, to) months before the index date
        Exposure windows used by :meth:`to_frame`.
    truth : dict or None
        Generating parameters, for simulated studies.
    """

    sets: pd.DataFrame
    dispensings: Any
    windows: tuple[tuple[float, float | None], ...] = DEFAULT_WINDOWS
    truth: dict | None = None
    min_dispensings: int = 2
    _frame: pd.DataFrame | None = field(default=None, repr=False)
    _table: Any = field(default=None, repr=False)

    def to_frame(self) -> pd.DataFrame:
        """The analysis frame: the sets table with one 0/1 exposure column per class
        and window (``anxiolytic_0_1y``, ``hypnotic_1_5y``, ``antidepressant_5y_plus``)."""
        if self._frame is None:
            from alsfrs.exposure import derive_exposures
            from alsfrs.io._table import Table, empty_exclusions
            from alsfrs.io.dispensings import read_dispensings

            people = pd.DataFrame({
                "patient_id": self.sets["patient_id"].astype(object).to_numpy(),
                "diagnosis_date": pd.to_datetime(self.sets["index_date"]).to_numpy(),
                "source_row": np.arange(2, len(self.sets) + 2)})
            pt = Table("patients", people, empty_exclusions(), "sets", len(people),
                       {"index": "index_date"})
            disp = self._table if self._table is not None else read_dispensings(
                self.dispensings)
            ex = derive_exposures(disp, pt, min_dispensings=self.min_dispensings,
                                  subclasses=False, windows=list(self.windows))
            wcols = [c for c in ex.columns if any(c.endswith("_" + w["label"])
                                                  for w in ex.attrs["windows"])]
            out = self.sets.join(ex[wcols], on="patient_id")
            out.attrs = {}
            self._frame = out
        return self._frame

    def exposure_columns(self) -> list[str]:
        """The exposure-by-window columns of :meth:`to_frame`."""
        return exposure_terms(self.to_frame())

    def __repr__(self) -> str:
        n_sets = self.sets["set_id"].nunique()
        return (f"<CaseControlStudy: {int(self.sets['case'].sum())} cases, "
                f"{int((self.sets['case'] == 0).sum())} controls in {n_sets} matched sets>")


def exposure_terms(frame: pd.DataFrame) -> list[str]:
    """Columns named ``<class>_<window>`` (e.g. ``hypnotic_0_1y``), in frame order."""
    import re

    pat = re.compile(r"^[a-z]+_(\d+(p\d+)?_\d+(p\d+)?[ym]|\d+(p\d+)?[ym]_plus)$")
    return [c for c in frame.columns if pat.match(str(c))]


def read_case_control(sets: Any, dispensings: Any, *,
                      windows: Sequence[tuple[float, float | None]] = DEFAULT_WINDOWS,
                      min_dispensings: int = 2) -> CaseControlStudy:
    """Read and check a matched case-control study (sets table and dispensings).

    Parameters
    ----------
    sets : path or DataFrame
        ``set_id, patient_id, case, index_date`` (and the matching factors).
    dispensings : path or DataFrame
        Dated dispensings (``patient_id, dispensing_date, atc``).
    windows : sequence of (from, to) months before the index date
    min_dispensings : int
        Dispensings in a window needed to count as exposed.

    Raises
    ------
    alsfrs.errors.ValidationError
        Missing columns, a case flag other than 0/1, a set without a case,
        duplicated persons, missing or unreadable index dates.
    """
    from alsfrs.io._table import load_frame
    from alsfrs.io.dispensings import read_dispensings

    if isinstance(sets, pd.DataFrame):
        s = sets
    else:
        loaded = load_frame(sets, kind="case-control sets")
        if loaded.problems:
            raise ValidationError(loaded.problems, context="the case-control sets")
        s = loaded.frame
    table = read_dispensings(dispensings)
    src = "sets" if isinstance(sets, pd.DataFrame) else str(sets)
    problems = [Problem(rule="missing_column", source=src, column=c,
                        message=f"the sets table needs column {c!r}")
                for c in ("set_id", "patient_id", "case", "index_date") if c not in s.columns]
    if problems:
        raise ValidationError(problems, context="the case-control sets")
    s = s.copy()
    case = pd.to_numeric(s["case"], errors="coerce")
    bad = ~case.isin([0, 1])
    for i in np.flatnonzero(bad.to_numpy())[:50]:
        problems.append(Problem(rule="case_not_binary", source=src, row=s.index[i],
                                patient=s["patient_id"].iloc[i], column="case",
                                message=f"case must be 0 or 1, got {s['case'].iloc[i]!r}"))
    idx = pd.to_datetime(s["index_date"], errors="coerce")
    for i in np.flatnonzero(idx.isna().to_numpy())[:50]:
        problems.append(Problem(rule="index_date_invalid", source=src, row=s.index[i],
                                patient=s["patient_id"].iloc[i], column="index_date",
                                message=f"index date {s['index_date'].iloc[i]!r} is not a date"))
    dup = s["patient_id"].duplicated(keep=False)
    if dup.any():
        problems.append(Problem(rule="duplicate_person", source=src, column="patient_id",
                                message=f"{int(dup.sum())} rows repeat a patient_id"))
    if not bad.any():
        per_set = case.groupby(s["set_id"]).sum()
        none = per_set.index[per_set == 0]
        if len(none):
            problems.append(Problem(rule="set_without_case", source=src, column="set_id",
                                    message=f"{len(none)} matched set(s) have no case "
                                    f"({', '.join(map(str, none[:5]))})"))
    if problems:
        raise ValidationError(problems, context="the case-control sets")
    s["case"] = case.astype(int)
    s["index_date"] = idx
    if "age_at_index" in s:
        s["age_at_index"] = pd.to_numeric(s["age_at_index"], errors="coerce")
    return CaseControlStudy(sets=s, dispensings=dispensings, windows=tuple(windows),
                            min_dispensings=min_dispensings, _table=table)
