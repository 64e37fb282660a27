"""alsfrs.lmm: engine behaviour, cross-checks and errors (fast; no R needed)."""

from __future__ import annotations

import math
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alsfrs import lmm as lmm_module
from alsfrs.errors import ValidationError
from alsfrs.lmm import (
    ConvergenceError,
    LmmResult,
    OptimizationRecord,
    ProfiledDeviance,
    SingularFitWarning,
    fit_lmm,
    lrt,
)
from alsfrs.matrices import build_model_matrices
from alsfrs.results import render_html

DATA = Path(__file__).parent / "reference" / "data"
EXPOSURE_MODEL = (
    "alsfrs_r ~ months * (anxiolytic + hypnotic + antidepressant) + age_at_dx + sex + "
    "onset_site + (months | patient_id)"
)


def simulate(
    n_patients: int = 120,
    seed: int = 7,
    sd_slope: float = 0.7,
    visits: tuple[int, int] = (4, 10),
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    nv = rng.integers(visits[0], visits[1], n_patients)
    pid = np.repeat(np.arange(n_patients), nv)
    months = np.concatenate([np.arange(k) * 3.0 for k in nv]) + rng.uniform(0, 1, pid.size)
    anx = rng.binomial(1, 0.3, n_patients)
    hyp = rng.binomial(1, 0.3, n_patients)
    adp = rng.binomial(1, 0.3, n_patients)
    site = rng.choice(["spinal", "bulbar"], n_patients, p=[0.7, 0.3])
    b0 = rng.normal(40, 5, n_patients)
    b1 = rng.normal(-1, sd_slope, n_patients) - 0.3 * adp - 0.3 * (site == "bulbar")
    age = rng.normal(65, 10, n_patients)
    y = b0[pid] + b1[pid] * months - 0.05 * (age[pid] - 65) + rng.normal(0, 1.7, pid.size)
    return pd.DataFrame(
        {
            "patient_id": np.array([f"P{i:04d}" for i in range(n_patients)])[pid],
            "months": months,
            "alsfrs_r": y,
            "age_at_dx": age[pid],
            "sex": pd.Categorical(rng.choice(["F", "M"], n_patients)[pid], categories=["F", "M"]),
            "onset_site": pd.Categorical(site[pid], categories=["spinal", "bulbar", "other"]),
            "anxiolytic": anx[pid],
            "hypnotic": hyp[pid],
            "antidepressant": adp[pid],
        }
    )


@cache
def sleepstudy() -> pd.DataFrame:
    return pd.read_csv(DATA / "sleepstudy.csv", dtype={"Subject": str})


@cache
def cohort() -> pd.DataFrame:
    return simulate()


@cache
def exposure_fit() -> LmmResult:
    return fit_lmm(EXPOSURE_MODEL, cohort())


# -- engine internals -------------------------------------------------------------------------
@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize(
    "formula",
    [
        "alsfrs_r ~ months * antidepressant + age_at_dx + (months | patient_id)",
        "alsfrs_r ~ months + (months || patient_id)",
        "alsfrs_r ~ months + (months + I(months^2) | patient_id)",
    ],
)
def test_analytic_gradient_matches_finite_differences(formula: str, reml: bool) -> None:
    prof = ProfiledDeviance(build_model_matrices(formula, cohort()), reml=reml)
    rng = np.random.default_rng(1)
    theta = prof.start() * 0.5 + rng.normal(0, 0.05, prof.n_theta)
    _, grad = prof.objective_and_gradient(theta)
    h = 1e-6
    numeric = np.array(
        [
            (
                prof.objective_and_gradient(theta + h * e)[0]
                - prof.objective_and_gradient(theta - h * e)[0]
            )
            / (2 * h)
            for e in np.eye(prof.n_theta)
        ]
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-3)
    varpar = np.append(theta, 2.0)
    numeric_vp = np.array(
        [
            (prof.varpar_deviance(varpar + h * e) - prof.varpar_deviance(varpar - h * e)) / (2 * h)
            for e in np.eye(varpar.size)
        ]
    )
    np.testing.assert_allclose(prof.varpar_gradient(varpar), numeric_vp, rtol=1e-4, atol=1e-3)


def test_profiled_deviance_matches_dense_marginal_likelihood() -> None:
    data = cohort()
    mm = build_model_matrices("alsfrs_r ~ months + antidepressant + (months | patient_id)", data)
    theta = np.array([2.0, -0.05, 0.3])
    for reml in (True, False):
        prof = ProfiledDeviance(mm, reml=reml)
        ev = prof.evaluate(theta)
        sigma2 = ev.r2 / (mm.n_obs - (mm.n_fixed if reml else 0))
        D = ev.Lam @ ev.Lam.T
        logdet, quad = 0.0, 0.0
        XtVX = np.zeros((mm.n_fixed, mm.n_fixed))
        for i in range(mm.n_groups):
            rows = mm.group == i
            Z, X, y = mm.Z[rows], mm.X[rows], mm.y[rows]
            V = sigma2 * (np.eye(rows.sum()) + Z @ D @ Z.T)
            e = y - X @ ev.beta
            logdet += np.linalg.slogdet(V)[1]
            quad += e @ np.linalg.solve(V, e)
            XtVX += X.T @ np.linalg.solve(V, X)
        dense = logdet + quad + mm.n_obs * math.log(2 * math.pi)
        if reml:
            dense += np.linalg.slogdet(XtVX)[1] - mm.n_fixed * math.log(2 * math.pi)
        assert ev.objective == pytest.approx(dense, rel=1e-10)


# -- cross-check with statsmodels ------------------------------------------------------------
@pytest.mark.parametrize("reml", [True, False])
def test_statsmodels_mixedlm_agrees(reml: bool) -> None:
    import statsmodels.formula.api as smf

    data = sleepstudy()
    fit = fit_lmm("Reaction ~ Days + (Days | Subject)", data, reml=reml)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = smf.mixedlm("Reaction ~ Days", data, groups="Subject", re_formula="~Days").fit(
            reml=reml, method="lbfgs"
        )
    np.testing.assert_allclose(
        fit.fixed_effects["estimate"].to_numpy(), sm.fe_params.to_numpy(), rtol=1e-4
    )
    np.testing.assert_allclose(
        fit.fixed_effects["std_error"].to_numpy(), sm.bse_fe.to_numpy(), rtol=1e-3
    )
    vc = fit.variance_components
    np.testing.assert_allclose(vc["vcov"].iloc[0], sm.cov_re.iloc[0, 0], rtol=1e-3)
    np.testing.assert_allclose(vc["vcov"].iloc[1], sm.cov_re.iloc[1, 1], rtol=1e-3)
    np.testing.assert_allclose(vc["vcov"].iloc[2], sm.cov_re.iloc[0, 1], rtol=1e-2)
    np.testing.assert_allclose(fit.sigma**2, sm.scale, rtol=1e-3)
    np.testing.assert_allclose(fit.loglik, sm.llf, rtol=1e-6)


# -- result object ------------------------------------------------------------------------
def test_result_fields_and_optimization_record() -> None:
    fit = exposure_fit()
    assert list(fit.fixed_effects.columns) == [
        "estimate",
        "std_error",
        "df",
        "t_value",
        "p_value",
        "ci_lower",
        "ci_upper",
    ]
    assert list(fit.variance_components.columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    assert list(fit.variance_components["grp"]) == ["patient_id"] * 3 + ["Residual"]
    fe = fit.fixed_effects
    np.testing.assert_allclose(fe["ci_lower"], fe["estimate"] - 1.959963984540054 * fe["std_error"])
    assert fit.nobs == len(cohort()) and fit.ngroups == 120
    assert fit.converged and not fit.singular
    assert np.isfinite(fit.deviance) and np.isfinite(fit.reml_criterion)
    assert fit.loglik == pytest.approx(-fit.reml_criterion / 2)
    assert fit.aic == pytest.approx(fit.reml_criterion + 2 * fit.n_parameters)
    opt = fit.optimization
    assert isinstance(opt, OptimizationRecord)
    assert opt.objective == pytest.approx(fit.reml_criterion)
    assert opt.n_evaluations > 0 and opt.elapsed_seconds > 0
    assert opt.gradient_norm < 1e-3
    start = ProfiledDeviance(fit.matrices, reml=True).moment_start()
    np.testing.assert_array_equal(opt.theta_start, start)
    assert opt.n_iterations <= 6  # a moment start a few Newton steps from the optimum
    np.testing.assert_allclose(opt.theta_final, fit.theta)
    pd.testing.assert_index_equal(fit.coef.index, fit.random_effects.index)
    np.testing.assert_allclose(
        fit.coef["months"], fe.loc["months", "estimate"] + fit.random_effects["months"]
    )
    np.testing.assert_allclose(fit.coef["sexM"], fe.loc["sexM", "estimate"])


def test_ml_fit_reports_deviance_not_reml_criterion() -> None:
    fit = fit_lmm("Reaction ~ Days + (Days | Subject)", sleepstudy(), reml=False)
    assert np.isnan(fit.reml_criterion)
    assert fit.loglik == pytest.approx(-fit.deviance / 2)


def test_predict_with_and_without_random_effects() -> None:
    fit = exposure_fit()
    data = cohort()
    mm = fit.matrices
    beta = fit.fixed_effects["estimate"].to_numpy()
    population = mm.X @ beta
    np.testing.assert_allclose(fit.predict(data, include_random=False), population)
    own = population + np.einsum("nq,nq->n", mm.Z, fit.random_effects.to_numpy()[mm.group])
    np.testing.assert_allclose(fit.predict(data), own)
    np.testing.assert_allclose(fit.predict(), own)
    np.testing.assert_allclose(fit.residuals(), mm.y - own)
    # a new time point for a known patient uses that patient's coefficients
    pid = data["patient_id"].iloc[0]
    row = data.iloc[[0]].copy()
    row["months"] = 24.0
    coef = fit.coef.loc[pid]
    expected = (
        coef["(Intercept)"]
        + coef["months"] * 24
        + coef["age_at_dx"] * row["age_at_dx"].iloc[0]
        + sum(
            coef[c] * row[c].iloc[0] + coef[f"months:{c}"] * 24 * row[c].iloc[0]
            for c in ("anxiolytic", "hypnotic", "antidepressant")
        )
        + coef["sexM"] * (row["sex"].iloc[0] == "M")
        + coef["onset_sitebulbar"] * (row["onset_site"].iloc[0] == "bulbar")
    )
    assert fit.predict(row)[0] == pytest.approx(expected)
    # an unknown patient gets the population prediction
    row["patient_id"] = "NEW"
    assert fit.predict(row)[0] == pytest.approx(fit.predict(row, include_random=False)[0])
    with pytest.raises(ValidationError, match="patient_id"):
        fit.predict(row.drop(columns="patient_id"))


def test_exposure_effects_by_hand() -> None:
    fit = exposure_fit()
    data = cohort()
    out = fit.exposure_effects()
    assert list(out.index) == ["anxiolytic", "hypnotic", "antidepressant"]
    assert out.index.name == "exposure"
    assert list(out.columns) == [
        "term",
        "difference",
        "std_error",
        "ci_lower",
        "ci_upper",
        "reference_slope",
        "percent_faster",
        "percent_lower",
        "percent_upper",
    ]
    fe, V = fit.fixed_effects, fit.vcov
    names = list(fe.index)
    for e in out.index:
        term = f"months:{e}"
        row = out.loc[e]
        assert row["term"] == term
        assert row["difference"] == pytest.approx(fe.loc[term, "estimate"])
        assert row["std_error"] == pytest.approx(fe.loc[term, "std_error"])
        # reference slope: months + Σ_other mean(other | unexposed patients) · months:other
        patients = data.groupby("patient_id").first()
        unexposed = patients[patients[e] == 0]
        L = np.zeros(len(names))
        L[names.index("months")] = 1.0
        for other in ("anxiolytic", "hypnotic", "antidepressant"):
            if other != e:
                L[names.index(f"months:{other}")] = unexposed[other].mean()
        ref = L @ fe["estimate"].to_numpy()
        assert row["reference_slope"] == pytest.approx(ref, rel=1e-8)
        d = fe.loc[term, "estimate"]
        assert row["percent_faster"] == pytest.approx(-100 * d / abs(ref))
        j = names.index(term)
        grad_d, grad_r = -100 / abs(ref), 100 * d * np.sign(ref) / ref**2
        Vn = V.to_numpy()
        var = grad_d**2 * Vn[j, j] + 2 * grad_d * grad_r * (Vn[j] @ L) + grad_r**2 * (L @ Vn @ L)
        half = 1.959963984540054 * math.sqrt(var)
        assert row["percent_lower"] == pytest.approx(row["percent_faster"] - half)
        assert row["percent_upper"] == pytest.approx(row["percent_faster"] + half)
    # sign convention: faster decline (more negative slope) is a positive percentage
    assert out.loc["antidepressant", "difference"] < 0
    assert out.loc["antidepressant", "percent_faster"] > 0
    assert list(fit.exposure_effects("hypnotic", level=0.9).index) == ["hypnotic"]
    with pytest.raises(ValidationError, match="age_at_dx"):
        fit.exposure_effects(["age_at_dx"])


def test_exposure_effects_handle_other_time_interactions() -> None:
    data = cohort()
    fit = fit_lmm("alsfrs_r ~ months * (antidepressant + onset_site) + (months | patient_id)", data)
    out = fit.exposure_effects()
    assert list(out.index) == ["antidepressant"]
    patients = data.groupby("patient_id").first()
    share_bulbar = (patients.loc[patients["antidepressant"] == 0, "onset_site"] == "bulbar").mean()
    fe = fit.fixed_effects["estimate"]
    expected = fe["months"] + share_bulbar * fe["months:onset_sitebulbar"]
    assert out.loc["antidepressant", "reference_slope"] == pytest.approx(expected)


def test_summary_text_and_html_come_from_one_renderer() -> None:
    fit = exposure_fit()
    text = str(fit)
    html_text = fit._repr_html_()
    for piece in ("REML criterion at convergence", "months:antidepressant", "Residual", "sexM"):
        assert piece in text
        assert piece in html_text
    assert "<table" in html_text
    display = fit._display()
    display.header.append(("note", "<script>alert(1)</script> & more"))
    rendered = render_html(display)
    assert "<script>" not in rendered and "&lt;script&gt;" in rendered and "&amp; more" in rendered
    summary = fit.summary()
    assert isinstance(summary, pd.DataFrame)
    assert summary.loc["months:antidepressant", "estimate"] == \
        fit.fixed_effects.loc["months:antidepressant", "estimate"]
    assert {"ci_lower_95", "ci_upper_95", "df", "p_value"} <= set(summary.columns)


# -- likelihood-ratio test ------------------------------------------------------------------
def test_lrt_nested_ml_fits() -> None:
    data = cohort()
    big = fit_lmm(EXPOSURE_MODEL, data, reml=False)
    small = fit_lmm(
        "alsfrs_r ~ months + anxiolytic + hypnotic + antidepressant + age_at_dx + sex + "
        "onset_site + (months | patient_id)",
        data,
        reml=False,
    )
    out = lrt(small, big)
    assert out["df"].iloc[0] == 3
    assert out["chisq"].iloc[0] == pytest.approx(small.deviance - big.deviance)
    from scipy import stats

    assert out["p_value"].iloc[0] == pytest.approx(stats.chi2.sf(out["chisq"].iloc[0], 3))
    # random-effects nesting: uncorrelated within correlated
    unc = fit_lmm(EXPOSURE_MODEL.replace("(months |", "(months ||"), data, reml=False)
    assert lrt(unc, big)["df"].iloc[0] == 1
    with pytest.raises(ValidationError, match="not nested"):
        lrt(big, small)
    with pytest.raises(ValidationError, match="REML"):
        lrt(small, exposure_fit())
    other = fit_lmm(EXPOSURE_MODEL, data.iloc[:-3], reml=False)
    with pytest.raises(ValidationError, match="same observations"):
        lrt(small, other)


# -- singular fits, convergence, scale ---------------------------------------------------------
def test_singular_fit_warns() -> None:
    # no between-patient slope variation beyond the fixed effects: the slope variance is 0
    data = simulate(n_patients=60, seed=11, sd_slope=0.0)
    with pytest.warns(SingularFitWarning, match="singular"):
        fit = fit_lmm(
            "alsfrs_r ~ months * (antidepressant + onset_site) + (months || patient_id)", data
        )
    assert fit.singular
    assert fit.theta[1] < 1e-4
    assert fit.variance_components["vcov"].iloc[1] == pytest.approx(0.0, abs=1e-6)
    # the boundary is a true optimum: moving off it does not lower the criterion
    prof = ProfiledDeviance(fit.matrices, reml=True)
    for t in (1e-3, 1e-2, 0.1):
        assert prof.evaluate(np.array([fit.theta[0], t])).objective >= fit.reml_criterion
    assert any("singular" in w for w in fit.warnings)
    assert "singular" in str(fit)


def test_singular_check_is_scale_free() -> None:
    data = simulate(n_patients=60, seed=11, sd_slope=0.0)
    days = data.assign(months=data["months"] * 30.4375)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        a = fit_lmm("alsfrs_r ~ months + (months | patient_id)", data)
        b = fit_lmm("alsfrs_r ~ months + (months | patient_id)", days)
    assert a.singular == b.singular
    assert b.reml_criterion == pytest.approx(a.reml_criterion + 2 * math.log(30.4375), abs=1e-5)


def test_unscaled_covariates_converge_without_alarm() -> None:
    data = cohort()
    in_days = data.assign(age_at_dx=data["age_at_dx"] * 365.25 + 1e5)
    a = exposure_fit()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = fit_lmm(EXPOSURE_MODEL, in_days)
    assert b.reml_criterion == pytest.approx(a.reml_criterion + 2 * math.log(365.25), abs=1e-5)
    assert b.fixed_effects.loc["age_at_dx", "estimate"] * 365.25 == pytest.approx(
        a.fixed_effects.loc["age_at_dx", "estimate"], rel=1e-5
    )


def test_unmet_convergence_criterion_is_reported_not_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a tolerance no optimiser can meet: the fit says so (warning, converged False, the
    # record holding the measure and the criterion it was compared with)
    monkeypatch.setattr(lmm_module, "NEWTON_DECREMENT_TOLERANCE", -1.0)
    with pytest.warns(lmm_module.ConvergenceWarning, match="Newton decrement"):
        fit = fit_lmm("Reaction ~ Days + (Days | Subject)", sleepstudy())
    assert fit.converged is False
    assert fit.optimization.converged is False
    assert fit.optimization.decrement_tolerance == -1.0
    assert fit.optimization.newton_decrement >= 0
    assert any("convergence criterion" in w for w in fit.warnings)


def test_converged_comes_from_the_newton_decrement() -> None:
    fit = fit_lmm("Reaction ~ Days + (Days | Subject)", sleepstudy())
    opt = fit.optimization
    assert fit.converged is opt.converged is True
    assert 0 <= opt.newton_decrement <= opt.decrement_tolerance
    assert opt.hessian_min_eigenvalue > 0
    assert "Newton decrement" in opt.convergence_criterion
    assert opt.optimizer.startswith("Newton")
    # the decrement is what it says: gᵀH⁻¹g of the profiled deviance at θ̂
    prof = ProfiledDeviance(fit.matrices, reml=True)
    ev = prof.evaluate(fit.theta)
    g, H = prof.gradient(ev), prof.hessian(ev)
    assert opt.newton_decrement == pytest.approx(float(g @ np.linalg.solve(H, g)), abs=1e-12)


def test_non_finite_deviance_raises() -> None:
    prof = ProfiledDeviance(build_model_matrices("Reaction ~ Days + (Days | Subject)",
                                                 sleepstudy()), reml=True)
    with pytest.raises(ConvergenceError, match="not finite"):
        lmm_module._optimise(prof, np.array([np.nan, 0.0, 1.0]))


@pytest.mark.filterwarnings("ignore::alsfrs.lmm.SingularFitWarning")
def test_quadratic_random_effects_fit() -> None:
    data = cohort()
    fit = fit_lmm("alsfrs_r ~ months + I(months^2) + (months + I(months^2) | patient_id)", data)
    assert fit.random_effects.columns.tolist() == ["(Intercept)", "months", "I(months^2)"]
    assert len(fit.variance_components) == 7  # 3 variances, 3 correlations, residual
    # a start far away reaches the same optimum
    other = fit_lmm(
        "alsfrs_r ~ months + I(months^2) + (months + I(months^2) | patient_id)",
        data,
        start=[3.0, 0.5, 0.0, 1.0, 0.1, 2.0],
    )
    assert other.reml_criterion == pytest.approx(fit.reml_criterion, abs=1e-6)


def test_cohort_like_object_is_accepted() -> None:
    class Cohortish:
        def to_frame(self) -> pd.DataFrame:
            return sleepstudy()

    fit = fit_lmm("Reaction ~ Days + (Days | Subject)", Cohortish())
    assert fit.nobs == 180


# -- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("formula", "mutate", "rule", "fragment"),
    [
        ("alsfrs_r ~ months + bmi + (months | patient_id)", None, "unknown_column", "bmi"),
        (
            "alsfrs_r ~ months + (1 | patient_id) + (1 | onset_site)",
            None,
            "several_grouping_factors",
            "only one grouping factor",
        ),
        ("alsfrs_r ~ months + (months | patient_id", None, "malformed_formula", "parentheses"),
        ("alsfrs_r ~ months", None, "no_random_effects", "random-effects"),
        (EXPOSURE_MODEL, "nan_age", "missing_values", "age_at_dx"),
        (EXPOSURE_MODEL, "nan_outcome", "missing_values", "alsfrs_r"),
        (EXPOSURE_MODEL, "constant", "constant_covariate", "hypnotic"),
        (
            "alsfrs_r ~ months + age_at_dx + age2 + (months | patient_id)",
            "alias",
            "rank_deficient",
            "age2",
        ),
        (
            "alsfrs_r ~ months + (months | patient_id)",
            "one_visit",
            "unidentifiable_random_effects",
            "single observation",
        ),
    ],
)
def test_bad_input_raises_validation_error(
    formula: str, mutate: str | None, rule: str, fragment: str
) -> None:
    data = cohort().copy()
    if mutate == "nan_age":
        data.loc[3, "age_at_dx"] = np.nan
    elif mutate == "nan_outcome":
        data.loc[[4, 9], "alsfrs_r"] = np.nan
    elif mutate == "constant":
        data["hypnotic"] = 1
    elif mutate == "alias":
        data["age2"] = 2 * data["age_at_dx"] - 1
    elif mutate == "one_visit":
        data = data.groupby("patient_id").head(1)
    with pytest.raises(ValidationError) as err:
        fit_lmm(formula, data)
    assert err.value.problems[0].rule == rule
    assert fragment in str(err.value)
