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

__all__ = ["conditional_effects", "marginal_loglik", "pointwise_student_loglik", "predictive"]

CHUNK = 200


def _pieces(design: Design, beta: np.ndarray, chol: np.ndarray, sigma: np.ndarray):
    """u_i, A_i and Λ for a chunk of draws: shapes (d, G, q), (d, G, q, q), (d, q, q)."""
    st = design.stats
    beta_c = design.center(beta)
    lam = chol / sigma[:, None, None]
    c = st.Zty[None] - np.einsum("gqp,dp->dgq", st.ZtX, beta_c)
    u = np.einsum("dgj,djk->dgk", c, lam)
    A = np.einsum("djk,gjl,dlm->dgkm", lam, st.ZtZ, lam)
    A += np.eye(lam.shape[-1])
    return u, A, lam


def conditional_effects(design: Design, beta: np.ndarray, chol: np.ndarray, sigma: np.ndarray,
                        rng: np.random.Generator) -> np.ndarray:
    """One draw of every patient's random effects per posterior draw.

    Parameters are flat over draws: beta (D, p), chol (D, q, q), sigma (D,).
    Returns (D, G, q).
    """
    D = beta.shape[0]
    G, q = design.stats.Zty.shape
    out = np.empty((D, G, q))
    for s in range(0, D, CHUNK):
        e = min(D, s + CHUNK)
        u, A, lam = _pieces(design, beta[s:e], chol[s:e], sigma[s:e])
        R = np.linalg.cholesky(A)  # A = R Rᵀ
        mean_w = np.linalg.solve(A, u[..., None])[..., 0]
        z = rng.standard_normal((e - s, G, q))
        w = np.linalg.solve(np.swapaxes(R, -1, -2), z[..., None])[..., 0]  # cov A⁻¹
        out[s:e] = np.einsum("djk,dgk->dgj", lam, mean_w + sigma[s:e, None, None] * w)
    return out


def marginal_loglik(design: Design, beta: np.ndarray, chol: np.ndarray,
                    sigma: np.ndarray) -> np.ndarray:
    """Each patient's marginal log-likelihood per draw, shape (D, G)."""
    mm = design.mm
    D = beta.shape[0]
    G = mm.n_groups
    order = np.argsort(mm.group, kind="stable")
    starts = np.concatenate(([0], np.cumsum(design.stats.n)[:-1]))
    n_i = design.stats.n
    Xs, ys = design.Xc[order], mm.y[order]
    out = np.empty((D, G))
    for s in range(0, D, CHUNK):
        e = min(D, s + CHUNK)
        u, A, _ = _pieces(design, beta[s:e], chol[s:e], sigma[s:e])
        _, logdet = np.linalg.slogdet(A)
        quad = np.einsum("dgk,dgk->dg", u, np.linalg.solve(A, u[..., None])[..., 0])
        r = ys[None, :] - design.center(beta[s:e]) @ Xs.T
        rr = np.add.reduceat(r**2, starts, axis=1)
        sig2 = sigma[s:e, None] ** 2
        out[s:e] = -0.5 * (n_i * np.log(2 * np.pi * sig2) + logdet + (rr - quad) / sig2)
    return out


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
