"""The joint longitudinal-survival model: algebra, bad input, a small fit, persistence.

Recovery of the truth on 1,000 simulated patients, agreement with JMbayes2 and SBC
are in tests/test_joint_validation.py (the large ones marked slow).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import alsfrs
from alsfrs.joint.design import SurvivalData, make_joint_design
from alsfrs.joint.fit import prepare_joint
from alsfrs.joint.hazard import (
    BaselineSpec,
    baseline_cumulative_hazard,
    cumulative_hazard,
    latent_effects_np,
    log_hazard,
)

LONG = "alsfrs_r ~ months * (anxiolytic + antidepressant) + onset_site + (months | patient_id)"
SURV = ("Surv(months_to_death_imv, death_imv) ~ anxiolytic + antidepressant + onset_site"
        " + age_at_dx")


@pytest.fixture(scope="module")
def cohort():
    return alsfrs.simulate_cohort(120, seed=5)


@pytest.fixture(scope="module")
def design(cohort):
    return prepare_joint(LONG, SURV, cohort)[2]


def _spec(kind="piecewise", closed=True, n=7, knots=(0.0, 5.0, 12.0, 20.0, np.inf)):
    return BaselineSpec(kind=kind, knots=np.array(knots), t_scale=15.0, association="value",
                        closed_form=closed, quadrature_nodes=n)


# -- the cumulative hazard ---------------------------------------------------------------
def test_closed_form_matches_quadrature_and_scipy():
    rng = np.random.default_rng(1)
    D, G = 3, 40
    coef = [rng.normal(38, 5, (D, G)), rng.normal(-1, 0.7, (D, G))]
    coef[1][0, :5] = 0.0  # c = 0 exactly: the series branch
    coef[1][0, 5:10] = 1e-7
    alpha = rng.normal(-0.1, 0.02, (D, 1))
    eta = rng.normal(0, 0.3, (D, G)) + alpha * (coef[0] - 35)
    base = rng.normal(-4, 0.3, (D, 4))
    times = np.array([0.0, 3.0, 5.0, 11.9, 30.0, 55.0])
    closed = cumulative_hazard(_spec(), times, coef, eta, alpha, None, base)
    quad = cumulative_hazard(_spec(closed=False, n=15), times, coef, eta, alpha, None, base)
    np.testing.assert_allclose(closed, quad, rtol=1e-10, atol=1e-14)
    # an independent integral of the hazard for one patient and draw
    for d, g in [(0, 0), (0, 7), (2, 33)]:
        def h(t, d=d, g=g):
            return np.exp(log_hazard(_spec(), np.array([t]), [coef[0][d:d + 1, g:g + 1],
                                                              coef[1][d:d + 1, g:g + 1]],
                                     eta[d:d + 1, g:g + 1], alpha[d:d + 1], None,
                                     base[d:d + 1]))[0, 0]
        ref = sum(integrate.quad(h, a, b, epsabs=1e-13, epsrel=1e-12)[0]
                  for a, b in [(0, 5), (5, 12), (12, 20), (20, 30)])
        assert closed[d, g, 4] == pytest.approx(ref, rel=1e-9)


def test_weibull_quadrature_converges():
    """Gauss-Legendre over the pieces: 7 nodes per piece agree with 60 to 0.2% (the
    Weibull hazard t^(k-1) is not smooth at 0, so the first piece converges slowly;
    later pieces to 1e-6)."""
    rng = np.random.default_rng(2)
    coef = [rng.normal(38, 5, (2, 10)), rng.normal(-1, 0.5, (2, 10))]
    alpha = np.full((2, 1), -0.08)
    eta = alpha * (coef[0] - 35)
    base = np.array([[-3.5, np.log(1.3)], [-3.8, np.log(0.9)]])
    t = np.array([2.0, 17.0, 44.0])
    lo = cumulative_hazard(_spec("weibull", False, 7), t, coef, eta, alpha, None, base)
    hi = cumulative_hazard(_spec("weibull", False, 60), t, coef, eta, alpha, None, base)
    np.testing.assert_allclose(lo, hi, rtol=2e-3)
    # beyond the first piece the increments agree closely
    np.testing.assert_allclose(lo[..., 2] - lo[..., 1], hi[..., 2] - hi[..., 1], rtol=1e-6)


# -- the reparameterised random effects ------------------------------------------------------
def test_reparameterisation_identity(design):
    """log p(y|b) + log p(b) + log|db/dz| = collapsed log p(y) + log N(z; 0, I), per patient."""
    jd = design
    mm = jd.long.mm
    rng = np.random.default_rng(3)
    beta = np.linalg.lstsq(mm.X, mm.y, rcond=None)[0] + rng.normal(0, 0.1, mm.n_fixed)
    chol = np.array([[[5.0, 0.0], [-0.2, 0.6]]])
    sigma = np.array([1.7])
    G, q = mm.n_groups, mm.n_random
    z = rng.standard_normal((1, G, q))
    beta_c = jd.long.center(beta[None])
    b = latent_effects_np(jd.long.stats, beta_c, chol, sigma, z)[0]
    from alsfrs.bayes.posterior import marginal_loglik

    marg = marginal_loglik(jd.long, beta[None], chol, sigma)[0]
    Sigma = chol[0] @ chol[0].T
    for g in [0, 17, G - 1]:
        rows = mm.group == g
        resid = mm.y[rows] - mm.X[rows] @ beta - mm.Z[rows] @ b[g]
        lhs = (stats.norm.logpdf(resid, scale=sigma[0]).sum()
               + stats.multivariate_normal.logpdf(b[g], cov=Sigma))
        # Jacobian of z -> b: the Cholesky factor of the conditional covariance
        Zi = mm.Z[rows]
        cond_cov = np.linalg.inv(Zi.T @ Zi / sigma[0] ** 2 + np.linalg.inv(Sigma))
        jac = 0.5 * np.linalg.slogdet(cond_cov)[1]
        rhs = marg[g] + stats.norm.logpdf(z[0, g]).sum()
        assert lhs + jac == pytest.approx(rhs, abs=1e-8)


def test_pytensor_model_matches_numpy(design):
    """The sampled log density equals the NumPy algebra used for the posterior."""
    from alsfrs.bayes.posterior import marginal_loglik
    from alsfrs.joint.model import build_joint_model
    from alsfrs.joint.priors import resolve_joint_priors
    from alsfrs.joint.result import survival_loglik_np

    jd = design
    mm = jd.long.mm
    pri = resolve_joint_priors(None, fixed_names=mm.fixed_names, random_names=mm.random_names,
                               blocks=mm.blocks, y=mm.y, time="months",
                               surv_names=jd.surv.names, response="alsfrs_r", log_rate=-3.5)
    model = build_joint_model(jd, pri)
    ip = model.initial_point()
    rng = np.random.default_rng(4)
    point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in ip.items()}
    point["alpha"] = np.array(-0.08)
    outs = model.replace_rvs_by_values(
        [model["beta"], model["chol"], model["sigma"], model["gamma"], model["alpha"],
         model["log_h0"], model["z"], *model.potentials])
    f = model.compile_fn(outs, inputs=model.value_vars, point_fn=True)
    beta, chol, sigma, gamma, alpha, log_h0, z, p_long, p_surv = f(point)
    b = latent_effects_np(jd.long.stats, jd.long.center(beta[None]), chol[None],
                          np.array([sigma]), z[None])
    ll_s = survival_loglik_np(jd, jd.long.center(beta[None]), b, gamma[None],
                              np.array([alpha]), None, log_h0[None])
    ll_l = marginal_loglik(jd.long, beta[None], chol[None], np.array([sigma]))
    assert float(p_surv) == pytest.approx(ll_s.sum(), rel=1e-10)
    assert float(p_long) == pytest.approx(ll_l.sum(), rel=1e-10)


@pytest.mark.parametrize(("baseline", "association"), [("weibull", "value+slope"),
                                                       ("spline", "value+slope")])
def test_other_options_match_numpy(cohort, baseline, association):
    """Weibull baseline and the value+slope association: the sampled survival log density
    equals the NumPy algebra (used for the posterior and predictions)."""
    from alsfrs.joint.model import build_joint_model
    from alsfrs.joint.priors import resolve_joint_priors
    from alsfrs.joint.result import survival_loglik_np

    jd = prepare_joint(LONG, SURV, cohort, baseline=baseline, association=association)[2]
    mm = jd.long.mm
    pri = resolve_joint_priors(None, fixed_names=mm.fixed_names, random_names=mm.random_names,
                               blocks=mm.blocks, y=mm.y, time="months",
                               surv_names=jd.surv.names, response="alsfrs_r", log_rate=-3.5)
    model = build_joint_model(jd, pri)
    rng = np.random.default_rng(8)
    point = {k: v + rng.normal(0, 0.2, np.shape(v)) for k, v in model.initial_point().items()}
    point["alpha"] = np.array(-0.08)
    point["alpha_slope"] = np.array(0.3)
    base_vars = ["log_rate", "log_shape"] if baseline == "weibull" else ["log_h0"]
    outs = model.replace_rvs_by_values(
        [model["beta"], model["chol"], model["sigma"], model["gamma"], model["alpha"],
         model["alpha_slope"], model["z"], *[model[v] for v in base_vars],
         model.potentials[1]])
    vals = model.compile_fn(outs, inputs=model.value_vars, point_fn=True)(point)
    beta, chol, sigma, gamma, alpha, alpha_s, z, *base, p_surv = vals
    base = np.stack(base)[None] if baseline == "weibull" else base[0][None]
    b = latent_effects_np(jd.long.stats, jd.long.center(beta[None]), chol[None],
                          np.array([sigma]), z[None])
    ll = survival_loglik_np(jd, jd.long.center(beta[None]), b, gamma[None], np.array([alpha]),
                            np.array([alpha_s]), base)
    assert np.isfinite(float(p_surv))
    assert float(p_surv) == pytest.approx(ll.sum(), rel=1e-10)
    assert np.all(np.isfinite(model.compile_dlogp()(point)))


@pytest.mark.parametrize("baseline", ["piecewise", "spline"])
def test_quadrature_model_matches_closed_form(cohort, baseline):
    """Same log density whether the cumulative hazard is integrated or in closed form."""
    from alsfrs.joint.model import build_joint_model
    from alsfrs.joint.priors import resolve_joint_priors

    vals = []
    for quad in (False, True):
        jd = prepare_joint(LONG, SURV, cohort, quadrature=quad, quadrature_nodes=12,
                           baseline=baseline)[2]
        assert jd.closed_form is (not quad)
        mm = jd.long.mm
        pri = resolve_joint_priors(None, fixed_names=mm.fixed_names,
                                   random_names=mm.random_names, blocks=mm.blocks, y=mm.y,
                                   time="months", surv_names=jd.surv.names,
                                   response="alsfrs_r", log_rate=-3.5)
        model = build_joint_model(jd, pri)
        ip = model.initial_point()
        point = {k: v + 0.1 for k, v in ip.items()}
        vals.append(model.compile_logp()(point))
    assert vals[0] == pytest.approx(vals[1], rel=1e-9)


def test_trajectory_polynomial(design, cohort):
    """m_i(t) read off the formula reproduces X β at every visit; degree 2 with I(t^2)."""
    jd = design
    assert jd.degree == 1
    frame = cohort.to_frame()
    jd2 = prepare_joint("alsfrs_r ~ months + I(months^2) + anxiolytic + (months | patient_id)",
                        SURV, frame, patients=cohort.patients)[2]
    assert jd2.degree == 2 and not jd2.closed_form
    mm = jd2.long.mm
    t = frame["months"].to_numpy()
    Xhat = sum(t[:, None] ** d * jd2.P[d][mm.group] for d in range(3)) + jd2.long.xbar
    np.testing.assert_allclose(Xhat, mm.X, atol=1e-10)


# -- bad input -------------------------------------------------------------------------------
def _frames(cohort):
    visits = cohort.to_frame()
    pats = cohort.patients.reset_index()
    return visits, pats


def _rules(excinfo):
    return {p.rule for p in excinfo.value.problems}


def test_visit_after_event(cohort):
    visits, pats = _frames(cohort)
    pid = pats.loc[pats.death_imv == 1, "patient_id"].iloc[0]
    pats.loc[pats.patient_id == pid, "months_to_death_imv"] = 0.01
    with pytest.raises(alsfrs.ValidationError) as e:
        alsfrs.fit_joint(LONG, SURV, visits, patients=pats)
    assert "visit_after_event" in _rules(e)
    assert any(p.patient == pid for p in e.value.problems)


def test_event_without_visits(cohort):
    visits, pats = _frames(cohort)
    pid = pats.loc[pats.death_imv == 1, "patient_id"].iloc[0]
    visits = visits[visits.patient_id != pid]
    with pytest.raises(alsfrs.ValidationError) as e:
        alsfrs.fit_joint(LONG, SURV, visits, patients=pats)
    assert _rules(e) == {"no_visits"}
    assert "event" in str(e.value)


def test_missing_survival_covariate(cohort):
    visits, pats = _frames(cohort)
    pats.loc[[3, 7], "age_at_dx"] = np.nan
    with pytest.raises(alsfrs.ValidationError) as e:
        alsfrs.fit_joint(LONG, SURV, visits, patients=pats)
    assert _rules(e) == {"missing_values"}
    assert len(e.value.problems) == 2
    with pytest.raises(alsfrs.ValidationError) as e:
        alsfrs.fit_joint(LONG, SURV.replace("age_at_dx", "bmi"), visits, patients=pats)
    assert _rules(e) == {"unknown_column"}


def test_bad_options_and_formulas(cohort):
    with pytest.raises(alsfrs.ValidationError, match="Surv"):
        alsfrs.fit_joint(LONG, "months_to_death_imv ~ anxiolytic", cohort)
    with pytest.raises(alsfrs.ValidationError, match="association"):
        alsfrs.fit_joint(LONG, SURV, cohort, association="random_effects")
    with pytest.raises(alsfrs.ValidationError, match="draws"):
        alsfrs.fit_joint(LONG, SURV, cohort, draws=0)
    with pytest.raises(alsfrs.ValidationError, match="no survival parameter"):
        alsfrs.fit_joint(LONG, SURV, cohort, priors={"survival": {"lithium": ("normal", 0, 1)}})


def test_time_varying_covariate_refused(cohort):
    visits, pats = _frames(cohort)
    visits["bmi"] = np.random.default_rng(0).normal(25, 3, len(visits))
    with pytest.raises(alsfrs.ValidationError) as e:
        prepare_joint("alsfrs_r ~ months + bmi + (months | patient_id)", SURV, visits,
                      patients=pats)
    assert _rules(e) == {"time_varying_covariate"}


def test_design_from_arrays():
    """The engine runs on arrays too: a SurvivalData and a visits frame."""
    rng = np.random.default_rng(0)
    n = 30
    frame = pd.DataFrame({"pid": np.repeat(np.arange(n), 3), "t": np.tile([0.0, 3.0, 6.0], n)})
    frame["y"] = 40 - frame["t"] + rng.normal(0, 1, len(frame))
    surv = SurvivalData(time=np.full(n, 10.0), event=(rng.random(n) < 0.5).astype(float),
                        W=np.zeros((n, 0)), names=())
    jd = make_joint_design("y ~ t + (t | pid)", frame, surv, time="t", n_pieces=3)
    assert jd.closed_form and jd.n_pieces >= 1
    _, dl = jd.exposure()
    np.testing.assert_allclose(dl.sum(axis=1), 10.0)


# -- a small fit ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_fit(cohort):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return alsfrs.fit_joint(LONG, SURV, cohort, draws=100, tune=150, chains=2, seed=7,
                                progressbar=False)


def test_hazard_ratio_table(small_fit):
    hr = small_fit.hazard_ratios()
    assert list(hr.index) == ["anxiolytic", "antidepressant", "onset_sitebulbar", "age_at_dx",
                              "value(alsfrs_r)"]
    assert list(hr.columns) == ["log_hr_mean", "log_hr_sd", "hr", "hr_lower_95", "hr_upper_95",
                                "prob_hr_gt_1", "r_hat", "ess_bulk"]
    a = small_fit.draws("alpha")
    assert hr.loc["value(alsfrs_r)", "hr"] == pytest.approx(np.exp(np.median(a)))
    assert (hr.hr_lower_95 < hr.hr).all() and (hr.hr < hr.hr_upper_95).all()
    assert "point lost raises the hazard" in hr.attrs["per_point_lost"]
    assert small_fit.idata.posterior["patient_effects"].shape[2:] == (120, 2)
    assert small_fit.idata.log_likelihood["joint_by_patient"].shape[2] == 120


def test_contract(small_fit):
    from alsfrs.results import DIAGNOSTIC_COLUMNS, Result, result_type

    assert isinstance(small_fit, Result) and result_type("joint") is type(small_fit)
    s = small_fit.summary()
    assert {"longitudinal", "survival", "baseline"} == set(s.index.get_level_values(0))
    assert {"hdi_lower_95", "hdi_upper_95", "r_hat", "ess_bulk"} <= set(s.columns)
    d = small_fit.diagnostics()
    assert tuple(d.columns) == DIAGNOSTIC_COLUMNS
    assert small_fit.model_spec.seed == 7
    text = str(small_fit)
    assert "Hazard ratios" in text and "value(alsfrs_r)" in text
    assert "<table" in small_fit._repr_html_()
    ee = small_fit.exposure_effects()
    assert list(ee.index) == ["anxiolytic", "antidepressant"]


def test_same_seed_same_draws(cohort, small_fit):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = alsfrs.fit_joint(LONG, SURV, cohort, draws=100, tune=150, chains=2, seed=7,
                                 progressbar=False, cores=1)
    np.testing.assert_array_equal(again.draws("gamma"), small_fit.draws("gamma"))
    np.testing.assert_array_equal(again.draws("patient_effects"),
                                  small_fit.draws("patient_effects"))


def test_convergence_warnings_not_silent(cohort):
    from alsfrs.bayes import SamplingWarning

    with pytest.warns(SamplingWarning, match="ESS"):
        alsfrs.fit_joint(LONG, SURV, cohort, draws=20, tune=30, chains=2, seed=1,
                         progressbar=False)


def test_dynamic_prediction(small_fit, cohort):
    frame = cohort.to_frame()
    pid = cohort.patients.index[(cohort.patients.n_visits >= 4)][0]
    hist = frame[frame.patient_id == pid].iloc[:3]
    t_last = hist.months.max()
    pred = small_fit.predict_survival(hist, t_last + np.array([0.0, 3, 6, 12, 24]), seed=1)
    assert list(pred.columns) == ["patient_id", "time", "landmark", "mean", "median",
                                  "lower_95", "upper_95"]
    assert pred["mean"].iloc[0] == pytest.approx(1.0)
    assert np.all(np.diff(pred["median"]) <= 1e-12)
    assert ((pred.lower_95 <= pred["median"]) & (pred["median"] <= pred.upper_95)).all()
    assert (pred.upper_95 <= 1 + 1e-12).all() and (pred.lower_95 >= 0).all()
    # a worse history (lower scores) predicts a lower survival: α < 0 in the fit
    worse = hist.assign(alsfrs_r=hist.alsfrs_r - 10)
    pw = small_fit.predict_survival(worse, t_last + np.array([12.0]), seed=1)
    pb = small_fit.predict_survival(hist, t_last + np.array([12.0]), seed=1)
    assert pw["mean"].iloc[0] < pb["mean"].iloc[0]
    # same seed, same numbers
    pd.testing.assert_frame_equal(pb, small_fit.predict_survival(hist, t_last + np.array([12.0]),
                                                                 seed=1))


def test_save_load_round_trip(small_fit, tmp_path):
    """Saved and loaded through alsfrs.load_result: every number bit for bit."""
    path = small_fit.save(tmp_path / "joint.zip")
    back = alsfrs.load_result(path)
    assert type(back) is type(small_fit)
    pd.testing.assert_frame_equal(back.summary(), small_fit.summary(), check_exact=True)
    pd.testing.assert_frame_equal(back.hazard_ratios(), small_fit.hazard_ratios(),
                                  check_exact=True)
    np.testing.assert_array_equal(back.draws("patient_effects"),
                                  small_fit.draws("patient_effects"))
    np.testing.assert_array_equal(back.design.long.mm.X, small_fit.design.long.mm.X)
    np.testing.assert_array_equal(back.design.surv.W, small_fit.design.surv.W)
    np.testing.assert_array_equal(back.design.knots, small_fit.design.knots)
    assert back.model_spec.settings == small_fit.model_spec.settings
    assert back.timing == small_fit.timing


def test_report(small_fit, cohort, tmp_path):
    """The joint renderer: HR table with truth, α in words, figures, no patient ids."""
    path = alsfrs.write_report({"joint": small_fit}, tmp_path / "r.html", cohort)
    text = path.read_text()
    assert "joint model — survival" in text and "value(alsfrs_r)" in text
    assert "point lost" in text and "hr_truth" in text
    assert "example patient (pseudonymised)" in text or "dynamic prediction" in text
    assert text.count("<img") >= 2
    ids = set(cohort.patients.index)
    assert not any(f">{p}<" in text for p in ids)


# -- penalised B-spline baseline and shared random effects -----------------------------------
def _pspline_spec(t_max=60.0, n_segments=9, n=7, association="value"):
    from alsfrs.joint.design import PSplineBasis

    ps = PSplineBasis(t_max=t_max, n_segments=n_segments)
    return BaselineSpec(kind="pspline", knots=np.concatenate([ps.breaks, [np.inf]]),
                        t_scale=15.0, association=association, closed_form=False,
                        quadrature_nodes=n, t_end=t_max + 1e-6, pspline=ps)


def test_pspline_basis_and_penalty():
    """Cubic B-splines (scipy) on equal segments: rows sum to 1, straight lines are
    reproduced exactly by the null space of the second-difference penalty, log h0 is held
    constant beyond the last knot, and E turns θᵀDᵀDθ into εᵀε."""
    ps = _pspline_spec().pspline
    t = np.linspace(0, 60, 301)
    B = ps.basis(t)
    assert B.shape == (301, 12) and ps.n_coef == 12
    np.testing.assert_allclose(B.sum(axis=1), 1.0, atol=1e-12)
    N = ps.null_space()
    np.testing.assert_allclose(B @ (-3.5 * N[:, 0] + 0.8 * N[:, 1]),
                               -3.5 + 0.8 * (t - 30.0) / 60.0, atol=1e-12)
    np.testing.assert_allclose(ps.basis(np.array([75.0, 200.0])), ps.basis(np.array([60.0, 60.0])))
    P, E = ps.penalty(2), ps.penalty_root(2)
    assert E.shape == (12, 10)
    np.testing.assert_allclose(E.T @ P @ E, np.eye(10), atol=1e-9)
    np.testing.assert_allclose(N.T @ E, 0.0, atol=1e-9)
    np.testing.assert_allclose(P @ N, 0.0, atol=1e-12)


def test_pspline_quadrature_matches_closed_form():
    """With coefficients on the penalty's null space log h0 is a straight line, so the
    hazard with a linear trajectory is exp(a + c t) and H has the closed form
    e^{a} (e^{cT} − 1)/c: Gauss–Legendre (7 nodes per segment) agrees to 1e-11. With
    random coefficients, against scipy.integrate.quad (1e-9)."""
    spec = _pspline_spec()
    ps = spec.pspline
    rng = np.random.default_rng(11)
    D, G = 2, 25
    lev, tr = np.array([-3.9, -3.2]), np.array([0.6, -0.4])
    theta = lev[:, None] * ps.null_space()[:, 0] + tr[:, None] * ps.null_space()[:, 1]
    coef = [rng.normal(38, 5, (D, G)), rng.normal(-1, 0.7, (D, G))]
    alpha = np.array([[-0.08], [-0.1]])
    eta = rng.normal(0, 0.3, (D, G)) + alpha * (coef[0] - 35)
    times = np.array([0.5, 6.66, 13.0, 44.0, 60.0, 72.0])  # beyond 60: constant h0 part
    H = cumulative_hazard(spec, times, coef, eta, alpha, None, theta)
    a = (lev - tr / 2)[:, None, None] + eta[..., None]  # log h at t = 0
    c = (tr / 60.0)[:, None, None] + alpha[..., None] * coef[1][..., None]
    t_in = np.minimum(times, 60.0)
    ref = np.exp(a) * t_in * np.expm1(c * t_in) / (c * t_in)
    # beyond t_max the baseline stays at its value at 60: the trajectory part still moves
    c2 = alpha[..., None] * coef[1][..., None]
    a2 = a + (tr / 60.0)[:, None, None] * 60.0 + c2 * 60.0
    extra = np.where(times > 60, np.exp(a2) * (times - 60) * np.expm1(c2 * np.maximum(
        times - 60, 1e-300)) / (c2 * np.maximum(times - 60, 1e-300)), 0.0)
    np.testing.assert_allclose(H, ref + extra, rtol=1e-11)
    # random coefficients: against an adaptive integral
    theta_r = rng.normal(-3.5, 0.5, (1, ps.n_coef))
    H0 = baseline_cumulative_hazard(spec, np.array([17.3, 59.0]), theta_r, closed_form=False)

    def h0(t):
        return float(np.exp(ps.basis(np.array([t])) @ theta_r[0])[0])
    brk = list(ps.breaks)
    for j, T in enumerate([17.3, 59.0]):
        pts = [b for b in brk if b < T] + [T]
        ref = sum(integrate.quad(h0, lo, hi, epsabs=1e-14, epsrel=1e-12)[0]
                  for lo, hi in itertools.pairwise(pts))
        assert H0[0, j] == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("kind", ["piecewise", "spline", "weibull"])
def test_shared_closed_form_matches_quadrature(kind):
    """Shared random effects: H = exp(γᵀw + αᵀb) H0(T); H0 in closed form for the
    piecewise, spline and Weibull baselines equals quadrature and scipy."""
    rng = np.random.default_rng(5)
    knots = (0.0, 5.0, 12.0, 20.0, np.inf)
    spec_c = BaselineSpec(kind=kind, knots=np.array(knots), t_scale=15.0, association="shared",
                          closed_form=True, quadrature_nodes=7, t_end=30.0)
    spec_q = BaselineSpec(kind=kind, knots=np.array(knots), t_scale=15.0, association="shared",
                          closed_form=False, quadrature_nodes=60, t_end=30.0)
    base = (np.array([[-3.5, np.log(1.3)], [-3.9, np.log(0.8)]]) if kind == "weibull"
            else rng.normal(-4, 0.4, (2, 4 if kind == "piecewise" else 5)))
    times = np.array([0.7, 5.0, 11.0, 26.0, 41.0])
    eta = rng.normal(0, 0.5, (2, 6))
    H = cumulative_hazard(spec_c, times, None, eta, None, None, base)
    Hq = cumulative_hazard(spec_q, times, None, eta, None, None, base)
    np.testing.assert_allclose(H, Hq, rtol=1e-3 if kind == "weibull" else 1e-11)
    np.testing.assert_allclose(H, np.exp(eta)[..., None] * baseline_cumulative_hazard(
        spec_c, times, base)[:, None, :], rtol=1e-13)

    def h(t):
        return float(np.exp(log_hazard(spec_c, np.array([t]), None, eta[1:, 2:3], None, None,
                                       base[1:2]))[0, 0])
    ref = sum(integrate.quad(h, lo, hi, epsabs=1e-14, epsrel=1e-12)[0]
              for lo, hi in [(0, 5), (5, 12), (12, 20), (20, 26)])
    assert H[1, 2, 3] == pytest.approx(ref, rel=1e-9)


def _check_model_vs_numpy(jd, seed=8):
    """The sampled survival log density and its gradient against the NumPy algebra."""
    from alsfrs.joint.model import build_joint_model
    from alsfrs.joint.priors import resolve_joint_priors
    from alsfrs.joint.result import survival_loglik_np

    mm = jd.long.mm
    pri = resolve_joint_priors(None, fixed_names=mm.fixed_names, random_names=mm.random_names,
                               blocks=mm.blocks, y=mm.y, time="months",
                               surv_names=jd.surv.names, response="alsfrs_r", log_rate=-3.5)
    model = build_joint_model(jd, pri)
    rng = np.random.default_rng(seed)
    point = {k: v + rng.normal(0, 0.2, np.shape(v)) for k, v in model.initial_point().items()}
    names = ["beta", "chol", "sigma", "gamma", "z"] + [
        n for n in ("alpha", "alpha_slope", "alpha_shared") if n in model.named_vars]
    base_vars = {"weibull": ["log_rate", "log_shape"], "pspline": ["bs_coef"]}.get(
        jd.baseline, ["log_h0"])
    outs = model.replace_rvs_by_values([model[n] for n in names + base_vars]
                                       + [model.potentials[1]])
    vals = dict(zip([*names, *base_vars, "p"],
                    model.compile_fn(outs, inputs=model.value_vars, point_fn=True)(point),
                    strict=True))
    base = (np.stack([vals[v] for v in base_vars])[None] if jd.baseline == "weibull"
            else vals[base_vars[0]][None])
    beta_c = jd.long.center(vals["beta"][None])
    b = latent_effects_np(jd.long.stats, beta_c, vals["chol"][None], np.array([vals["sigma"]]),
                          vals["z"][None])

    def opt(n):
        return np.array([vals[n]]) if n in vals else None
    ll = survival_loglik_np(jd, beta_c, b, vals["gamma"][None], opt("alpha"),
                            opt("alpha_slope"), base, opt("alpha_shared"))
    assert np.isfinite(float(vals["p"]))
    assert float(vals["p"]) == pytest.approx(ll.sum(), rel=1e-10)
    assert np.all(np.isfinite(model.compile_dlogp()(point)))
    return model


@pytest.mark.parametrize(("baseline", "association"), [
    ("pspline", "value"), ("pspline", "value+slope"), ("pspline", "shared"),
    ("piecewise", "shared"), ("spline", "shared"), ("weibull", "shared")])
def test_new_options_match_numpy(cohort, baseline, association):
    """P-spline baseline and shared random effects: PyTensor log density = NumPy (1e-10)."""
    jd = prepare_joint(LONG, SURV, cohort, baseline=baseline, association=association)[2]
    assert jd.closed_form is (baseline != "pspline")
    model = _check_model_vs_numpy(jd)
    if baseline == "pspline":
        assert len(model.coords["bs_basis"]) == 12 and len(model.coords["bs_pen"]) == 10
        assert jd.pspline.n_segments == 9 and jd.setting_pieces == 9
    if association == "shared":
        assert "alpha" not in model.named_vars and "alpha_shared" in model.named_vars


def test_shared_quadratic_and_forced_quadrature(cohort):
    """Shared random effects with a quadratic trajectory keep the closed form (the
    trajectory is not in the hazard); forced quadrature (whole pieces integrated once)
    gives the same log density."""
    from alsfrs.joint.model import build_joint_model
    from alsfrs.joint.priors import resolve_joint_priors

    frame = cohort.to_frame()
    f2 = ("alsfrs_r ~ months + I(months^2) + anxiolytic + (months + I(months^2) | "
          "patient_id)")
    jd = prepare_joint(f2, SURV, frame, patients=cohort.patients, association="shared")[2]
    assert jd.degree == 2 and jd.closed_form and jd.n_random == 3
    _check_model_vs_numpy(jd)
    vals = []
    for quad in (False, True):
        jd = prepare_joint(LONG, SURV, cohort, association="shared", quadrature=quad,
                           quadrature_nodes=12, baseline="spline")[2]
        assert jd.closed_form is (not quad)
        mm = jd.long.mm
        pri = resolve_joint_priors(None, fixed_names=mm.fixed_names,
                                   random_names=mm.random_names, blocks=mm.blocks, y=mm.y,
                                   time="months", surv_names=jd.surv.names,
                                   response="alsfrs_r", log_rate=-3.5)
        model = build_joint_model(jd, pri)
        vals.append(model.compile_logp()({k: v + 0.1 for k, v in
                                          model.initial_point().items()}))
    assert vals[0] == pytest.approx(vals[1], rel=1e-9)


def test_new_options_bad_input(cohort):
    """Bad baselines, associations, segment counts and priors: one ValidationError each,
    listing every problem."""
    with pytest.raises(alsfrs.ValidationError) as e:
        alsfrs.fit_joint(LONG, SURV, cohort, baseline="bspline", association="ranef",
                         n_pieces=0)
    assert {p.column for p in e.value.problems} == {"baseline", "association", "n_pieces"}
    with pytest.raises(alsfrs.ValidationError, match="n_pieces >= 2"):
        alsfrs.fit_joint(LONG, SURV, cohort, baseline="pspline", n_pieces=1)
    with pytest.raises(alsfrs.ValidationError, match="n_pieces"):
        alsfrs.fit_joint(LONG, SURV, cohort, baseline="pspline", n_pieces=2.5)
    with pytest.raises(alsfrs.ValidationError) as e:
        alsfrs.fit_joint(LONG, SURV, cohort, baseline="pspline", association="shared",
                         priors={"survival": {"pspline_precision": ("normal", 0, 1),
                                              "ranef(alsfrs_r):slope": ("normal", 0, 1)}})
    assert _rules(e) == {"bad_prior", "unknown_prior"}
    assert "ranef(alsfrs_r):months" in str(e.value)


def test_new_priors_overridable(cohort):
    from alsfrs.joint.priors import resolve_joint_priors

    jd = prepare_joint(LONG, SURV, cohort)[2]
    mm = jd.long.mm
    kw = dict(fixed_names=mm.fixed_names, random_names=mm.random_names, blocks=mm.blocks,
              y=mm.y, time="months", surv_names=jd.surv.names, response="alsfrs_r",
              log_rate=-3.5)
    default = resolve_joint_priors(None, **kw)
    assert str(default.pspline_precision) == "gamma(5, 0.5)"
    assert str(default.shared["ranef(alsfrs_r):(Intercept)"]) == "normal(0, 0.5)"
    assert str(default.shared["ranef(alsfrs_r):months"]) == "normal(0, 2)"
    pri = resolve_joint_priors({"survival": {"pspline_precision": ("gamma", 1, 0.005),
                                             "pspline_trend": ("normal", 0, 1),
                                             "ranef(alsfrs_r):months": ("normal", -1, 1)}},
                               **kw)
    assert pri.pspline_precision.params == (1.0, 0.005)
    assert pri.pspline_trend.params == (0.0, 1.0)
    assert pri.shared["ranef(alsfrs_r):months"].params == (-1.0, 1.0)
    # the saved form round-trips
    again = resolve_joint_priors(pri.to_dict("alsfrs_r"), **kw)
    assert again == pri


def test_time_variable_chosen_as_fit_bayes(cohort):
    """The joint model chooses its time variable with alsfrs.timeaxis.time_variable: the
    random slope's variable, else a known time axis; a time not in the model is the same
    ValidationError as fit_bayes gives."""
    from alsfrs.bayes.fit import _prepare
    from alsfrs.timeaxis import time_variable

    frame = cohort.to_frame()
    jd = prepare_joint("alsfrs_r ~ months + anxiolytic + (1 | patient_id)", SURV, frame,
                       patients=cohort.patients)[2]
    assert jd.long.time == "months"
    mm = jd.long.mm
    assert time_variable(mm.variables, mm.random_names, None) == "months"
    with pytest.raises(alsfrs.ValidationError) as ej:
        prepare_joint(LONG, SURV, frame, patients=cohort.patients, time="days")
    with pytest.raises(alsfrs.ValidationError) as eb:
        _prepare(LONG, frame, None, "days")
    assert [(p.rule, p.column, p.message) for p in ej.value.problems] == [
        (p.rule, p.column, p.message) for p in eb.value.problems]


# -- small fits with the new options ----------------------------------------------------------
@pytest.fixture(scope="module")
def pspline_fit(cohort):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return alsfrs.fit_joint(LONG, SURV, cohort, baseline="pspline", draws=100, tune=150,
                                chains=2, seed=3, progressbar=False)


@pytest.fixture(scope="module")
def shared_fit(cohort):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return alsfrs.fit_joint(LONG, SURV, cohort, association="shared", draws=100, tune=150,
                                chains=2, seed=3, progressbar=False)


def test_pspline_fit_sensible(pspline_fit, cohort):
    """P-spline baseline: the survival terms and α near the simulated truth (within 3
    posterior SD; α within 0.03 of −log 1.08, the cohort's oracle being near −0.08), the
    baseline reported at the segment boundaries and the penalty precision."""
    f = pspline_fit
    hr = f.hazard_ratios()
    sv = cohort.truth["survival"]
    truth = {"anxiolytic": np.log(sv["hazard_ratios"]["anxiolytic"]),
             "antidepressant": np.log(sv["hazard_ratios"]["antidepressant"]),
             "age_at_dx": np.log(sv["hazard_ratio_per_year_age"]),
             "onset_sitebulbar": np.log(sv["hazard_ratio_bulbar"])}
    for term, value in truth.items():
        assert abs(hr.loc[term, "log_hr_mean"] - value) < 3 * hr.loc[term, "log_hr_sd"], term
    assert abs(hr.loc["value(alsfrs_r)", "log_hr_mean"] + np.log(1.08)) < 0.03
    base = f.summary().loc["baseline"]
    assert list(base.index[:2]) == ["log_h0(0.0)", f"log_h0({f.design.pspline.breaks[1]:.1f})"]
    assert len(base) == 9 + 1 + 1 and base.index[-1] == "tau_bs"
    # log baseline hazard per month near log(events / person-time) at mean covariates
    assert np.all(np.abs(base["mean"].iloc[:4] - np.log(f.nevents / f.design.surv.time.sum()))
                  < 1.5)
    assert f.settings["n_pieces"] == 9 and f.settings["baseline"] == "pspline"
    assert "cubic B-spline, 9 equal segments" in str(f)


def test_shared_fit_sensible(shared_fit):
    """Shared random effects on a cohort whose hazard follows the current ALSFRS-R: a lower
    level and a faster decline than average both raise the hazard (log HRs < 0 per point
    above average / per point/month less decline), named ranef(alsfrs_r):<term>."""
    f = shared_fit
    hr = f.hazard_ratios()
    assert list(hr.index) == ["anxiolytic", "antidepressant", "onset_sitebulbar", "age_at_dx",
                              "ranef(alsfrs_r):(Intercept)", "ranef(alsfrs_r):months"]
    assert f.association_names == ["ranef(alsfrs_r):(Intercept)", "ranef(alsfrs_r):months"]
    assert hr.loc["ranef(alsfrs_r):(Intercept)", "hr_upper_95"] < 1
    assert hr.loc["ranef(alsfrs_r):months", "hr_upper_95"] < 1
    # with the value association α ≈ −0.08 per point, the slope's effect over ~20 months of
    # follow-up is of the order α × 20: between −4 and −0.5 per point/month
    assert -4 < hr.loc["ranef(alsfrs_r):months", "log_hr_mean"] < -0.5
    words = f.association_in_words()
    assert "random intercept" in words and "random slope" in words and "raises" in words
    pred = f.predict_survival(f.visits[f.visits.patient_id == f.visits.patient_id.iloc[0]],
                              [30.0, 40.0], seed=1)
    assert (np.diff(pred["median"]) <= 1e-12).all() and (pred["upper_95"] <= 1).all()


@pytest.mark.parametrize("name", ["pspline_fit", "shared_fit"])
def test_new_options_round_trip(name, request, tmp_path):
    fit = request.getfixturevalue(name)
    back = alsfrs.load_result(fit.save(tmp_path / "fit.zip"))
    pd.testing.assert_frame_equal(back.summary(), fit.summary(), check_exact=True)
    pd.testing.assert_frame_equal(back.hazard_ratios(), fit.hazard_ratios(), check_exact=True)
    assert back.model_spec.settings == fit.model_spec.settings
    assert back.priors == fit.priors
    np.testing.assert_array_equal(back.design.knots, fit.design.knots)
    assert back.association_in_words() == fit.association_in_words()


def test_new_options_report(shared_fit, pspline_fit, cohort, tmp_path):
    path = alsfrs.write_report({"shared": shared_fit, "pspline": pspline_fit},
                               tmp_path / "r.html", cohort)
    text = path.read_text()
    assert "ranef(alsfrs_r):months" in text and "random slope" in text
    assert "for the same ALSFRS-R level and decline" in text
    assert "shared: joint model — survival" in text and "pspline: joint model — survival" in text
    assert "value(alsfrs_r)" in text and "pspline" in text
    assert text.count("<img") >= 4


# -- slow: recovery of the new options on ~500 simulated patients ---------------------------
def _simulate_joint(n: int, seed: int, association: str):
    """A joint-model cohort with exactly known truth (no rounding, no floor): ALSFRS-R
    linear in time with correlated random intercept and slope, Gaussian error; a smooth,
    not log-linear baseline log h0(t) = c + 0.5 sin(2πt/36); the hazard follows the
    current value (α = −0.08 per point) or the shared random effects (−0.05 per point of
    level, −1.0 per point/month of slope); drug and age10 act on both submodels;
    censoring uniform on 12–60 months; visits every 3 months until the event/censoring.
    Event times by inverting the cumulative hazard on a fine grid (step 0.02 months)."""
    rng = np.random.default_rng(seed)
    drug = rng.binomial(1, 0.4, n).astype(float)
    age10 = rng.normal(0, 1, n)
    b = rng.multivariate_normal([0.0, 0.0], [[25.0, -0.6], [-0.6, 0.36]], n)
    level = 38.0 - 1.0 * age10 + b[:, 0]
    slope = -0.9 - 0.3 * drug + b[:, 1]
    grid = np.linspace(0.0, 120.0, 6001)
    truth = {"drug": 0.4, "age10": 0.3}
    lp = truth["drug"] * drug + truth["age10"] * age10
    if association == "value":
        truth["value(y)"] = -0.08
        log_h = (-4.3 + 0.5 * np.sin(2 * np.pi * grid / 36))[None] + lp[:, None] + truth[
            "value(y)"] * (level[:, None] + slope[:, None] * grid[None] - 38.0)
    else:
        truth["ranef(y):(Intercept)"], truth["ranef(y):months"] = -0.05, -1.0
        log_h = (-3.6 + 0.5 * np.sin(2 * np.pi * grid / 36))[None] + (
            lp - 0.05 * b[:, 0] - 1.0 * b[:, 1])[:, None]
    h = np.exp(log_h)
    H = np.concatenate([np.zeros((n, 1)), np.cumsum((h[:, 1:] + h[:, :-1]) / 2 * np.diff(grid),
                                                    axis=1)], axis=1)
    E = rng.exponential(size=n)
    T = np.array([np.interp(E[i], H[i], grid) if E[i] < H[i, -1] else np.inf
                  for i in range(n)])
    C = rng.uniform(12.0, 60.0, n)
    time = np.maximum(np.minimum(T, C), 0.05)
    event = (T <= C).astype(float)
    rows = []
    for i in range(n):
        for t in np.arange(0.0, time[i], 3.0):
            rows.append((f"p{i:04d}", t, level[i] + slope[i] * t + rng.normal(0, 1.5),
                         drug[i], age10[i]))
    visits = pd.DataFrame(rows, columns=["pid", "months", "y", "drug", "age10"])
    patients = pd.DataFrame({"pid": [f"p{i:04d}" for i in range(n)], "time": time,
                             "event": event, "drug": drug, "age10": age10,
                             "b0_true": b[:, 0], "b1_true": b[:, 1]})
    return visits, patients, truth


def _oracle_shared(patients: pd.DataFrame) -> dict[str, float]:
    """The cohort's own values of γ and α of the shared model: Cox regression on the TRUE
    random effects (exact for this proportional-hazards model, whatever the baseline)."""
    import statsmodels.api as sm

    X = patients[["drug", "age10", "b0_true", "b1_true"]].to_numpy()
    m = sm.PHReg(patients.time.to_numpy(), X, status=patients.event.to_numpy(),
                 ties="efron").fit()
    return dict(zip(["drug", "age10", "ranef(y):(Intercept)", "ranef(y):months"], m.params,
                    strict=True))


@pytest.mark.slow
@pytest.mark.parametrize(("baseline", "association"), [("pspline", "value"),
                                                       ("pspline", "shared"),
                                                       ("piecewise", "shared")])
def test_new_options_recover_truth(baseline, association):
    """500 simulated patients (seed 2026): every γ and α recovered. Criterion: the truth
    within the 99% interval, and where the cohort's own value is computable (shared
    random effects: Cox on the true random effects) that value within the 90% interval.
    The 90% coverage of the truth is printed; docs/joint.md records it (on this cohort the
    random-intercept association's own value is −0.076, 2.2 SE from the simulated −0.05,
    outside the 90% interval; over 30 other cohorts the oracle averages −0.052)."""
    import time as _t

    visits, patients, truth = _simulate_joint(500, 2026, association)
    oracle = _oracle_shared(patients) if association == "shared" else {}
    t0 = _t.perf_counter()
    fit = alsfrs.fit_joint("y ~ months * drug + age10 + (months | pid)",
                           "Surv(time, event) ~ drug + age10", visits, patients=patients,
                           baseline=baseline, association=association, draws=500, tune=500,
                           chains=2, seed=11, progressbar=False)
    elapsed = _t.perf_counter() - t0
    hr90, hr99 = fit.hazard_ratios(level=0.90), fit.hazard_ratios(level=0.99)
    print(f"\n{baseline}/{association}: {len(patients)} patients, {len(visits)} visits, "
          f"{int(patients.event.sum())} events, {elapsed:.0f} s; max R-hat "
          f"{fit.summary().r_hat.max():.3f}, min bulk ESS {fit.summary().ess_bulk.min():.0f}")
    ok = {}
    for term, value in truth.items():
        row, r99 = hr90.loc[term], hr99.loc[term]
        lo, hi = np.log(row["hr_lower_90"]), np.log(row["hr_upper_90"])
        in90 = lo <= value <= hi
        ok[f"{term}: truth in 99%"] = np.log(r99["hr_lower_99"]) <= value <= np.log(
            r99["hr_upper_99"])
        extra = ""
        if term in oracle:
            ok[f"{term}: oracle in 90%"] = lo <= oracle[term] <= hi
            extra = f"  oracle {oracle[term]:+.3f}"
        print(f"  {term:22s} truth {value:+.3f}{extra}  mean {row['log_hr_mean']:+.3f} "
              f"(SD {row['log_hr_sd']:.3f})  90% [{lo:+.3f}, {hi:+.3f}]  "
              f"truth {'in' if in90 else 'OUT'}")
    assert all(ok.values()), ok
