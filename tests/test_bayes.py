"""Bayesian slope models: equivalence of the parameterisations, recovery, reproducibility.

MCMC here is small (CI runs on 2 cores); the slow, thorough checks are marked ``slow``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import alsfrs
from alsfrs import ValidationError
from alsfrs.bayes import SamplingWarning, compare, fit_bayes, prior_predictive
from alsfrs.effects import EFFECT_COLUMNS

FORMULA = "alsfrs_r ~ months * antidepressant + (months | patient_id)"
EXPOSURES = "alsfrs_r ~ months * (anxiolytic + hypnotic + antidepressant) + (months | patient_id)"


@pytest.fixture(scope="module")
def small_cohort():
    return alsfrs.simulate_cohort(150, seed=21)


@pytest.fixture(scope="module")
def collapsed(small_cohort):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return fit_bayes(FORMULA, small_cohort, chains=2, draws=1000, tune=700, seed=5,
                         progressbar=False)


@pytest.fixture(scope="module")
def noncentered(small_cohort):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return fit_bayes(FORMULA, small_cohort, chains=2, draws=1500, tune=1000, seed=5,
                         parameterization="noncentered", progressbar=False)


def test_parameterisations_give_the_same_posterior(collapsed, noncentered):
    a, b = collapsed.summary(), noncentered.summary()
    assert list(a.index) == list(b.index)
    # Monte Carlo standard errors of the means, from each fit's bulk ESS
    mcse = np.sqrt(a["sd"] ** 2 / a["ess_bulk"] + b["sd"] ** 2 / b["ess_bulk"])
    z = (a["mean"] - b["mean"]) / mcse
    assert (z.abs() < 4.5).all(), z
    ratio = a["sd"] / b["sd"]
    assert ratio.between(0.8, 1.25).all(), ratio
    # per-patient effects agree too (posterior means, on the slope scale)
    diff = (collapsed.random_effects - noncentered.random_effects).abs()
    assert float(diff["months"].mean()) < 0.05


def test_result_interface(collapsed, small_cohort):
    s = collapsed.summary()
    assert list(s.columns) == ["mean", "sd", "hdi_lower_95", "hdi_upper_95", "r_hat", "ess_bulk",
                               "ess_tail"]
    assert list(s.index) == ["(Intercept)", "months", "antidepressant", "months:antidepressant",
                             "sd__(Intercept)", "sd__months", "cor__(Intercept).months",
                             "sd__Observation"]
    eff = collapsed.exposure_effects()
    assert list(eff.columns) == [*EFFECT_COLUMNS, "prob_faster", "prob_faster_by_margin"]
    assert list(eff.index) == ["antidepressant"]
    d = collapsed.draws("beta")[:, 3]
    assert eff.loc["antidepressant", "prob_faster"] == pytest.approx((d < 0).mean())
    assert eff.loc["antidepressant", "prob_faster_by_margin"] == pytest.approx((d < -0.1).mean())
    lmm_cols = alsfrs.fit_lmm(FORMULA, small_cohort).exposure_effects().columns
    assert list(lmm_cols) == EFFECT_COLUMNS
    vc = collapsed.variance_components
    assert list(vc.columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    assert vc["grp"].tolist() == ["patient_id"] * 3 + ["Residual"]
    groups = set(collapsed.idata.groups())
    assert {"posterior", "log_likelihood", "posterior_predictive", "observed_data",
            "sample_stats"} <= groups
    pe = collapsed.idata.posterior["patient_effects"]
    assert pe.shape == (2, 1000, small_cohort.n_patients, 2)
    assert collapsed.idata.log_likelihood["y_by_patient"].shape == (2, 1000, 150)
    assert collapsed.predict().shape == (small_cohort.n_visits,)
    pop = collapsed.predict(small_cohort.to_frame(), include_random=False)
    assert np.allclose(pop, collapsed.design.mm.X @ collapsed.fixed_effects["estimate"])
    assert "sd__months" in collapsed._repr_html_()
    assert collapsed.diagnostics()["passed"].dtype == bool
    assert collapsed.model is not None and "marginal_loglik" in collapsed.model.named_vars


def test_same_seed_same_draws(small_cohort):
    kw = dict(chains=1, draws=60, tune=60, seed=11, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        a = fit_bayes(FORMULA, small_cohort, **kw)
        b = fit_bayes(FORMULA, small_cohort, **kw)
    np.testing.assert_array_equal(a.draws("beta"), b.draws("beta"))
    np.testing.assert_array_equal(a.draws("patient_effects"), b.draws("patient_effects"))


def test_short_runs_warn(small_cohort):
    with pytest.warns(SamplingWarning, match="min bulk ESS is .* fails the criterion >= 400"):
        fit_bayes(FORMULA, small_cohort, chains=1, draws=40, tune=40, seed=1, progressbar=False)


def test_recovery_against_truth_and_lmm():
    """1,000 patients: 90% intervals hold the true exposure x time effects; posterior
    means agree with the REML estimates within 0.2 posterior SD."""
    c = alsfrs.simulate_cohort(1000, seed=31)
    fit = fit_bayes(EXPOSURES, c, chains=2, draws=500, tune=500, seed=2, progressbar=False)
    truth = c.truth["exposure_slope_effects"]
    eff = fit.exposure_effects(level=0.90)
    for e, value in truth.items():
        assert eff.loc[e, "ci_lower"] <= value <= eff.loc[e, "ci_upper"], (e, eff.loc[e])
    lmm = alsfrs.fit_lmm(EXPOSURES, c).fixed_effects
    post = fit.summary()
    z = (post.loc[lmm.index, "mean"] - lmm["estimate"]) / post.loc[lmm.index, "sd"]
    assert (z.abs() < 0.2).all(), z
    assert fit.diagnostics()["passed"].all()


def test_student_t_needs_noncentered(small_cohort):
    with pytest.raises(ValidationError, match="noncentered"):
        fit_bayes(FORMULA, small_cohort, family="student_t", progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        r = fit_bayes(FORMULA, small_cohort, family="student_t", parameterization="noncentered",
                      chains=1, draws=100, tune=100, seed=3, progressbar=False)
    assert "nu" in r.summary().index
    assert r.loo_unit == "y"


def test_compare_and_its_guards(collapsed, noncentered):
    table = compare({"collapsed": collapsed, "noncentered": noncentered})
    assert set(table.index) == {"collapsed", "noncentered"}
    assert "elpd_loo" in table.columns
    with pytest.raises(ValidationError, match="two or more"):
        compare([collapsed])


def test_priors_overrides_and_errors(small_cohort):
    pp = prior_predictive(FORMULA, small_cohort, draws=20, seed=1,
                          priors={"months:antidepressant": ("normal", 0, 0.5)})
    assert len(pp) == 20 * small_cohort.n_visits
    assert set(pp.columns) == {"draw", "patient_id", "months", "alsfrs_r"}
    betas = pp.attrs["parameters"]["beta"]
    assert list(betas.columns) == ["(Intercept)", "months", "antidepressant",
                                   "months:antidepressant"]
    with pytest.raises(ValidationError) as e:
        fit_bayes(FORMULA, small_cohort, priors={"nonsense": ("normal", 0, 1),
                                                 "sigma": ("normal", 0, 1),
                                                 "sd__months": ("halfnormal", -1)})
    rules = [p.rule for p in e.value.problems]
    assert rules.count("unknown_prior") == 1 and rules.count("bad_prior") == 2
    with pytest.raises(ValidationError, match="draws must be"):
        fit_bayes(FORMULA, small_cohort, draws=0)


def test_prior_predictive_is_on_the_alsfrs_scale(small_cohort):
    pp = prior_predictive(FORMULA, small_cohort, draws=200, seed=2)
    at_dx = pp[pp["months"] < 1]["alsfrs_r"]
    # weakly informative: centred on the data, mostly within a plausible range
    assert 20 < at_dx.median() < 55
    assert isinstance(pp, pd.DataFrame)


@pytest.mark.parametrize("re_part", ["(1 | patient_id)", "(months | patient_id)",
                                     "(months + I(months^2) | patient_id)",
                                     "(months || patient_id)"])
def test_collapsed_likelihood_equals_the_dense_marginal(small_cohort, re_part):
    """The closed forms agree with log N(y_i | X_i b, Z_i S Z_i' + s^2 I) summed over patients."""
    from scipy import stats as st

    from alsfrs.bayes.model import collapsed_loglik, make_design
    from alsfrs.bayes.posterior import marginal_loglik
    from alsfrs.matrices import build_model_matrices

    mm = build_model_matrices(f"alsfrs_r ~ months * antidepressant + {re_part}",
                              small_cohort.to_frame())
    design = make_design(mm, "months")
    rng = np.random.default_rng(0)
    q, p = mm.n_random, mm.n_fixed
    beta = rng.normal(0, 1, p) + np.r_[38, np.zeros(p - 1)]
    L = np.tril(rng.normal(0, 0.3, (q, q))) + np.diag([4.0, 0.6, 0.05][:q])
    for block in mm.blocks:  # independent blocks: no cross-block covariance
        for k in range(q):
            if k not in block:
                L[block[0], k] = L[k, block[0]] = 0.0 if k != block[0] else L[k, k]
    sigma = 1.7
    dense = 0.0
    Sigma = L @ L.T
    for g in range(mm.n_groups):
        rows = mm.group == g
        V = mm.Z[rows] @ Sigma @ mm.Z[rows].T + sigma**2 * np.eye(rows.sum())
        dense += st.multivariate_normal(mm.X[rows] @ beta, V).logpdf(mm.y[rows])
    beta_c = beta.copy()
    beta_c[0] = beta[0] + beta[1:] @ design.xbar[1:]
    op = collapsed_loglik(design, beta_c, L, sigma).eval()  # the shared NumPy kernel, as Op
    assert op == pytest.approx(dense, rel=1e-9)
    graph = collapsed_loglik(design, beta_c, L, sigma, kernel="graph").eval()
    assert graph == pytest.approx(dense, rel=1e-9)
    per_patient = marginal_loglik(design, beta[None], L[None], np.array([sigma]))
    assert per_patient.sum() == pytest.approx(dense, rel=1e-9)


@pytest.mark.parametrize("re_part", ["(1 | patient_id)", "(months | patient_id)",
                                     "(months + I(months^2) | patient_id)",
                                     "(months || patient_id)"])
def test_collapsed_op_gradient_equals_the_pytensor_graph_gradient(small_cohort, re_part):
    """The Op's analytic gradient equals PyTensor's autodiff of the all-graph likelihood."""
    import pytensor
    import pytensor.tensor as pt

    from alsfrs.bayes.model import collapsed_loglik, make_design
    from alsfrs.matrices import build_model_matrices

    mm = build_model_matrices(f"alsfrs_r ~ months * antidepressant + {re_part}",
                              small_cohort.to_frame())
    design = make_design(mm, "months")
    q, p = mm.n_random, mm.n_fixed
    b, L, s = pt.dvector("b"), pt.dmatrix("L"), pt.dscalar("s")
    rng = np.random.default_rng(1)
    vals = [rng.normal(0, 0.5, p) + np.r_[38, np.zeros(p - 1)],
            np.tril(rng.normal(0, 0.2, (q, q))) + np.diag([4.0, 0.6, 0.05][:q]), 1.6]
    out = {}
    for kernel in ("op", "graph"):
        ll = collapsed_loglik(design, b, L, s, kernel=kernel)
        fn = pytensor.function([b, L, s], [ll, *pt.grad(ll, [b, L, s])])
        out[kernel] = fn(*vals)
    for a, g in zip(out["op"], out["graph"], strict=True):
        np.testing.assert_allclose(np.tril(a) if np.ndim(a) == 2 else a,
                                   np.tril(g) if np.ndim(g) == 2 else g, rtol=1e-6, atol=1e-8)


def test_fit_bayes_prints_no_numpy_or_experimental_notices(small_cohort):
    """Issue 8, fault 11: no QuadPotentialFullAdapt notice, no 'invalid value' notes
    (this seed and length reproduce warm-up proposals that overflow; chains run in
    this process so that their warnings are caught here)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", SamplingWarning)
        fit_bayes(FORMULA, small_cohort, chains=2, cores=1, draws=60, tune=60, seed=11,
                  progressbar=False)
    shown = [f"{w.category.__name__}: {w.message}" for w in caught
             if issubclass(w.category, RuntimeWarning)
             or "experimental" in str(w.message)]
    assert shown == []
