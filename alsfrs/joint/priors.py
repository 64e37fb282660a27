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
``baseline``               Normal(log(D / PT), 2)        log baseline hazard per piece
                                                         (piecewise) or at the median event time
                                                         (Weibull), at mean covariates and
                                                         ALSFRS-R = its mean; D events, PT
                                                         person-time: centred on the data
``weibull_shape``          log shape ~ Normal(0, 0.7)    shape 0.25-4 within 2 SD (ALS: 1-1.5)
=========================  ============================  =====================================

Overrides: ``priors={"longitudinal": {"months:antidepressant": ("normal", 0, 0.5)},
"survival": {"antidepressant": ("normal", 0, 0.5), "value(alsfrs_r)": ("normal", 0, 0.2)}}``.
A flat dict is read as longitudinal overrides. Survival priors are Normal (``("normal",
mu, sigma)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alsfrs.bayes.priors import Prior, PriorSet, _parse, resolve_priors
from alsfrs.errors import Problem, ValidationError

__all__ = ["JointPriors", "resolve_joint_priors"]


@dataclass(frozen=True)
class JointPriors:
    """Every prior of a joint model."""

    long: PriorSet
    gamma: dict[str, Prior]
    alpha: Prior
    alpha_slope: Prior
    baseline: Prior
    log_shape: Prior

    def table(self, response: str) -> list[tuple[str, str]]:
        rows = [(f"longitudinal: {k}", v) for k, v in self.long.table()]
        rows += [(f"survival: {k}", str(v)) for k, v in self.gamma.items()]
        rows += [(f"value({response})", str(self.alpha)), (f"slope({response})",
                                                           str(self.alpha_slope)),
                 ("baseline", str(self.baseline)), ("weibull_shape (log)", str(self.log_shape))]
        return rows

    def to_dict(self, response: str) -> dict[str, Any]:
        return {"longitudinal": self.long.to_dict(),
                "survival": {**{k: [v.dist, *v.params] for k, v in self.gamma.items()},
                             f"value({response})": [self.alpha.dist, *self.alpha.params],
                             f"slope({response})": [self.alpha_slope.dist,
                                                    *self.alpha_slope.params],
                             "baseline": [self.baseline.dist, *self.baseline.params],
                             "weibull_shape": [self.log_shape.dist, *self.log_shape.params]}}


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
    problems: list[Problem] = []
    normal = {"normal": 2}
    for key, value in surv_o.items():
        p = _parse(value, normal, f"survival: {key}", problems)
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
        else:
            known = [*gamma, f"value({response})", f"slope({response})", "baseline",
                     "weibull_shape"]
            problems.append(Problem(rule="unknown_prior", column=key, message=(
                f"no survival parameter {key!r}; priors can be set for: {', '.join(known)}")))
    if problems:
        raise ValidationError(problems, context="the priors")
    return JointPriors(long=long, gamma=gamma, alpha=alpha, alpha_slope=alpha_s, baseline=base,
                       log_shape=shape)
