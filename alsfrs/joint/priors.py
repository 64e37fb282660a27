"""Priors of the joint model: the longitudinal ones of :mod:`alsfrs.bayes.priors`
plus weakly informative priors for the survival submodel.

=========================  ============================  =====================================
parameter                  default                       reasoning
=========================  ============================  =====================================
longitudinal terms, SDs,   as ``fit_bayes``              see :mod:`alsfrs.bayes.priors`
``sigma``, ``lkj_eta``
survival terms (log HR)    Normal(0, 1) per unit         HRs 0.14-7.4 within 2 SD per unit of
                                                         the covariate (a drug class, a sex, a
                                                         year of age); published ALS HRs 1-2
``value(<response>)``      Normal(0, 0.5)                log HR per ALSFRS-R point of the
                                                         current value; ±1 (HR 2.7 per point)
                                                         is already implausible
``slope(<response>)``      Normal(0, 2)                  log HR per point/month of current decline
``ranef(<response>):<re>`` Normal(0, 0.5) for the        ``association="shared"``: log HR per
                           random intercept, Normal(0,   unit of the patient's random effect
                           2) for the others             (points above the average level;
                                                         points/month of slope above average)
``baseline``               Normal(log(D / PT), 2)        log baseline hazard per piece
                                                         (piecewise), at the knots (spline), at
                                                         the median event time (Weibull), or the
                                                         P-spline's level (log h0 at half the
                                                         longest follow-up, ``"pspline"``), at
                                                         mean covariates and ALSFRS-R = its
                                                         mean; D events, PT person-time:
                                                         centred on the data
``weibull_shape``          log shape ~ Normal(0, 0.7)    shape 0.25-4 within 2 SD (ALS: 1-1.5)
``pspline_trend``          Normal(0, 2)                  ``"pspline"``: change of log h0 over the
                                                         whole follow-up along a straight line
                                                         (the unpenalised part); ±4 within 2 SD
``pspline_precision``      Gamma(5, 0.5) (shape, rate)   ``"pspline"``: precision τ of the second
                                                         differences of the B-spline
                                                         coefficients (JMbayes2's default
                                                         ``A_tau_bs_gammas = 5``,
                                                         ``B_tau_bs_gammas = 0.5``): prior mean
                                                         10, SD of a second difference about 0.3
=========================  ============================  =====================================

The penalised B-spline baseline (``baseline="pspline"``, P-spline, Eilers & Marx 1996;
JMbayes2's default baseline) writes ``log h0(t) = Σ_j θ_j B_j(t)`` with a cubic
B-spline basis on ``n_pieces`` (default 9) equally spaced segments over
[0, longest follow-up]. JMbayes2's prior on θ is the second-order random walk
``p(θ | τ) ∝ τ^{r/2} exp(−τ θᵀDᵀDθ / 2)`` (D the second-difference matrix, r = K − 2
its rank), improper along straight lines, with ``τ ~ Gamma(5, 0.5)``. Here
``θ = a·1 + s·g + E ε / √τ``, ``g_j = (ξ_j − t_max/2) / t_max`` (ξ_j the Greville
abscissae: the B-splines then give log h0(t) = a + s (t − t_max/2) / t_max), ``E`` with
``EᵀDᵀDE = I`` and ``E ⟂ {1, g}``, ``ε ~ N(0, I_r)``: the same conditional prior on the
penalised part (θᵀDᵀDθ = εᵀε/τ, constant Jacobian), made proper on the straight-line part
by ``a ~`` the ``baseline`` prior and ``s ~`` the ``pspline_trend`` prior, and sampled
non-centred (no funnel between τ and θ).

Overrides: ``priors={"longitudinal": {"months:antidepressant": ("normal", 0, 0.5)},
"survival": {"antidepressant": ("normal", 0, 0.5), "value(alsfrs_r)": ("normal", 0, 0.2)}}``.
A flat dict is read as longitudinal overrides. Survival priors are Normal (``("normal",
mu, sigma)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alsfrs.bayes.priors import Prior, PriorSet, _parse, resolve_priors
from alsfrs.errors import Problem, ValidationError

__all__ = ["JointPriors", "resolve_joint_priors", "shared_name"]


@dataclass(frozen=True)
class JointPriors:
    """Every prior of a joint model."""

    long: PriorSet
    gamma: dict[str, Prior]
    alpha: Prior
    alpha_slope: Prior
    baseline: Prior
    log_shape: Prior
    shared: dict[str, Prior] = field(default_factory=dict)
    pspline_trend: Prior = field(default_factory=lambda: Prior("normal", (0.0, 2.0)))
    pspline_precision: Prior = field(default_factory=lambda: Prior("gamma", (5.0, 0.5)))

    def table(self, response: str) -> list[tuple[str, str]]:
        rows = [(f"longitudinal: {k}", v) for k, v in self.long.table()]
        rows += [(f"survival: {k}", str(v)) for k, v in self.gamma.items()]
        rows += [(f"value({response})", str(self.alpha)), (f"slope({response})",
                                                           str(self.alpha_slope))]
        rows += [(k, str(v)) for k, v in self.shared.items()]
        rows += [("baseline", str(self.baseline)), ("weibull_shape (log)", str(self.log_shape)),
                 ("pspline_trend", str(self.pspline_trend)),
                 ("pspline_precision", str(self.pspline_precision))]
        return rows

    def to_dict(self, response: str) -> dict[str, Any]:
        return {"longitudinal": self.long.to_dict(),
                "survival": {**{k: [v.dist, *v.params] for k, v in self.gamma.items()},
                             f"value({response})": [self.alpha.dist, *self.alpha.params],
                             f"slope({response})": [self.alpha_slope.dist,
                                                    *self.alpha_slope.params],
                             **{k: [v.dist, *v.params] for k, v in self.shared.items()},
                             "baseline": [self.baseline.dist, *self.baseline.params],
                             "weibull_shape": [self.log_shape.dist, *self.log_shape.params],
                             "pspline_trend": [self.pspline_trend.dist,
                                               *self.pspline_trend.params],
                             "pspline_precision": [self.pspline_precision.dist,
                                                   *self.pspline_precision.params]}}


def shared_name(response: str, random_name: str) -> str:
    """Row name of a shared random-effects association: ``ranef(alsfrs_r):months``."""
    return f"ranef({response}):{random_name}"


def resolve_joint_priors(overrides: Mapping[str, Any] | None, *, fixed_names: Sequence[str],
                         random_names: Sequence[str], blocks, y: np.ndarray, time: str,
                         surv_names: Sequence[str], response: str, log_rate: float
                         ) -> JointPriors:
    """Defaults (module docstring) with the user's overrides; unknown names are errors."""
    overrides = dict(overrides or {})
    if "longitudinal" in overrides or "survival" in overrides:
        extra = sorted(set(overrides) - {"longitudinal", "survival"})
        if extra:
            raise ValidationError(Problem(rule="unknown_prior", message=(
                "priors= takes the keys 'longitudinal' and 'survival', not "
                + ", ".join(map(repr, extra)))), context="the priors")
        long_o = overrides.get("longitudinal") or {}
        surv_o = dict(overrides.get("survival") or {})
    else:
        long_o, surv_o = overrides, {}
    long = resolve_priors(long_o, fixed_names, random_names, blocks, y, time)
    gamma = {n: Prior("normal", (0.0, 1.0)) for n in surv_names}
    alpha = Prior("normal", (0.0, 0.5))
    alpha_s = Prior("normal", (0.0, 2.0))
    base = Prior("normal", (float(log_rate), 2.0))
    shape = Prior("normal", (0.0, 0.7))
    shared = {shared_name(response, n): Prior("normal", (0.0, 0.5 if n == "(Intercept)" else 2.0))
              for n in random_names}
    trend = Prior("normal", (0.0, 2.0))
    precision = Prior("gamma", (5.0, 0.5))
    problems: list[Problem] = []
    normal = {"normal": 2}
    for key, value in surv_o.items():
        allowed = {"gamma": 2} if key == "pspline_precision" else normal
        p = _parse(value, allowed, f"survival: {key}", problems)
        if key in gamma:
            gamma[key] = p or gamma[key]
        elif key == f"value({response})":
            alpha = p or alpha
        elif key == f"slope({response})":
            alpha_s = p or alpha_s
        elif key == "baseline":
            base = p or base
        elif key == "weibull_shape":
            shape = p or shape
        elif key in shared:
            shared[key] = p or shared[key]
        elif key == "pspline_trend":
            trend = p or trend
        elif key == "pspline_precision":
            precision = p or precision
        else:
            known = [*gamma, f"value({response})", f"slope({response})", *shared, "baseline",
                     "weibull_shape", "pspline_trend", "pspline_precision"]
            problems.append(Problem(rule="unknown_prior", column=key, message=(
                f"no survival parameter {key!r}; priors can be set for: {', '.join(known)}")))
    if problems:
        raise ValidationError(problems, context="the priors")
    return JointPriors(long=long, gamma=gamma, alpha=alpha, alpha_slope=alpha_s, baseline=base,
                       log_shape=shape, shared=shared, pspline_trend=trend,
                       pspline_precision=precision)
