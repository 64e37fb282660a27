"""Time units shared by every module.

Months are average Gregorian months: 365.25 / 12 = 30.4375 days. Every
conversion between days and months in alsfrs uses this one constant, so a
visit 365 days after diagnosis is at 11.99 months and one 365.25 days after at
exactly 12 months.
"""

from __future__ import annotations

from collections.abc import Sequence

DAYS_PER_YEAR = 365.25
MONTHS_PER_YEAR = 12
DAYS_PER_MONTH = DAYS_PER_YEAR / MONTHS_PER_YEAR  # 30.4375

__all__ = ["DAYS_PER_MONTH", "DAYS_PER_YEAR", "MONTHS_PER_YEAR", "TIME_AXES", "time_label",
           "time_variable"]

#: The time axes alsfrs derives for every visit: months since diagnosis, since onset.
TIME_AXES = ("months", "months_since_onset")
_LABELS = {"months": "Months since diagnosis", "months_since_diagnosis": "Months since diagnosis",
           "months_since_onset": "Months since onset"}


def time_label(time: str) -> str:
    """Axis label of a time variable ("Months since diagnosis")."""
    return _LABELS.get(time, time.replace("_", " ").capitalize())


def time_variable(variables: Sequence[str], random_names: Sequence[str],
                  preferred: str | None = None) -> str:
    """The time variable of a longitudinal model: the one chooser every engine uses.

    ``preferred`` (a model's stated time axis) when given; otherwise the variable
    of the first random slope (``(months | patient_id)`` → ``months``); otherwise
    the first of the known time axes among the model's variables.

    Raises
    ------
    alsfrs.ValidationError
        The chosen (or stated) time variable is not in the model.
    """
    from alsfrs.errors import Problem, ValidationError

    if preferred is None:
        preferred = next((n for n in random_names if n != "(Intercept)" and n in variables),
                         None)
    if preferred is None:
        preferred = next((t for t in TIME_AXES if t in variables), None)
    if preferred is None or preferred not in variables:
        shown = preferred or "months"
        raise ValidationError(Problem(
            rule="unknown_column", column=shown,
            message=f"the time variable {shown!r} is not in the model (variables: "
                    f"{', '.join(variables)}); name it with time=..."))
    return str(preferred)
