"""What every model of ALSFRS-R visits over time shares, whichever engine fitted it.

:class:`LongitudinalResult` is the part of the result contract specific to
longitudinal decline models (the profiled-deviance mixed model and the Bayesian
hierarchical model, later the longitudinal half of a joint model). Plots,
tables and trial design read these models only through it:

* ``formula``, ``time`` (the model's own time variable), ``matrices`` (the
  shared :class:`~alsfrs.matrices.ModelMatrices`), ``data`` (the fitted rows),
  ``nobs``, ``ngroups``;
* ``fixed_effects``, ``variance_components``, ``random_effects``,
  ``predict(newdata, include_random)``;
* ``exposure_effects(exposures, level=, margin=)`` — the difference in decline
  (:mod:`alsfrs.effects` defines it once for every engine);
* ``parameters(level)`` — every parameter with an interval (engine-specific);
* ``slope_sd_draws()`` — the between-patient SD of the slope, as one value
  (point estimate) or as posterior draws;
* ``effect_sizes(...)`` — clinical effect sizes, computed here once;
* ``patient_slopes()`` — each patient's own rate of change.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from alsfrs.results import Result

__all__ = ["EXPOSURE_LABELS", "LongitudinalResult", "exposure_label", "term_label"]

#: Plain-language names of exposures and covariates.
EXPOSURE_LABELS: dict[str, str] = {
    "anxiolytic": "Anxiolytic use",
    "hypnotic": "Hypnotic/sedative use",
    "antidepressant": "Antidepressant use",
    "antidepressant_ssri": "SSRI use",
    "antidepressant_tca": "Tricyclic antidepressant use",
    "antidepressant_maoi": "MAO inhibitor use",
    "antidepressant_other": "Other antidepressant use",
    "antidepressant_rem_suppressing": "REM-suppressing antidepressant use",
    "antidepressant_non_rem_suppressing": "Non-REM-suppressing antidepressant use",
    "antidepressant_rem_disputed": "Antidepressant with disputed REM effect",
    "age_at_dx": "Age at diagnosis (per year)",
    "sexM": "Male (vs female)",
    "onset_sitebulbar": "Bulbar onset (vs spinal)",
    "onset_siteother": "Other onset (vs spinal)",
    "delta_fs": "Pre-diagnostic progression rate ΔFS (per point/month)",
    "diagnostic_delay_months": "Diagnostic delay (per month)",
}


def exposure_label(var: str) -> str:
    """Plain-language name of an exposure or covariate (the name itself when unknown)."""
    return EXPOSURE_LABELS.get(var, var)


def _unit(time: str) -> str:
    return "points/month" if time.startswith("months") else f"points per {time}"


def term_label(term: str, time: str = "months") -> str:
    """Plain-language label of an lme4 term name (fixed effect or variance parameter)."""
    import re

    unit = _unit(time)
    if term == "(Intercept)":
        return "ALSFRS-R at time 0, reference patient (points)"
    if term == time:
        return f"Change in ALSFRS-R per month, reference patient ({unit})"
    if term.startswith("sd__"):
        inner = term[4:]
        if inner == "Observation":
            return "Visit-to-visit SD of ALSFRS-R (points)"
        if inner == "(Intercept)":
            return "Between-patient SD of ALSFRS-R at time 0 (points)"
        if inner == time:
            return f"Between-patient SD of the slope ({unit})"
        return f"Between-patient SD of {inner}"
    if term.startswith("cor__"):
        return "Correlation of patient-level " + " and ".join(
            "level" if p == "(Intercept)" else "slope" if p == time else p
            for p in term[5:].split("."))
    if term == "nu":
        return "Student-t degrees of freedom"
    if re.fullmatch(rf"I\({re.escape(time)}\^2\)", term):
        return "Curvature: change in slope per month (points/month²)"
    parts = term.split(":")
    if len(parts) == 2 and time in parts:
        other = parts[1] if parts[0] == time else parts[0]
        return f"{exposure_label(other)}: difference in slope ({unit}; negative = faster decline)"
    return f"{exposure_label(term)}: difference in ALSFRS-R at time 0 (points)"


def interval_columns(level: float, kind: str = "ci") -> tuple[str, str]:
    """Names of an interval's bounds that state its type and level: ``ci_lower_95``."""
    pct = f"{100 * level:g}".replace(".", "_")
    return f"{kind}_lower_{pct}", f"{kind}_upper_{pct}"


class LongitudinalResult(Result):
    """A fitted model of ALSFRS-R over time (see the module docstring)."""

    #: Short name used in figure legends and report headings ("LMM", "Bayes").
    short_name: str = "model"

    # -- what each engine provides ----------------------------------------------------
    #: The model formula (lme4 syntax).
    formula: str
    #: The :class:`~alsfrs.matrices.ModelMatrices` the model was fitted with.
    matrices: Any
    _data: pd.DataFrame | None
    #: Number of visits and of patients used (attributes or properties of each engine).
    nobs: int
    ngroups: int

    @property
    def data(self) -> pd.DataFrame:
        """The fitted rows (one per visit, the formula's columns), in model order."""
        return self._data

    @property
    @abc.abstractmethod
    def time(self) -> str:
        """The model's time variable (e.g. ``months`` or ``months_since_onset``)."""

    @abc.abstractmethod
    def exposure_effects(self, exposures: Sequence[str] | str | None = None, *,
                         level: float = 0.95, margin: float = 0.1,
                         time: str | None = None) -> pd.DataFrame:
        """Difference in decline per exposure (columns of :data:`alsfrs.effects.EFFECT_COLUMNS`)."""

    @abc.abstractmethod
    def parameters(self, level: float = 0.95) -> pd.DataFrame:
        """Every parameter: ``estimate, std_error, ci_lower, ci_upper`` (index: term)."""

    @abc.abstractmethod
    def slope_sd_draws(self) -> float | np.ndarray:
        """Between-patient SD of the slope: a value, or posterior draws; NaN if none."""

    @abc.abstractmethod
    def predict(self, newdata: Any = None, include_random: bool = True) -> np.ndarray:
        """Predicted ALSFRS-R for ``newdata`` (default: the fitted rows)."""

    # -- shared ---------------------------------------------------------------------------
    def coefficient_draws(self, terms: Sequence[str]) -> np.ndarray | None:
        """Posterior draws of fixed effects (draws × terms), or None for a point estimate."""
        return None

    def effect_sizes(self, exposures: Sequence[str] | None = None, *, margin: float = 0.1,
                     horizons: Sequence[float] = (6, 12), level: float = 0.95) -> pd.DataFrame:
        """Effect sizes of each exposure on decline, in clinical units.

        Columns: ``label``; ``difference``, ``ci_lower``, ``ci_upper``
        (points/month; negative = faster decline); ``percent_faster`` with
        ``percent_lower``, ``percent_upper`` (relative to unexposed patients'
        mean decline); ``standardised`` with its interval (difference /
        between-patient slope SD); ``prob_faster`` and ``prob_faster_by_margin``
        (posterior probabilities that the exposure speeds decline, and by more
        than ``margin`` points/month; NaN for a point-estimate engine); and for
        each horizon ``h`` the implied difference in ALSFRS-R after ``h`` months,
        ``points_at_<h>m`` with its interval (difference in slope × h).
        """
        eff = self.exposure_effects(exposures, level=level, margin=margin)
        out = pd.DataFrame(index=eff.index)
        out["label"] = [exposure_label(e) for e in eff.index]
        for c in ("difference", "ci_lower", "ci_upper", "percent_faster", "percent_lower",
                  "percent_upper"):
            out[c] = eff[c].to_numpy(dtype=float)
        sd = self.slope_sd_draws()
        a = (1 - level) / 2
        draws = self.coefficient_draws(list(eff["term"]))
        if draws is not None and np.ndim(sd) == 1:
            std = draws / np.asarray(sd)[:, None]
            out["standardised"] = std.mean(axis=0)
            out["standardised_lower"] = np.quantile(std, a, axis=0)
            out["standardised_upper"] = np.quantile(std, 1 - a, axis=0)
        else:
            sd = float(np.mean(sd))
            out["standardised"] = out["difference"] / sd
            out["standardised_lower"] = out["ci_lower"] / sd
            out["standardised_upper"] = out["ci_upper"] / sd
        for c in ("prob_faster", "prob_faster_by_margin"):
            out[c] = eff[c].to_numpy(dtype=float) if c in eff else np.nan
        for h in horizons:
            tag = f"{h:g}m"
            out[f"points_at_{tag}"] = out["difference"] * h
            out[f"points_at_{tag}_lower"] = out["ci_lower"] * h
            out[f"points_at_{tag}_upper"] = out["ci_upper"] * h
        out.attrs.update({"margin": margin, "level": level, "horizons": list(horizons),
                          "time": self.time})
        return out

    def parameter_table(self, level: float = 0.95) -> pd.DataFrame:
        """:meth:`parameters` with a plain-language ``label`` column first."""
        out = self.parameters(level).copy()
        out.insert(0, "label", [term_label(t, self.time) for t in out.index])
        out.index.name = "term"
        return out

    def patient_slopes(self) -> pd.Series:
        """Each patient's own rate of change (points per time unit) at their mean visit time.

        The derivative of the patient's fitted trajectory (fixed + random effects)
        with respect to time, evaluated at the mean time of their visits: for a
        linear model simply the patient's slope.
        """
        from alsfrs.effects import time_derivative, time_derivative_rows

        mm = self.matrices
        data = self.data
        t = pd.to_numeric(data[self.time]).to_numpy(dtype=float)
        g = mm.group
        mean_t = np.bincount(g, weights=t, minlength=mm.n_groups) / np.bincount(
            g, minlength=mm.n_groups)
        first = np.unique(g, return_index=True)[1]
        rows = data.iloc[first].copy()
        rows[self.time] = mean_t[g[first]]
        dX = time_derivative_rows(mm, rows, self.time)
        beta = self.fixed_effects["estimate"].to_numpy()
        dZ = time_derivative(mm.random_design, rows, self.time)
        b = self.random_effects.to_numpy()[g[first]]
        slopes = dX @ beta + np.einsum("nq,nq->n", dZ, b)
        return pd.Series(slopes, index=pd.Index(mm.group_labels[g[first]], name=mm.grouping),
                         name="slope")
