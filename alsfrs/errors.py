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
from typing import Any

import pandas as pd

__all__ = ["Problem", "ProblemLog", "ValidationError"]

#: How many problems the message shows before summarising the rest.
MESSAGE_LIMIT = 50


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
    """

    rule: str
    message: str
    source: str | None = None
    row: Any = None
    patient: Any = None
    column: str | None = None

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


class ValidationError(ValueError):
    """Bad input, with every problem found.

    Attributes
    ----------
    problems : list of Problem
        All problems found, in input order.
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
        for p in self.problems[:MESSAGE_LIMIT]:
            lines.append(f"  - {p}")
        if n > MESSAGE_LIMIT:
            lines.append(
                f"  ... and {n - MESSAGE_LIMIT} more (see the .problems attribute "
                "or .to_frame() of this error for the full list)"
            )
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """All problems as a DataFrame (columns source, row, patient, column, rule, message)."""
        return problems_frame(self.problems)


def problems_frame(problems: Iterable[Problem]) -> pd.DataFrame:
    """A DataFrame of problems with a fixed column order."""
    cols = ["source", "row", "patient", "column", "rule", "message"]
    records = [asdict(p) for p in problems]
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
