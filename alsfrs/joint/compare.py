"""Separate models versus the joint model on one cohort: why the joint model is needed.

In ALS the patients who decline fastest die first. A mixed model of the visits
alone is biased by that informative dropout (the fast decliners leave, the
slow ones stay), and a Cox model of survival alone mixes an exposure's effect on
decline with its direct effect on the hazard. :func:`compare_prognosis` fits
all three on the same cohort and puts their estimates side by side with the
simulated truth when the cohort has one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from alsfrs.errors import Problem, ValidationError

__all__ = ["compare_prognosis", "cox_hazard_ratios"]

DEFAULT_LONG = ("alsfrs_r ~ months * (anxiolytic + hypnotic + antidepressant + onset_site)"
                " + age_at_dx + sex + (months | patient_id)")
DEFAULT_SURV = ("Surv(months_to_death_imv, death_imv) ~ anxiolytic + hypnotic + antidepressant"
                " + age_at_dx + onset_site")


def cox_hazard_ratios(survival: str, patients: pd.DataFrame, level: float = 0.95
                      ) -> pd.DataFrame:
    """Cox proportional-hazards HRs (:func:`alsfrs.fit_cox`, Efron ties), by R term name."""
    from alsfrs.survival.cox import fit_cox

    s = fit_cox(survival, patients.reset_index(), level=level).summary()
    pct = f"{round(100 * level):d}"
    tag = next(c for c in s.columns if c.startswith("ci_lower_"))[len("ci_lower_"):]
    return pd.DataFrame({"log_hr": s["coef"], "std_error": s["se"], "hr": s["hazard_ratio"],
                         f"hr_lower_{pct}": s[f"ci_lower_{tag}"],
                         f"hr_upper_{pct}": s[f"ci_upper_{tag}"]}, index=s.index)


def compare_prognosis(cohort: Any, longitudinal: str = DEFAULT_LONG,
                      survival: str = DEFAULT_SURV, *, exposures: list[str] | None = None,
                      joint: Any = None, **fit_kw: Any) -> pd.DataFrame:
    """Cox-only HRs, the mixed model's slope effects and the joint model's, side by side.

    Parameters
    ----------
    cohort
        A :class:`~alsfrs.Cohort` with death/IMV (e.g. :func:`alsfrs.simulate_cohort`,
        whose ``truth`` is then shown).
    longitudinal, survival
        The two formulas (defaults: the Swedish registry analysis).
    exposures
        Exposures to compare (default: those with a ``months:<e>`` term).
    joint
        An existing :class:`~alsfrs.joint.JointResult` on this cohort (else fitted
        with ``**fit_kw`` passed to :func:`~alsfrs.fit_joint`).

    Returns
    -------
    DataFrame indexed by exposure: ``hr_truth``, ``hr_cox`` (with 95% CI), ``hr_joint``
    (posterior median, 95% interval); ``slope_truth``, ``slope_lmm`` (with 95% CI),
    ``slope_joint`` (with 95% interval), in ALSFRS-R points/month.
    """
    from alsfrs.joint.fit import fit_joint
    from alsfrs.lmm import fit_lmm

    patients = getattr(cohort, "patients", None)
    if not isinstance(patients, pd.DataFrame):
        raise ValidationError(Problem(rule="invalid_data",
                                      message="compare_prognosis needs a Cohort with patients"))
    cox = cox_hazard_ratios(survival, patients)
    lmm = fit_lmm(longitudinal, cohort).exposure_effects(exposures)
    if joint is None:
        joint = fit_joint(longitudinal, survival, cohort, **fit_kw)
    jhr = joint.hazard_ratios()
    jee = joint.exposure_effects(exposures)
    truth = getattr(cohort, "truth", None) or {}
    rows = []
    for e in lmm.index:
        rows.append({
            "exposure": e,
            "hr_truth": truth.get("exposure_hazard_ratios", {}).get(e, np.nan),
            "hr_cox": cox.loc[e, "hr"] if e in cox.index else np.nan,
            "hr_cox_lower_95": cox.loc[e, "hr_lower_95"] if e in cox.index else np.nan,
            "hr_cox_upper_95": cox.loc[e, "hr_upper_95"] if e in cox.index else np.nan,
            "hr_joint": jhr.loc[e, "hr"] if e in jhr.index else np.nan,
            "hr_joint_lower_95": jhr.loc[e, "hr_lower_95"] if e in jhr.index else np.nan,
            "hr_joint_upper_95": jhr.loc[e, "hr_upper_95"] if e in jhr.index else np.nan,
            "slope_truth": truth.get("exposure_slope_effects", {}).get(e, np.nan),
            "slope_lmm": lmm.loc[e, "difference"],
            "slope_lmm_lower_95": lmm.loc[e, "ci_lower"],
            "slope_lmm_upper_95": lmm.loc[e, "ci_upper"],
            "slope_joint": jee.loc[e, "difference"],
            "slope_joint_lower_95": jee.loc[e, "ci_lower"],
            "slope_joint_upper_95": jee.loc[e, "ci_upper"],
        })
    out = pd.DataFrame(rows).set_index("exposure")
    sv = truth.get("survival", {})
    out.attrs["association"] = {
        "truth": -np.log(sv["hazard_ratio_per_point"]) if "hazard_ratio_per_point" in sv
        else np.nan,
        "joint": (float(np.mean(joint.draws("alpha"))) if "alpha" in joint.idata.posterior
                  else np.nan)}
    return out
