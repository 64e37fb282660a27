"""Shared machinery of the readers: loading, column names, typed checks.

Every reader follows the same pattern: :func:`begin` loads a CSV/Parquet file or
a DataFrame, renames columns to the canonical names (the user's mapping, then
the recognised aliases of :data:`ALIASES`), and starts a :class:`TableCheck`.
The typed checks record a :class:`~alsfrs.errors.Problem` per bad row (never
stopping at the first) in the row ledger (:class:`alsfrs.ledger.RowLedger`),
then :meth:`TableCheck.finish` either raises one
:class:`~alsfrs.errors.ValidationError` listing every problem or, with
``errors="exclude"``, moves the offending rows to the exclusions ledger.

Text files
----------
Rows are reported by their **physical line** in the file: the line on which the
row starts, counting every line of the file (blank lines, and the extra lines of
quoted fields that span several lines). Blank lines are skipped. The header must
be the first non-blank line: files with preamble lines before the header are not
supported (remove them first). The separator is ``,`` (``\\t`` for ``.tsv``/``.tab``)
unless ``sep=`` is given; when the header line has none of it but has ``;``,
tab or ``|``, that separator is used and a note says so. Files are read as
UTF-8 (a byte-order mark is ignored); ``.gz`` files are decompressed.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import io
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from alsfrs.errors import InputWarning, Problem, ValidationError
from alsfrs.ledger import EXCLUSION_COLUMNS, ROW, RowLedger, empty_exclusions

__all__ = ["ALIASES", "EXCLUSION_COLUMNS", "ROW", "Table", "TableCheck", "begin",
           "empty_exclusions", "load_frame", "read_columns"]

Errors = Literal["raise", "exclude"]

#: Separators tried on the header line, with their names in messages.
SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

#: Recognised aliases of canonical column names, per table. A column whose name,
#: lower-cased with spaces, dots and dashes read as ``_``, is listed here is read as
#: the canonical column (and a note says so), unless the canonical column is present
#: or the alias is ambiguous. Kept conservative: only names that cannot mean
#: anything else in an ALS data set. The original ALSFRS total (``ALSFRS_Total``,
#: 0-40) is deliberately not an alias of the ALSFRS-R total.
ALIASES: dict[str, dict[str, str]] = {
    "visits": {
        "subject_id": "patient_id", "subjectid": "patient_id", "patientid": "patient_id",
        "patient": "patient_id", "id": "patient_id",
        "date": "visit_date", "visitdate": "visit_date", "assessment_date": "visit_date",
        "alsfrs_r_total": "alsfrs_r", "alsfrsr_total": "alsfrs_r", "alsfrsr": "alsfrs_r",
        "alsfrs_r_score": "alsfrs_r", "alsfrs_r_total_score": "alsfrs_r", "total": "alsfrs_r",
    },
    "patients": {
        "subject_id": "patient_id", "subjectid": "patient_id", "patientid": "patient_id",
        "patient": "patient_id", "id": "patient_id",
        "date_of_diagnosis": "diagnosis_date", "dx_date": "diagnosis_date",
        "diagnosisdate": "diagnosis_date",
        "date_of_onset": "onset_date", "symptom_onset_date": "onset_date",
        "onsetdate": "onset_date",
        "age_at_diagnosis": "age_at_dx", "gender": "sex", "site_of_onset": "onset_site",
    },
    "dispensings": {
        "subject_id": "patient_id", "subjectid": "patient_id", "patientid": "patient_id",
        "patient": "patient_id", "id": "patient_id",
        "date": "dispensing_date", "dispense_date": "dispensing_date",
        "dispensed_date": "dispensing_date", "atc_code": "atc",
    },
}  # fmt: skip

#: How similar (difflib ratio) an unknown column name must be to a canonical one
#: to be reported as a probable misspelling.
NEAR_MISS_CUTOFF = 0.8

_DAYFIRST_FORMATS = ("%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y")
_SLASH_DATE = re.compile(r"^(\d{1,2})([./-])(\d{1,2})\2(\d{4})$")


@dataclass
class Table:
    """A validated input table and the account of its rows.

    Attributes
    ----------
    kind
        ``"visits"``, ``"patients"`` or ``"dispensings"`` (or an auxiliary table,
        e.g. PRO-ACT ``"death"``).
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
    notes
        What the reader did that the user should know: the separator detected,
        columns read under a recognised alias, near-miss column names, rows
        excluded grouped by reason, patients without a symptom onset.
    """

    kind: str
    data: pd.DataFrame
    exclusions: pd.DataFrame
    source: str
    n_input_rows: int
    meta: dict[str, Any]
    notes: list[str] = field(default_factory=list)

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


@dataclass
class Loaded:
    """A table as loaded: raw text cells, row labels, and what loading noticed."""

    frame: pd.DataFrame
    name: str
    labels: list[Any]
    notes: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _open_text(path: Path):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _choose_sep(header_line: str, sep: str | None, default: str,
                name: str) -> tuple[str, list[str], list[Problem]]:
    """The separator to use, a note if it was detected, a problem if it looks wrong."""
    counts = {s: header_line.count(s) for s in SEPARATORS}
    if sep is None:
        if counts[default] or not any(counts.values()):
            return default, [], []
        found = max(counts, key=lambda s: counts[s])
        return found, [f"{name}: read as {SEPARATORS[found]}-separated (detected from the "
                       f"header line); pass sep= to choose the separator"], []
    if counts.get(sep, header_line.count(sep)) == 0:
        found = max(counts, key=lambda s: counts[s])
        if counts[found]:
            shown = "\\t" if found == "\t" else found
            return sep, [], [Problem(
                rule="wrong_separator", source=name,
                message=f"the file looks {SEPARATORS[found]}-separated: pass sep='{shown}' "
                        f"(CLI: --sep '{shown}')")]
    return sep, [], []


def _read_text(path: Path, name: str, sep: str | None) -> Loaded:
    """Read a delimited text file cell by cell, keeping each row's physical line."""
    default = "\t" if name.lower().endswith((".tsv", ".tsv.gz", ".tab")) else ","
    with _open_text(path) as fh:
        # the header is the first non-blank line
        header_line, header_no = "", 0
        for header_no, line in enumerate(fh, start=1):  # noqa: B007
            if line.strip():
                header_line = line
                break
        if not header_line:
            return Loaded(pd.DataFrame(), name, [], problems=[Problem(
                rule="empty_file", source=name, message="the file is empty (no header line)")])
        delim, notes, problems = _choose_sep(header_line, sep, default, name)
        rest = fh.read()
    reader = csv.reader(io.StringIO(header_line + rest), delimiter=delim)
    header = next(reader)
    rows: list[list[str]] = []
    labels: list[int] = []
    prev = reader.line_num
    for record in reader:
        start = header_no + prev  # physical line on which this record starts
        prev = reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue  # a blank line
        labels.append(start)
        rows.append(record)
    width = len(header)
    long_rows = [(lab, len(r)) for lab, r in zip(labels, rows, strict=True) if len(r) > width]
    for lab, n in long_rows:
        problems.append(Problem(
            rule="too_many_fields", source=name, row=lab,
            message=f"the line has {n} fields, the header {width}",
            summary=f"have more fields than the header ({width}); is the header the first "
                    "non-blank line? (lines before the header are not supported)"))
    cells = (rows if all(len(r) == width for r in rows)
             else [r[:width] + [""] * (width - len(r)) for r in rows])
    frame = pd.DataFrame(cells, columns=[str(c).strip() for c in header], dtype=object)
    frame = frame.where(frame != "", np.nan)
    dup = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    for c in dup:
        problems.append(Problem(rule="duplicate_column", source=name, column=c,
                                message=f"column '{c}' appears more than once in the header"))
    return Loaded(frame, name, labels, notes, problems)


def load_frame(source: Any, *, kind: str, name: str | None = None,
               sep: str | None = None) -> Loaded:
    """Load a CSV/Parquet path or copy a DataFrame, with row labels.

    Row labels are what a user can find the row by: for a text file the physical
    line on which the row starts (the header is usually line 1), for Parquet the
    1-based row number, for a DataFrame its index label. ``name`` replaces
    ``"<DataFrame>"`` in messages.
    """
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
        labels = list(frame.index)
        frame = frame.reset_index(drop=True)
        frame.columns = [str(c).strip() for c in frame.columns]
        return Loaded(frame, name or "<DataFrame>", labels)
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
            frame.columns = [str(c).strip() for c in frame.columns]
            return Loaded(frame.reset_index(drop=True), name, list(range(1, len(frame) + 1)))
        return _read_text(path, name, sep)
    except UnicodeDecodeError as exc:
        raise ValidationError(Problem(
            rule="unreadable_file", source=name,
            message=f"cannot read {kind} file: it is not UTF-8 text (byte "
                    f"{exc.object[exc.start:exc.start + 1]!r} at position {exc.start}); save "
                    "it as UTF-8 (e.g. 'CSV UTF-8' in Excel)")) from None
    except (ValueError, OSError, csv.Error) as exc:
        raise ValidationError(
            Problem(rule="unreadable_file", message=f"cannot read {kind} file: {exc}", source=name)
        ) from None


def read_columns(source: Any, *, sep: str | None = None) -> list[str]:
    """The column names of a table file (or DataFrame), as the readers would see them."""
    if isinstance(source, pd.DataFrame):
        return [str(c).strip() for c in source.columns]
    path = Path(source)
    if "".join(path.suffixes).lower().endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        return [str(c).strip() for c in pq.read_schema(path).names]
    return list(load_frame(path, kind="table", sep=sep).frame.columns)


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


class TableCheck(RowLedger):
    """Typed, row-level checks on one input table, collecting every problem.

    A :class:`~alsfrs.ledger.RowLedger` over the rows of ``frame`` with the
    typed column checks the readers share.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        kind: str,
        source: str,
        labels: list[Any],
        original_names: Mapping[str, str] | None = None,
        date_format: str | None = None,
        dayfirst: bool = False,
    ) -> None:
        patient = (
            frame["patient_id"].astype("string").str.strip()
            if "patient_id" in frame
            else pd.Series(pd.NA, index=frame.index, dtype="string")
        )
        super().__init__(kind=kind, source=source, labels=labels, patients=patient,
                         original_names=original_names)
        self.frame = frame
        self.date_format = date_format
        self.dayfirst = dayfirst
        self.notes: list[str] = []

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
            summary=f"are not numbers ({what} must be a number)",
        )
        infinite = np.isinf(values)
        self.error(infinite, f"{prefix}_not_finite", f"{what} must be finite", column,
                   summary=f"are not finite ({what} must be finite)")
        values = values.where(~infinite)
        if required:
            self.error(missing, f"{prefix}_missing", f"{what} is missing", column,
                       summary=f"are missing ({what} is required)")
        ok = values.notna()
        if integer:
            frac = ok & (values != np.round(values))
            self.error(
                frac,
                f"{prefix}_not_integer",
                lambda p: f"{what} must be a whole number, got {_show(raw.iloc[p])}",
                column,
                summary=f"are not whole numbers ({what} must be a whole number)",
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
            must = rng if "at" in rng else "in " + rng
            self.error(
                out,
                f"{prefix}_range",
                lambda p: f"{what} must be {must}, got {_show(raw.iloc[p])}",
                column,
                summary=f"are out of range ({what} must be {must})",
            )
        return values

    def dates(self, column: str, *, required: bool = False, what: str | None = None) -> pd.Series:
        """Parse dates (ISO, or the table's ``date_format``/``dayfirst``), recording bad ones."""
        what = what or column
        if column not in self.frame.columns:
            return pd.Series(pd.NaT, index=self.frame.index, dtype="datetime64[ns]")
        raw = self.frame[column]
        if pd.api.types.is_datetime64_any_dtype(raw):
            as_text = raw.dt.strftime("%Y-%m-%d").astype("string")
        else:
            as_text = raw.astype("string").str.strip()
        missing = raw.isna() | (as_text == "")
        todo = as_text.where(~missing)
        # ISO dates are unambiguous and always accepted
        iso = as_text.str.fullmatch(r"\d{4}-\d{2}-\d{2}(?:[T ][0-9:.]+)?").fillna(False)
        parsed = _to_dates(todo.where(iso), "ISO8601")
        expected = "ISO dates (YYYY-MM-DD)"
        if self.date_format is not None:
            parsed = parsed.fillna(_to_dates(todo.where(parsed.isna()), self.date_format))
            expected = f"dates in the format {self.date_format} or ISO dates (YYYY-MM-DD)"
        elif self.dayfirst:
            for fmt in _DAYFIRST_FORMATS:
                parsed = parsed.fillna(_to_dates(todo.where(parsed.isna()), fmt))
            expected = "ISO (YYYY-MM-DD) or day-first (DD/MM/YYYY) dates"
        plausible = parsed.dt.year.between(1900, 2199).fillna(False)
        parsed = parsed.where(plausible)
        bad = parsed.isna() & ~missing
        self.error(
            bad,
            "date_invalid",
            lambda p: f"{what} must be {_singular(expected)} between 1900 and 2199, "
            f"got {_show(raw.iloc[p])}",
            column,
            summary=f"are not valid dates (expected {expected}, years 1900-2199)"
            + _date_hint(as_text[bad]),
        )
        if required:
            self.error(missing, "date_missing", f"{what} is missing", column,
                       summary=f"are missing ({what} is required)")
        return parsed.astype("datetime64[ns]")

    def identifiers(self) -> pd.Series:
        """The patient_id column as stripped strings; missing ids are errors."""
        missing = self.patient.isna() | (self.patient == "")
        self.error(missing, "patient_id_missing", "patient_id is missing", "patient_id",
                   summary="have no patient_id")
        return self.patient

    # -- finishing -------------------------------------------------------------------
    def finish(
        self, data: pd.DataFrame, *, errors: Errors = "raise", meta: dict | None = None
    ) -> Table:
        """Raise every problem, or move the offending rows to the exclusions ledger."""
        from alsfrs.errors import format_problems

        if errors not in ("raise", "exclude"):
            raise ValidationError(
                Problem(rule="bad_option",
                        message=f"errors must be 'raise' or 'exclude', not {errors!r}")
            )
        if self.table_problems:
            raise ValidationError(self.table_problems, context=f"the {self.kind} table")
        if self.row_errors and errors == "raise":
            raise ValidationError(self.problems(),
                                  context=f"the {self.kind} table ({self.source})")
        notes = list(self.notes)
        if self.row_errors:
            notes += [f"excluded: {line}" for line in format_problems(self.problems())]
        used, exclusions = self.resolve(data)
        keep = self.keep(len(self.frame))
        used.insert(0, ROW, [self.labels[i] for i in np.flatnonzero(keep)])
        return Table(
            kind=self.kind,
            data=used,
            exclusions=exclusions,
            source=self.source,
            n_input_rows=len(self.frame),
            meta=dict(meta or {}),
            notes=notes,
        )


def _to_dates(text: pd.Series, fmt: str) -> pd.Series:
    """Parse with one format; anything else (or out of range) is NaT."""
    try:
        out = pd.to_datetime(text, format=fmt, errors="coerce")
    except (ValueError, OverflowError):  # pragma: no cover - pandas versions differ
        out = pd.Series([pd.to_datetime(x, format=fmt, errors="coerce") for x in text],
                        index=text.index)
    return out.astype("datetime64[us]")


def _singular(expected: str) -> str:
    return {"ISO dates (YYYY-MM-DD)": "an ISO date (YYYY-MM-DD)"}.get(expected, expected)


def _date_hint(bad: pd.Series) -> str:
    """A suggestion when unparseable dates look like DD/MM/YYYY or MM/DD/YYYY."""
    parts = bad.dropna().astype(str).str.extract(_SLASH_DATE.pattern)
    parts = parts.dropna()
    if parts.empty:
        return ""
    sep = parts[1].mode().iloc[0]
    first, second = parts[0].astype(int), parts[2].astype(int)
    if (second > 12).any() and not (first > 12).any():
        fmt = f"%m{sep}%d{sep}%Y"
        return (f"; they look month-first (MM{sep}DD{sep}YYYY): pass date_format='{fmt}' "
                f"(CLI: --date-format {fmt})")
    fmt = f"%d{sep}%m{sep}%Y"
    return (f"; they look day-first (DD{sep}MM{sep}YYYY): pass dayfirst=True or "
            f"date_format='{fmt}' (CLI: --date-format {fmt})")


def _normalise(name: str) -> str:
    return re.sub(r"[\s.\-]+", "_", str(name).strip().lower()).strip("_")


def resolve_names(frame: pd.DataFrame, *, kind: str, canonical: tuple[str, ...],
                  source: str, mapped: set[str], exclusive: tuple[tuple[str, ...], ...] = (),
                  ) -> tuple[dict[str, str], list[str]]:
    """Renames from recognised aliases, and notes (near-miss names also warn).

    Returns ``({user name: canonical name}, notes)``. Columns the user mapped
    (``mapped``) are left alone. ``exclusive`` lists groups of alternative
    canonical columns (the time columns): an alias of one is not applied when
    another of its group is present, so an alias never changes which one is used.
    """
    aliases = {**{_normalise(c): c for c in canonical}, **ALIASES.get(kind, {})}
    present = set(frame.columns)
    claims: dict[str, list[str]] = {}
    notes: list[str] = []
    for col in frame.columns:
        if col in canonical or col in mapped:
            continue
        target = aliases.get(_normalise(col))
        if target is None or target in present:
            continue
        rival = next((c for g in exclusive if target in g for c in g if c in present), None)
        if rival is not None:
            notes.append(f"{source}: column '{col}' is not read as '{target}': the table "
                         f"already has the time column '{rival}'")
            continue
        claims.setdefault(target, []).append(col)
    renames: dict[str, str] = {}
    for target, cols in claims.items():
        if len(cols) == 1:
            renames[cols[0]] = target
            notes.append(f"{source}: column '{cols[0]}' read as '{target}' (a recognised "
                         "alias; pass columns= to map it otherwise)")
        else:
            shown = ", ".join(f"'{c}'" for c in cols)
            msg = (f"{source}: columns {shown} could each be '{target}'; none is used as it: "
                   f"map one with columns={{'{cols[0]}': '{target}'}}")
            notes.append(msg)
            warnings.warn(msg, InputWarning, stacklevel=4)
    have = (present - set(renames)) | set(renames.values())
    wanted = [c for c in canonical if c not in have]
    for col in frame.columns:
        if col in canonical or col in mapped or col in renames:
            continue
        close = difflib.get_close_matches(_normalise(col), wanted, n=1, cutoff=NEAR_MISS_CUTOFF)
        if close:
            msg = (f"{source}: column '{col}' is not used: did you mean '{close[0]}'? (pass "
                   f"columns={{'{col}': '{close[0]}'}} to read it as such)")
            notes.append(msg)
            warnings.warn(msg, InputWarning, stacklevel=4)
    return renames, notes


def begin(source: Any, *, kind: str, columns: Mapping[str, str] | None, name: str | None,
          canonical: tuple[str, ...] = (), exclusive: tuple[tuple[str, ...], ...] = (),
          sep: str | None = None, date_format: str | None = None, dayfirst: bool = False,
          ) -> tuple[pd.DataFrame, TableCheck]:
    """Load a table, map its columns to canonical names and start checking it.

    The user's ``columns`` mapping comes first; then the recognised aliases of
    the ``canonical`` names (:data:`ALIASES`) are renamed, and unknown columns
    that look like a misspelt canonical name raise an :class:`~alsfrs.errors.InputWarning`.
    Every such step is listed in the table's ``notes``.
    """
    loaded = load_frame(source, kind=kind, name=name, sep=sep)
    if loaded.problems:
        raise ValidationError(loaded.problems, context=f"the {kind} file")
    frame = apply_mapping(loaded.frame, columns, loaded.name)
    original = {v: k for k, v in (columns or {}).items()}
    renames, notes = resolve_names(frame, kind=kind, canonical=canonical, source=loaded.name,
                                   mapped=set((columns or {}).values()), exclusive=exclusive)
    if renames:
        frame = frame.rename(columns=renames)
        original.update({v: k for k, v in renames.items()})
    check = TableCheck(frame, kind=kind, source=loaded.name, labels=loaded.labels,
                       original_names=original, date_format=date_format, dayfirst=dayfirst)
    check.notes = [*loaded.notes, *notes]
    return frame, check


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"

