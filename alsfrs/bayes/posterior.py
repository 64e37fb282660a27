"""Posterior quantities computed draw by draw in NumPy, in chunks of draws.

For every posterior draw of (β, L, σ):

* per-patient effects from their exact conditional Gaussian (collapsed form):
  mean Λ A_i⁻¹ u_i, covariance σ² Λ A_i⁻¹ Λᵀ (notation of :mod:`alsfrs.bayes.model`);
* each patient's marginal log-likelihood (random effects integrated out), the
  unit of leave-one-patient-out LOO for both Gaussian parameterisations;
* replicated visit scores for posterior predictive checks.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from alsfrs.bayes.model import Design
from alsfrs.gaussian import relative_precision_2x2

__all__ = ["conditional_effects", "effects_and_loglik", "marginal_loglik",
           "pointwise_student_loglik", "predictive"]

CHUNK = 200


def _pieces(design: Design, beta: np.ndarray, chol: np.ndarray, sigma: np.ndarray):
    """u_i, A_i and Λ for a chunk of draws: shapes (d, G, q), (d, G, q, q), (d, q, q)."""
    st = design.stats
    G, q, p = st.ZtX.shape
    lam = chol / sigma[:, None, None]
    c = st.Zty[None] - (st.ZtX.reshape(G * q, p) @ design.center(beta).T).T.reshape(-1, G, q)
    u = c @ lam  # u_i = Λᵀ c_i, as rows
    SL = np.matmul(st.ZtZ[None], lam[:, None])  # (d, G, q, q)
    A = np.matmul(np.swapaxes(lam, -1, -2)[:, None], SL)
    A += np.eye(q)
    return u, A, lam


class _Factored:
    """For a chunk of draws: u_i, A_i⁻¹u_i, log|A_i| and a draw of N(0, A_i⁻¹) per patient.

    Closed form for one or two random effects per patient (the usual cases,
    elementwise over draws × patients), batched linear algebra otherwise.
    """

    def __init__(self, design: Design, beta: np.ndarray, chol: np.ndarray,
                 sigma: np.ndarray) -> None:
        q = chol.shape[-1]
        self.q = q
        if q > 2:
            self.u, A, self.lam = _pieces(design, beta, chol, sigma)
            self._R = np.linalg.cholesky(A)
            self.logdet = 2 * np.log(np.einsum("dgkk->dgk", self._R)).sum(axis=-1)
            self.Ainv_u = np.linalg.solve(A, self.u[..., None])[..., 0]
            return
        st = design.stats
        G, _, p = st.ZtX.shape
        self.lam = lam = chol / sigma[:, None, None]
        c = st.Zty[None] - (st.ZtX.reshape(G * q, p) @ design.center(beta).T).T.reshape(-1, G, q)
        if q == 1:
            l00 = lam[:, 0, :1]  # (d, 1)
            a = 1.0 + l00 * l00 * st.ZtZ[None, :, 0, 0]
            self.u = c * l00[:, :, None]
            self.logdet = np.log(a)
            self.Ainv_u = self.u / a[..., None]
            self._r = np.sqrt(a)[..., None]
        else:
            # A_i = I + Λᵀ G_i Λ over draws × patients (the kernel's own algebra)
            l00, l01 = lam[:, 0, 0, None], lam[:, 0, 1, None]
            l10, l11 = lam[:, 1, 0, None], lam[:, 1, 1, None]
            g00, g01, g11 = (st.ZtZ[None, :, 0, 0], st.ZtZ[None, :, 0, 1],
                             st.ZtZ[None, :, 1, 1])
            a00, a01, a11 = relative_precision_2x2(g00, g01, g11, l00, l01, l10, l11)
            c0, c1 = c[..., 0], c[..., 1]
            self.u = np.stack([l00 * c0 + l10 * c1, l01 * c0 + l11 * c1], axis=-1)
            det = a00 * a11 - a01 * a01
            self.logdet = np.log(det)
            u0, u1 = self.u[..., 0], self.u[..., 1]
            self.Ainv_u = np.stack([(a11 * u0 - a01 * u1) / det, (a00 * u1 - a01 * u0) / det],
                                   axis=-1)
            r00 = np.sqrt(a00)
            r10 = a01 / r00
            self._r = (r00, r10, np.sqrt(a11 - r10 * r10))  # A = R Rᵀ, R lower

    def quad(self) -> np.ndarray:
        """u_iᵀ A_i⁻¹ u_i, shape (d, G)."""
        return np.einsum("dgk,dgk->dg", self.u, self.Ainv_u)

    def draw(self, z: np.ndarray) -> np.ndarray:
        """R_i⁻ᵀ z_i (covariance A_i⁻¹) for standard normal z of shape (d, G, q)."""
        if self.q == 1:
            return z / self._r
        if self.q == 2:
            r00, r10, r11 = self._r
            w1 = z[..., 1] / r11
            return np.stack([(z[..., 0] - r10 * w1) / r00, w1], axis=-1)
        return np.linalg.solve(np.swapaxes(self._R, -1, -2), z[..., None])[..., 0]


def _effects_chunk(f: _Factored, sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    z = rng.standard_normal(f.u.shape)
    w = f.Ainv_u + sigma[:, None, None] * f.draw(z)
    return w @ np.swapaxes(f.lam, -1, -2)  # b_i = Λ w_i


class _Residuals:
    """Per-patient residual sums of squares for chunks of draws (visits sorted by patient)."""

    def __init__(self, design: Design) -> None:
        order = np.argsort(design.mm.group, kind="stable")
        self.starts = np.concatenate(([0], np.cumsum(design.stats.n)[:-1]))
        self.Xs, self.ys = design.Xc[order], design.mm.y[order]
        self.design = design

    def loglik(self, f: _Factored, beta: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        r = self.ys[None, :] - self.design.center(beta) @ self.Xs.T
        rr = np.add.reduceat(r**2, self.starts, axis=1)
        sig2 = sigma[:, None] ** 2
        n_i = self.design.stats.n
        return -0.5 * (n_i * np.log(2 * np.pi * sig2) + f.logdet + (rr - f.quad()) / sig2)


def conditional_effects(design: Design, beta: np.ndarray, chol: np.ndarray, sigma: np.ndarray,
                        rng: np.random.Generator) -> np.ndarray:
    """One draw of every patient's random effects per posterior draw.

    Parameters are flat over draws: beta (D, p), chol (D, q, q), sigma (D,).
    Returns (D, G, q).
    """
    return effects_and_loglik(design, beta, chol, sigma, rng, loglik=False)[0]


def marginal_loglik(design: Design, beta: np.ndarray, chol: np.ndarray,
                    sigma: np.ndarray) -> np.ndarray:
    """Each patient's marginal log-likelihood per draw, shape (D, G)."""
    return effects_and_loglik(design, beta, chol, sigma, None, effects=False)[1]


def effects_and_loglik(design: Design, beta: np.ndarray, chol: np.ndarray, sigma: np.ndarray,
                       rng: np.random.Generator | None, *, effects: bool = True,
                       loglik: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
    """:func:`conditional_effects` and :func:`marginal_loglik` in one pass over the draws
    (both need the same per-patient factorisation); the same numbers as each alone."""
    D = beta.shape[0]
    G, q = design.stats.Zty.shape
    eff = np.empty((D, G, q)) if effects else None
    ll = np.empty((D, G)) if loglik else None
    res = _Residuals(design) if loglik else None
    for s in range(0, D, CHUNK):
        e = min(D, s + CHUNK)
        f = _Factored(design, beta[s:e], chol[s:e], sigma[s:e])
        if eff is not None:
            eff[s:e] = _effects_chunk(f, sigma[s:e], rng)
        if ll is not None:
            ll[s:e] = res.loglik(f, beta[s:e], sigma[s:e])
    return eff, ll


def _linear_predictor(design: Design, beta: np.ndarray, effects: np.ndarray) -> np.ndarray:
    mm = design.mm
    fixed = design.center(beta) @ design.Xc.T  # (d, N)
    return fixed + np.einsum("nq,dnq->dn", mm.Z, effects[:, mm.group, :])


def pointwise_student_loglik(design: Design, beta: np.ndarray, effects: np.ndarray,
                             sigma: np.ndarray, nu: np.ndarray) -> np.ndarray:
    """Per-visit Student-t log-likelihood given the patient effects, shape (D, N)."""
    D = beta.shape[0]
    out = np.empty((D, design.mm.n_obs))
    for s in range(0, D, CHUNK):
        e = min(D, s + CHUNK)
        mu = _linear_predictor(design, beta[s:e], effects[s:e])
        out[s:e] = stats.t.logpdf(design.mm.y[None], df=nu[s:e, None], loc=mu,
                                  scale=sigma[s:e, None])
    return out


def predictive(design: Design, beta: np.ndarray, effects: np.ndarray, sigma: np.ndarray,
               rng: np.random.Generator, nu: np.ndarray | None = None) -> np.ndarray:
    """Replicated visit scores for a set of draws, shape (D, N)."""
    mu = _linear_predictor(design, beta, effects)
    if nu is None:
        noise = rng.standard_normal(mu.shape)
    else:
        noise = rng.standard_t(nu[:, None], size=mu.shape)
    return mu + sigma[:, None] * noise
