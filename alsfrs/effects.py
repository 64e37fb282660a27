"""Exposure effects on the decline slope, defined once for every engine.

For an exposure ``e`` in a model with a ``time:e`` interaction, the *difference
in decline* is that interaction's coefficient (ALSFRS-R points per month). The
*reference slope* is the fixed-effect slope ``d prediction / d time`` averaged
over the unexposed patients (``e == 0``) of the fitted data: first within
each patient, then over patients, so each patient counts once. It is a linear
combination ``L·β``, so other time interactions (e.g. site of onset × time) are
averaged over the unexposed patients' own covariates. ``percent_faster =
-100 · difference / |reference slope|`` is positive when exposed patients
decline faster (reference -1.0/month, difference -0.2 -> 20 % faster).

The mixed model turns these contrasts into Wald and delta-method intervals,
the Bayesian model into posterior draws; the contrasts are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alsfrs.errors import Problem, ValidationError
from alsfrs.matrices import ModelMatrices

__all__ = [
    "EFFECT_COLUMNS",
    "ExposureContrast",
    "effects_from_draws",
    "exposure_contrasts",
    "time_derivative",
    "time_derivative_rows",
]

#: Columns shared by every engine's ``exposure_effects()``.
EFFECT_COLUMNS = [
    "term",
    "difference",
    "std_error",
    "ci_lower",
    "ci_upper",
    "reference_slope",
    "percent_faster",
    "percent_lower",
    "percent_upper",
]


@dataclass(frozen=True)
class ExposureContrast:
    """The coefficient index and the reference-slope combination of one exposure."""

    exposure: str
    term: str
    index: int
    reference: np.ndarray  # L, shape (p,)


def time_derivative(design: Callable[[pd.DataFrame], np.ndarray], data: pd.DataFrame,
                    time: str) -> np.ndarray:
    """``d design(data) / d time`` for every row (central differences; exact for
    polynomials up to degree 2 in time): the one derivative every module uses."""
    t = pd.to_numeric(data[time]).to_numpy(dtype=float)
    h = 1e-3 * max(1.0, float(np.std(t)))
    up = data.copy()
    down = data.copy()
    up[time] = t + h
    down[time] = t - h
    return (np.asarray(design(up), dtype=float) - np.asarray(design(down), dtype=float)) / (2 * h)


def time_derivative_rows(mm: ModelMatrices, data: pd.DataFrame, time: str) -> np.ndarray:
    """``dX/dtime`` for each row of ``data``: :func:`time_derivative` of the fixed design."""
    return time_derivative(mm.fixed_design, data, time)


def _binary(col: pd.Series) -> bool:
    values = pd.to_numeric(col, errors="coerce")
    return bool(values.notna().all()) and set(np.unique(values.to_numpy())) <= {0, 1}


def exposure_contrasts(
    mm: ModelMatrices,
    data: pd.DataFrame,
    exposures: Sequence[str] | str | None = None,
    time: str = "months",
) -> list[ExposureContrast]:
    """The contrasts behind ``exposure_effects()`` for a fitted design.

    Parameters
    ----------
    mm
        The model matrices of the fit.
    data
        The fitted rows (the frame ``mm`` was built from, after row selection).
    exposures
        Exposure columns; default every 0/1 variable in an interaction with ``time``.
    time
        The time variable.
    """
    names = list(mm.fixed_names)
    if time not in mm.variables:
        raise ValidationError(Problem(rule="unknown_column", column=time,
                                      message=f"the time variable {time!r} is not in the model"))
    interactions: dict[str, str] = {}
    for name in names:
        parts = name.split(":")
        if len(parts) == 2 and time in parts:
            other = parts[1] if parts[0] == time else parts[0]
            interactions[other] = name
    if exposures is None:
        exposures = [v for v in interactions
                     if v in data.columns and v not in mm.levels and _binary(data[v])]
    elif isinstance(exposures, str):
        exposures = [exposures]
    problems = []
    for e in exposures:
        if e not in interactions:
            problems.append(Problem(
                rule="no_time_interaction", column=e,
                message=f"the model has no {time}:{e} interaction, so it does not estimate a "
                        f"difference in decline for {e!r}"))
        elif e not in data.columns or not _binary(data[e]):
            problems.append(Problem(rule="not_binary", column=e,
                                    message=f"the exposure {e!r} must be a 0/1 column"))
    if problems:
        raise ValidationError(problems, context="exposure_effects")
    dxdt = time_derivative_rows(mm, data, time)
    out = []
    for e in exposures:
        unexposed = pd.to_numeric(data[e]).to_numpy() == 0
        if not unexposed.any():
            raise ValidationError(Problem(rule="no_unexposed", column=e,
                                          message=f"no unexposed patients for {e!r}"))
        g = mm.group[unexposed]
        sums = np.zeros((mm.n_groups, dxdt.shape[1]))
        np.add.at(sums, g, dxdt[unexposed])
        counts = np.bincount(g, minlength=mm.n_groups)
        has = counts > 0
        L = (sums[has] / counts[has, None]).mean(axis=0)
        out.append(ExposureContrast(e, interactions[e], names.index(interactions[e]), L))
    return out


def effects_from_draws(contrasts: Sequence[ExposureContrast], beta: np.ndarray, level: float,
                       margin: float) -> pd.DataFrame:
    """Exposure effects from posterior draws of the fixed effects (draws × terms).

    Posterior means, SDs and equal-tailed intervals at ``level`` of the difference
    in decline and of the % faster decline, plus ``prob_faster`` (posterior
    probability that the exposure speeds decline) and ``prob_faster_by_margin``
    (by more than ``margin`` points per time unit). Shared by every posterior engine.
    """
    a = (1 - level) / 2
    rows = []
    for c in contrasts:
        diff = beta[:, c.index]
        ref = beta @ c.reference
        pct = -100.0 * diff / np.abs(ref)
        dlo, dhi = np.quantile(diff, [a, 1 - a])
        plo, phi = np.quantile(pct, [a, 1 - a])
        rows.append({"exposure": c.exposure, "term": c.term, "difference": diff.mean(),
                     "std_error": diff.std(ddof=1), "ci_lower": dlo, "ci_upper": dhi,
                     "reference_slope": ref.mean(), "percent_faster": pct.mean(),
                     "percent_lower": plo, "percent_upper": phi,
                     "prob_faster": float((diff < 0).mean()),
                     "prob_faster_by_margin": float((diff < -margin).mean())})
    return pd.DataFrame(rows, columns=["exposure", *EFFECT_COLUMNS, "prob_faster",
                                       "prob_faster_by_margin"]).set_index("exposure")
