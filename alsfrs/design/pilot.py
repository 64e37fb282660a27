"""What a design needs from a pilot: the reference slope and the variance components.

A pilot is any fitted longitudinal result (mixed model, Bayesian slope model —
posterior means —, later the joint model) read only through its public
attributes: ``fixed_effects`` (an ``estimate`` column indexed by lme4 term
names), ``variance_components`` (R's ``as.data.frame(VarCorr(fit))`` layout:
``grp, var1, var2, vcov``) and, where present, ``formula``. A plain mapping
with the same keys as :class:`PilotParameters` works too.

As R longpower's ``lmmpower`` does from an ``lmer`` fit: the slope is the fixed
effect of time (the reference group's mean slope), the random-intercept
variance, random-slope variance and their covariance come from the one
grouping factor, and the residual variance is sigma squared.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from alsfrs.errors import Problem, ValidationError

__all__ = ["PilotParameters", "pilot_parameters"]


@dataclass(frozen=True)
class PilotParameters:
    """Random intercept and slope model of one arm's decline.

    ``y_ij = b0 + slope * t_ij + u0_i + u1_i * t_ij + e_ij`` with
    ``var(u0) = sig2_i``, ``var(u1) = sig2_s``, ``cov(u0, u1) = cov_si``,
    ``var(e) = sig2_e``.

    Attributes
    ----------
    slope : float or None
        Mean slope of the reference (placebo) group, points per time unit;
        needed only when the effect is given as a percentage slowing.
    sig2_i, sig2_s, cov_si, sig2_e : float
        Random-intercept variance, random-slope variance, their covariance,
        residual variance.
    intercept : float
        Mean outcome at time 0 (used by simulations only).
    source : str
        Where the numbers came from.
    """

    sig2_s: float
    sig2_e: float
    sig2_i: float = 0.0
    cov_si: float = 0.0
    slope: float | None = None
    intercept: float = 0.0
    source: str = "given"

    @property
    def cor_si(self) -> float:
        """Correlation of random intercept and slope (0 when either variance is 0)."""
        if self.sig2_i <= 0 or self.sig2_s <= 0:
            return 0.0
        return self.cov_si / math.sqrt(self.sig2_i * self.sig2_s)

    def covariance(self) -> np.ndarray:
        """The 2×2 random-effects covariance (intercept, slope)."""
        return np.array([[self.sig2_i, self.cov_si], [self.cov_si, self.sig2_s]])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validated(self) -> PilotParameters:
        problems = []
        for name in ("sig2_s", "sig2_e", "sig2_i", "cov_si", "intercept"):
            v = getattr(self, name)
            if not isinstance(v, int | float | np.floating | np.integer) or not np.isfinite(v):
                problems.append(Problem(rule="bad_parameter", column=name,
                                        message=f"{name} must be a finite number, got {v!r}"))
        if self.slope is not None and not np.isfinite(self.slope):
            problems.append(Problem(rule="bad_parameter", column="slope",
                                    message=f"slope must be finite, got {self.slope!r}"))
        if not problems:
            if self.sig2_e <= 0:
                problems.append(Problem(rule="bad_parameter", column="sig2_e",
                                        message="the residual variance sig2_e must be > 0"))
            for name in ("sig2_s", "sig2_i"):
                if getattr(self, name) < 0:
                    problems.append(Problem(rule="bad_parameter", column=name,
                                            message=f"variance {name} must be >= 0"))
            if self.sig2_i >= 0 and self.sig2_s >= 0 and (
                    self.cov_si**2 > self.sig2_i * self.sig2_s * (1 + 1e-9)):
                problems.append(Problem(
                    rule="bad_parameter", column="cov_si",
                    message="cov_si exceeds sqrt(sig2_i * sig2_s): the covariance matrix is not "
                            "positive semi-definite"))
        if problems:
            raise ValidationError(problems, context="pilot parameters")
        return self


def pilot_parameters(pilot: Any, time: str | None = None, slope: float | None = None
                     ) -> PilotParameters:
    """Read the design parameters from a fitted result (or a mapping).

    Parameters
    ----------
    pilot : fitted result, PilotParameters or mapping
        A result with ``fixed_effects`` and ``variance_components`` (e.g.
        :class:`alsfrs.LmmResult`, :class:`alsfrs.BayesResult`), or a mapping
        with keys ``sig2_s``, ``sig2_e`` and optionally ``sig2_i``,
        ``cov_si`` (or ``cor_si``), ``slope``, ``intercept``.
    time : str, optional
        Name of the time term (default: the random slope's term; with a random
        intercept only, the second fixed effect, as ``lmmpower``'s
        ``parameter = 2``).
    slope : float, optional
        Override the reference slope.

    Returns
    -------
    PilotParameters
    """
    if isinstance(pilot, PilotParameters):
        out = pilot if slope is None else PilotParameters(**{**pilot.to_dict(), "slope": slope})
        return out.validated()
    if isinstance(pilot, Mapping):
        d = dict(pilot)
        unknown = set(d) - {"sig2_s", "sig2_e", "sig2_i", "cov_si", "cor_si", "slope",
                            "intercept", "source"}
        missing = {"sig2_s", "sig2_e"} - set(d)
        problems = [Problem(rule="unknown_parameter", column=k,
                            message=f"unknown pilot parameter {k!r}") for k in sorted(unknown)]
        problems += [Problem(rule="missing_parameter", column=k,
                             message=f"pilot parameter {k!r} is required") for k in sorted(missing)]
        if problems:
            raise ValidationError(problems, context="pilot parameters")
        if "cor_si" in d:
            if "cov_si" in d:
                raise ValidationError(Problem(rule="conflicting_parameters", column="cor_si",
                                              message="give cov_si or cor_si, not both"))
            d["cov_si"] = float(d.pop("cor_si")) * math.sqrt(
                float(d.get("sig2_i", 0.0)) * float(d["sig2_s"]))
        if slope is not None:
            d["slope"] = slope
        d = {k: (float(v) if k != "source" and v is not None else v) for k, v in d.items()}
        return PilotParameters(**d).validated()
    fe = getattr(pilot, "fixed_effects", None)
    vc = getattr(pilot, "variance_components", None)
    if not isinstance(fe, pd.DataFrame) or not isinstance(vc, pd.DataFrame):
        raise ValidationError(Problem(
            rule="bad_pilot",
            message=f"a pilot must be a fitted result with fixed_effects and variance_components "
                    f"(or a mapping of parameters), got {type(pilot).__name__}"))
    groups = [g for g in vc["grp"].unique() if g != "Residual"]
    if len(groups) != 1:
        raise ValidationError(Problem(
            rule="bad_pilot", message=f"the pilot must have exactly one grouping factor, "
                                      f"found {len(groups)}"))
    re = vc[vc["grp"] == groups[0]]
    variances = {str(r.var1): float(r.vcov) for r in re.itertuples() if _none(r.var2)}
    if time is None:
        others = [k for k in variances if k != "(Intercept)"]
        # random intercept only: the second fixed effect, as lmmpower's parameter = 2
        terms = [str(k) for k in fe.index]
        time = others[0] if others else (terms[1] if len(terms) > 1 else "months")
    extra = [k for k in variances if k not in ("(Intercept)", time)]
    if extra:
        raise ValidationError(Problem(
            rule="bad_pilot",
            message=f"the pilot's random effects must be at most an intercept and a slope in "
                    f"{time!r}; found also {extra}"))
    cov = 0.0
    for r in re.itertuples():
        if not _none(r.var2) and {str(r.var1), str(r.var2)} == {"(Intercept)", time}:
            cov = float(r.vcov)
    resid = vc[vc["grp"] == "Residual"]
    if len(resid) != 1:
        raise ValidationError(Problem(rule="bad_pilot",
                                      message="the pilot has no residual variance"))
    est = fe["estimate"]
    if slope is None:
        if time not in est.index:
            raise ValidationError(Problem(
                rule="bad_pilot", column=time,
                message=f"the pilot has no fixed effect {time!r} (the reference slope); "
                        "give slope= or time="))
        slope = float(est[time])
    return PilotParameters(
        sig2_s=variances.get(time, 0.0), sig2_e=float(resid["vcov"].iloc[0]),
        sig2_i=variances.get("(Intercept)", 0.0), cov_si=cov, slope=float(slope),
        intercept=float(est.get("(Intercept)", 0.0)),
        source=f"{type(pilot).__name__}: {getattr(pilot, 'formula', '')}".strip(": "),
    ).validated()


def _none(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))
