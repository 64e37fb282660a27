"""Sample size, power and detectable effect for the difference in slope between two arms.

The formulas of R longpower 1.0.27 (``lmmpower`` and the functions it calls),
written from their published definitions and checked against longpower's own
numbers (``tests/reference/longpower_reference.R``):

``"edland"`` (default)
    Ard & Edland (2011) / Zhao & Edland: the variance of the slope from a
    random intercept and slope model, weighting each attrition pattern (the
    proportion ``p[k]`` of patients whose last visit is visit ``k``) by its
    information ``X_k' V_k^{-1} X_k`` (longpower's ``edland.linear.power``;
    patients with only a baseline visit contribute nothing).
``"diggle"``
    Diggle et al. (2002, p. 29, corrected): generalised least squares slope
    variance under the marginal covariance of the random intercept and slope
    model; complete data, equal allocation.
``"liuliang"``
    Liu & Liang (1997): the GEE formula with the same marginal covariance;
    complete data.
``"hu"``
    Hu, Mackey & Thomas (2021): random coefficient regression with monotone
    missing data (the proportion of patients whose last visit is each visit).
``"cprm"``
    Zhao & Edland's chronic progressive repeated measures model (longpower's
    ``cprm.power``): the difference in mean change from baseline to the last
    visit, with visit means unstructured; the effect in points per month is
    converted to a change at the last visit (effect × duration).

Every method reduces to a variance factor ``K``: the variance of the estimated
effect is ``K / n_treatment`` with ``n_control = n_treatment / ratio``, so
``n_treatment = (z_{1-α/2} + z_{power})² K / effect²`` and
``power = Φ(√(n effect² / K) − z_{1-α/2})`` — exactly longpower's formulas
(its root-finding for ``diggle`` and ``liuliang`` converges to the same closed
forms).

Differences from ``lmmpower`` stated openly: ``lmmpower(method="edland")``
passes neither the intercept–slope covariance nor ``p`` on to
``edland.linear.power``; here the covariance and the attrition pattern are
always used (they matter only with attrition: without it, the slope variance
of the complete design does not depend on the intercept variance or the
covariance). The fixtures compare against ``edland.linear.power`` with its
full arguments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from alsfrs.design.pilot import PilotParameters, pilot_parameters
from alsfrs.errors import Problem, ValidationError

__all__ = ["METHODS", "attrition_pattern", "detectable_effect", "power", "sample_size",
           "variance_factor"]

METHODS = ("edland", "diggle", "liuliang", "hu", "cprm")
ALTERNATIVES = ("two-sided", "one-sided")


# -- inputs ------------------------------------------------------------------------------
def _months(months: Sequence[float]) -> np.ndarray:
    try:
        t = np.asarray(months, dtype=float).ravel()
    except (TypeError, ValueError):
        raise ValidationError(Problem(rule="bad_months", column="months",
                                      message=f"months must be numbers, got {months!r}")) from None
    if t.size < 2 or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise ValidationError(Problem(
            rule="bad_months", column="months",
            message=f"months must be at least two finite, strictly increasing visit times; "
                    f"got {t.tolist()}"))
    return t


def attrition_pattern(attrition: float | Sequence[float] | None, n_visits: int) -> np.ndarray:
    """The proportion of patients whose last visit is each planned visit (Edland's ``p``).

    Parameters
    ----------
    attrition : None, float or sequence of float
        ``None``: everyone completes (``p = (0, ..., 0, 1)``). A number ``q`` in
        [0, 1): the proportion who do not complete, spread evenly over the
        visits before the last (a share ``q / (m − 1)`` has its last visit at
        each of visits 1 … m−1, baseline included). A sequence of length
        ``n_visits`` summing to 1: ``p`` itself.
    n_visits : int

    Returns
    -------
    ndarray
    """
    m = int(n_visits)
    if attrition is None:
        p = np.zeros(m)
        p[-1] = 1.0
        return p
    if np.ndim(attrition) == 0:
        q = float(attrition)  # type: ignore[arg-type]
        if not 0 <= q < 1:
            raise ValidationError(Problem(
                rule="bad_attrition", column="attrition",
                message=f"attrition as one number is the proportion not completing, in [0, 1); "
                        f"got {q}"))
        p = np.full(m, q / (m - 1))
        p[-1] = 1 - q
        return p
    p = np.asarray(attrition, dtype=float).ravel()
    problems = []
    if p.size != m:
        problems.append(Problem(rule="bad_attrition", column="attrition",
                                message=f"attrition needs one proportion per visit ({m}), "
                                        f"got {p.size}"))
    elif not np.all(np.isfinite(p)) or np.any(p < 0) or abs(p.sum() - 1) > 1e-9:
        problems.append(Problem(rule="bad_attrition", column="attrition",
                                message=f"attrition proportions must be >= 0 and sum to 1; "
                                        f"got {p.tolist()} (sum {p.sum():g})"))
    elif p[1:].sum() <= 0:
        problems.append(Problem(rule="bad_attrition", column="attrition",
                                message="nobody has a visit after baseline: the slope is not "
                                        "estimable"))
    if problems:
        raise ValidationError(problems, context="attrition")
    return p


def _check_level(name: str, v: float) -> float:
    if not isinstance(v, int | float | np.floating) or not 0 < float(v) < 1:
        raise ValidationError(Problem(rule="bad_setting", column=name,
                                      message=f"{name} must be in (0, 1), got {v!r}"))
    return float(v)


def _check_positive(name: str, v: Any) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        x = float("nan")
    if not np.isfinite(x) or x <= 0:
        raise ValidationError(Problem(rule="bad_setting", column=name,
                                      message=f"{name} must be a positive number, got {v!r}"))
    return x


def _z(alpha: float, alternative: str) -> float:
    if alternative not in ALTERNATIVES:
        raise ValidationError(Problem(rule="bad_setting", column="alternative",
                                      message=f"alternative must be one of {ALTERNATIVES}, "
                                              f"got {alternative!r}"))
    return float(stats.norm.ppf(1 - alpha / 2 if alternative == "two-sided" else 1 - alpha))


# -- the variance factor per method --------------------------------------------------------
def _marginal_cov(t: np.ndarray, pp: PilotParameters) -> np.ndarray:
    V = (pp.sig2_i + (t[:, None] + t[None, :]) * pp.cov_si + np.outer(t, t) * pp.sig2_s)
    return V + pp.sig2_e * np.eye(t.size)


def _edland_term(t: np.ndarray, pp: PilotParameters, p: np.ndarray, X: np.ndarray,
                 index: int) -> float:
    V = _marginal_cov(t, pp)
    info = np.zeros((X.shape[1], X.shape[1]))
    for k in range(2, t.size + 1):  # patients with only a baseline visit add nothing
        if p[k - 1] == 0:
            continue
        Xk = X[:k]
        info += p[k - 1] * Xk.T @ np.linalg.solve(V[:k, :k], Xk)
    return float(np.linalg.inv(info)[index, index])


def _hu_sum(t: np.ndarray, pp: PilotParameters, p: np.ndarray) -> float:
    k1 = np.arange(1, t.size + 1, dtype=float)  # k + 1 visits
    tbar = np.cumsum(t) / k1
    tbarsq = np.cumsum(t**2) / k1
    rho, s2i, s2s, s2e = pp.cor_si, pp.sig2_i, pp.sig2_s, pp.sig2_e
    deno = (s2e**2 + k1 * s2e * (s2s * tbarsq + s2i + 2 * rho * math.sqrt(s2i * s2s) * tbar)
            + k1**2 * s2i * s2s * (1 - rho**2) * (tbarsq - tbar**2))
    num = k1 * (s2e * tbarsq + k1 * s2i * (tbarsq - tbar**2))
    return float(np.sum(p * num / deno))


def variance_factor(method: str, months: Sequence[float], pilot: PilotParameters,
                    attrition: np.ndarray | None = None, ratio: float = 1.0) -> float:
    """``K`` such that var(estimated effect) = K / n_treatment (``n_control = n / ratio``).

    For ``"cprm"`` the effect is the difference in change to the last visit.
    """
    t = _months(months)
    p = attrition_pattern(None, t.size) if attrition is None else np.asarray(attrition, float)
    pp = pilot
    if method == "edland":
        X = np.column_stack([np.ones_like(t), t])
        term = _edland_term(t, pp, p, X, 1)
        return term * (1 + ratio)
    if method == "cprm":
        X = np.zeros((t.size, t.size))
        X[:, 0] = 1
        X[np.arange(1, t.size), np.arange(1, t.size)] = 1
        term = _edland_term(t, pp, p, X, t.size - 1)
        return term * (1 + ratio)
    if method == "diggle":
        V = _marginal_cov(t, pp)
        X = np.column_stack([np.ones_like(t), t])
        xi = float(np.linalg.inv(X.T @ np.linalg.solve(V, X))[1, 1])
        return xi * (1 + ratio)
    if method == "liuliang":
        V = _marginal_cov(t, pp)
        Rinv = np.linalg.inv(V)
        pi = np.array([ratio / (1 + ratio), 1 / (1 + ratio)])
        u = [t, np.zeros_like(t)]
        v = [np.column_stack([np.ones_like(t), np.ones_like(t), t]),
             np.column_stack([np.ones_like(t), np.zeros_like(t), t])]
        Ipl = sum(pi[i] * u[i] @ Rinv @ v[i] for i in range(2))
        Ill = sum(pi[i] * v[i].T @ Rinv @ v[i] for i in range(2))
        Illinv = np.linalg.inv(Ill)
        sigma1 = 0.0
        for i in range(2):
            a = u[i] - v[i] @ Illinv @ Ipl
            sigma1 += pi[i] * float(a @ Rinv @ a)
        # N = z^2 / (effect^2 sigma1); n_treatment = N * pi_1
        return pi[0] / sigma1
    if method == "hu":
        if t[0] != 0:
            raise ValidationError(Problem(rule="bad_months", column="months",
                                          message="method 'hu' needs the first visit at time 0"))
        return (1 + ratio) / _hu_sum(t, pp, p)
    raise ValidationError(Problem(rule="bad_setting", column="method",
                                  message=f"method must be one of {METHODS}, got {method!r}"))


# -- the three solvers ---------------------------------------------------------------------
def _prepare(pilot: Any, pct_slowing: float | None, effect: float | None, months: Any,
             method: str, attrition: Any, ratio: float, alpha: float, alternative: str,
             time: str | None, need_effect: bool) -> dict[str, Any]:
    if method not in METHODS:
        raise ValidationError(Problem(rule="bad_setting", column="method",
                                      message=f"method must be one of {METHODS}, got {method!r}"))
    t = _months(months)
    pp = pilot_parameters(pilot, time=time)
    alpha = _check_level("alpha", alpha)
    ratio = _check_positive("ratio", ratio)
    p = attrition_pattern(attrition, t.size)
    if method in ("diggle", "liuliang"):
        p_used = attrition_pattern(None, t.size)
    else:
        p_used = p
    if method == "diggle" and ratio != 1:
        raise ValidationError(Problem(rule="bad_setting", column="ratio",
                                      message="method 'diggle' assumes equal allocation; "
                                              "use 'edland' or 'liuliang' for ratio != 1"))
    if need_effect:
        if (pct_slowing is None) == (effect is None):
            raise ValidationError(Problem(rule="bad_setting", column="effect",
                                          message="give exactly one of effect= (points per "
                                                  "month) or pct_slowing="))
        if pct_slowing is not None:
            pct = float(pct_slowing)
            if not np.isfinite(pct) or pct <= 0:
                raise ValidationError(Problem(rule="bad_setting", column="pct_slowing",
                                              message=f"pct_slowing must be > 0 (0.25 = 25 %), "
                                                      f"got {pct_slowing!r}"))
            if pp.slope is None or pp.slope == 0:
                raise ValidationError(Problem(rule="bad_setting", column="pct_slowing",
                                              message="pct_slowing needs the pilot's slope; "
                                                      "give slope or effect="))
            eff = pct * abs(pp.slope)
        else:
            eff = float(effect)  # type: ignore[arg-type]
            if not np.isfinite(eff) or eff == 0:
                raise ValidationError(Problem(rule="bad_setting", column="effect",
                                              message=f"effect must be a non-zero number, "
                                                      f"got {effect!r}"))
            eff = abs(eff)
    else:
        eff = None
    K = variance_factor(method, t, pp, p_used, ratio)
    scale = (t[-1] - t[0]) if method == "cprm" else 1.0
    return dict(t=t, pilot=pp, alpha=alpha, ratio=ratio, p=p, K=K, effect=eff,
                scale=scale, z_alpha=_z(alpha, alternative), alternative=alternative,
                method=method)


def _result(d: dict[str, Any], solved_for: str, n1: float, power_: float, effect: float
            ) -> Any:
    from alsfrs.design.results import SampleSizeResult

    return SampleSizeResult(
        method=d["method"], solved_for=solved_for, months=d["t"], attrition=d["p"],
        alpha=d["alpha"], power=float(power_), ratio=d["ratio"], effect=float(effect),
        n_treatment=float(n1), n_control=float(n1 / d["ratio"]), pilot=d["pilot"],
        variance_factor=d["K"], alternative=d["alternative"])


def sample_size(pilot: Any = None, *, pct_slowing: float | None = None,
                effect: float | None = None, months: Sequence[float] = (0, 3, 6, 9, 12),
                power: float = 0.8, method: str = "edland",
                attrition: float | Sequence[float] | None = None, ratio: float = 1.0,
                alpha: float = 0.05, alternative: str = "two-sided", time: str | None = None,
                **parameters: float) -> Any:
    """Patients per arm to detect a difference in ALSFRS-R slope.

    Parameters
    ----------
    pilot : fitted result, PilotParameters or mapping, optional
        The pilot (placebo-like) model: its reference slope, random intercept
        and slope (co)variances and residual variance (see
        :func:`alsfrs.design.pilot.pilot_parameters`). Or give the parameters
        as keywords: ``sig2_i``, ``sig2_s``, ``cov_si`` (or ``cor_si``),
        ``sig2_e``, ``slope``.
    pct_slowing : float, optional
        Effect as a proportion of the pilot's mean decline (0.25 = 25 % slower).
    effect : float, optional
        Effect as the difference in slope, points per month.
    months : sequence of float
        Visit times (the first is baseline).
    power : float, default 0.8
    method : {"edland", "diggle", "liuliang", "hu", "cprm"}
    attrition : float or sequence, optional
        See :func:`attrition_pattern`. Used by "edland", "hu" and "cprm";
        "diggle" and "liuliang" assume complete data and the result's
        ``n_enrolled`` inflates their n by the proportion completing.
    ratio : float, default 1
        Allocation ratio, n_treatment / n_control.
    alpha : float, default 0.05
    alternative : {"two-sided", "one-sided"}
    time : str, optional
        Time term of the pilot (default: its random slope).

    Returns
    -------
    SampleSizeResult
    """
    pilot = _pilot_arg(pilot, parameters)
    d = _prepare(pilot, pct_slowing, effect, months, method, attrition, ratio, alpha,
                 alternative, time, True)
    pw = _check_level("power", power)
    zb = float(stats.norm.ppf(pw))
    delta = d["effect"] * d["scale"]
    n1 = (d["z_alpha"] + zb) ** 2 * d["K"] / delta**2
    return _result(d, "n", n1, pw, d["effect"])


def power(pilot: Any = None, *, n_per_arm: float, pct_slowing: float | None = None,
          effect: float | None = None, months: Sequence[float] = (0, 3, 6, 9, 12),
          method: str = "edland", attrition: float | Sequence[float] | None = None,
          ratio: float = 1.0, alpha: float = 0.05, alternative: str = "two-sided",
          time: str | None = None, **parameters: float) -> Any:
    """Power to detect a difference in slope with ``n_per_arm`` treated patients
    (``n_per_arm / ratio`` controls). Parameters as :func:`sample_size`."""
    pilot = _pilot_arg(pilot, parameters)
    d = _prepare(pilot, pct_slowing, effect, months, method, attrition, ratio, alpha,
                 alternative, time, True)
    n1 = _check_positive("n_per_arm", n_per_arm)
    delta = d["effect"] * d["scale"]
    pw = float(stats.norm.cdf(math.sqrt(n1 * delta**2 / d["K"]) - d["z_alpha"]))
    return _result(d, "power", n1, pw, d["effect"])


def detectable_effect(pilot: Any = None, *, n_per_arm: float, power: float = 0.8,
                      months: Sequence[float] = (0, 3, 6, 9, 12), method: str = "edland",
                      attrition: float | Sequence[float] | None = None, ratio: float = 1.0,
                      alpha: float = 0.05, alternative: str = "two-sided",
                      time: str | None = None, **parameters: float) -> Any:
    """Smallest difference in slope (points per month) detectable with the given
    power and ``n_per_arm`` treated patients. Parameters as :func:`sample_size`."""
    pilot = _pilot_arg(pilot, parameters)
    d = _prepare(pilot, None, None, months, method, attrition, ratio, alpha, alternative,
                 time, False)
    n1 = _check_positive("n_per_arm", n_per_arm)
    pw = _check_level("power", power)
    zb = float(stats.norm.ppf(pw))
    delta = math.sqrt((d["z_alpha"] + zb) ** 2 * d["K"] / n1)
    return _result(d, "effect", n1, pw, delta / d["scale"])


def _pilot_arg(pilot: Any, parameters: dict[str, float]) -> Any:
    if pilot is not None and parameters:
        raise ValidationError(Problem(rule="conflicting_parameters",
                                      message="give a pilot or parameters "
                                              f"({', '.join(parameters)}), not both"))
    if pilot is None:
        if not parameters:
            raise ValidationError(Problem(rule="missing_parameter",
                                          message="give a pilot fit or the parameters "
                                                  "sig2_s, sig2_e (and sig2_i, cov_si, slope)"))
        return dict(parameters)
    return pilot
