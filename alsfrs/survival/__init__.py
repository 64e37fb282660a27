"""Survival and case-control analyses: Surv formulas, the survival frame, Cox,
Kaplan–Meier and the log-rank test, conditional logistic regression, and the
REM-suppression comparison.

Stable public pieces other engines build on (the joint model):
:func:`alsfrs.survival.surv.parse_surv_formula` (the one reader of
``Surv(...) ~ ...``), :func:`alsfrs.survival.frame.survival_frame` (one row per
patient) and :func:`alsfrs.survival.frame.survival_data` (checked arrays).
"""

from alsfrs.survival.frame import (
    SurvivalData,
    excluded_patients,
    split_at,
    survival_data,
    survival_frame,
    treatment_start,
)
from alsfrs.survival.surv import SurvFormula, parse_surv_formula

__all__ = [
    "SurvFormula",
    "SurvivalData",
    "excluded_patients",
    "parse_surv_formula",
    "split_at",
    "survival_data",
    "survival_frame",
    "treatment_start",
]
