"""The joint model's survival algebra in NumPy, draw by draw.

The same formulas as the PyTensor model (:mod:`alsfrs.joint.model`), for
posterior quantities: every patient's random effects from the sampled z,
cumulative hazards at any time (closed form or Gauss–Legendre), per-patient
log-likelihoods and conditional survival for dynamic predictions.

Shapes: ``coef`` is a list over powers of time of arrays of one common shape
``S`` (e.g. draws × patients); ``eta``, ``alpha``, ``alpha_s`` broadcast to
``S``; ``base`` has shape ``S[:1] + (K,)`` (piecewise: log hazard per piece) or
``S[:1] + (2,)`` (Weibull: log rate, log shape), or the B-spline coefficients
(``"pspline"``). With ``association="shared"`` the hazard has no trajectory term:
``eta`` holds γᵀw + αᵀb and ``coef``/``alpha`` are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alsfrs.joint.design import PSplineBasis, gauss_legendre

__all__ = ["BaselineSpec", "baseline_cumulative_hazard", "cumulative_hazard",
           "latent_effects_np", "log_hazard", "phi_np"]


@dataclass(frozen=True)
class BaselineSpec:
    """What defines the baseline hazard and how its integral is computed."""

    kind: str  # "piecewise" | "spline" | "pspline" | "weibull"
    knots: np.ndarray  # piece boundaries, the last one infinite
    t_scale: float
    association: str
    closed_form: bool
    quadrature_nodes: int
    t_end: float = np.inf  # last knot of the spline baseline
    pspline: PSplineBasis | None = None

    @property
    def tau(self) -> np.ndarray:
        return np.concatenate([self.knots[:-1], [self.t_end]])

    def slopes(self, base: np.ndarray) -> np.ndarray:
        """Slope of log h0 in each piece (spline baseline), shape (D, K)."""
        return np.diff(base, axis=-1) / np.diff(self.tau)


def phi_np(x: np.ndarray) -> np.ndarray:
    """expm1(x)/x with φ(0) = 1."""
    x = np.asarray(x, dtype=float)
    small = np.abs(x) < 1e-4
    xs = np.where(small, 1.0, x)
    return np.where(small, 1 + x / 2 + x**2 / 6, np.expm1(xs) / xs)


def latent_effects_np(stats, beta_c: np.ndarray, chol: np.ndarray, sigma: np.ndarray,
                      z: np.ndarray) -> np.ndarray:
    """b_i = Λ R_i⁻ᵀ(R_i⁻¹u_i + σ z_i) for draws: beta_c (D, p), chol (D, q, q),
    sigma (D,), z (D, G, q) → (D, G, q)."""
    lam = chol / sigma[:, None, None]
    c = stats.Zty[None] - np.einsum("gqp,dp->dgq", stats.ZtX, beta_c)
    u = np.einsum("dgj,djk->dgk", c, lam)
    A = np.einsum("djk,gjl,dlm->dgkm", lam, stats.ZtZ, lam) + np.eye(lam.shape[-1])
    R = np.linalg.cholesky(A)
    v = np.linalg.solve(R, u[..., None])[..., 0]
    x = np.linalg.solve(np.swapaxes(R, -1, -2), (v + sigma[:, None, None] * z)[..., None])[..., 0]
    return np.einsum("dkj,dgj->dgk", lam, x)


def _poly(coef: list[np.ndarray], t: np.ndarray, deriv: bool = False):
    """Σ_{k≥1} c_k t^k (or its derivative; the constant c_0 is carried by eta)."""
    out = 0.0
    for k in range(1, len(coef)):
        out = out + (k * coef[k] * t ** (k - 1) if deriv else coef[k] * t**k)
    return out


def log_h0(spec: BaselineSpec, base: np.ndarray, t: np.ndarray) -> np.ndarray:
    """log baseline hazard, shape (D,) + t.shape; ``t`` has no draw axis."""
    t = np.asarray(t, dtype=float)
    if spec.kind in ("piecewise", "spline"):
        piece = np.clip(np.searchsorted(spec.knots, t, side="left") - 1, 0,
                        len(spec.knots) - 2)
        out = np.take(base, piece, axis=1)
        if spec.kind == "spline":
            out = out + np.take(spec.slopes(base), piece, axis=1) * (t - spec.tau[piece])
        return out
    if spec.kind == "pspline":
        return np.einsum("dj,...j->d...", base, spec.pspline.basis(t))
    r = (-1,) + (1,) * t.ndim
    lr, ls = base[:, 0].reshape(r), base[:, 1].reshape(r)
    ts = spec.t_scale
    return lr + ls + (np.exp(ls) - 1) * np.log(np.maximum(t, 1e-12) / ts) - np.log(ts)


def log_hazard(spec: BaselineSpec, t: np.ndarray, coef: list[np.ndarray], eta: np.ndarray,
               alpha: np.ndarray, alpha_s: np.ndarray | None, base: np.ndarray) -> np.ndarray:
    """log h(t). ``t`` (no draw axis) and the draw-shaped ``coef``, ``eta`` (which holds
    γᵀw + α (c_0 − m̄)), ``alpha``, ``alpha_s`` must broadcast to (D,) + t.shape."""
    if spec.association == "shared":
        return log_h0(spec, base, t) + eta
    out = log_h0(spec, base, t) + eta + alpha * _poly(coef, t)
    if alpha_s is not None:
        out = out + alpha_s * _poly(coef, t, deriv=True)
    return out


def baseline_cumulative_hazard(spec: BaselineSpec, times: np.ndarray, base: np.ndarray,
                               closed_form: bool = True) -> np.ndarray:
    """H0(t) = ∫_0^t h0, shape (D,) + times.shape. Closed form for the piecewise, spline
    and Weibull baselines (``closed_form``), else Gauss–Legendre with
    ``spec.quadrature_nodes`` nodes in each piece (always for the P-spline)."""
    times = np.asarray(times, dtype=float)
    D = base.shape[0]
    if closed_form and spec.kind == "weibull":
        r = (D,) + (1,) * times.ndim
        k = np.exp(base[:, 1]).reshape(r)
        return np.exp(base[:, 0]).reshape(r) * (times[None] / spec.t_scale) ** k
    kn = spec.knots
    K = len(kn) - 1
    lo = np.minimum(times[..., None], kn[:-1])  # times.shape + (K,)
    dl = np.minimum(times[..., None], kn[1:]) - lo
    if closed_form and spec.kind in ("piecewise", "spline"):
        ex = (D,) + (1,) * times.ndim + (K,)
        if spec.kind == "piecewise":
            return np.sum(np.exp(base).reshape(ex) * dl[None], axis=-1)
        sk = spec.slopes(base).reshape(ex)
        b = base[:, :-1].reshape(ex) + sk * (lo - spec.tau[:-1])[None]
        return np.sum(np.exp(b) * dl[None] * phi_np(sk * dl[None]), axis=-1)
    x, w = gauss_legendre(spec.quadrature_nodes)
    n = len(x)
    tn = (lo[..., None] + dl[..., None] * x).reshape(*lo.shape[:-1], K * n)
    wn = (dl[..., None] * w).reshape(*lo.shape[:-1], K * n)
    return np.sum(np.exp(log_h0(spec, base, tn)) * wn[None], axis=-1)


def cumulative_hazard(spec: BaselineSpec, times: np.ndarray, coef: list[np.ndarray],
                      eta: np.ndarray, alpha: np.ndarray, alpha_s: np.ndarray | None,
                      base: np.ndarray, closed_form: bool | None = None) -> np.ndarray:
    """H(t) for per-draw, per-patient coefficients of shape (D, G) → (D, G, nt).

    ``times`` has shape (nt,) (the same times for every patient) or (G, nt).
    Closed form for linear trajectories with a piecewise-constant baseline,
    otherwise Gauss–Legendre with ``spec.quadrature_nodes`` nodes per piece.
    """
    times = np.asarray(times, dtype=float)
    if times.ndim == 0:
        times = times[None]
    closed = spec.closed_form if closed_form is None else closed_form
    if spec.association == "shared":  # H = exp(eta) H0(t)
        if closed and spec.kind == "pspline":
            raise ValueError("the P-spline baseline has no closed-form cumulative hazard")
        H0 = baseline_cumulative_hazard(spec, times, base, closed)
        if times.ndim == 1:
            H0 = H0[:, None, :]
        return np.exp(np.asarray(eta, dtype=float))[..., None] * H0
    if closed and (spec.kind in ("weibull", "pspline") or len(coef) != 2):
        raise ValueError("the closed form needs a piecewise or spline baseline and linear "
                         "trajectories")
    kn = spec.knots
    K = len(kn) - 1
    lo = np.minimum(times[..., None], kn[:-1])  # (..., nt, K)
    dl = np.minimum(times[..., None], kn[1:]) - lo

    def ex(a):  # (D, G) -> (D, G, 1, 1)
        return None if a is None else np.asarray(a, dtype=float)[..., None, None]

    c = [ex(ck) for ck in coef]
    e, al, als = ex(eta), ex(alpha), ex(alpha_s)
    if closed:
        slope = al * c[1]
        if als is not None:
            e = e + als * c[1]
        if spec.kind == "spline":
            sk = spec.slopes(base)
            rel = lo - spec.tau[:-1]
            if rel.ndim == 2:  # the same times for every patient
                rel = rel[None]
            b = base[:, None, None, :-1] + sk[:, None, None, :] * rel[None]
            total = slope + sk[:, None, None, :]
        else:
            b = base[:, None, None, :]
            total = slope
        return np.sum(np.exp(b + e + slope * lo) * dl * phi_np(total * dl), axis=-1)
    x, w = gauss_legendre(spec.quadrature_nodes)
    n = len(x)
    tn = (lo[..., None] + dl[..., None] * x).reshape(*lo.shape[:-1], K * n)
    wn = (dl[..., None] * w).reshape(*lo.shape[:-1], K * n)
    lh0 = log_h0(spec, base, tn)  # (D, [G,] nt, K n)
    if tn.ndim == 2:
        lh0 = lh0[:, None]
    lh = lh0 + e + al * _poly(c, tn)
    if als is not None:
        lh = lh + als * _poly(c, tn, deriv=True)
    return np.sum(np.exp(lh) * wn, axis=-1)
