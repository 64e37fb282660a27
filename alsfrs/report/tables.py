"""Report tables: the same DataFrames for a mixed-model and a Bayesian fit.

Raw numbers in, raw numbers out (display rounds, exports keep raw values):

* :func:`parameter_table` — every parameter with a plain-language label beside
  its lme4 name;
* :func:`effect_sizes` — what a trial designer reads, per exposure;
* :func:`diagnostics_table` — convergence checks with a pass/fail column.

The tables read results only through the result contract
(:mod:`alsfrs.results`, :mod:`alsfrs.longitudinal`), so they never ask which
engine made them; where only a posterior has an answer (probabilities) a
point-estimate engine gives NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from alsfrs.longitudinal import EXPOSURE_LABELS, exposure_label, term_label

__all__ = ["EXPOSURE_LABELS", "clinical_effects_table", "diagnostics_table", "effect_sizes",
           "label", "parameter_table"]


def _name(var: str) -> str:
    return exposure_label(var)


def label(term: str, time: str = "months") -> str:
    """Plain-language label of an lme4 term name (fixed effect or variance parameter)."""
    return term_label(term, time)


def parameter_table(result: Any, level: float = 0.95) -> pd.DataFrame:
    """Every parameter with its plain-language label.

    Columns: ``label, estimate, std_error, ci_lower, ci_upper``. Fixed effects
    carry their interval (Wald for the mixed model, equal-tailed posterior for
    the Bayesian model); variance parameters carry intervals where the engine
    has them (posterior), NaN otherwise. ``result.parameter_table``.
    """
    return result.parameter_table(level)


def effect_sizes(result: Any, exposures: Sequence[str] | None = None, *, margin: float = 0.1,
                 horizons: Sequence[float] = (6, 12), level: float = 0.95) -> pd.DataFrame:
    """Effect sizes of each exposure on decline, in clinical units
    (``result.effect_sizes``; the columns are documented there)."""
    return result.effect_sizes(exposures, margin=margin, horizons=horizons, level=level)


def diagnostics_table(result: Any) -> pd.DataFrame:
    """Convergence checks with a pass/fail column (``result.diagnostics()``)."""
    return result.diagnostics()


def clinical_effects_table(effects: pd.DataFrame, truth: dict[str, float] | None = None
                           ) -> pd.DataFrame:
    """The compact effect table a clinician reads, from :func:`effect_sizes`.

    One row per exposure, labelled columns with units; numbers stay numbers
    (rounded when displayed).
    """
    pct = f"{100 * effects.attrs.get('level', 0.95):g}"
    out = pd.DataFrame(index=pd.Index(effects["label"].to_numpy(), name="Exposure"))
    out["Difference (points/month)"] = effects["difference"].to_numpy()
    out[f"{pct}% interval"] = [f"{lo:.2f} to {hi:.2f}" for lo, hi in
                               zip(effects["ci_lower"], effects["ci_upper"], strict=True)]
    out["Faster decline (%)"] = effects["percent_faster"].to_numpy()
    out["Difference at 12 months (points)"] = (
        effects["points_at_12m"].to_numpy() if "points_at_12m" in effects
        else effects["difference"].to_numpy() * 12)
    if effects["prob_faster"].notna().any():
        out["P(faster decline)"] = effects["prob_faster"].to_numpy()
    if truth:
        out["Simulated truth (points/month)"] = [truth.get(e, np.nan) for e in effects.index]
    return out
