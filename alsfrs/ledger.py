"""The row ledger: what happened to each row of one input table.

One class keeps the row-level outcome of every check, in the readers (each table
on its own) and in :class:`~alsfrs.Cohort` (the tables against each other):

- an **error** is a row that breaks a rule (a :class:`~alsfrs.errors.Problem`);
  with ``errors="raise"`` errors are raised together, with ``errors="exclude"``
  the row goes to the exclusions ledger with every reason;
- an **exclusion** is a row that is valid but not usable (no score recorded, an
  exact duplicate, a patient without visits ...): it is never an error and is
  always listed with its reason;
- a **table problem** concerns the whole table (a missing column) and always raises.

Every input row ends up either used or in the exclusions (``read = used + excluded``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from alsfrs.errors import Problem

__all__ = ["EXCLUSION_COLUMNS", "ROW", "RowLedger"]

#: Columns of every exclusions ledger.
EXCLUSION_COLUMNS = ["table", "source", "row", "patient_id", "rule", "reason"]

#: Column holding the row label as the user sees it (file line or DataFrame index).
ROW = "source_row"

Message = str | Callable[[int], str]


class RowLedger:
    """Errors, exclusions and table problems of one table, by row position.

    Parameters
    ----------
    kind
        The table (``"visits"``, ``"patients"``, ``"dispensings"``, ``"death"`` ...).
    source
        The file name, or a DataFrame's name, shown in messages.
    labels
        The label of each row as the user finds it (file line, DataFrame index).
    patients
        The patient identifier of each row (missing: ``None``/NA).
    original_names
        Canonical column name -> the user's own name, so messages use the user's naming.
    """

    def __init__(
        self,
        *,
        kind: str,
        source: str,
        labels: Sequence[Any],
        patients: Sequence[Any] | pd.Series,
        original_names: Mapping[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self.source = source
        self.labels = list(labels)
        self.patient = (patients if isinstance(patients, pd.Series)
                        else pd.Series(list(patients), dtype=object))
        self.original_names = dict(original_names or {})
        self.table_problems: list[Problem] = []
        self.row_errors: dict[int, list[Problem]] = defaultdict(list)
        self.row_exclusions: dict[int, Problem] = {}

    @classmethod
    def for_rows(cls, kind: str, source: str, data: pd.DataFrame) -> RowLedger:
        """A ledger over rows already read (``data`` has ``source_row`` and ``patient_id``)."""
        return cls(kind=kind, source=source, labels=list(data[ROW]),
                   patients=data["patient_id"].reset_index(drop=True))

    # -- recording -------------------------------------------------------------------
    def user_column(self, column: str | None) -> str | None:
        """The user's name of a canonical column."""
        return None if column is None else self.original_names.get(column, column)

    def _problem(self, pos: int, rule: str, message: str, column: str | None,
                 summary: str | None = None) -> Problem:
        pid = self.patient.iloc[pos]
        return Problem(rule=rule, message=message, source=self.source, row=self.labels[pos],
                       patient=None if pd.isna(pid) else pid,
                       column=self.user_column(column), summary=summary)

    def table_error(self, rule: str, message: str, column: str | None = None) -> None:
        """A problem of the whole table (always raised)."""
        self.table_problems.append(Problem(rule=rule, message=message, source=self.source,
                                           column=self.user_column(column)))

    def error(self, mask: pd.Series | np.ndarray, rule: str, message: Message,
              column: str | None = None, *, summary: str | None = None) -> None:
        """Record an error on every row where ``mask`` is true.

        ``summary`` states the problem without the row's value, for the grouped
        message when many rows break the rule (see :func:`alsfrs.errors.format_problems`).
        """
        for pos in np.flatnonzero(np.asarray(mask, dtype=bool)):
            msg = message(int(pos)) if callable(message) else message
            self.row_errors[int(pos)].append(self._problem(int(pos), rule, msg, column, summary))

    def exclude(self, mask: pd.Series | np.ndarray, rule: str, message: Message,
                column: str | None = None) -> None:
        """Mark rows as not used (not an error); a row's first reason is kept."""
        for pos in np.flatnonzero(np.asarray(mask, dtype=bool)):
            pos = int(pos)
            if pos in self.row_errors or pos in self.row_exclusions:
                continue
            msg = message(pos) if callable(message) else message
            self.row_exclusions[pos] = self._problem(pos, rule, msg, column)

    # -- reading it back -------------------------------------------------------------
    def problems(self) -> list[Problem]:
        """Every row error, in row order."""
        return [p for pos in sorted(self.row_errors) for p in self.row_errors[pos]]

    def bad_rows(self) -> set[int]:
        """Positions of rows with an error or an exclusion."""
        return {p for p, v in self.row_errors.items() if v} | set(self.row_exclusions)

    def keep(self, n_rows: int) -> np.ndarray:
        """Boolean mask of the rows used."""
        keep = np.ones(n_rows, dtype=bool)
        keep[sorted(self.bad_rows())] = False
        return keep

    def exclusions(self) -> pd.DataFrame:
        """One ledger row per row not used, errors included (with every reason)."""
        records = []
        for pos in sorted(self.bad_rows()):
            probs = self.row_errors.get(pos) or [self.row_exclusions[pos]]
            reason = "; ".join((f"column '{p.column}': " if p.column else "") + p.message
                               for p in probs)
            pid = self.patient.iloc[pos]
            records.append({"table": self.kind, "source": self.source, "row": self.labels[pos],
                            "patient_id": None if pd.isna(pid) else pid,
                            "rule": probs[0].rule, "reason": reason})
        return pd.DataFrame.from_records(records, columns=EXCLUSION_COLUMNS)

    def resolve(self, data: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The rows of ``data`` used (index reset) and the exclusions of the others."""
        keep = self.keep(len(data))
        return data.loc[keep].reset_index(drop=True), self.exclusions()


def empty_exclusions() -> pd.DataFrame:
    """An exclusions ledger without rows."""
    return pd.DataFrame(columns=EXCLUSION_COLUMNS)
