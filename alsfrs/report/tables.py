"""Report tables: the same DataFrames for a mixed-model and a Bayesian fit.

Raw numbers in, raw numbers out (display rounds, exports keep raw values):

* :func:`parameter_table` — every parameter with a plain-language label beside
  its lme4 name;
* :func:`effect_sizes` — what a trial designer reads, per exposure;
* :func:`diagnostics_table` — convergence checks with a pass/fail column.

The tables read results only through their shared interface
(``fixed_effects``, ``variance_components``, ``exposure_effects()``), so they
never ask which engine made them, except where only a posterior has an answer
(probabilities), which is NaN for the mixed model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["EXPOSURE_LABELS", "diagnostics_table", "effect_sizes", "label", "parameter_table"]

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


def _name(var: str) -> str:
    return EXPOSURE_LABELS.get(var, var)


def label(term: str, time: str = "months") -> str:
    """Plain-language label of an lme4 term name (fixed effect or variance parameter)."""
    unit = "points/month" if time in ("months", "months_since_onset") else f"points per {time}"
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
    m = re.fullmatch(rf"I\({re.escape(time)}\^2\)", term)
    if m:
        return "Curvature: change in slope per month (points/month²)"
    parts = term.split(":")
    if len(parts) == 2 and time in parts:
        other = parts[1] if parts[0] == time else parts[0]
        return f"{_name(other)}: difference in slope ({unit}; negative = faster decline)"
    return f"{_name(term)}: difference in ALSFRS-R at time 0 (points)"


def _time_of(result: Any) -> str:
    t = getattr(result, "time", None)
    if isinstance(t, str):
        return t
    mm = getattr(result, "matrices", None)
    if mm is not None:
        for n in mm.random_names:
            if n != "(Intercept)" and n in mm.variables:
                return n
    return "months"


def _variance_rows(result: Any) -> pd.DataFrame:
    vc = result.variance_components
    rows = []
    for _, r in vc.iterrows():
        if r["grp"] == "Residual":
            name = "sd__Observation"
        elif r["var2"] is None or (isinstance(r["var2"], float) and np.isnan(r["var2"])):
            name = f"sd__{r['var1']}"
        else:
            name = f"cor__{r['var1']}.{r['var2']}"
        rows.append({"term": name, "estimate": float(r["sdcor"])})
    return pd.DataFrame(rows).set_index("term")


def parameter_table(result: Any) -> pd.DataFrame:
    """Every parameter with its plain-language label.

    Columns: ``label, estimate, std_error, ci_lower, ci_upper``. Fixed effects
    carry their 95% interval (Wald for the mixed model, equal-tailed posterior
    for the Bayesian model); random-effect SDs, correlations and the residual
    SD carry intervals for Bayesian fits (NaN for the mixed model, whose
    variance estimates have no Wald interval worth reporting).
    """
    time = _time_of(result)
    fe = result.fixed_effects[["estimate", "std_error", "ci_lower", "ci_upper"]].copy()
    if hasattr(result, "summary") and hasattr(result, "idata"):
        s = result.summary()
        vr = s.loc[[i for i in s.index if i.startswith(("sd__", "cor__")) or i == "nu"]]
        var = pd.DataFrame({"estimate": vr["mean"], "std_error": vr["sd"],
                            "ci_lower": np.nan, "ci_upper": np.nan})
        for term in var.index:
            name, idx = _bayes_var(result, term)
            d = result.draws(name)[(slice(None), *idx)]
            var.loc[term, ["ci_lower", "ci_upper"]] = np.quantile(d, [0.025, 0.975])
    else:
        var = _variance_rows(result).assign(std_error=np.nan, ci_lower=np.nan, ci_upper=np.nan)
    out = pd.concat([fe, var])
    out.insert(0, "label", [label(t, time) for t in out.index])
    out.index.name = "term"
    return out


def _bayes_var(result: Any, term: str) -> tuple[str, tuple[int, ...]]:
    names = list(result.design.random_names)
    if term == "sd__Observation":
        return "sigma", ()
    if term == "nu":
        return "nu", ()
    if term.startswith("sd__"):
        return "sd", (names.index(term[4:]),)
    a, b = term[5:].split(".", 1)
    return "corr", (names.index(a), names.index(b))


def _slope_sd(result: Any, time: str) -> float | np.ndarray:
    """Between-patient SD of the slope: a number (mixed model) or draws (Bayesian)."""
    if hasattr(result, "idata"):
        names = list(result.design.random_names)
        if time in names:
            return result.draws("sd")[:, names.index(time)]
        return np.nan
    vc = result.variance_components
    row = vc[(vc["var1"] == time) & vc["var2"].isna()]
    return float(row["sdcor"].iloc[0]) if len(row) else np.nan


def effect_sizes(result: Any, exposures: Sequence[str] | None = None, *, margin: float = 0.1,
                 horizons: Sequence[float] = (6, 12), level: float = 0.95) -> pd.DataFrame:
    """Effect sizes of each exposure on decline, in clinical units.

    Columns: ``label``; ``difference``, ``ci_lower``, ``ci_upper`` (points/month;
    negative = faster decline); ``percent_faster`` with ``percent_lower``,
    ``percent_upper`` (relative to unexposed patients' mean decline);
    ``standardised`` with its interval (difference / between-patient slope SD);
    ``prob_faster`` and ``prob_faster_by_margin`` (posterior probabilities that
    the exposure speeds decline, and by more than ``margin`` points/month; NaN
    for the mixed model); and for each horizon ``h`` the implied difference in
    ALSFRS-R after ``h`` months, ``points_at_<h>m`` with interval (difference in
    slope × h).
    """
    time = _time_of(result)
    kw = {"exposures": exposures, "level": level}
    is_bayes = hasattr(result, "idata")
    eff = result.exposure_effects(margin=margin, **kw) if is_bayes else \
        result.exposure_effects(**kw)
    out = pd.DataFrame(index=eff.index)
    out["label"] = [_name(e) for e in eff.index]
    for c in ("difference", "ci_lower", "ci_upper", "percent_faster", "percent_lower",
              "percent_upper"):
        out[c] = eff[c].to_numpy(dtype=float)
    sd = _slope_sd(result, time)
    a = (1 - level) / 2
    if is_bayes:
        beta = result.draws("beta")
        names = list(result.design.fixed_names)
        std = [beta[:, names.index(t)] / sd for t in eff["term"]]
        out["standardised"] = [float(np.mean(s)) for s in std]
        out["standardised_lower"] = [float(np.quantile(s, a)) for s in std]
        out["standardised_upper"] = [float(np.quantile(s, 1 - a)) for s in std]
        out["prob_faster"] = eff["prob_faster"].to_numpy()
        out["prob_faster_by_margin"] = eff["prob_faster_by_margin"].to_numpy()
    else:
        out["standardised"] = out["difference"] / sd
        out["standardised_lower"] = out["ci_lower"] / sd
        out["standardised_upper"] = out["ci_upper"] / sd
        out["prob_faster"] = np.nan
        out["prob_faster_by_margin"] = np.nan
    for h in horizons:
        tag = f"{h:g}m"
        out[f"points_at_{tag}"] = out["difference"] * h
        out[f"points_at_{tag}_lower"] = out["ci_lower"] * h
        out[f"points_at_{tag}_upper"] = out["ci_upper"] * h
    out.attrs.update({"margin": margin, "level": level, "horizons": list(horizons)})
    return out


def diagnostics_table(result: Any) -> pd.DataFrame:
    """Convergence checks with a pass/fail column, for either engine.

    Bayesian fits: R-hat, bulk and tail ESS, divergences, E-BFMI. Mixed models:
    the optimiser's convergence, gradient at the end and singularity.
    """
    if hasattr(result, "diagnostics"):
        return result.diagnostics()
    from alsfrs.lmm import GRADIENT_TOLERANCE, NEWTON_DECREMENT_TOLERANCE

    opt = result.optimization
    stationary = (opt.gradient_norm < GRADIENT_TOLERANCE
                  or opt.newton_decrement < NEWTON_DECREMENT_TOLERANCE)
    rows = [
        ("optimiser converged", float(bool(result.converged)), "1", bool(result.converged)),
        ("gradient max-norm at the end", float(opt.gradient_norm),
         f"< {GRADIENT_TOLERANCE:g} (or Newton decrement < {NEWTON_DECREMENT_TOLERANCE:g})",
         bool(stationary)),
        ("singular fit", float(bool(result.singular)), "0", not bool(result.singular)),
    ]
    return pd.DataFrame(rows, columns=["check", "value", "threshold", "passed"]
                        ).set_index("check")
