"""Linear mixed-effects models with one grouping factor (REML / ML).

:func:`fit_lmm` fits an lme4-style model such as::

    alsfrs_r ~ months * (anxiolytic + hypnotic) + age_at_dx + sex + (months | patient_id)

by minimising the *profiled* deviance over the relative covariance factor
``θ`` (the lower-Cholesky elements of ``Λ``, with ``Σ_b = σ² ΛΛᵀ``), as lme4
and MixedModels.jl do, with the fixed effects ``β`` and the residual variance
``σ²`` profiled out. Because there is one grouping factor, the penalised
least-squares problem is block diagonal: every evaluation works from the
per-patient sufficient statistics of :mod:`alsfrs.matrices`, vectorised over
patients (the kernel :mod:`alsfrs.gaussian`, shared with the collapsed
Bayesian model), so its cost is ``O(m q³ + m q² p + p³)`` whatever the number
of visits.

The optimiser is Newton's method on θ, from a method-of-moments start, with the
analytic gradient and Hessian
of the profiled deviance, a backtracking line search, bounds (diagonal θ ≥ 0)
handled by an active set, and a check off the boundary for singular fits.
Convergence is judged by the Newton decrement ``gᵀH⁻¹g`` (the predicted
decrease of the deviance, times two) on the free parameters, with a positive
definite Hessian; :class:`OptimizationRecord` carries both the measure and the
tolerance it is compared with.

Results use lme4's names and conventions (``fixef``, ``VarCorr``, ``ranef``,
``condVar``, ``coef``, ``REMLcrit``, ``deviance``); denominator degrees of
freedom and p-values of the fixed effects follow lmerTest's Satterthwaite
method, computed from the analytic Hessian of the deviance in ``(θ, σ)`` the
first time they are asked for (``fixed_effects``' ``df``/``p_value``).

For many fits of one formula (trial simulations) use :class:`LmmFitter`: it
parses the formula once and rebuilds the design matrices of new data of the
same shape without the formula machinery.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from alsfrs.effects import EFFECT_COLUMNS, exposure_contrasts
from alsfrs.errors import Problem, ValidationError
from alsfrs.formula import MixedFormula, parse_formula
from alsfrs.gaussian import Evaluation as _Evaluation
from alsfrs.gaussian import ProfiledGaussian
from alsfrs.longitudinal import LongitudinalResult
from alsfrs.matrices import DesignPlan, ModelMatrices, as_frame, build_model_matrices
from alsfrs.results import (
    Display,
    DisplayTable,
    ModelRecord,
    Payload,
    diagnostics_frame,
    versions,
)
from alsfrs.timeaxis import time_variable

__all__ = [
    "ConvergenceError",
    "ConvergenceWarning",
    "LmmFitter",
    "LmmResult",
    "OptimizationRecord",
    "SingularFitWarning",
    "fit_lmm",
    "lrt",
]

#: A diagonal element of Λ below this (relative, θ scale) marks a singular fit (lme4's value).
SINGULAR_TOLERANCE = 1e-4
#: Largest acceptable Newton decrement gᵀH⁻¹g (deviance units) at the optimum.
NEWTON_DECREMENT_TOLERANCE = 1e-6
#: Newton iterations stop early once the decrement is below this (deviance units).
NEWTON_DECREMENT_TARGET = 1e-10
#: Most Newton iterations before giving up.
MAX_NEWTON_ITERATIONS = 100
#: Eigenvalue tolerance of lmerTest's generalised inverse of the deviance Hessian.
HESSIAN_EIGEN_TOLERANCE = 1e-8


class SingularFitWarning(UserWarning):
    """A random-effects covariance matrix is singular (a variance at zero or |ρ| = 1)."""


class ConvergenceWarning(UserWarning):
    """The optimiser stopped before its convergence criterion was met (see ``optimization``)."""


class ConvergenceError(RuntimeError):
    """The deviance is not finite where the optimiser ended; no results are returned."""


@dataclass(frozen=True)
class OptimizationRecord:
    """What the optimiser did and how convergence was judged.

    Attributes
    ----------
    optimizer : str
        Method(s) used, e.g. ``"Newton (analytic Hessian)"``; a fallback adds
        ``" + L-BFGS-B + Newton"``.
    theta_start, theta_final : ndarray
        Start and end values of ``θ`` (lme4 order: lower triangle of each
        block, column by column).
    lower_bounds : ndarray
        Lower bounds of ``θ`` (0 for diagonal elements, -inf otherwise).
    objective : float
        Final value of the profiled objective (REML criterion or deviance).
    n_evaluations : int
        Number of evaluations of the profiled objective (each Newton iteration
        adds its gradient and Hessian at the accepted point).
    gradient_norm : float
        Max-norm of the gradient over the free parameters at the end (reported,
        not used to judge convergence: its scale depends on the data's units).
    newton_decrement : float
        ``gᵀH⁻¹g`` over the free parameters at the end, in deviance units:
        twice the decrease a further Newton step would bring. ``inf`` when the
        Hessian on the free parameters is not positive definite.
    elapsed_seconds : float
        Wall time of the optimisation.
    message : str
        How the optimiser stopped.
    criterion : str
        The objective: ``"REML"`` or ``"ML"``.
    decrement_tolerance : float
        The convergence criterion: ``converged`` is ``newton_decrement <=
        decrement_tolerance`` with a positive definite Hessian.
    converged : bool
        Whether the criterion was met.
    n_iterations : int
        Newton iterations.
    hessian_min_eigenvalue : float
        Smallest eigenvalue of the Hessian on the free parameters at the end.
    at_bound : tuple of int
        Positions in θ of diagonal elements held at their bound 0 (a singular fit).
    """

    optimizer: str
    theta_start: np.ndarray
    theta_final: np.ndarray
    lower_bounds: np.ndarray
    objective: float
    n_evaluations: int
    gradient_norm: float
    newton_decrement: float
    elapsed_seconds: float
    message: str
    criterion: str
    decrement_tolerance: float = NEWTON_DECREMENT_TOLERANCE
    converged: bool = True
    n_iterations: int = 0
    hessian_min_eigenvalue: float = float("nan")
    at_bound: tuple[int, ...] = ()

    @property
    def convergence_criterion(self) -> str:
        """The rule ``converged`` applies, in words."""
        return (
            f"Newton decrement gᵀH⁻¹g ≤ {self.decrement_tolerance:g} (deviance units) with the "
            "Hessian positive definite on the parameters not held at a bound"
        )


# ------------------------------------------------------------------------------
# the profiled deviance
# ------------------------------------------------------------------------------
class ProfiledDeviance(ProfiledGaussian):
    """Profiled REML/ML deviance of a one-grouping-factor LMM as a function of θ.

    The kernel :class:`alsfrs.gaussian.ProfiledGaussian` built from model matrices.

    Parameters
    ----------
    matrices : ModelMatrices
    reml : bool
    """

    def __init__(self, matrices: ModelMatrices, reml: bool) -> None:
        super().__init__(matrices.statistics, matrices.blocks, reml)
        self.matrices = matrices


# ------------------------------------------------------------------------------
# optimisation
# ------------------------------------------------------------------------------
@dataclass
class _NewtonState:
    theta: np.ndarray
    ev: _Evaluation
    grad: np.ndarray
    hess: np.ndarray
    free: np.ndarray
    decrement: float
    min_eig: float
    grad_norm: float


def _newton_state(prof: ProfiledGaussian, ev: _Evaluation) -> _NewtonState:
    theta = ev.theta
    g = prof.gradient(ev)
    H = prof.hessian(ev)
    # a diagonal θ at 0 is held there when the deviance does not decrease off it:
    # gradient pointing outwards, or (gradient 0, the deviance being even in the last
    # diagonal element of a block) non-negative curvature
    at_zero = prof.is_diag & (theta <= 0.0)
    held = at_zero & ((g > 0.0) | ((g == 0.0) & (np.diag(H) >= 0.0)))
    free = ~held
    if not free.any():
        return _NewtonState(theta, ev, g, H, free, 0.0, np.inf, 0.0)
    gf = g[free]
    w, V = np.linalg.eigh(H[np.ix_(free, free)])
    scale = max(1.0, float(np.abs(w).max()))
    pd_ok = bool(np.all(w > 1e-12 * scale))
    decrement = float(gf @ V @ ((V.T @ gf) / w)) if pd_ok else math.inf
    return _NewtonState(theta, ev, g, H, free, decrement, float(w.min()),
                        float(np.max(np.abs(gf))))


def _newton(prof: ProfiledGaussian, theta0: np.ndarray,
            max_iter: int = MAX_NEWTON_ITERATIONS) -> tuple[_NewtonState, int, str]:
    """Projected Newton with eigenvalue modification and a backtracking line search."""
    ev = prof.evaluate(theta0)
    if not ev.ok:
        return None, 0, "the deviance is not finite at the start"  # type: ignore[return-value]
    st = _newton_state(prof, ev)
    radius = max(1.0, float(np.abs(theta0).max()))
    for it in range(1, max_iter + 1):
        if st.decrement <= NEWTON_DECREMENT_TARGET * max(1.0, 1e-6 * abs(st.ev.objective)):
            return st, it - 1, "Newton decrement below target"
        free = st.free
        gf = st.grad[free]
        w, V = np.linalg.eigh(st.hess[np.ix_(free, free)])
        floor = 1e-8 * max(1.0, float(np.abs(w).max()))
        step = -V @ ((V.T @ gf) / np.maximum(np.abs(w), floor))
        if w.min() < 0:  # add the direction of negative curvature, pointing downhill
            v = V[:, 0]
            v = -v if v @ gf > 0 else v
            step = step + v * max(float(np.linalg.norm(step)), 0.1 * radius)
        norm = float(np.linalg.norm(step))
        if norm > radius:
            step *= radius / norm
        f0 = st.ev.objective
        slope = float(gf @ step)
        t, accepted = 1.0, None
        for _ in range(40):
            cand = st.theta.copy()
            cand[free] += t * step
            cand = np.where(prof.is_diag, np.maximum(cand, 0.0), cand)
            ev1 = prof.evaluate(cand)
            if ev1.ok and ev1.objective <= f0 + 1e-4 * t * min(slope, 0.0):
                if ev1.objective < f0 or np.array_equal(cand, st.theta) is False:
                    accepted = ev1
                break
            t *= 0.5
        if accepted is None:
            return st, it, "line search could not decrease the deviance further"
        radius = min(1e6, 2.0 * radius) if t == 1.0 else max(t * norm, 1e-8)
        st = _newton_state(prof, accepted)
    return st, max_iter, f"stopped after {max_iter} Newton iterations"


def _probe_boundary(prof: ProfiledGaussian, theta: np.ndarray) -> np.ndarray | None:
    """A point off the boundary with a lower objective, if any diagonal θ sits at ~0."""
    at_zero = np.flatnonzero(prof.is_diag & (theta < SINGULAR_TOLERANCE))
    if at_zero.size == 0:
        return None
    f0 = prof.objective(theta)
    scale = max(float(np.max(np.abs(theta[prof.is_diag]))), 1e-2)
    best, best_f = None, f0 - 1e-9 * max(1.0, abs(f0))
    for k in at_zero:
        for t in scale * np.array([1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0]):
            cand = theta.copy()
            cand[k] = t
            f = prof.objective(cand)
            if f < best_f:
                best, best_f = cand, f
    return best


def _lbfgs(prof: ProfiledGaussian, x0: np.ndarray) -> np.ndarray:
    bounds = [(0.0, None) if d else (None, None) for d in prof.is_diag]
    res = optimize.minimize(
        prof.objective_and_gradient, x0, jac=True, method="L-BFGS-B", bounds=bounds,
        options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-8, "maxcor": 20},
    )
    return np.where(prof.is_diag, np.maximum(res.x, 0.0), res.x)


def _optimise(
    prof: ProfiledGaussian, start: np.ndarray | None
) -> tuple[np.ndarray, OptimizationRecord]:
    t0 = time.perf_counter()
    x0 = prof.moment_start() if start is None else np.asarray(start, dtype=float)
    if x0.shape != (prof.n_theta,):
        raise ValidationError(
            [Problem(rule="invalid_start", message=f"start must have {prof.n_theta} values")]
        )
    n_before = prof.n_evaluations
    names = ["Newton (analytic Hessian)"]
    st, iters, message = _newton(prof, x0)
    if start is None and (st is None or st.decrement > NEWTON_DECREMENT_TOLERANCE):
        # the moment start did not lead to a converged optimum: lme4's identity start
        x1 = prof.start()
        st1, it1, msg1 = _newton(prof, x1)
        iters += it1
        if st1 is not None and (st is None or st1.ev.objective <= st.ev.objective):
            st, message, x0 = st1, f"{msg1} (from the identity start)", x1
    if st is None:
        raise ConvergenceError(f"the deviance is not finite at the start θ = {x0}")
    # A diagonal θ at ~0 can be a false optimum (the deviance is even in the last diagonal
    # element of a block): probe off the boundary and restart Newton there if it helps.
    for _ in range(3):
        better = _probe_boundary(prof, st.theta)
        if better is None:
            break
        st2, it2, msg2 = _newton(prof, better)
        iters += it2
        if st2 is not None and st2.ev.objective < st.ev.objective:
            st, message = st2, f"{msg2} (restarted off the boundary)"
            names.append("Newton restart off the boundary")
        else:
            break
    if not st.decrement <= NEWTON_DECREMENT_TOLERANCE:
        # fallback: quasi-Newton from the best point so far, then Newton again
        cand = _lbfgs(prof, st.theta)
        st2, it2, msg2 = _newton(prof, cand)
        iters += it2
        names.append("L-BFGS-B + Newton")
        if st2 is not None and (st2.ev.objective <= st.ev.objective
                                or st2.decrement <= NEWTON_DECREMENT_TOLERANCE):
            st, message = st2, f"{msg2} (after an L-BFGS-B restart)"
    if not np.isfinite(st.ev.objective):
        raise ConvergenceError(
            f"the optimiser ended at a point where the deviance is not finite ({message})"
        )
    converged = bool(st.decrement <= NEWTON_DECREMENT_TOLERANCE)
    record = OptimizationRecord(
        optimizer=" + ".join(names),
        theta_start=x0.copy(),
        theta_final=st.theta.copy(),
        lower_bounds=prof.lower.copy(),
        objective=float(st.ev.objective),
        n_evaluations=prof.n_evaluations - n_before,
        gradient_norm=float(st.grad_norm),
        newton_decrement=float(st.decrement),
        elapsed_seconds=time.perf_counter() - t0,
        message=message,
        criterion="REML" if prof.reml else "ML",
        decrement_tolerance=NEWTON_DECREMENT_TOLERANCE,
        converged=converged,
        n_iterations=int(iters),
        hessian_min_eigenvalue=float(st.min_eig),
        at_bound=tuple(int(k) for k in np.flatnonzero(~st.free)),
    )
    return st.theta.copy(), record


# ------------------------------------------------------------------------------
# Satterthwaite (lmerTest)
# ------------------------------------------------------------------------------
def _satterthwaite(prof: ProfiledGaussian, ev: _Evaluation, sigma: float) -> dict[str, Any]:
    """lmerTest's ingredients: the covariance of (θ, σ) from the analytic Hessian of
    the deviance in (θ, σ), and the Jacobian of σ²(XᵀWX)⁻¹ in (θ, σ)."""
    h = prof.varpar_hessian(ev, sigma)
    w, V = np.linalg.eigh(h)
    pos = w > HESSIAN_EIGEN_TOLERANCE
    h_inv = (V[:, pos] / w[pos]) @ V[:, pos].T
    vcov_beta, jac = prof.covbeta_jacobian(ev, sigma)
    return {
        "vcov_varpar": 2.0 * h_inv,
        "jacobian": jac,
        "vcov_beta": vcov_beta,
        "hessian": h,
        "n_negative_eigen": int((w < -HESSIAN_EIGEN_TOLERANCE).sum()),
    }


def _satterthwaite_df(L: np.ndarray, sat: dict[str, Any]) -> float:
    """Satterthwaite df of the contrast ``L β`` (one row)."""
    L = np.asarray(L, dtype=float)
    var_con = float(L @ sat["vcov_beta"] @ L)
    grad = np.einsum("p,kpr,r->k", L, sat["jacobian"], L)
    denom = float(grad @ sat["vcov_varpar"] @ grad)
    if denom <= 0 or not np.isfinite(denom):
        return np.inf
    return 2.0 * var_con**2 / denom


def _satterthwaite_dfs(sat: dict[str, Any]) -> np.ndarray:
    """Satterthwaite df of every coefficient (vectorised over coefficients)."""
    V, J, C = sat["vcov_beta"], sat["jacobian"], sat["vcov_varpar"]
    var = np.diag(V)
    grad = np.einsum("kpp->pk", J)  # (p, k+1): ∂V_jj/∂varpar
    denom = np.einsum("pk,kl,pl->p", grad, C, grad)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where((denom > 0) & np.isfinite(denom), 2.0 * var**2 / denom, np.inf)
    return df


class _Deferred:
    """A value computed on first access (see :class:`_LazyField`)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn


class _LazyField:
    """A dataclass field that may be given as a :class:`_Deferred` and is then
    computed the first time it is read (and stored). Reads and writes otherwise
    behave as a plain attribute."""

    def __init__(self, default_factory: Callable[[], Any] | None = None) -> None:
        self.default = None if default_factory is None else _Deferred(default_factory)

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_lazy_{name}"

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:  # the dataclass default (none: a required field)
            if self.default is None:
                raise AttributeError(self.slot)
            return self.default
        value = obj.__dict__[self.slot]
        if isinstance(value, _Deferred):
            value = value.fn()
            obj.__dict__[self.slot] = value
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.slot] = value


# ------------------------------------------------------------------------------
# result
# ------------------------------------------------------------------------------
@dataclass(eq=False)
class LmmResult(LongitudinalResult):
    """A fitted linear mixed model (lme4 names and conventions).

    Attributes
    ----------
    fixed_effects : DataFrame
        Index: R term names. Columns ``estimate, std_error, df, t_value,
        p_value, ci_lower, ci_upper`` (Satterthwaite df and p, Wald 95% CI).
    variance_components : DataFrame
        As R's ``as.data.frame(VarCorr(fit))``: ``grp, var1, var2, vcov, sdcor``.
    random_effects : DataFrame
        Conditional modes (``ranef``), index = group label.
    random_effects_se : DataFrame
        Conditional standard deviations (``condVar``).
    coef : DataFrame
        Per-group coefficients: fixed + random (``coef``).
    reml_criterion, deviance, loglik, aic, bic : float
    nobs, ngroups : int
    converged, singular : bool
    optimization : OptimizationRecord
    vcov : DataFrame
        Covariance matrix of the fixed-effect estimates.
    sigma : float
        Residual standard deviation.
    theta : ndarray
        Relative covariance parameters (lme4's ``getME(fit, "theta")``).
    """

    formula: str
    reml: bool
    matrices: ModelMatrices
    fixed_effects: pd.DataFrame = _LazyField()  # type: ignore[assignment]
    variance_components: pd.DataFrame
    random_effects: pd.DataFrame = _LazyField()  # type: ignore[assignment]
    random_effects_se: pd.DataFrame = _LazyField()  # type: ignore[assignment]
    coef: pd.DataFrame = _LazyField()  # type: ignore[assignment]
    vcov: pd.DataFrame
    sigma: float
    theta: np.ndarray
    reml_criterion: float
    deviance: float
    loglik: float
    aic: float
    bic: float
    nobs: int
    ngroups: int
    converged: bool
    singular: bool
    optimization: OptimizationRecord
    satterthwaite: dict[str, Any] = _LazyField(dict)  # type: ignore[assignment]
    _data: pd.DataFrame | None = _LazyField(lambda: None)  # type: ignore[assignment]
    warnings: tuple[str, ...] = ()
    time_axis: str | None = None
    versions: dict[str, str] = field(repr=False, default_factory=versions)

    kind = "lmm"
    short_name = "LMM"

    @property
    def time(self) -> str:
        """The time variable: the stated ``time_axis``, else the random slope's variable."""
        mm = self.matrices
        return time_variable(mm.variables, mm.random_names, self.time_axis)

    @property
    def fixef(self) -> pd.Series:
        """Fixed-effect estimates (lme4's ``fixef``), without computing Satterthwaite df."""
        est = self.__dict__.get("_estimates")
        if est is None:
            return self.fixed_effects["estimate"]
        return pd.Series(est, index=pd.Index(self.vcov.index, name="term"), name="estimate")

    @property
    def n_parameters(self) -> int:
        """Number of estimated parameters (fixed effects, θ, σ), as lme4's logLik df."""
        return len(self.vcov) + self.theta.size + 1

    @property
    def df_residual(self) -> int:
        """``nobs − n_parameters`` (lme4's ``df.resid``)."""
        return self.nobs - self.n_parameters

    # -- prediction ----------------------------------------------------------------
    def predict(self, newdata: Any = None, include_random: bool = True) -> np.ndarray:
        """Predicted outcome.

        Parameters
        ----------
        newdata : DataFrame or object with ``to_frame()``, optional
            Covariates (and, for ``include_random``, the grouping column).
            Defaults to the data the model was fitted to.
        include_random : bool, default True
            Add each known group's conditional modes; groups not seen at fit
            time (or rows when ``False``) get the population prediction.

        Returns
        -------
        ndarray
            One prediction per row of ``newdata``.
        """
        mm = self.matrices
        beta = self.fixef.to_numpy()
        if newdata is None:
            pred = mm.X @ beta
            if include_random:
                b = self.random_effects.to_numpy()
                pred = pred + np.einsum("nq,nq->n", mm.Z, b[mm.group])
            return pred
        frame = as_frame(newdata)
        X = mm.fixed_design(frame)
        pred = X @ beta
        if include_random:
            if mm.grouping not in frame.columns:
                raise ValidationError(
                    [
                        Problem(
                            rule="unknown_column",
                            message=(
                                f"newdata has no {mm.grouping!r} column; add it or use "
                                "include_random=False for population predictions"
                            ),
                            column=mm.grouping,
                        )
                    ],
                    context="new data",
                )
            Z = mm.random_design(frame)
            known_labels = pd.Index(self.random_effects.index)
            labels = pd.Index(frame[mm.grouping].to_numpy())
            if known_labels.inferred_type == "string" and labels.inferred_type != "string":
                labels = labels.astype(str)  # e.g. integer ids in new data, strings at fit
            codes = known_labels.get_indexer(labels)
            known = codes >= 0
            b = self.random_effects.to_numpy()
            contrib = np.zeros(len(frame))
            contrib[known] = np.einsum("nq,nq->n", Z[known], b[codes[known]])
            pred = pred + contrib
        return pred

    def fitted(self) -> np.ndarray:
        """Fitted values (with the groups' conditional modes)."""
        return self.predict()

    def residuals(self) -> np.ndarray:
        """Response minus fitted values (conditional residuals)."""
        return self.matrices.y - self.fitted()

    # -- exposure effects ------------------------------------------------------------
    def exposure_effects(
        self,
        exposures: Sequence[str] | str | None = None,
        *,
        level: float = 0.95,
        margin: float = 0.1,
        time: str | None = None,
    ) -> pd.DataFrame:
        """Difference in monthly decline for each exposure, absolute and relative.

        For exposure ``e`` the difference is the coefficient of the
        ``time:e`` interaction (points per time unit), with a Wald interval.
        The reference slope is the fixed-effect slope ``d prediction / d time``
        averaged over the unexposed patients (``e == 0``) of the fitted data,
        a linear combination ``L β``, so other time interactions (e.g.
        ``months:onset_sitebulbar``) are averaged over the unexposed patients'
        covariates. ``percent_faster = −100 · difference / |reference_slope|``:
        positive when the exposed decline faster (reference −1.0/month,
        difference −0.2 → 20 % faster). Its interval uses the delta method with
        the covariance of (difference, reference slope).

        Parameters
        ----------
        exposures : str or sequence of str, optional
            Exposure columns. Default: every 0/1 variable in an interaction
            with ``time``.
        level : float, default 0.95
            Confidence level (normal quantiles).
        margin : float, default 0.1
            Accepted for a common signature with Bayesian fits (whose posterior
            probabilities use it); a point-estimate fit has no such probability.
        time : str, optional
            The time variable (default: the model's, :attr:`time`).

        Returns
        -------
        DataFrame
            Index ``exposure``; columns ``term, difference, std_error,
            ci_lower, ci_upper, reference_slope, percent_faster,
            percent_lower, percent_upper``.
        """
        if not 0 < level < 1:
            raise ValidationError(
                [Problem(rule="invalid_level", message="level must be in (0, 1)")]
            )
        contrasts = exposure_contrasts(self.matrices, self._data, exposures,
                                       self.time if time is None else time)
        beta = self.fixef.to_numpy()
        V = self.vcov.to_numpy()
        z = stats.norm.ppf(0.5 + level / 2)
        rows = []
        for c in contrasts:
            j, L = c.index, c.reference
            ref = float(L @ beta)
            diff = float(beta[j])
            var_d = float(V[j, j])
            se = math.sqrt(var_d)
            cov_dr = float(V[j] @ L)
            var_r = float(L @ V @ L)
            pct = -100.0 * diff / abs(ref)
            # delta method for -100 d / |r|
            d_dd = -100.0 / abs(ref)
            d_dr = 100.0 * diff * math.copysign(1.0, ref) / ref**2
            var_p = d_dd**2 * var_d + 2 * d_dd * d_dr * cov_dr + d_dr**2 * var_r
            se_p = math.sqrt(max(var_p, 0.0))
            rows.append(
                {
                    "exposure": c.exposure,
                    "term": c.term,
                    "difference": diff,
                    "std_error": se,
                    "ci_lower": diff - z * se,
                    "ci_upper": diff + z * se,
                    "reference_slope": ref,
                    "percent_faster": pct,
                    "percent_lower": pct - z * se_p,
                    "percent_upper": pct + z * se_p,
                }
            )
        out = pd.DataFrame(rows, columns=["exposure", *EFFECT_COLUMNS]).set_index("exposure")
        out.attrs.update({"level": level, "interval": "Wald (normal)"})
        return out

    # -- the result contract -------------------------------------------------------------
    def parameters(self, level: float = 0.95) -> pd.DataFrame:
        """Every parameter: fixed effects with Wald intervals; variance parameters
        (``sd__``/``cor__`` names, as broom.mixed) as point estimates."""
        z = stats.norm.ppf(0.5 + level / 2)
        fe = self.fixed_effects
        out = pd.DataFrame({"estimate": fe["estimate"], "std_error": fe["std_error"],
                            "ci_lower": fe["estimate"] - z * fe["std_error"],
                            "ci_upper": fe["estimate"] + z * fe["std_error"]})
        var = _variance_terms(self.variance_components).assign(
            std_error=np.nan, ci_lower=np.nan, ci_upper=np.nan)
        out = pd.concat([out, var])
        out.index.name = "term"
        out.attrs["interval"] = f"Wald {100 * level:g}%"
        return out

    def slope_sd_draws(self) -> float:
        vc = self.variance_components
        row = vc[(vc["var1"] == self.time) & vc["var2"].isna()]
        return float(row["sdcor"].iloc[0]) if len(row) else float("nan")

    def summary(self) -> pd.DataFrame:
        """Raw numbers: fixed effects (estimate, SE, Satterthwaite df, t, p, Wald 95%
        interval) and variance parameters (``sd__<term>``, ``cor__<a>.<b>``,
        ``sd__Observation``; estimate only), one row each."""
        fe = self.fixed_effects
        out = pd.DataFrame({"estimate": fe["estimate"], "std_error": fe["std_error"],
                            "df": fe["df"], "t_value": fe["t_value"], "p_value": fe["p_value"],
                            "ci_lower_95": fe["ci_lower"], "ci_upper_95": fe["ci_upper"]})
        var = _variance_terms(self.variance_components)
        out = pd.concat([out, var.reindex(columns=out.columns)])
        out.index.name = "term"
        return out

    def diagnostics(self) -> pd.DataFrame:
        """Optimisation and fit checks, judged from the optimisation record.

        * optimiser converged: the optimiser's own verdict and a stationary end point;
        * Newton decrement ``gᵀH⁻¹g`` at the end (deviance units), against its tolerance
          (a quadratic model of the deviance says the optimum is closer than this);
        * singular fit: a diagonal element of Λ at 0 (a variance at zero or |ρ| = 1);
        * Satterthwaite Hessian positive definite (lmerTest's df are reliable).
        """
        opt = self.optimization
        nd = float(opt.newton_decrement)
        stationary = bool(np.isfinite(nd) and nd < NEWTON_DECREMENT_TOLERANCE)
        rows = [
            ("optimiser converged", bool(self.converged) and stationary, "yes",
             bool(self.converged) and stationary, opt.message),
            ("Newton decrement at the end", nd, f"< {NEWTON_DECREMENT_TOLERANCE:g}", stationary,
             f"{opt.n_evaluations} evaluations; gradient max-norm {opt.gradient_norm:.2g}"),
            ("singular fit", bool(self.singular), "no", not bool(self.singular),
             "a variance at zero or a correlation of ±1" if self.singular else ""),
        ]
        if "n_negative_eigen" in self.satterthwaite:
            k = int(self.satterthwaite["n_negative_eigen"])
            rows.append(("negative Hessian eigenvalues (Satterthwaite)", k, "0", k == 0,
                         "df may be unreliable" if k else ""))
        return diagnostics_frame(rows)

    @property
    def model_spec(self) -> ModelRecord:
        return ModelRecord(formula=self.formula, engine="lmm",
                           settings={"criterion": "REML" if self.reml else "ML",
                                     "optimizer": self.optimization.optimizer,
                                     "time": self.time,
                                     "inference": "Satterthwaite df (lmerTest), Wald intervals"},
                           seed=None, versions=dict(self.versions))

    def _display(self) -> Display:
        crit = "REML" if self.reml else "maximum likelihood"
        header = [("Formula", self.formula),
                  ("Observations", f"{self.nobs}; groups ({self.matrices.grouping}): "
                                   f"{self.ngroups}")]
        if self.reml:
            header.append(("REML criterion at convergence", f"{self.reml_criterion:.4f}"))
        else:
            header.append(("Fit", f"AIC {self.aic:.4f}  BIC {self.bic:.4f}  logLik "
                                  f"{self.loglik:.4f}  deviance {self.deviance:.4f}  "
                                  f"df.resid {self.df_residual}"))
        vc = self.variance_components.copy()
        vc = vc.assign(var1=vc["var1"].fillna(""), var2=vc["var2"].fillna(""))
        fe = self.fixed_effects.rename(columns={"ci_lower": "ci_lower_95",
                                                "ci_upper": "ci_upper_95"})
        opt = self.optimization
        notes = [*self.warnings,
                 f"optimizer {opt.optimizer}: {opt.n_evaluations} evaluations, Newton "
                 f"decrement {opt.newton_decrement:.2g}, {opt.elapsed_seconds:.3f} s"]
        return Display(title=f"Linear mixed model fit by {crit}", header=header,
                       tables=[DisplayTable("Random effects", vc, digits=4, index=False),
                               DisplayTable("Fixed effects (Satterthwaite df; Wald 95% CI)",
                                            fe, digits=4)],
                       notes=notes)

    def _to_payload(self, **options: Any) -> Payload:
        skip = {"matrices", "_data"}
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name not in skip}
        fields["optimization"] = dataclasses.asdict(self.optimization)
        return Payload(fields=fields, tables={"data": self.data})

    @classmethod
    def _from_payload(cls, payload: Payload) -> LmmResult:
        fields = dict(payload.fields)
        data = payload.tables["data"]
        fields["optimization"] = OptimizationRecord(**fields["optimization"])
        fields["warnings"] = tuple(fields.get("warnings", ()))
        matrices = build_model_matrices(fields["formula"], data)
        return cls(matrices=matrices, _data=data, **fields)

    def __repr__(self) -> str:
        crit = (
            f"REML criterion {self.reml_criterion:.4f}"
            if self.reml
            else f"deviance {self.deviance:.4f}"
        )
        return (
            f"<LmmResult {self.formula!r}: {self.nobs} obs, {self.ngroups} groups, {crit}"
            f"{', singular' if self.singular else ''}>"
        )


# ------------------------------------------------------------------------------
# fitting
# ------------------------------------------------------------------------------
def fit_lmm(
    formula: str, data: Any, reml: bool = True, *, start: Sequence[float] | None = None,
    time: str | None = None,
) -> LmmResult:
    """Fit a linear mixed-effects model with one grouping factor.

    Parameters
    ----------
    formula : str
        lme4-style formula, e.g.
        ``"alsfrs_r ~ months * antidepressant + age_at_dx + (months | patient_id)"``.
        Random-effects terms ``(1 | g)``, ``(x | g)``, ``(x + I(x^2) | g)``,
        ``(0 + x | g)`` and ``(x || g)`` (uncorrelated), all with the same
        grouping factor ``g``.
    data : DataFrame or object with ``to_frame()`` (e.g. :class:`alsfrs.Cohort`)
        Long data, one row per visit.
    reml : bool, default True
        Restricted maximum likelihood (default) or maximum likelihood (needed
        for likelihood-ratio tests of fixed effects, see :func:`lrt`).
    start : sequence of float, optional
        Starting θ (default: method-of-moments estimates from per-patient
        least squares for one or two random effects per patient, else lme4's
        identity start; the identity start is tried too when the first does
        not converge).
    time : str, optional
        The model's time variable (e.g. ``"months_since_onset"``), used for exposure
        effects, figures and reports. Default: the random slope's variable.

    Returns
    -------
    LmmResult
        Satterthwaite degrees of freedom and p-values are computed the first
        time ``fixed_effects`` is read (``fixef`` and ``vcov`` do not need them).

    Raises
    ------
    alsfrs.errors.ValidationError
        Bad formula or data (the cause is named).
    ConvergenceError
        The deviance is not finite where the optimiser ended.

    Warns
    -----
    SingularFitWarning
        The random-effects covariance is singular (a diagonal element of
        ``Λ`` below 1e-4: a variance at zero or a correlation at ±1).
    ConvergenceWarning
        The Newton decrement did not fall below its tolerance
        (``result.optimization``; ``result.converged`` is then False).

    See Also
    --------
    LmmFitter : the same fit, repeated on many data sets of one formula (faster).

    Notes
    -----
    ``fit_lmm`` keeps an :class:`LmmFitter` for each of the 16 most recent
    formulas, so calling it in a loop with one formula is as fast as
    ``LmmFitter(formula).fit``.
    """
    return _fitter(formula, bool(reml)).fit(data, start=start, time=time)


@functools.lru_cache(maxsize=16)
def _fitter(formula: str, reml: bool) -> LmmFitter:
    """One :class:`LmmFitter` per recent formula, so that repeated ``fit_lmm`` calls
    with one formula (bootstraps, simulations) reuse its parsed formula and design plan.
    The plan is checked on every data set (anything it does not cover takes the full
    path), so the numbers never depend on what was fitted before."""
    return LmmFitter(formula, reml=reml)


class LmmFitter:
    """Fit one formula to many data sets (trial simulations, bootstraps).

    The formula is parsed once; the first data set builds the design matrices
    through formulaic (with every check of :func:`fit_lmm`); from the second on,
    a *design plan* made from the first is used: how each column of X and Z is
    made from the data's columns (intercept, numeric columns, treatment-coded
    factor levels and their products). Later data sets with the same columns,
    factor levels and types are turned into matrices by that plan in NumPy (no formula machinery),
    with the same checks for missing values, constant covariates and rank;
    anything the plan cannot reproduce exactly goes through the full path.
    Satterthwaite df are computed only when ``fixed_effects`` is read.

    Parameters
    ----------
    formula : str or MixedFormula
    reml : bool, default True

    Examples
    --------
    >>> fitter = LmmFitter("alsfrs_r ~ months * arm + (months | patient_id)")  # doctest: +SKIP
    >>> slopes = [fitter.fit(sim).fixef["months:arm"] for sim in simulations]  # doctest: +SKIP
    """

    def __init__(self, formula: str | MixedFormula, reml: bool = True) -> None:
        self.formula = formula if isinstance(formula, MixedFormula) else parse_formula(formula)
        self.reml = bool(reml)
        self._plan: DesignPlan | None = None
        self._plan_tried = False
        self._first: tuple[ModelMatrices, pd.DataFrame] | None = None

    def matrices(self, data: Any) -> ModelMatrices:
        """Model matrices of ``data`` (by the design plan when it applies)."""
        frame = as_frame(data)
        if not self._plan_tried and self._first is not None:
            # second data set: make the plan from the first (a one-off fit never pays it)
            self._plan_tried = True
            self._plan = DesignPlan.from_matrices(*self._first)
            self._first = None
        if self._plan is not None:
            mm = self._plan.build(frame)
            if mm is not None:
                return mm
        mm = build_model_matrices(self.formula, frame)
        if not self._plan_tried and self._first is None:
            self._first = (mm, frame)
        return mm

    def fit(self, data: Any, *, start: Sequence[float] | None = None,
            time: str | None = None) -> LmmResult:
        """Fit the formula to ``data``; see :func:`fit_lmm`."""
        with _single_threaded_blas():
            frame = as_frame(data)
            matrices = self.matrices(frame)
            result = _fit_matrices(matrices, frame, self.reml, start)
        if time is not None:
            mm = result.matrices
            time_variable(mm.variables, mm.random_names, time)  # a clear error if absent
            result.time_axis = time
        return result


@contextlib.contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """Run BLAS single-threaded: every matrix here is small (p×p, q×q stacks), and a
    multi-threaded BLAS spends far more time synchronising threads than computing."""
    from alsfrs.threads import blas_threads

    with blas_threads(1):
        yield


@functools.cache
def _package_versions() -> dict[str, str]:
    """The versions a result records, read once per process: reading package
    metadata costs tens of milliseconds, more than a small fit."""
    return versions()


def _fixed_effects_table(names: list[str], beta: np.ndarray, vcov: np.ndarray,
                         sat: Callable[[], dict[str, Any]]) -> pd.DataFrame:
    se = np.sqrt(np.diag(vcov))
    dfs = _satterthwaite_dfs(sat())
    tval = beta / se
    pval = 2 * stats.t.sf(np.abs(tval), dfs)
    z = 1.959963984540054
    return pd.DataFrame(
        {
            "estimate": beta,
            "std_error": se,
            "df": dfs,
            "t_value": tval,
            "p_value": pval,
            "ci_lower": beta - z * se,
            "ci_upper": beta + z * se,
        },
        index=pd.Index(names, name="term", dtype=object),
    )


def _fit_matrices(matrices: ModelMatrices, frame: pd.DataFrame, reml: bool,
                  start: Sequence[float] | None) -> LmmResult:
    prof = ProfiledDeviance(matrices, reml=bool(reml))
    theta, record = _optimise(prof, None if start is None else np.asarray(start, float))
    ev = prof.evaluate(theta)
    n, p = matrices.n_obs, matrices.n_fixed
    sigma2 = ev.r2 / (n - p) if reml else ev.r2 / n
    sigma = math.sqrt(sigma2)
    names = list(matrices.fixed_names)
    vcov = sigma2 * ev.P
    beta = ev.beta

    sat_cache: dict[str, Any] = {}

    def sat() -> dict[str, Any]:
        if not sat_cache:
            sat_cache.update(_satterthwaite(prof, ev, sigma))
        return sat_cache

    # variance components
    Lam = ev.Lam
    Sigma = sigma2 * (Lam @ Lam.T)
    rnames = matrices.random_names
    vc_rows = []
    for block, grp in zip(matrices.blocks, matrices.block_names, strict=True):
        for a in block:
            vc_rows.append((grp, rnames[a], None, Sigma[a, a], math.sqrt(max(Sigma[a, a], 0.0))))
        for ia, a in enumerate(block):
            for b in block[ia + 1 :]:
                denom = math.sqrt(Sigma[a, a] * Sigma[b, b])
                corr = Sigma[a, b] / denom if denom > 0 else np.nan
                vc_rows.append((grp, rnames[a], rnames[b], Sigma[a, b], corr))
    vc_rows.append(("Residual", None, None, sigma2, sigma))
    vc_cols = list(zip(*vc_rows, strict=True))
    variance_components = pd.DataFrame(
        {
            "grp": pd.Series(vc_cols[0], dtype=object),
            "var1": pd.Series(vc_cols[1], dtype=object),
            "var2": pd.Series(vc_cols[2], dtype=object),
            "vcov": np.asarray(vc_cols[3], dtype=float),
            "sdcor": np.asarray(vc_cols[4], dtype=float),
        }
    )

    # conditional modes and variances (built when first read)
    gindex = matrices.group_labels

    def modes() -> np.ndarray:
        st = matrices.statistics
        Zte = st.Zty - st.ZtX @ beta
        return (ev.K @ Zte[:, :, None])[:, :, 0]

    def ranef() -> pd.DataFrame:
        return pd.DataFrame(modes(), index=gindex, columns=list(rnames))

    def ranef_se() -> pd.DataFrame:
        cond_sd = np.sqrt(np.maximum(sigma2 * np.diagonal(ev.K, axis1=1, axis2=2), 0.0))
        return pd.DataFrame(cond_sd, index=gindex, columns=list(rnames))

    def coef() -> pd.DataFrame:
        b = modes()
        values = np.broadcast_to(beta, (len(gindex), p)).copy()
        coef_names = list(names)
        extra = []
        for k, nm in enumerate(rnames):
            if nm in names:
                values[:, names.index(nm)] += b[:, k]
            else:
                extra.append(k)
                coef_names.append(nm)
        if extra:
            values = np.hstack([values, b[:, extra]])
        return pd.DataFrame(values, index=gindex, columns=coef_names)

    n_par = p + prof.n_theta + 1
    objective = ev.objective
    loglik = -0.5 * objective
    aic = -2 * loglik + 2 * n_par
    bic = -2 * loglik + n_par * math.log(n)
    diag_theta = theta[prof.is_diag]
    singular = bool(np.any(diag_theta < SINGULAR_TOLERANCE))
    notes: list[str] = []
    if singular:
        msg = (
            "boundary (singular) fit: the random-effects covariance matrix is singular "
            "(a variance estimated as zero, or a correlation of ±1) — see "
            "result.variance_components; consider a simpler random-effects structure"
        )
        notes.append(msg)
        warnings.warn(msg, SingularFitWarning, stacklevel=4)
    if not record.converged:
        msg = (
            "the optimiser did not meet its convergence criterion: Newton decrement "
            f"{record.newton_decrement:.3g} > {record.decrement_tolerance:g} "
            f"({record.message}); check the model (over-parameterised random effects?) "
            "and the data — see result.optimization"
        )
        notes.append(msg)
        warnings.warn(msg, ConvergenceWarning, stacklevel=4)
    result = LmmResult(
        versions=dict(_package_versions()),
        formula=matrices.formula.text,
        reml=bool(reml),
        matrices=matrices,
        fixed_effects=_Deferred(lambda: _fixed_effects_table(names, beta, vcov, sat)),
        variance_components=variance_components,
        random_effects=_Deferred(ranef),
        random_effects_se=_Deferred(ranef_se),
        coef=_Deferred(coef),
        vcov=pd.DataFrame(vcov, index=names, columns=names),
        sigma=sigma,
        theta=theta.copy(),
        reml_criterion=float(objective) if reml else float("nan"),
        deviance=float(ev.deviance_ml),
        loglik=float(loglik),
        aic=float(aic),
        bic=float(bic),
        nobs=n,
        ngroups=matrices.n_groups,
        converged=record.converged,
        singular=singular,
        optimization=record,
        satterthwaite=_Deferred(sat),
        _data=_Deferred(lambda: frame[list(matrices.variables)].copy()),
        warnings=tuple(notes),
    )
    result.__dict__["_estimates"] = beta
    return result


# ------------------------------------------------------------------------------
# likelihood-ratio test
# ------------------------------------------------------------------------------
def lrt(fit_small: LmmResult, fit_big: LmmResult) -> pd.DataFrame:
    """Likelihood-ratio test of two nested ML fits on the same data.

    Parameters
    ----------
    fit_small, fit_big : LmmResult
        ML fits (``reml=False``); ``fit_small``'s fixed and random effects
        must be a subset of ``fit_big``'s.

    Returns
    -------
    DataFrame
        One row: ``chisq, df, p_value`` (plus both deviances).

    Raises
    ------
    alsfrs.errors.ValidationError
        A REML fit (REML criteria of models with different fixed effects are
        not comparable), different data, or models that are not nested.
    """
    problems = []
    for label, fit in (("fit_small", fit_small), ("fit_big", fit_big)):
        if not isinstance(fit, LmmResult):
            raise ValidationError(
                [Problem(rule="invalid_fit", message=f"{label} is not an LmmResult")]
            )
        if fit.reml:
            problems.append(
                Problem(
                    rule="reml_fit",
                    message=(
                        f"{label} was fitted by REML; REML likelihoods depend on the fixed-effects "
                        "design, so models with different fixed effects cannot be compared — "
                        "refit both with reml=False"
                    ),
                )
            )
    if problems:
        raise ValidationError(problems, context="lrt")
    ms, mb = fit_small.matrices, fit_big.matrices
    same_data = (
        ms.n_obs == mb.n_obs
        and ms.response == mb.response
        and ms.grouping == mb.grouping
        and np.array_equal(ms.y, mb.y)
        and np.array_equal(ms.group_labels.to_numpy(), mb.group_labels.to_numpy())
        and np.array_equal(ms.group, mb.group)
    )
    if not same_data:
        raise ValidationError(
            [
                Problem(
                    rule="different_data",
                    message="the two fits were not fitted to the same observations",
                )
            ],
            context="lrt",
        )
    k_s, k_b = fit_small.n_parameters, fit_big.n_parameters
    fixed_nested = set(ms.fixed_names) <= set(mb.fixed_names)
    random_nested = set(ms.random_names) <= set(mb.random_names) and _blocks_nested(ms, mb)
    if not (fixed_nested and random_nested) or k_s >= k_b:
        raise ValidationError(
            [
                Problem(
                    rule="not_nested",
                    message=(
                        "fit_small is not nested in fit_big (its fixed and random effects must be "
                        "a subset of fit_big's, with fewer parameters)"
                    ),
                )
            ],
            context="lrt",
        )
    chisq = fit_small.deviance - fit_big.deviance
    df = k_b - k_s
    p = float(stats.chi2.sf(max(chisq, 0.0), df))
    return pd.DataFrame(
        {
            "deviance_small": [fit_small.deviance],
            "deviance_big": [fit_big.deviance],
            "chisq": [chisq],
            "df": [df],
            "p_value": [p],
        }
    )


def _blocks_nested(ms: ModelMatrices, mb: ModelMatrices) -> bool:
    """Every correlated pair of the small model is correlated in the big one."""

    def pairs(mm: ModelMatrices) -> set[frozenset[str]]:
        out = set()
        for block in mm.blocks:
            names = [mm.random_names[k] for k in block]
            for i, a in enumerate(names):
                for b in names[i + 1 :]:
                    out.add(frozenset((a, b)))
        return out

    return pairs(ms) <= pairs(mb)


# ------------------------------------------------------------------------------
# variance parameters by broom.mixed names
# ------------------------------------------------------------------------------
def _variance_terms(vc: pd.DataFrame) -> pd.DataFrame:
    """``sd__<term>``, ``cor__<a>.<b>`` and ``sd__Observation`` with their estimates."""
    names = []
    for _, r in vc.iterrows():
        if r["grp"] == "Residual":
            names.append("sd__Observation")
        elif pd.isna(r["var2"]):
            names.append(f"sd__{r['var1']}")
        else:
            names.append(f"cor__{r['var1']}.{r['var2']}")
    return pd.DataFrame({"estimate": vc["sdcor"].to_numpy(dtype=float)},
                        index=pd.Index(names, name="term", dtype=object))
