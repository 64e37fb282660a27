"""alsfrs.gaussian: the one Gaussian marginal-likelihood kernel of both engines.

Checked against the dense multivariate-normal likelihood (patient by patient) and
finite differences of itself; the LMM's profiled deviance and the Bayesian
collapsed likelihood are the same numbers from the same statistics.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from alsfrs.gaussian import MarginalKernel, ProfiledGaussian, factor, marginal_loglik_grad
from alsfrs.matrices import build_model_matrices
from tests.test_lmm import cohort

FORMULAS = [
    "alsfrs_r ~ months * antidepressant + age_at_dx + (months | patient_id)",
    "alsfrs_r ~ months + (months || patient_id)",
    "alsfrs_r ~ months + (1 | patient_id)",
    "alsfrs_r ~ months + (months + I(months^2) | patient_id)",
]


def central(f, x: np.ndarray, h: float) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.array([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(x.size)])


def start_theta(prof: ProfiledGaussian, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return prof.start() * 0.5 + rng.normal(0, 0.05, prof.n_theta)


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("formula", FORMULAS)
def test_profiled_hessian_matches_finite_differences_of_the_gradient(formula, reml):
    mm = build_model_matrices(formula, cohort())
    prof = ProfiledGaussian(mm.statistics, mm.blocks, reml)
    theta = start_theta(prof)
    H = prof.hessian(prof.evaluate(theta))
    numeric = central(lambda t: prof.objective_and_gradient(t)[1], theta, 1e-5)
    numeric = 0.5 * (numeric + numeric.T)
    scale = np.max(np.abs(numeric))
    tol = 1e-6 if mm.n_random < 3 else 1e-4  # I(months^2) makes the problem badly scaled
    assert np.max(np.abs(H - numeric)) / scale < tol


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("formula", FORMULAS[:3])
def test_varpar_hessian_matches_finite_differences(formula, reml):
    mm = build_model_matrices(formula, cohort())
    prof = ProfiledGaussian(mm.statistics, mm.blocks, reml)
    theta = start_theta(prof)
    sigma = 1.7
    H = prof.varpar_hessian(prof.evaluate(theta), sigma)
    numeric = central(prof.varpar_gradient, np.append(theta, sigma), 1e-5)
    assert np.max(np.abs(H - 0.5 * (numeric + numeric.T))) / np.max(np.abs(numeric)) < 1e-6
    # and the gradient is the derivative of the deviance
    g = prof.varpar_gradient(np.append(theta, sigma))
    numeric_g = central(prof.varpar_deviance, np.append(theta, sigma), 1e-6)
    np.testing.assert_allclose(g, numeric_g, rtol=0, atol=1e-6 * np.max(np.abs(numeric_g)))


@pytest.mark.parametrize("formula", FORMULAS)
def test_collapsed_loglik_equals_dense_and_its_gradient_is_right(formula):
    mm = build_model_matrices(formula, cohort())
    st = mm.statistics
    p, q = mm.n_fixed, mm.n_random
    rng = np.random.default_rng(2)
    beta = np.linalg.lstsq(mm.X, mm.y, rcond=None)[0] + rng.normal(0, 0.1, p)
    L = np.tril(rng.normal(0, 0.3, (q, q))) + np.diag([3.0, 0.5, 0.05][:q])
    for block in mm.blocks:  # no covariance across independent blocks
        for k in range(q):
            if k not in block and k < block[0]:
                L[block[0], k] = 0.0
    sigma = 1.6
    ll, g_beta, g_L, g_sigma = marginal_loglik_grad(st, beta, L, sigma)
    dense = 0.0
    for i in range(mm.n_groups):
        rows = mm.group == i
        Z = mm.Z[rows]
        V = Z @ L @ L.T @ Z.T + sigma**2 * np.eye(rows.sum())
        e = mm.y[rows] - mm.X[rows] @ beta
        dense -= 0.5 * (np.linalg.slogdet(2 * math.pi * V)[1] + e @ np.linalg.solve(V, e))
    assert ll == pytest.approx(dense, rel=1e-10)
    kernel = MarginalKernel(st)
    fast = kernel(beta, L, sigma)
    assert fast[0] == pytest.approx(ll, rel=1e-12)
    np.testing.assert_allclose(fast[1], g_beta, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.tril(fast[2]), np.tril(g_L), rtol=1e-8, atol=1e-8)
    assert fast[3] == pytest.approx(g_sigma, rel=1e-9)
    f_beta = central(lambda b: marginal_loglik_grad(st, b, L, sigma)[0], beta, 1e-5)
    np.testing.assert_allclose(g_beta, f_beta, rtol=1e-5, atol=1e-4)
    f_L = central(lambda x: marginal_loglik_grad(st, beta, x.reshape(q, q), sigma)[0],
                  L.ravel(), 1e-6).reshape(q, q)
    np.testing.assert_allclose(np.tril(g_L), np.tril(f_L), rtol=1e-4, atol=1e-3)
    f_s = central(lambda s: marginal_loglik_grad(st, beta, L, s[0])[0], np.array([sigma]), 1e-6)
    assert g_sigma == pytest.approx(f_s[0], rel=1e-5)


def test_lmm_and_bayes_use_the_same_numbers():
    """The profiled REML deviance at θ equals −2 × the collapsed log-likelihood at
    (β̂(θ), L = σ̂Λ, σ̂) plus the REML term, from the same kernel."""
    mm = build_model_matrices(FORMULAS[0], cohort())
    prof = ProfiledGaussian(mm.statistics, mm.blocks, reml=False)
    theta = np.array([2.0, -0.05, 0.3])
    ev = prof.evaluate(theta)
    sigma = math.sqrt(ev.r2 / mm.n_obs)
    ll = marginal_loglik_grad(mm.statistics, ev.beta, sigma * ev.Lam, sigma)[0]
    assert ev.deviance_ml == pytest.approx(-2 * ll, rel=1e-12)


def test_factor_closed_forms_equal_the_general_form():
    rng = np.random.default_rng(3)
    for q in (1, 2):
        Z = rng.normal(size=(50, 6, q))
        G = np.einsum("iaj,iak->ijk", Z, Z)
        Lam = np.tril(rng.normal(size=(q, q))) + np.eye(q)
        K, logdet = factor(G, Lam)
        A = Lam.T @ G @ Lam + np.eye(q)
        np.testing.assert_allclose(K, Lam @ np.linalg.inv(A) @ Lam.T, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(logdet, np.linalg.slogdet(A)[1], rtol=1e-12)
    # a singular Λ (variance at zero) is fine: nothing divides by D
    K, logdet = factor(G, np.zeros((q, q)))
    assert np.all(K == 0) and np.all(logdet == 0)
