"""Weakly informative priors on the ALSFRS-R scale, each with its reasoning.

Predictors other than the intercept are centred internally before sampling (as
brms does), so the intercept prior is on the *mean ALSFRS-R at time 0 for
average covariates*, where the data are; every other coefficient keeps its
usual meaning and its prior applies to it unchanged.

Defaults (names as in the summary; override any of them with ``priors=``):

=====================  ==========================  ==============================================
parameter              default                     reasoning
=====================  ==========================  ==============================================
``(Intercept)``        Normal(mean y, 2.5 sd y)    centred intercept; ALSFRS-R is 0-48, patients
                                                   at diagnosis around 38-41 (domain.md 5)
time (``months``)      Normal(-1, 1)               mean decline about 1 point/month (Atassi 2014;
                                                   Thakore 2018); 0 and -3 within 2 SD
time × anything        Normal(0, 1)                an exposure changing decline by 1 point/month
                                                   would double it: 1 SD covers every published
                                                   effect (CENTAUR 0.42) and much more
other coefficients     Normal(0, 10)               points per unit; the whole scale is 48
``sd__(Intercept)``    HalfNormal(10)              between-patient SD of the level, 5.2 in
                                                   PRO-ACT (domain.md 5)
``sd__<time>``         HalfNormal(1.5)             between-patient slope SD 0.7-1.0 points/month
``sd__<other>``        HalfNormal(0.25)            e.g. a quadratic term in points/month²
``cor__``              LKJ(eta = 2)                mild shrinkage of correlations towards 0
``sigma``              HalfNormal(5)               visit-to-visit SD, 1.7 in PRO-ACT
``nu`` (Student-t)     Gamma(2, 0.1)               brms' default for the degrees of freedom
=====================  ==========================  ==============================================

Overrides: ``priors={"months:antidepressant": ("normal", 0, 0.5),
"sd__months": ("halfnormal", 1.0), "sigma": ("halfnormal", 3), "lkj_eta": 4}``.
Fixed effects take ``normal(mu, sigma)`` or ``student_t(nu, mu, sigma)``;
scales take ``halfnormal(sigma)``, ``halfstudent_t(nu, sigma)`` or
``exponential(lam)``; ``nu`` takes ``gamma(alpha, beta)`` or ``exponential(lam)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alsfrs.errors import Problem, ValidationError

__all__ = ["Prior", "PriorSet", "default_priors"]

_FIXED_DISTS = {"normal": 2, "student_t": 3}
_SCALE_DISTS = {"halfnormal": 1, "halfstudent_t": 2, "exponential": 1}
_NU_DISTS = {"gamma": 2, "exponential": 1}


@dataclass(frozen=True)
class Prior:
    """A prior distribution by name and parameters (PyMC's parameterisation)."""

    dist: str
    params: tuple[float, ...]

    def __str__(self) -> str:
        return f"{self.dist}({', '.join(f'{p:g}' for p in self.params)})"


@dataclass(frozen=True)
class PriorSet:
    """All priors of one model, resolved to its terms."""

    fixed: dict[str, Prior]
    sd: dict[str, Prior]
    sigma: Prior
    lkj_eta: float
    nu: Prior

    def table(self) -> list[tuple[str, str]]:
        rows = [(k, str(v)) for k, v in self.fixed.items()]
        rows += [(f"sd__{k}", str(v)) for k, v in self.sd.items()]
        rows += [("cor__", f"lkj({self.lkj_eta:g})"), ("sigma", str(self.sigma)),
                 ("nu", str(self.nu))]
        return rows

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: [v.dist, *v.params] for k, v in self.fixed.items()}
        out.update({f"sd__{k}": [v.dist, *v.params] for k, v in self.sd.items()})
        out["sigma"] = [self.sigma.dist, *self.sigma.params]
        out["nu"] = [self.nu.dist, *self.nu.params]
        out["lkj_eta"] = self.lkj_eta
        return out


def _term_role(term: str, time: str) -> str:
    parts = term.split(":")
    if term == "(Intercept)":
        return "intercept"
    if term == time:
        return "time"
    if time in parts:
        return "time_interaction"
    return "other"


def default_priors(
    fixed_names: Sequence[str], random_names: Sequence[str], y: np.ndarray, time: str
) -> PriorSet:
    """The documented defaults for a design (see the module docstring)."""
    y = np.asarray(y, dtype=float)
    fixed: dict[str, Prior] = {}
    for name in fixed_names:
        role = _term_role(name, time)
        if role == "intercept":
            fixed[name] = Prior("normal", (float(np.mean(y)), float(max(2.5 * np.std(y), 1.0))))
        elif role == "time":
            fixed[name] = Prior("normal", (-1.0, 1.0))
        elif role == "time_interaction":
            fixed[name] = Prior("normal", (0.0, 1.0))
        else:
            fixed[name] = Prior("normal", (0.0, 10.0))
    sd = {}
    for name in random_names:
        if name == "(Intercept)":
            sd[name] = Prior("halfnormal", (10.0,))
        elif name == time:
            sd[name] = Prior("halfnormal", (1.5,))
        else:
            sd[name] = Prior("halfnormal", (0.25,))
    return PriorSet(fixed=fixed, sd=sd, sigma=Prior("halfnormal", (5.0,)), lkj_eta=2.0,
                    nu=Prior("gamma", (2.0, 0.1)))


def _parse(value: Any, allowed: dict[str, int], key: str, problems: list[Problem]
           ) -> Prior | None:
    if isinstance(value, Prior):
        dist, params = value.dist, value.params
    elif isinstance(value, Mapping):
        dist = value.get("dist")
        params = tuple(v for k, v in value.items() if k != "dist")
    elif isinstance(value, Sequence) and not isinstance(value, str) and value:
        dist, params = value[0], tuple(value[1:])
    else:
        problems.append(Problem(rule="bad_prior", column=key,
                                message=f"prior for {key!r} must be (dist, *params), got "
                                        f"{value!r}"))
        return None
    if dist not in allowed:
        problems.append(Problem(rule="bad_prior", column=key,
                                message=f"prior for {key!r}: distribution {dist!r} is not one of "
                                        f"{', '.join(allowed)}"))
        return None
    if len(params) != allowed[dist]:
        problems.append(Problem(rule="bad_prior", column=key,
                                message=f"prior for {key!r}: {dist} takes {allowed[dist]} "
                                        f"parameter(s), got {len(params)}"))
        return None
    try:
        fparams = tuple(float(p) for p in params)
    except (TypeError, ValueError):
        problems.append(Problem(rule="bad_prior", column=key,
                                message=f"prior for {key!r}: parameters must be numbers"))
        return None
    scale_pos = {"normal": [1], "student_t": [0, 2], "halfnormal": [0], "halfstudent_t": [0, 1],
                 "exponential": [0], "gamma": [0, 1]}[dist]
    if not all(math.isfinite(p) for p in fparams) or any(fparams[i] <= 0 for i in scale_pos):
        problems.append(Problem(rule="bad_prior", column=key,
                                message=f"prior for {key!r}: {dist}{fparams} needs finite "
                                        "parameters and positive scales"))
        return None
    return Prior(dist, fparams)


def resolve_priors(
    overrides: Mapping[str, Any] | None,
    fixed_names: Sequence[str],
    random_names: Sequence[str],
    blocks: Sequence[Sequence[int]],
    y: np.ndarray,
    time: str,
) -> PriorSet:
    """Defaults with the user's overrides applied; unknown names are errors."""
    base = default_priors(fixed_names, random_names, y, time)
    if not overrides:
        return base
    fixed, sd = dict(base.fixed), dict(base.sd)
    sigma, eta, nu = base.sigma, base.lkj_eta, base.nu
    problems: list[Problem] = []
    for key, value in overrides.items():
        if key in fixed:
            p = _parse(value, _FIXED_DISTS, key, problems)
            if p:
                fixed[key] = p
        elif key.startswith("sd__") and key[4:] in sd:
            p = _parse(value, _SCALE_DISTS, key, problems)
            if p:
                sd[key[4:]] = p
        elif key == "sigma":
            p = _parse(value, _SCALE_DISTS, key, problems)
            if p:
                sigma = p
        elif key == "nu":
            p = _parse(value, _NU_DISTS, key, problems)
            if p:
                nu = p
        elif key == "lkj_eta":
            if isinstance(value, int | float) and value > 0:
                eta = float(value)
            else:
                problems.append(Problem(rule="bad_prior", column=key,
                                        message=f"lkj_eta must be a positive number, got "
                                                f"{value!r}"))
        else:
            known = [*fixed, *(f"sd__{k}" for k in sd), "sigma", "nu", "lkj_eta"]
            problems.append(Problem(rule="unknown_prior", column=key,
                                    message=f"no parameter {key!r} in this model; priors can be "
                                            f"set for: {', '.join(known)}"))
    for block in blocks:
        if len(block) > 1:
            kinds = {sd[random_names[k]].dist for k in block}
            if len(kinds) > 1:
                problems.append(Problem(
                    rule="bad_prior",
                    message="the SD priors of correlated random effects must share one "
                            f"distribution family, got {', '.join(sorted(kinds))}"))
    if problems:
        raise ValidationError(problems, context="the priors")
    return PriorSet(fixed=fixed, sd=sd, sigma=sigma, lkj_eta=eta, nu=nu)
