"""The joint model's NumPy log posterior against PyMC's compiled one.

``alsfrs.joint.density.JointDensity`` is what NUTS samples for the closed-form
joint models; the PyMC model of ``build_joint_model`` is its reference: at random
points of the unconstrained space the two give the same gradient and log
densities that differ by one constant (the LKJ normalising constant), for every
association, every baseline (closed form and quadrature), linear and quadratic
trajectories, one or two random effects and Student-t priors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pymc_reference import reference

import alsfrs
from alsfrs.joint.density import JointDensity, joint_laplace, supports
from alsfrs.joint.fit import prepare_joint
from alsfrs.joint.model import build_joint_model
from alsfrs.joint.priors import resolve_joint_priors

LONG = "alsfrs_r ~ months * (anxiolytic + antidepressant) + onset_site + (months | patient_id)"
SURV = ("Surv(months_to_death_imv, death_imv) ~ anxiolytic + antidepressant + onset_site"
        " + age_at_dx")

CASES = [
    (LONG, "value", "piecewise", None),
    (LONG, "value+slope", "piecewise", None),
    (LONG, "shared", "piecewise", None),
    (LONG, "value", "spline", None),
    (LONG, "value+slope", "spline", {"longitudinal": {"months": ("student_t", 4, -1, 2)},
      "survival": {"anxiolytic": ("normal", 0, 0.5)}}),
    (LONG, "shared", "spline", None),
    ("alsfrs_r ~ months * antidepressant + (1 | patient_id)", "value", "piecewise",
     {"longitudinal": {"sd__(Intercept)": ("halfstudent_t", 3, 8)}}),
    ("alsfrs_r ~ months * antidepressant + (months || patient_id)", "value", "spline", None),
    # quadrature: P-spline and Weibull baselines, forced quadrature, quadratic time
    (LONG, "value", "pspline", None),
    (LONG, "value+slope", "pspline", {"survival": {"pspline_precision": ("gamma", 2, 0.1)}}),
    (LONG, "shared", "pspline", None),
    (LONG, "value", "weibull", None),
    (LONG, "value+slope", "weibull", None),
    (LONG, "shared", "weibull", None),
    (LONG, "value", ("piecewise", True), None),
    (LONG, "value+slope", ("spline", True), None),
    ("alsfrs_r ~ months + I(months**2) + antidepressant + (months | patient_id)", "value",
     "piecewise", None),
    ("alsfrs_r ~ months + I(months**2) + antidepressant + (months | patient_id)",
     "value+slope", "pspline", None),
    ("alsfrs_r ~ months + I(months**2) + antidepressant + (months | patient_id)", "shared",
     "spline", None),
]


@pytest.fixture(scope="module")
def cohort():
    return alsfrs.simulate_cohort(120, seed=5)


def _setup(cohort, formula, association, baseline, priors):
    baseline, quadrature = baseline if isinstance(baseline, tuple) else (baseline, False)
    jd = prepare_joint(formula, SURV, cohort, association=association, baseline=baseline,
                       quadrature=quadrature)[2]
    mm = jd.long.mm
    pri = resolve_joint_priors(priors, fixed_names=mm.fixed_names,
                               random_names=mm.random_names, blocks=mm.blocks, y=mm.y,
                               time="months", surv_names=jd.surv.names, response="alsfrs_r",
                               log_rate=-3.5)
    return jd, pri


def _reference(model, density: JointDensity):
    """PyMC's log density and gradient as functions of the NumPy density's θ."""
    lng, base, alpha = density.long, density.sl_base.start, density.sl_alpha.start

    def place(name, n):
        if name == "beta_c":
            return slice(0, lng.p)
        if name.startswith(("chol_block", "sd_block")):
            b = lng.blocks[int(name.split("_")[1].split("__")[0].removeprefix("block"))]
            return slice(b.start, b.start + b.size)
        positions = {"sigma_log__": lng.size - 1, "gamma": density.sl_gamma,
                     "alpha": alpha, "alpha_shared": density.sl_alpha,
                     "alpha_slope": alpha + 1, "log_h0": density.sl_base,
                     "log_rate": base, "log_h0_level": base, "log_shape": base + 1,
                     "log_h0_trend": base + 1, "tau_bs_log__": base + 2,
                     "bs_z": slice(base + 3, density.sl_base.stop), "z": density.sl_z}
        return positions[name]

    return reference(model, density.size, place)


@pytest.mark.parametrize("formula,association,baseline,priors", CASES)
def test_density_matches_pymc(cohort, formula, association, baseline, priors):
    jd, pri = _setup(cohort, formula, association, baseline, priors)
    assert supports(jd)
    density = JointDensity(jd, pri)
    ref = _reference(build_joint_model(jd, pri), density)
    rng = np.random.default_rng(3)
    x0 = np.zeros(density.size)
    x0[:density.long.size] = 0.0
    x0[density.sl_base] = density.baseline.start(-3.5)
    x0[0] = 35.0  # the intercept of the centred design near the mean score
    offsets = []
    for _ in range(4):
        theta = x0 + 0.3 * rng.standard_normal(density.size)
        theta[density.sl_alpha] = -0.05 + 0.02 * rng.standard_normal(
            density.sl_alpha.stop - density.sl_alpha.start)
        lp, g = density(theta)
        lp_ref, g_ref = ref(theta)
        assert np.isfinite(lp_ref)
        np.testing.assert_allclose(g, g_ref, rtol=1e-7, atol=1e-9 * np.max(np.abs(g_ref)))
        offsets.append(lp - lp_ref)
    assert np.ptp(offsets) < 1e-9 * max(1.0, abs(lp_ref))


def test_three_random_effects_use_the_pymc_model(cohort):
    quad = "alsfrs_r ~ months + I(months**2) + (months + I(months**2) | patient_id)"
    assert not supports(prepare_joint(quad, SURV, cohort)[2])


def test_laplace_is_the_mode_with_a_valid_covariance(cohort):
    jd, pri = _setup(cohort, LONG, "value", "piecewise", None)
    density = JointDensity(jd, pri)
    mode, cov, cross, zchol, record = joint_laplace(density, -3.5)
    assert record["success"]
    _, g = density(mode)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    assert np.max(np.abs(g[:density.n_global] * sd)) < 1e-2
    assert np.max(np.abs(g[density.n_global:])) < 1e-2
    # z's conditional covariance is at most the prior's (the data only add information)
    zcov = zchol @ np.swapaxes(zchol, 1, 2)
    assert np.all(np.linalg.eigvalsh(zcov) <= 1 + 1e-6)
    assert cross.shape == (density.G, density.q, density.n_global)


def test_laplace_coordinates(cohort):
    """x ↦ θ is affine and invertible, and the gradient in x is the chain rule's."""
    from alsfrs.joint.density import LaplaceCoordinates

    jd, pri = _setup(cohort, LONG, "value+slope", "spline", None)
    density = JointDensity(jd, pri)
    lap = LaplaceCoordinates(density, *joint_laplace(density, -3.5)[:4])
    rng = np.random.default_rng(9)
    x = rng.standard_normal(lap.size)
    theta = lap.to_theta(x)
    np.testing.assert_allclose(lap.from_theta(theta), x, atol=1e-9)
    np.testing.assert_allclose(lap.to_theta(np.stack([x, 2 * x]))[0], theta)
    lp, g = lap(x)
    assert lp == density(theta)[0]
    for j in rng.choice(lap.size, 6, replace=False):
        e = np.zeros(lap.size)
        e[j] = 1e-6
        fd = (lap(x + e)[0] - lap(x - e)[0]) / 2e-6
        assert fd == pytest.approx(g[j], rel=1e-4, abs=1e-4)


@pytest.mark.slow
def test_numpy_and_pymc_engines_agree(cohort, monkeypatch):
    """The same posterior from both engines (200 patients, 2 × 1,000 draws each): every
    summary mean within 4 Monte Carlo SEs of the difference (the PyMC model compiles
    to C: minutes on a fresh machine)."""
    import warnings

    from alsfrs.joint import density

    big = alsfrs.simulate_cohort(200, seed=12)
    kw = dict(association="value+slope", draws=1000, tune=1000, chains=2, seed=4,
              progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = alsfrs.fit_joint(LONG, SURV, big, **kw)
        monkeypatch.setattr(density, "supports", lambda jd: False)
        slow = alsfrs.fit_joint(LONG, SURV, big, **kw)
    assert fast.model_spec.settings["engine"] == "numpy"
    assert slow.model_spec.settings["engine"] == "pymc"
    a, b = fast.summary(), slow.summary()
    se = np.sqrt(a["sd"] ** 2 / a["ess_bulk"] + b["sd"] ** 2 / b["ess_bulk"])
    z = (a["mean"] - b["mean"]) / se
    print(pd.DataFrame({"numpy": a["mean"], "pymc": b["mean"], "z": z}).round(4).to_string())
    assert np.all(np.abs(z) < 4), z[np.abs(z) >= 4]
    # and the same spread
    np.testing.assert_allclose(a["sd"], b["sd"], rtol=0.15)
