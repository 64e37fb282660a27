"""One exception family for bad input, carrying every problem found.

A :class:`ValidationError` is raised at the door (readers, :class:`~alsfrs.Cohort`,
model specifications, model-level checks) and lists *all* problems found, each
as a :class:`Problem` record naming where it is (file, row, patient, column) and
the rule broken. It subclasses :class:`ValueError`, so ``except ValueError``
keeps working for users who do not know the package.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported when a frame is asked for (fast `alsfrs --help`)
    import pandas as pd

__all__ = ["InputWarning", "Problem", "ProblemLog", "ValidationError", "format_problems"]

#: How many lines (single problems or groups) the message shows before summarising the rest.
MESSAGE_LIMIT = 50
#: How many row labels a grouped line shows.
GROUP_ROWS_SHOWN = 5


class InputWarning(UserWarning):
    """Input that loads but may not mean what was intended (e.g. a near-miss column name)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input.

    Parameters
    ----------
    rule
        Short stable identifier of the rule broken (``"item_range"``,
        ``"unknown_patient"`` ...); tests and users can filter on it.
    message
        Human-readable statement of what is wrong, with the offending value.
    source
        File name, or ``"<DataFrame>"`` for in-memory input, or a table name.
    row
        Row as the user sees it: the line number in a file (header is line 1),
        or the index label of a DataFrame. ``None`` for whole-table problems.
    patient
        The patient identifier, when the row has one.
    column
        The column involved, in the user's own naming where known.
    summary
        The row-independent statement of the problem ("are not valid dates ..."),
        used when several rows break the same rule in the same column and the
        message groups them; ``None`` shows the first row's message instead.
    """

    rule: str
    message: str
    source: str | None = None
    row: Any = None
    patient: Any = None
    column: str | None = None
    summary: str | None = field(default=None, compare=False)

    def location(self) -> str:
        """Where the problem is, e.g. ``visits.csv, line 14, patient P3, column 'walking'``."""
        parts = []
        if self.source is not None:
            parts.append(str(self.source))
        if self.row is not None:
            label = "line" if _is_file(self.source) else "row"
            parts.append(f"{label} {self.row}")
        if self.patient is not None:
            parts.append(f"patient {self.patient!s}")
        if self.column is not None:
            parts.append(f"column '{self.column}'")
        return ", ".join(parts)

    def __str__(self) -> str:
        loc = self.location()
        return f"{loc}: {self.message} [{self.rule}]" if loc else f"{self.message} [{self.rule}]"


def _is_file(source: str | None) -> bool:
    """True for text files, whose rows are reported by line number (header = line 1)."""
    return bool(source) and str(source).lower().endswith((".csv", ".tsv", ".txt", ".tab", ".gz"))


def format_problems(problems: Iterable[Problem], limit: int | None = None) -> list[str]:
    """Problems as text lines, rows breaking one rule in one column grouped.

    A problem found on one row prints as itself (``visits.csv, line 5, patient P1,
    column 'walking': ... [item_range]``). Problems of the same source, column,
    rule and summary found on several rows print as one line with their count
    and the first few rows, e.g. ``visits.csv, column 'visit_date': 136 rows are
    not valid dates ... (lines 2, 3, 4, 5, 6, ...) [date_invalid]``.

    Parameters
    ----------
    problems
        The problems, in input order.
    limit
        Most lines to return; a last line says how many were left out.
    """
    groups: dict[tuple, list[Problem]] = {}
    for p in problems:
        key = (p.source, p.column, p.rule, p.summary) if p.row is not None else (id(p),)
        groups.setdefault(key, []).append(p)
    lines = []
    for group in groups.values():
        if len(group) == 1:
            lines.append(str(group[0]))
            continue
        first = group[0]
        loc = ", ".join(x for x in (
            None if first.source is None else str(first.source),
            None if first.column is None else f"column '{first.column}'") if x)
        label = "lines" if _is_file(first.source) else "rows"
        shown = ", ".join(str(p.row) for p in group[:GROUP_ROWS_SHOWN])
        more = ", ..." if len(group) > GROUP_ROWS_SHOWN else ""
        patients = list(dict.fromkeys(p.patient for p in group if p.patient is not None))
        if patients:
            more += "; patient" + ("s " if len(patients) > 1 else " ") + ", ".join(
                str(x) for x in patients[:GROUP_ROWS_SHOWN])
            more += ", ..." if len(patients) > GROUP_ROWS_SHOWN else ""
        if first.summary:
            what = f"{len(group)} rows {first.summary}"
        else:
            what = f"{len(group)} rows: {first.message} (the first of them)"
        lines.append(f"{loc + ': ' if loc else ''}{what} ({label} {shown}{more}) [{first.rule}]")
    if limit is not None and len(lines) > limit:
        left = len(lines) - limit
        lines = [*lines[:limit], f"... and {left} more (see the .problems attribute or "
                 ".to_frame() of the error for the full list)"]
    return lines


class ValidationError(ValueError):
    """Bad input, with every problem found.

    The message groups problems that repeat a rule in one column (with their
    count and first rows); every individual problem stays in :attr:`problems`.

    Attributes
    ----------
    problems : list of Problem
        All problems found, in input order.
    context : str or None
        What was being checked (``"the visits table (visits.csv)"``).
    """

    def __init__(self, problems: Iterable[Problem] | Problem | str, *, context: str | None = None):
        if isinstance(problems, str):
            problems = [Problem(rule="invalid", message=problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        self.context = context
        super().__init__(self._format())

    def _format(self) -> str:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} found"
        if self.context:
            head += f" in {self.context}"
        lines = [head + ":"]
        lines += [f"  - {line}" for line in format_problems(self.problems, MESSAGE_LIMIT)]
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """All problems as a DataFrame (columns source, row, patient, column, rule, message)."""
        return problems_frame(self.problems)


def problems_frame(problems: Iterable[Problem]) -> pd.DataFrame:
    """A DataFrame of problems with a fixed column order."""
    import pandas as pd

    cols = ["source", "row", "patient", "column", "rule", "message"]
    records = [{k: v for k, v in asdict(p).items() if k in cols} for p in problems]
    return pd.DataFrame.from_records(records, columns=cols)


@dataclass
class ProblemLog:
    """Collects problems while a table is checked, then raises them together."""

    source: str | None = None
    problems: list[Problem] = field(default_factory=list)

    def add(
        self,
        rule: str,
        message: str,
        *,
        row: Any = None,
        patient: Any = None,
        column: str | None = None,
        source: str | None = None,
    ) -> None:
        self.problems.append(
            Problem(
                rule=rule,
                message=message,
                source=self.source if source is None else source,
                row=row,
                patient=patient,
                column=column,
            )
        )

    def extend(self, problems: Iterable[Problem]) -> None:
        self.problems.extend(problems)

    def __bool__(self) -> bool:
        return bool(self.problems)

    def __len__(self) -> int:
        return len(self.problems)

    def raise_if_any(self, context: str | None = None) -> None:
        if self.problems:
            raise ValidationError(self.problems, context=context)
