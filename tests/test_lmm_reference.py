"""alsfrs.lmm against lme4 + lmerTest fixtures (tests/reference/lmm_fixtures).

The fixtures are produced by ``tests/reference/lmm_reference.R`` from the CSVs
in ``tests/reference/data``; R is not needed to run these tests.
"""

from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alsfrs.lmm import LmmResult, SingularFitWarning, fit_lmm, lrt

REFERENCE = Path(__file__).parent / "reference"
FIXTURES = REFERENCE / "lmm_fixtures"
DATA = REFERENCE / "data"

MODELS = [
    "sleepstudy_reml",
    "sleepstudy_ml",
    "sleepstudy_uncorrelated",
    "cohort_reml",
    "cohort_ml",
    "cohort_ml_small",
    "cohort_uncorrelated",
    "near_singular_reml",
]


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@cache
def load_data(file: str) -> pd.DataFrame:
    if file.startswith("sleepstudy"):
        frame = pd.read_csv(DATA / file, dtype={"Subject": str})
    else:
        frame = pd.read_csv(DATA / file, dtype={"patient_id": str})
        frame["sex"] = pd.Categorical(frame["sex"], categories=["F", "M"])
        frame["onset_site"] = pd.Categorical(
            frame["onset_site"], categories=["spinal", "bulbar", "other"]
        )
    return frame


@cache
def fitted(name: str) -> tuple[LmmResult, dict]:
    ref = fixture(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        fit = fit_lmm(ref["formula"], load_data(ref["data"]), reml=ref["reml"])
    return fit, ref


def rel_diff(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def se_tolerance(ref: dict) -> float:
    return 1e-3 if ref["name"].startswith("near_singular") else 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_fixed_effects(name: str) -> None:
    fit, ref = fitted(name)
    fe = pd.DataFrame(ref["fixed_effects"]).set_index("term")
    ours = fit.fixed_effects
    assert list(ours.index) == list(fe.index)
    # absolute floor for coefficients near zero: 1e-4 of the coefficient's SE
    scale = np.maximum(np.abs(fe["estimate"]), fe["std_error"])
    assert np.max(np.abs(ours["estimate"] - fe["estimate"]) / scale) < 1e-4
    assert rel_diff(ours["std_error"], fe["std_error"]) < se_tolerance(ref)
    assert rel_diff(ours["df"], fe["df"]) < 1e-2
    assert np.max(
        np.abs(ours["t_value"] - fe["t_value"]) / np.maximum(1, np.abs(fe["t_value"]))
    ) < (1e-3)
    assert rel_diff(ours["ci_lower"], fe["ci_lower"]) < 1e-4
    assert rel_diff(ours["ci_upper"], fe["ci_upper"]) < 1e-4
    big = fe["p_value"] > 1e-12
    np.testing.assert_allclose(ours["p_value"][big], fe["p_value"][big], rtol=2e-2, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_variance_components(name: str) -> None:
    fit, ref = fitted(name)
    vc = pd.DataFrame(ref["variance_components"])
    ours = fit.variance_components
    assert list(ours["grp"]) == list(vc["grp"])
    assert list(ours["var1"].fillna("-")) == list(vc["var1"].fillna("-"))
    assert list(ours["var2"].fillna("-")) == list(vc["var2"].fillna("-"))
    tol = se_tolerance(ref)
    variances = vc["var2"].isna().to_numpy()
    assert rel_diff(ours["vcov"][variances], vc["vcov"][variances]) < tol
    assert rel_diff(ours["sdcor"][variances], vc["sdcor"][variances]) < tol
    # correlations: absolute difference
    np.testing.assert_allclose(ours["sdcor"][~variances], vc["sdcor"][~variances], atol=tol)


@pytest.mark.parametrize("name", MODELS)
def test_criteria(name: str) -> None:
    fit, ref = fitted(name)
    if ref["reml"]:
        # we reach the optimum: never worse than lme4 at tight tolerances
        assert fit.reml_criterion <= ref["reml_criterion"] + 1e-6
        assert rel_diff(fit.reml_criterion, ref["reml_criterion"]) < 1e-8
    else:
        assert np.isnan(fit.reml_criterion)
        assert fit.deviance <= ref["deviance"] + 1e-6
    assert rel_diff(fit.deviance, ref["deviance"]) < 1e-6
    assert rel_diff(fit.loglik, ref["loglik"]) < 1e-8
    assert rel_diff(fit.aic, ref["aic"]) < 1e-8
    assert rel_diff(fit.bic, ref["bic"]) < 1e-8
    assert fit.n_parameters == ref["loglik_df"]
    assert fit.nobs == ref["nobs"]
    assert fit.ngroups == ref["ngroups"]
    assert rel_diff(fit.sigma, ref["sigma"]) < 1e-4
    assert fit.singular == ref["singular"]


@pytest.mark.parametrize("name", MODELS)
def test_random_effects(name: str) -> None:
    fit, ref = fitted(name)
    re = pd.DataFrame(ref["random_effects"])
    tol = se_tolerance(ref)
    for _, row in re.iterrows():
        mode = fit.random_effects.loc[row["group"], row["term"]]
        sd = fit.random_effects_se.loc[row["group"], row["term"]]
        scale = max(abs(row["condval"]), row["condsd"])
        assert abs(mode - row["condval"]) / scale < tol
        assert abs(sd - row["condsd"]) / row["condsd"] < tol
        coef = fit.coef.loc[row["group"], row["term"]]
        fixed = fit.fixed_effects["estimate"].get(row["term"], 0.0)
        assert coef == pytest.approx(fixed + mode, rel=1e-12, abs=1e-12)


def test_theta_matches_lme4() -> None:
    for name in MODELS:
        fit, ref = fitted(name)
        scale = max(1.0, float(np.max(np.abs(ref["theta"]))))
        assert np.max(np.abs(fit.theta - np.asarray(ref["theta"]))) / scale < 1e-3, name


def test_likelihood_ratio_test_matches_anova() -> None:
    ref = fixture("cohort_lrt")
    small, _ = fitted("cohort_ml_small")
    big, _ = fitted("cohort_ml")
    out = lrt(small, big)
    assert out["df"].iloc[0] == ref["df"]
    assert out["chisq"].iloc[0] == pytest.approx(ref["chisq"], rel=1e-4, abs=1e-6)
    assert out["p_value"].iloc[0] == pytest.approx(ref["p_value"], rel=1e-3, abs=1e-12)


def test_singular_warning_agrees_with_lme4() -> None:
    ref = fixture("near_singular_reml")
    data = load_data(ref["data"])
    if ref["singular"]:
        with pytest.warns(SingularFitWarning):
            fit = fit_lmm(ref["formula"], data)
        assert fit.singular
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error", SingularFitWarning)
            fit = fit_lmm(ref["formula"], data)
        assert not fit.singular
