"""Shared machinery of the readers: loading, column mapping, typed checks, the ledger.

Every reader follows the same pattern: load a CSV/Parquet file or a DataFrame,
rename columns to the canonical names, check each column with the typed checks
below (which record a :class:`~alsfrs.errors.Problem` per bad row, never stop at
the first), then :meth:`TableCheck.finish` either raises one
:class:`~alsfrs.errors.ValidationError` listing every problem or, with
``errors="exclude"``, drops the offending rows into the exclusions ledger.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from alsfrs.errors import Problem, ValidationError

__all__ = ["EXCLUSION_COLUMNS", "Table", "TableCheck", "begin", "load_frame"]

Errors = Literal["raise", "exclude"]

#: Columns of every exclusions ledger.
EXCLUSION_COLUMNS = ["table", "source", "row", "patient_id", "rule", "reason"]

#: Column holding the row label as the user sees it (file line or DataFrame index).
ROW = "source_row"


@dataclass
class Table:
    """A validated input table and the account of its rows.

    Attributes
    ----------
    kind
        ``"visits"``, ``"patients"`` or ``"dispensings"``.
    data
        The rows used, with canonical column names; column ``source_row`` keeps
        each row's label in the input (file line number, or DataFrame index).
    exclusions
        The input rows not used, one per row, with the rule and the reason.
    source
        The file name, or ``"<DataFrame>"``.
    n_input_rows
        Rows read; always ``len(data) + len(exclusions)``.
    meta
        Reader-specific facts (e.g. which time axis the visits use).
    """

    kind: str
    data: pd.DataFrame
    exclusions: pd.DataFrame
    source: str
    n_input_rows: int
    meta: dict[str, Any]

    def __post_init__(self) -> None:
        if len(self.data) + len(self.exclusions) != self.n_input_rows:  # pragma: no cover
            raise AssertionError("row accounting broken: used + excluded != read")

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return (
            f"<{self.kind} table from {self.source}: {self.n_input_rows} rows read, "
            f"{len(self.data)} used, {len(self.exclusions)} excluded>"
        )


def source_name(source: Any) -> str:
    if isinstance(source, pd.DataFrame):
        return "<DataFrame>"
    return os.path.basename(os.fspath(source))


def load_frame(
    source: Any, *, kind: str, name: str | None = None
) -> tuple[pd.DataFrame, str, list[Any]]:
    """Load a CSV/Parquet path or copy a DataFrame; return it with row labels.

    Row labels are what a user can find the row by: for a CSV the line number
    (the header is line 1), for Parquet the 1-based row number, for a DataFrame
    its index label. ``name`` replaces ``"<DataFrame>"`` in messages.
    """
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
        labels = list(frame.index)
        frame = frame.reset_index(drop=True)
        frame.columns = [str(c).strip() for c in frame.columns]
        return frame, name or "<DataFrame>", labels
    if not isinstance(source, str | os.PathLike):
        raise ValidationError(
            Problem(
                rule="bad_source",
                message=f"{kind} must be a CSV/Parquet path or a pandas DataFrame, "
                f"not {type(source).__name__}",
            )
        )
    path = Path(source)
    name = path.name
    if not path.exists():
        raise ValidationError(Problem(rule="file_not_found", message=f"no such file: {path}"))
    suffixes = "".join(path.suffixes).lower()
    try:
        if suffixes.endswith(".parquet") or suffixes.endswith(".pq"):
            frame = pd.read_parquet(path)
            labels = list(range(1, len(frame) + 1))
        else:
            sep = "\t" if suffixes.endswith((".tsv", ".tsv.gz", ".tab")) else ","
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""])
            labels = list(range(2, len(frame) + 2))
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise ValidationError(
            Problem(rule="unreadable_file", message=f"cannot read {kind} file: {exc}", source=name)
        ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.reset_index(drop=True)
    return frame, name, labels


def apply_mapping(
    frame: pd.DataFrame, columns: Mapping[str, str] | None, source: str
) -> pd.DataFrame:
    """Rename user columns to canonical ones; refuse mappings that collide."""
    if not columns:
        return frame
    problems = []
    for user in columns:
        if user not in frame.columns:
            problems.append(
                Problem(
                    rule="mapping_unknown_column",
                    message=f"column mapping names '{user}', which the input does not have "
                    f"(columns: {', '.join(map(str, frame.columns))})",
                    source=source,
                    column=user,
                )
            )
    targets = list(columns.values())
    for t in {t for t in targets if targets.count(t) > 1}:
        problems.append(
            Problem(
                rule="mapping_collision",
                message=f"several columns are mapped to '{t}'",
                source=source,
                column=t,
            )
        )
    if problems:
        raise ValidationError(problems, context="the column mapping")
    renamed = frame.rename(columns=dict(columns))
    dup = renamed.columns[renamed.columns.duplicated()].tolist()
    if dup:
        raise ValidationError(
            [
                Problem(
                    rule="mapping_collision",
                    message=f"after mapping, column '{d}' appears twice",
                    source=source,
                    column=d,
                )
                for d in dup
            ]
        )
    return renamed


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


class TableCheck:
    """Typed, row-level checks on one input table, collecting every problem."""

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        kind: str,
        source: str,
        labels: list[Any],
        original_names: Mapping[str, str] | None = None,
    ) -> None:
        self.frame = frame
        self.kind = kind
        self.source = source
        self.labels = labels
        # canonical -> user's own column name, so messages use the user's naming
        self.original_names = dict(original_names or {})
        self.table_problems: list[Problem] = []
        self.row_errors: dict[int, list[Problem]] = defaultdict(list)
        self.row_exclusions: dict[int, Problem] = {}
        self.patient = (
            frame["patient_id"].astype("string").str.strip()
            if "patient_id" in frame
            else pd.Series(pd.NA, index=frame.index, dtype="string")
        )

    # -- recording -------------------------------------------------------------------
    def user_column(self, column: str | None) -> str | None:
        return None if column is None else self.original_names.get(column, column)

    def _problem(self, pos: int, rule: str, message: str, column: str | None) -> Problem:
        pid = self.patient.iloc[pos]
        return Problem(
            rule=rule,
            message=message,
            source=self.source,
            row=self.labels[pos],
            patient=None if pd.isna(pid) else pid,
            column=self.user_column(column),
        )

    def table_error(self, rule: str, message: str, column: str | None = None) -> None:
        self.table_problems.append(
            Problem(rule=rule, message=message, source=self.source, column=self.user_column(column))
        )

    def error(
        self,
        mask: pd.Series | np.ndarray,
        rule: str,
        message: str | Callable[[int], str],
        column: str | None = None,
    ) -> None:
        """Record an error on every row where ``mask`` is true."""
        for pos in np.flatnonzero(np.asarray(mask, dtype=bool)):
            msg = message(int(pos)) if callable(message) else message
            self.row_errors[int(pos)].append(self._problem(int(pos), rule, msg, column))

    def exclude(
        self,
        mask: pd.Series | np.ndarray,
        rule: str,
        message: str | Callable[[int], str],
        column: str | None = None,
    ) -> None:
        """Mark rows as not used (not an error); the first reason given is kept."""
        for pos in np.flatnonzero(np.asarray(mask, dtype=bool)):
            pos = int(pos)
            if pos in self.row_errors or pos in self.row_exclusions:
                continue
            msg = message(pos) if callable(message) else message
            self.row_exclusions[pos] = self._problem(pos, rule, msg, column)

    def bad_rows(self) -> set[int]:
        return set(self.row_errors) | set(self.row_exclusions)

    # -- column checks ---------------------------------------------------------------
    def require_columns(self, *columns: str) -> bool:
        ok = True
        for c in columns:
            if c not in self.frame.columns:
                self.table_error(
                    "missing_column",
                    f"required column '{c}' is missing (columns present: "
                    f"{', '.join(map(str, self.frame.columns)) or 'none'})",
                    column=None,
                )
                ok = False
        return ok

    def numeric(
        self,
        column: str,
        *,
        integer: bool = False,
        lo: float | None = None,
        hi: float | None = None,
        required: bool = False,
        what: str | None = None,
        rule_prefix: str | None = None,
    ) -> pd.Series:
        """Coerce a column to float, recording non-numbers, non-integers and range breaks."""
        what = what or column
        prefix = rule_prefix or "value"
        if column not in self.frame.columns:
            return pd.Series(np.nan, index=self.frame.index, dtype=float)
        raw = self.frame[column]
        if raw.dtype == bool:
            raw = raw.astype(float)
        as_text = raw.astype("string").str.strip()
        missing = raw.isna() | (as_text == "")
        values = pd.to_numeric(as_text.where(~missing), errors="coerce").astype(float)
        not_number = values.isna() & ~missing
        self.error(
            not_number,
            f"{prefix}_not_numeric",
            lambda p: f"{what} must be a number, got {_show(raw.iloc[p])}",
            column,
        )
        infinite = np.isinf(values)
        self.error(infinite, f"{prefix}_not_finite", f"{what} must be finite", column)
        values = values.where(~infinite)
        if required:
            self.error(missing, f"{prefix}_missing", f"{what} is missing", column)
        ok = values.notna()
        if integer:
            frac = ok & (values != np.round(values))
            self.error(
                frac,
                f"{prefix}_not_integer",
                lambda p: f"{what} must be a whole number, got {_show(raw.iloc[p])}",
                column,
            )
        if lo is not None or hi is not None:
            lo_ = -np.inf if lo is None else lo
            hi_ = np.inf if hi is None else hi
            out = ok & ((values < lo_) | (values > hi_))
            rng = f"{'' if lo is None else _num(lo)}–{'' if hi is None else _num(hi)}"
            if lo is not None and hi is None:
                rng = f"at least {_num(lo)}"
            elif hi is not None and lo is None:
                rng = f"at most {_num(hi)}"
            self.error(
                out,
                f"{prefix}_range",
                lambda p: f"{what} must be {rng if 'at' in rng else 'in ' + rng}, "
                f"got {_show(raw.iloc[p])}",
                column,
            )
        return values

    def dates(self, column: str, *, required: bool = False, what: str | None = None) -> pd.Series:
        """Parse ISO dates, recording unparseable ones."""
        what = what or column
        if column not in self.frame.columns:
            return pd.Series(pd.NaT, index=self.frame.index, dtype="datetime64[ns]")
        raw = self.frame[column]
        if pd.api.types.is_datetime64_any_dtype(raw):
            as_text = raw.dt.strftime("%Y-%m-%d").astype("string")
        else:
            as_text = raw.astype("string").str.strip()
        missing = raw.isna() | (as_text == "")
        iso = as_text.str.fullmatch(r"\d{4}-\d{2}-\d{2}(?:[T ][0-9:.]+)?").fillna(False)
        year = pd.to_numeric(as_text.str.slice(0, 4), errors="coerce")
        plausible = iso & year.between(1900, 2199).fillna(False)
        parsed = pd.to_datetime(as_text.where(plausible & ~missing), format="ISO8601",
                                errors="coerce")
        bad = parsed.isna() & ~missing
        self.error(
            bad,
            "date_invalid",
            lambda p: f"{what} must be an ISO date (YYYY-MM-DD) between 1900 and 2199, "
            f"got {_show(raw.iloc[p])}",
            column,
        )
        if required:
            self.error(missing, "date_missing", f"{what} is missing", column)
        return parsed.astype("datetime64[ns]")

    def identifiers(self) -> pd.Series:
        """The patient_id column as stripped strings; missing ids are errors."""
        missing = self.patient.isna() | (self.patient == "")
        self.error(missing, "patient_id_missing", "patient_id is missing", "patient_id")
        return self.patient

    # -- finishing -------------------------------------------------------------------
    def finish(
        self, data: pd.DataFrame, *, errors: Errors = "raise", meta: dict | None = None
    ) -> Table:
        """Raise every problem, or move the offending rows to the exclusions ledger."""
        if errors not in ("raise", "exclude"):
            raise ValidationError(
                Problem(rule="bad_option",
                        message=f"errors must be 'raise' or 'exclude', not {errors!r}")
            )
        if self.table_problems:
            raise ValidationError(self.table_problems, context=f"the {self.kind} table")
        if self.row_errors and errors == "raise":
            probs = [p for pos in sorted(self.row_errors) for p in self.row_errors[pos]]
            raise ValidationError(probs, context=f"the {self.kind} table ({self.source})")
        records = []
        for pos in sorted(self.bad_rows()):
            if pos in self.row_errors:
                probs = self.row_errors[pos]
                rule = probs[0].rule
                reason = "; ".join(
                    (f"column '{p.column}': " if p.column else "") + p.message for p in probs
                )
            else:
                p = self.row_exclusions[pos]
                rule = p.rule
                reason = (f"column '{p.column}': " if p.column else "") + p.message
            pid = self.patient.iloc[pos]
            records.append(
                {
                    "table": self.kind,
                    "source": self.source,
                    "row": self.labels[pos],
                    "patient_id": None if pd.isna(pid) else pid,
                    "rule": rule,
                    "reason": reason,
                }
            )
        exclusions = pd.DataFrame.from_records(records, columns=EXCLUSION_COLUMNS)
        keep = np.ones(len(self.frame), dtype=bool)
        keep[list(self.bad_rows())] = False
        used = data.loc[keep].copy()
        used.insert(0, ROW, [self.labels[i] for i in np.flatnonzero(keep)])
        used = used.reset_index(drop=True)
        return Table(
            kind=self.kind,
            data=used,
            exclusions=exclusions,
            source=self.source,
            n_input_rows=len(self.frame),
            meta=dict(meta or {}),
        )


def begin(source: Any, *, kind: str, columns: Mapping[str, str] | None,
          name: str | None) -> tuple[pd.DataFrame, TableCheck]:
    """Load a table, map its columns to canonical names and start checking it."""
    frame, source_name, labels = load_frame(source, kind=kind, name=name)
    original = {v: k for k, v in (columns or {}).items()}
    frame = apply_mapping(frame, columns, source_name)
    check = TableCheck(frame, kind=kind, source=source_name, labels=labels,
                       original_names=original)
    return frame, check


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def empty_exclusions() -> pd.DataFrame:
    return pd.DataFrame(columns=EXCLUSION_COLUMNS)
