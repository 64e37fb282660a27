"""The collapsed model's NumPy log posterior against PyMC's compiled one.

``alsfrs.bayes.density.CollapsedDensity`` is what NUTS samples for collapsed
fits; the PyMC model of ``build_model`` is its reference: at random points of
the unconstrained space the two must give the same gradient and log densities
that differ only by one constant (the LKJ normalising constant, left out of
the NumPy density), for every prior family and random-effects structure.
"""

from __future__ import annotations

import numpy as np
import pytest
from pymc_reference import reference

import alsfrs
from alsfrs.bayes.density import CollapsedDensity, laplace_start
from alsfrs.bayes.fit import _prepare
from alsfrs.bayes.model import build_model

CASES = [
    ("alsfrs_r ~ months * antidepressant + (months | patient_id)", None),
    ("alsfrs_r ~ months * antidepressant + (months || patient_id)",
     {"sd__months": ("halfstudent_t", 3, 1.0), "sigma": ("exponential", 0.5)}),
    ("alsfrs_r ~ months * antidepressant + (1 | patient_id)",
     {"months": ("student_t", 4, -1, 2), "sd__(Intercept)": ("exponential", 0.2)}),
    ("alsfrs_r ~ months + I(months**2) + (months + I(months**2) | patient_id)",
     {"lkj_eta": 1.5, "sd__months": ("halfnormal", 2.0), "sigma": ("halfstudent_t", 4, 3)}),
    ("alsfrs_r ~ months * hypnotic + (months | patient_id)",
     {"sd__(Intercept)": ("halfstudent_t", 3, 8), "sd__months": ("halfstudent_t", 3, 1),
      "lkj_eta": 1.0}),
]


@pytest.fixture(scope="module")
def cohort():
    return alsfrs.simulate_cohort(120, seed=5)


def _reference(model, density: CollapsedDensity, design):
    """PyMC's log density and gradient as functions of the NumPy density's θ."""
    fixed = design.fixed_names

    def place(name, n):
        if name.startswith("b"):
            coord = "term_normal" if name == "b" else f"term_{name[2:]}"
            return [fixed.index(t) for t in model.coords[coord]]
        if name.startswith(("chol_block", "sd_block")):
            b = density.blocks[int(name.split("_")[1].removeprefix("block"))]
            return slice(b.start, b.start + b.size)
        if name == "sigma_log__":
            return density.size - 1
        raise AssertionError(name)  # pragma: no cover

    return reference(model, density.size, place)


@pytest.mark.parametrize("formula,priors", CASES)
def test_density_matches_pymc(cohort, formula, priors):
    _, design, pri = _prepare(formula, cohort, priors, None)
    density = CollapsedDensity(design, pri)
    ref = _reference(build_model(design, pri), density, design)
    rng = np.random.default_rng(11)
    mode, _, _ = laplace_start(density)
    offsets = []
    for _ in range(5):
        theta = mode + 0.4 * rng.standard_normal(density.size)
        lp, g = density(theta)
        lp_ref, g_ref = ref(theta)
        # rounding only: 1e-15 for linear time; the quadratic term's ZᵢᵀZᵢ (months⁴ up to
        # ~10⁷) costs about 9 digits in both implementations' cancellations
        np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-9 * np.max(np.abs(g_ref)))
        offsets.append(lp - lp_ref)
    # one constant for every point: the LKJ normalising constant (0 without an LKJ block)
    assert np.ptp(offsets) < 1e-8 * max(1.0, abs(lp_ref))
    if all(not b.correlated for b in density.blocks):
        assert abs(offsets[0]) < 1e-8 * max(1.0, abs(lp_ref))


def test_pack_unpack_round_trip(cohort):
    _, design, pri = _prepare(CASES[3][0], cohort, CASES[3][1], None)
    density = CollapsedDensity(design, pri)
    rng = np.random.default_rng(2)
    thetas = rng.standard_normal((4, density.size))
    beta, L, sigma = density.unpack_draws(thetas)
    for k, theta in enumerate(thetas):
        b1, L1, s1 = density.unpack(theta)
        np.testing.assert_array_equal(b1, beta[k])
        np.testing.assert_array_equal(L1, L[k])
        assert s1 == sigma[k]
        np.testing.assert_allclose(density.pack(b1, L1, s1), theta, rtol=1e-12, atol=1e-12)
        assert np.all(np.triu(L1, 1) == 0) and np.all(np.diag(L1) > 0)


def test_laplace_start_is_the_mode(cohort):
    _, design, pri = _prepare(CASES[0][0], cohort, None, None)
    density = CollapsedDensity(design, pri)
    mode, cov, record = laplace_start(density)
    assert record["success"]
    _, g = density(mode)
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    # gradient × Laplace SD: the change of log density over one SD is ~0
    assert np.max(np.abs(g * np.sqrt(np.diag(cov)))) < 1e-3
    # the mode is a maximum: moving one Laplace SD along any axis lowers the density
    lp0 = density(mode)[0]
    sd = np.sqrt(np.diag(cov))
    for j in range(mode.size):
        for sign in (-1, 1):
            step = np.zeros_like(mode)
            step[j] = sign * sd[j]
            assert density(mode + step)[0] < lp0
    # the fixed effects at the mode agree with REML (flat-ish priors, 120 patients)
    lmm = alsfrs.fit_lmm(CASES[0][0], cohort)
    beta = design.uncenter(mode[:density.p])
    fe = lmm.fixed_effects
    z = (beta - fe["estimate"].to_numpy()) / fe["std_error"].to_numpy()
    assert np.max(np.abs(z)) < 0.5
