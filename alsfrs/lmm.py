"""Linear mixed-effects models with one grouping factor (REML / ML).

:func:`fit_lmm` fits an lme4-style model such as::

    alsfrs_r ~ months * (anxiolytic + hypnotic) + age_at_dx + sex + (months | patient_id)

by minimising the *profiled* deviance over the relative covariance factor
``θ`` (the lower-Cholesky elements of ``Λ``, with ``Σ_b = σ² ΛΛᵀ``), as lme4
and MixedModels.jl do, with the fixed effects ``β`` and the residual variance
``σ²`` profiled out. Because there is one grouping factor, the penalised
least-squares problem is block diagonal: every evaluation works from the
per-patient sufficient statistics of :mod:`alsfrs.matrices`, vectorised over
patients, so its cost is ``O(m q³ + m q² p + p³)`` whatever the number of
visits.

Results use lme4's names and conventions (``fixef``, ``VarCorr``, ``ranef``,
``condVar``, ``coef``, ``REMLcrit``, ``deviance``); denominator degrees of
freedom and p-values of the fixed effects follow lmerTest's Satterthwaite
method. The profiled deviance has an analytic gradient (see
``docs/lmm.md``), used both by the optimiser (L-BFGS-B, polished by Newton
steps) and for the Satterthwaite Hessian and Jacobian.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from alsfrs.effects import EFFECT_COLUMNS, exposure_contrasts
from alsfrs.errors import Problem, ValidationError
from alsfrs.longitudinal import LongitudinalResult
from alsfrs.matrices import ModelMatrices, as_frame, build_model_matrices
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
#: Largest acceptable absolute gradient of the deviance w.r.t. free θ.
GRADIENT_TOLERANCE = 1e-3
#: Eigenvalue tolerance of lmerTest's generalised inverse of the deviance Hessian.
HESSIAN_EIGEN_TOLERANCE = 1e-8


class SingularFitWarning(UserWarning):
    """A random-effects covariance matrix is singular (a variance at zero or |ρ| = 1)."""


class ConvergenceError(RuntimeError):
    """The optimiser did not reach an optimum; no results are returned."""


@dataclass(frozen=True)
class OptimizationRecord:
    """What the optimiser did (as MixedModels.jl's ``OptSummary``).

    Attributes
    ----------
    optimizer : str
        Optimiser(s) used, e.g. ``"L-BFGS-B + Newton"``.
    theta_start, theta_final : ndarray
        Start and end values of ``θ`` (lme4 order: lower triangle of each
        block, column by column).
    lower_bounds : ndarray
        Lower bounds of ``θ`` (0 for diagonal elements, -inf otherwise).
    objective : float
        Final value of the profiled objective (REML criterion or deviance).
    n_evaluations : int
        Number of objective (and gradient) evaluations.
    gradient_norm : float
        Max-norm of the projected gradient at the end.
    newton_decrement : float
        ``gᵀH⁻¹g`` over the free parameters at the end (deviance units).
    elapsed_seconds : float
        Wall time of the optimisation.
    message : str
        Optimiser's final message.
    criterion : str
        ``"REML"`` or ``"ML"``.
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


# ------------------------------------------------------------------------------
# the profiled deviance
# ------------------------------------------------------------------------------
@dataclass
class _Evaluation:
    """Intermediate quantities of one evaluation of the profiled deviance."""

    theta: np.ndarray
    Lam: np.ndarray
    K: np.ndarray  # (m, q, q)  Λ A⁻¹ Λᵀ
    ldL2: float
    XtWX: np.ndarray
    chol_XtWX: np.ndarray
    beta: np.ndarray
    r2: float
    ldRX2: float
    objective: float
    deviance_ml: float
    ok: bool = True
    P: np.ndarray | None = None  # (XᵀWX)⁻¹


class ProfiledDeviance:
    """Profiled REML/ML deviance of a one-grouping-factor LMM as a function of θ.

    Parameters
    ----------
    matrices : ModelMatrices
    reml : bool
    """

    def __init__(self, matrices: ModelMatrices, reml: bool) -> None:
        self.matrices = matrices
        self.reml = reml
        st = matrices.statistics
        self.G = st.ZtZ
        self.ZtX = st.ZtX
        self.Zty = st.Zty
        self.XtX = st.XtX
        self.Xty = st.Xty
        self.yty = st.yty_total
        self.n = st.n_obs
        self.p = st.XtX.shape[0]
        self.q = st.ZtZ.shape[1]
        rows, cols, diag = [], [], []
        for block in matrices.blocks:
            k = len(block)
            for c in range(k):
                for r in range(c, k):
                    rows.append(block[r])
                    cols.append(block[c])
                    diag.append(r == c)
        self.rows = np.array(rows, dtype=np.intp)
        self.cols = np.array(cols, dtype=np.intp)
        self.is_diag = np.array(diag, dtype=bool)
        self.lower = np.where(self.is_diag, 0.0, -np.inf)
        self.n_evaluations = 0
        self._eye = np.eye(self.q)
        self._ZtX_flat = self.ZtX.reshape(-1, self.p)

    @property
    def n_theta(self) -> int:
        return int(self.rows.size)

    def start(self) -> np.ndarray:
        """lme4's default start: identity Λ."""
        return self.is_diag.astype(float)

    def Lambda(self, theta: np.ndarray) -> np.ndarray:
        Lam = np.zeros((self.q, self.q))
        Lam[self.rows, self.cols] = theta
        return Lam

    def evaluate(self, theta: np.ndarray) -> _Evaluation:
        """Evaluate the profiled objective at ``theta``."""
        self.n_evaluations += 1
        theta = np.asarray(theta, dtype=float)
        Lam = self.Lambda(theta)
        A = Lam.T @ self.G @ Lam
        A[:, range(self.q), range(self.q)] += 1.0
        Ainv, ldL2 = _spd_inverse_logdet(A)
        K = Lam @ Ainv @ Lam.T  # Λ A⁻¹ Λᵀ, (m, q, q)
        m, q, p = self.ZtX.shape
        KZX = K @ self.ZtX
        KZy = (K @ self.Zty[:, :, None])[:, :, 0]
        XtWX = self.XtX - self._ZtX_flat.T @ KZX.reshape(m * q, p)
        XtWy = self.Xty - self._ZtX_flat.T @ KZy.reshape(m * q)
        ytWy = self.yty - float(self.Zty.reshape(-1) @ KZy.reshape(-1))
        XtWX = 0.5 * (XtWX + XtWX.T)
        try:
            R = np.linalg.cholesky(XtWX)
        except np.linalg.LinAlgError:
            return _Evaluation(
                theta,
                Lam,
                K,
                ldL2,
                XtWX,
                np.full_like(XtWX, np.nan),
                np.full(self.p, np.nan),
                np.nan,
                np.nan,
                np.inf,
                np.inf,
                ok=False,
            )
        P = _chol_inverse(R)
        beta = P @ XtWy
        r2 = ytWy - float(beta @ XtWy)
        ldRX2 = 2.0 * float(np.log(np.diag(R)).sum())
        n = self.n
        if not (r2 > 0 and np.isfinite(r2) and np.isfinite(ldL2)):
            return _Evaluation(
                theta, Lam, K, ldL2, XtWX, R, beta, r2, ldRX2, np.inf, np.inf, ok=False
            )
        deviance_ml = ldL2 + n * (1.0 + math.log(2.0 * math.pi * r2 / n))
        if self.reml:
            objective = ldL2 + ldRX2 + (n - p) * (1.0 + math.log(2.0 * math.pi * r2 / (n - p)))
        else:
            objective = deviance_ml
        ev = _Evaluation(theta, Lam, K, ldL2, XtWX, R, beta, r2, ldRX2, objective, deviance_ml)
        ev.P = P
        return ev

    # -- gradients ---------------------------------------------------------------
    def _gamma_parts(
        self, ev: _Evaluation
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Σ Mᵢ, Σ sᵢsᵢᵀ, Σ Hᵢ P Hᵢᵀ and the stacked Hᵢ = ZᵢᵀWᵢXᵢ.

        With Wᵢ = (I + ZᵢDZᵢᵀ)⁻¹ = I − ZᵢKᵢZᵢᵀ: Mᵢ = ZᵢᵀWᵢZᵢ, sᵢ = ZᵢᵀWᵢeᵢ
        (eᵢ = yᵢ − Xᵢβ̂) and P = (XᵀWX)⁻¹; the D-gradient of each objective is a
        combination of these three q×q sums.
        """
        G, K = self.G, ev.K
        m, q, p = self.ZtX.shape
        I_GK = -(G @ K)
        I_GK[:, range(q), range(q)] += 1.0  # I − GᵢKᵢ
        M = (I_GK @ G).sum(axis=0)
        Zte = self.Zty - (self.ZtX @ ev.beta)
        s = (I_GK @ Zte[:, :, None])[:, :, 0]
        S = s.T @ s
        H = I_GK @ self.ZtX  # (m, q, p)
        if self.reml:
            HP = (H.reshape(m * q, p) @ ev.P).reshape(m, q, p)
            HPH = np.tensordot(HP, H, axes=([0, 2], [0, 2]))
        else:
            HPH = np.zeros_like(M)
        return M, S, HPH, H

    def _theta_gradient(self, Gamma: np.ndarray, Lam: np.ndarray) -> np.ndarray:
        """∂f/∂θ from the symmetric D-gradient Γ (df = tr(Γ dD), D = ΛΛᵀ)."""
        dLam = 2.0 * Gamma @ Lam
        return dLam[self.rows, self.cols]

    def objective_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        ev = self.evaluate(theta)
        if not ev.ok:
            return np.inf, np.zeros_like(np.asarray(theta, dtype=float))
        return ev.objective, self.gradient(ev)

    def gradient(self, ev: _Evaluation) -> np.ndarray:
        """Analytic gradient of the profiled objective w.r.t. θ."""
        M, S, HPH, _ = self._gamma_parts(ev)
        c = (self.n - self.p) if self.reml else self.n
        Gamma = M - (c / ev.r2) * S - HPH
        return self._theta_gradient(0.5 * (Gamma + Gamma.T), ev.Lam)

    # -- lmerTest's deviance in (θ, σ) ---------------------------------------------
    def varpar_gradient(self, varpar: np.ndarray) -> np.ndarray:
        """Gradient of lmerTest's ``devfun_vp(θ, σ)`` (not profiled over σ)."""
        theta, sigma = varpar[:-1], float(varpar[-1])
        ev = self.evaluate(theta)
        M, S, HPH, _ = self._gamma_parts(ev)
        Gamma = M - S / sigma**2 - HPH
        g_theta = self._theta_gradient(0.5 * (Gamma + Gamma.T), ev.Lam)
        n_eff = self.n - (self.p if self.reml else 0)
        g_sigma = -2.0 * ev.r2 / sigma**3 + 2.0 * n_eff / sigma
        return np.append(g_theta, g_sigma)

    def varpar_deviance(self, varpar: np.ndarray) -> float:
        """lmerTest's ``devfun_vp``: the (RE)ML deviance as a function of (θ, σ)."""
        theta, sigma = varpar[:-1], float(varpar[-1])
        ev = self.evaluate(theta)
        s2 = sigma**2
        dev = ev.ldL2 + ev.r2 / s2 + self.n * math.log(2 * math.pi * s2)
        if self.reml:
            dev += ev.ldRX2 - self.p * math.log(2 * math.pi * s2)
        return dev

    def covbeta_jacobian(self, ev: _Evaluation, sigma: float) -> tuple[np.ndarray, np.ndarray]:
        """Fixed-effect covariance ``σ²(XᵀWX)⁻¹`` and its Jacobian w.r.t. (θ, σ).

        Returns
        -------
        V : ndarray (p, p)
        J : ndarray (n_theta + 1, p, p)
        """
        _, _, _, H = self._gamma_parts(ev)
        P = ev.P
        Q = np.tensordot(H, H, axes=([0], [0])).transpose(0, 2, 1, 3)  # Σ Hᵢ[a]ᵀ Hᵢ[b]
        J = np.empty((self.n_theta + 1, self.p, self.p))
        for k, (r, c) in enumerate(zip(self.rows, self.cols, strict=True)):
            E = np.zeros((self.q, self.q))
            E[r, c] = 1.0
            dD = E @ ev.Lam.T + ev.Lam @ E.T
            dXtWX = -np.einsum("ab,abpr->pr", dD, Q)
            J[k] = -(sigma**2) * P @ dXtWX @ P
        J[-1] = 2.0 * sigma * P
        return sigma**2 * P, J


def _chol_inverse(R: np.ndarray) -> np.ndarray:
    """Inverse of ``R Rᵀ`` from its lower Cholesky factor ``R``."""
    Ri = np.linalg.inv(R)
    return Ri.T @ Ri


def _spd_inverse_logdet(A: np.ndarray) -> tuple[np.ndarray, float]:
    """Inverses and summed log-determinants of stacked SPD matrices (closed form for q ≤ 2)."""
    q = A.shape[1]
    if q == 1:
        a = A[:, 0, 0]
        return (1.0 / a)[:, None, None], float(np.log(a).sum())
    if q == 2:
        a, b, d = A[:, 0, 0], A[:, 0, 1], A[:, 1, 1]
        det = a * d - b * b
        inv = np.empty_like(A)
        inv[:, 0, 0] = d / det
        inv[:, 1, 1] = a / det
        inv[:, 0, 1] = inv[:, 1, 0] = -b / det
        with np.errstate(invalid="ignore", divide="ignore"):
            return inv, float(np.log(det).sum())
    L = np.linalg.cholesky(A)
    logdet = 2.0 * float(np.log(np.diagonal(L, axis1=1, axis2=2)).sum())
    return np.linalg.inv(A), logdet


# ------------------------------------------------------------------------------
# optimisation
# ------------------------------------------------------------------------------
def _numerical_hessian(grad: Any, x: np.ndarray, rel_step: float = 1e-5) -> np.ndarray:
    """Symmetrised central-difference Jacobian of an analytic gradient."""
    k = x.size
    H = np.empty((k, k))
    for j in range(k):
        h = rel_step * max(abs(x[j]), 1e-2)
        xp, xm = x.copy(), x.copy()
        xp[j] += h
        xm[j] -= h
        H[:, j] = (grad(xp) - grad(xm)) / (2 * h)
    return 0.5 * (H + H.T)


def _free_mask(prof: ProfiledDeviance, theta: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Parameters not held at their bound (diagonal θ at 0 with a non-negative gradient)."""
    at_bound = prof.is_diag & (theta <= 0.0) & (grad >= 0.0)
    return ~at_bound


def _newton_polish(
    prof: ProfiledDeviance, theta: np.ndarray, max_steps: int = 6
) -> tuple[np.ndarray, float, float]:
    """Damped Newton steps on the free parameters, then the stationarity measures.

    The Hessian is the central-difference Jacobian of the analytic gradient.

    Returns
    -------
    theta : ndarray
        Polished θ (never worse than the input).
    gradient_norm : float
        Max-norm of the gradient over the free parameters at ``theta``.
    newton_decrement : float
        ``gᵀH⁻¹g`` over the free parameters at ``theta`` (deviance units; a
        scale-free measure of the distance to the optimum), ``inf`` if the
        Hessian there is not positive definite.
    """
    f0, g = prof.objective_and_gradient(theta)
    for step_no in range(max_steps + 1):
        free = _free_mask(prof, theta, g)
        if not free.any():
            return theta, 0.0, 0.0
        gf = g[free]
        grad_norm = float(np.max(np.abs(gf)))
        x0 = theta[free]

        def gfun(x: np.ndarray, free: np.ndarray = free, base: np.ndarray = theta) -> np.ndarray:
            full = base.copy()
            full[free] = x
            return prof.objective_and_gradient(full)[1][free]

        H = _numerical_hessian(gfun, x0)
        w, V = np.linalg.eigh(H)
        decrement = float(gf @ V @ ((V.T @ gf) / w)) if np.all(w > 0) else np.inf
        # converged to the precision of the objective itself
        if decrement < max(1e-10, 1e-12 * abs(f0)) or step_no == max_steps:
            return theta, grad_norm, decrement
        if w.min() <= 0:
            w = np.maximum(np.abs(w), 1e-8 * max(1.0, float(np.abs(w).max())))
        step = -V @ ((V.T @ gf) / w)
        t = 1.0
        moved = False
        for _ in range(12):
            cand = theta.copy()
            cand[free] = x0 + t * step
            cand = np.where(prof.is_diag, np.maximum(cand, 0.0), cand)
            f1, g1 = prof.objective_and_gradient(cand)
            if f1 <= f0:
                theta, f0, g, moved = cand, f1, g1, True
                break
            t *= 0.5
        if not moved:
            return theta, grad_norm, decrement
    return theta, grad_norm, decrement


def _probe_boundary(prof: ProfiledDeviance, theta: np.ndarray) -> np.ndarray | None:
    """A point off the boundary with a lower objective, if any diagonal θ sits at ~0."""
    f0 = prof.objective_and_gradient(theta)[0]
    at_zero = np.flatnonzero(prof.is_diag & (theta < SINGULAR_TOLERANCE))
    if at_zero.size == 0:
        return None
    scale = max(float(np.max(np.abs(theta[prof.is_diag]))), 1e-2)
    best, best_f = None, f0 - 1e-9 * max(1.0, abs(f0))
    for k in at_zero:
        for t in scale * np.array([1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0]):
            cand = theta.copy()
            cand[k] = t
            f = prof.objective_and_gradient(cand)[0]
            if f < best_f:
                best, best_f = cand, f
    return best


def _optimise(
    prof: ProfiledDeviance, start: np.ndarray | None
) -> tuple[np.ndarray, OptimizationRecord]:
    t0 = time.perf_counter()
    x0 = prof.start() if start is None else np.asarray(start, dtype=float)
    if x0.shape != (prof.n_theta,):
        raise ValidationError(
            [Problem(rule="invalid_start", message=f"start must have {prof.n_theta} values")]
        )
    bounds = [(0.0, None) if d else (None, None) for d in prof.is_diag]
    n_before = prof.n_evaluations
    names = ["L-BFGS-B"]
    res = optimize.minimize(
        prof.objective_and_gradient,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 2000, "ftol": 1e-10, "gtol": 1e-6, "maxcor": 20},
    )
    theta = np.where(prof.is_diag, np.maximum(res.x, 0.0), res.x)
    message = str(res.message)
    # A diagonal θ on its bound can be a false optimum: the deviance is even in the last
    # diagonal element of a block, so its gradient there is exactly zero even when moving
    # off the boundary lowers the deviance. Probe off the boundary and restart if it helps.
    for _ in range(3):
        better = _probe_boundary(prof, theta)
        if better is None:
            break
        res = optimize.minimize(
            prof.objective_and_gradient,
            better,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 2000, "ftol": 1e-10, "gtol": 1e-6, "maxcor": 20},
        )
        cand = np.where(prof.is_diag, np.maximum(res.x, 0.0), res.x)
        if prof.objective_and_gradient(cand)[0] < prof.objective_and_gradient(theta)[0]:
            theta = cand
            message = f"{res.message} (restarted off the boundary)"
            names.append("L-BFGS-B restart")
    if not np.isfinite(prof.objective_and_gradient(theta)[0]):
        raise ConvergenceError(
            f"the optimiser ended at a point where the deviance is not finite ({message})"
        )
    theta, grad_norm, decrement = _newton_polish(prof, theta)
    names.append("Newton")
    if not (grad_norm < GRADIENT_TOLERANCE or decrement < NEWTON_DECREMENT_TOLERANCE):
        # second chance: derivative-free restart from the current point, then polish
        res2 = optimize.minimize(
            lambda x: prof.objective_and_gradient(np.where(prof.is_diag, np.abs(x), x))[0],
            theta,
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-12, "maxfev": 20000, "adaptive": True},
        )
        cand = np.where(prof.is_diag, np.abs(res2.x), res2.x)
        cand, g2, d2 = _newton_polish(prof, cand)
        if prof.objective_and_gradient(cand)[0] <= prof.objective_and_gradient(theta)[0]:
            theta, grad_norm, decrement = cand, g2, d2
        names.append("Nelder-Mead + Newton")
        message = f"{message}; restart: {res2.message}"
        if not (grad_norm < GRADIENT_TOLERANCE or decrement < NEWTON_DECREMENT_TOLERANCE):
            raise ConvergenceError(
                "the optimisation of the profiled deviance did not converge: gradient max-norm "
                f"{grad_norm:.3g}, Newton decrement {decrement:.3g} at θ = {np.round(theta, 6)} "
                f"({message}); check the model (over-parameterised random effects?) and the data"
            )
    objective = prof.objective_and_gradient(theta)[0]
    record = OptimizationRecord(
        optimizer=" + ".join(names),
        theta_start=x0.copy(),
        theta_final=theta.copy(),
        lower_bounds=prof.lower.copy(),
        objective=float(objective),
        n_evaluations=prof.n_evaluations - n_before,
        gradient_norm=float(grad_norm),
        newton_decrement=float(decrement),
        elapsed_seconds=time.perf_counter() - t0,
        message=message,
        criterion="REML" if prof.reml else "ML",
    )
    return theta, record


# ------------------------------------------------------------------------------
# Satterthwaite (lmerTest)
# ------------------------------------------------------------------------------
def _satterthwaite(prof: ProfiledDeviance, ev: _Evaluation, sigma: float) -> dict[str, Any]:
    varpar = np.append(ev.theta, sigma)
    h = _numerical_hessian(prof.varpar_gradient, varpar, rel_step=1e-4)
    w, V = np.linalg.eigh(h)
    pos = w > HESSIAN_EIGEN_TOLERANCE
    h_inv = (V[:, pos] / w[pos]) @ V[:, pos].T
    vcov_varpar = 2.0 * h_inv
    prof.evaluate(ev.theta)
    vcov_beta, jac = prof.covbeta_jacobian(ev, sigma)
    return {
        "vcov_varpar": vcov_varpar,
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
    fixed_effects: pd.DataFrame
    variance_components: pd.DataFrame
    random_effects: pd.DataFrame
    random_effects_se: pd.DataFrame
    coef: pd.DataFrame
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
    satterthwaite: dict[str, Any] = field(repr=False, default_factory=dict)
    _data: pd.DataFrame | None = field(repr=False, default=None)
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
    def n_parameters(self) -> int:
        """Number of estimated parameters (fixed effects, θ, σ), as lme4's logLik df."""
        return len(self.fixed_effects) + self.theta.size + 1

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
        beta = self.fixed_effects["estimate"].to_numpy()
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
        beta = self.fixed_effects["estimate"].to_numpy()
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
        Starting θ (default: lme4's identity start).
    time : str, optional
        The model's time variable (e.g. ``"months_since_onset"``), used for exposure
        effects, figures and reports. Default: the random slope's variable.

    Returns
    -------
    LmmResult

    Raises
    ------
    alsfrs.errors.ValidationError
        Bad formula or data (the cause is named).
    ConvergenceError
        The optimiser did not reach an optimum.

    Warns
    -----
    SingularFitWarning
        The random-effects covariance is singular (a diagonal element of
        ``Λ`` below 1e-4: a variance at zero or a correlation at ±1).
    """
    with _single_threaded_blas():
        result = _fit_lmm(formula, data, reml, start)
    if time is not None:
        mm = result.matrices
        time_variable(mm.variables, mm.random_names, time)  # a clear error if absent
        result.time_axis = time
    return result


@contextlib.contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """Run BLAS single-threaded: every matrix here is small (p×p, q×q stacks), and a
    multi-threaded BLAS spends far more time synchronising threads than computing."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scipy/pymc stacks
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _fit_lmm(formula: str, data: Any, reml: bool, start: Sequence[float] | None) -> LmmResult:
    frame = as_frame(data)
    matrices = build_model_matrices(formula, frame)
    prof = ProfiledDeviance(matrices, reml=bool(reml))
    theta, record = _optimise(prof, start)
    ev = prof.evaluate(theta)
    n, p = matrices.n_obs, matrices.n_fixed
    sigma2 = ev.r2 / (n - p) if reml else ev.r2 / n
    sigma = math.sqrt(sigma2)

    sat = _satterthwaite(prof, ev, sigma)
    ev = prof.evaluate(theta)
    vcov = sat["vcov_beta"]
    se = np.sqrt(np.diag(vcov))
    dfs = np.array([_satterthwaite_df(np.eye(p)[j], sat) for j in range(p)])
    tval = ev.beta / se
    pval = 2 * stats.t.sf(np.abs(tval), dfs)
    z = stats.norm.ppf(0.975)
    names = list(matrices.fixed_names)
    fixed = pd.DataFrame(
        {
            "estimate": ev.beta,
            "std_error": se,
            "df": dfs,
            "t_value": tval,
            "p_value": pval,
            "ci_lower": ev.beta - z * se,
            "ci_upper": ev.beta + z * se,
        },
        index=pd.Index(names, name="term", dtype=object),
    )

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

    # conditional modes and variances
    st = matrices.statistics
    Zte = st.Zty - np.einsum("iqp,p->iq", st.ZtX, ev.beta)
    b = np.einsum("iab,ib->ia", ev.K, Zte)
    cond_sd = np.sqrt(np.maximum(sigma2 * np.diagonal(ev.K, axis1=1, axis2=2), 0.0))
    gindex = matrices.group_labels
    ranef = pd.DataFrame(b, index=gindex, columns=list(rnames))
    ranef_se = pd.DataFrame(cond_sd, index=gindex, columns=list(rnames))
    coef = pd.DataFrame(
        np.broadcast_to(ev.beta, (len(gindex), p)).copy(), index=gindex, columns=names
    )
    for k, nm in enumerate(rnames):
        if nm in coef.columns:
            coef[nm] = coef[nm].to_numpy() + b[:, k]
        else:
            coef[nm] = b[:, k]

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
        warnings.warn(msg, SingularFitWarning, stacklevel=3)
    if sat["n_negative_eigen"]:
        notes.append(
            "the Hessian of the deviance w.r.t. (θ, σ) has negative eigenvalues; "
            "Satterthwaite df may be unreliable"
        )
    vcov_df = pd.DataFrame(vcov, index=names, columns=names)
    return LmmResult(
        formula=matrices.formula.text,
        reml=bool(reml),
        matrices=matrices,
        fixed_effects=fixed,
        variance_components=variance_components,
        random_effects=ranef,
        random_effects_se=ranef_se,
        coef=coef,
        vcov=vcov_df,
        sigma=sigma,
        theta=theta.copy(),
        reml_criterion=float(objective) if reml else float("nan"),
        deviance=float(ev.deviance_ml),
        loglik=float(loglik),
        aic=float(aic),
        bic=float(bic),
        nobs=n,
        ngroups=matrices.n_groups,
        converged=True,
        singular=singular,
        optimization=record,
        satterthwaite=sat,
        _data=frame[list(matrices.variables)].copy(),
        warnings=tuple(notes),
    )


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
