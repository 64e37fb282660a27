"""Cox, Kaplan–Meier, log-rank, clogit and the REM matching against R (frozen fixtures).

Fixtures: ``tests/reference/survival_reference.R`` (R survival 3.5, MatchIt 4.5) on
the CSVs in ``tests/reference/survival_data/``. Tolerances (issue 10):
coefficients and SEs 1e-6 relative, log-likelihoods 1e-8, KM survival and CI
1e-8, cox.zph chi-square 1e-4, clogit 1e-6.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alsfrs.survival.clogit import fit_clogit
from alsfrs.survival.cox import fit_cox
from alsfrs.survival.km import kaplan_meier
from alsfrs.survival.rem import match_nearest, rem_survival_comparison

REF = Path(__file__).resolve().parent / "reference"
DATA = REF / "survival_data"
FIX = REF / "survival_fixtures"


def fixture(name: str) -> dict:
    return json.loads((FIX / f"{name}.json").read_text())


def data(name: str) -> pd.DataFrame:
    d = pd.read_csv(DATA / f"{name}.csv")
    if "sex" in d:
        d["sex"] = pd.Categorical(d["sex"], categories=["F", "M"])
    if "onset_site" in d:
        d["onset_site"] = pd.Categorical(d["onset_site"], categories=["spinal", "bulbar"])
    if "celltype" in d:
        d["celltype"] = pd.Categorical(d["celltype"],
                                       categories=["adeno", "large", "smallcell", "squamous"])
    return d


def vals(x):
    return list(x.values()) if isinstance(x, dict) else x


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


COX = {
    "cox_lung_efron": ("lung", {}),
    "cox_lung_breslow": ("lung", {"ties": "breslow"}),
    "cox_lung_cluster": ("lung", {}),
    "cox_veteran_strata": ("veteran", {}),
    "cox_cohort_efron": ("cohort_survival", {}),
    "cox_cohort_breslow": ("cohort_survival", {"ties": "breslow"}),
    "cox_cohort_timevarying": ("cohort_timevarying", {}),
    "cox_cohort_robust_strata": ("cohort_survival", {"robust": True}),
}


@pytest.fixture(scope="module", params=sorted(COX))
def cox_case(request):
    name = request.param
    ref = fixture(name)
    d = data(COX[name][0])
    return name, ref, d, fit_cox(ref["formula"], d, **COX[name][1])


def test_cox_coefficients_and_ses(cox_case):
    _, ref, _, fit = cox_case
    s = fit.summary()
    assert list(s.index) == list(ref["coef"])  # R's term names
    assert rel(s["coef"], vals(ref["coef"])) < 1e-6
    assert rel(s["se"], vals(ref["se"])) < 1e-6
    if "robust_se" in ref:
        assert fit.robust
        assert rel(s["robust_se"], vals(ref["robust_se"])) < 1e-6
    assert fit.n == ref["n"] and fit.n_events == ref["nevent"]


def test_cox_likelihood_and_tests(cox_case):
    _, ref, _, fit = cox_case
    assert rel([fit.loglik_null, fit.loglik], ref["loglik"]) < 1e-8
    t = fit.tests()["statistic"]
    assert rel(t.iloc[0], ref["lr"]) < 1e-6
    assert rel(t.iloc[2], ref["score"]) < 1e-6
    assert rel(t.iloc[1], ref["robust_wald"] if "robust_wald" in ref else ref["wald"]) < 1e-6


def test_cox_concordance(cox_case):
    _, ref, _, fit = cox_case
    assert abs(fit.concordance - ref["concordance"]) < 1e-10


def test_cox_zph(cox_case):
    _, ref, _, fit = cox_case
    z = fit.cox_zph()
    assert list(z.index) == ref["zph"]["term"]
    assert rel(z["chisq"], ref["zph"]["chisq"]) < 1e-4
    assert list(z["df"]) == ref["zph"]["df"]


def test_cox_baseline_hazard(cox_case):
    _, ref, _, fit = cox_case
    bh = fit.baseline_hazard()
    r = ref["basehaz"]
    assert len(bh) == len(r["time"])
    np.testing.assert_allclose(bh["time"], r["time"], rtol=1e-12)
    assert rel(bh["cumulative_hazard"], r["hazard"]) < 1e-6
    if len(fit.strata_labels) > 1:
        assert [s.split("=", 1)[1] for s in bh["stratum"]] == [s.split("=", 1)[-1]
                                                                for s in r["strata"]]


@pytest.mark.parametrize("name", ["cox_lung_efron", "cox_cohort_efron"])
def test_cox_predicted_survival(name):
    ref = fixture(name)
    d = data(COX[name][0])
    fit = fit_cox(ref["formula"], d)
    p = ref["predicted"]
    k = np.asarray(p["surv"]).shape[1]
    pred = fit.predict_survival(d.iloc[:k], p["times"])
    assert rel(pred.to_numpy(), p["surv"]) < 1e-6
    ci = fit.predict_survival(d.iloc[:k], p["times"], ci=True)
    for col in ("survival", "std_err", "lower", "upper"):
        key = {"survival": "surv"}.get(col, col)
        wide = ci.pivot(index="time", columns="row", values=col).to_numpy()
        assert rel(wide, p[key]) < 1e-6, col


def test_cox_predicted_intervals_with_strata_and_robust_variance():
    ref = fixture("cox_cohort_strata_predicted")
    d = data("cohort_survival")
    fit = fit_cox(ref["formula"], d, robust=True)
    rows = d.iloc[ref["rows"]]
    ci = fit.predict_survival(rows, ref["curves"][0]["times"], ci=True)
    for j, curve in enumerate(ref["curves"]):
        got = ci[ci["row"] == rows.index[j]]
        assert rows["onset_site"].iloc[j] == curve["onset_site"]
        for col, key in (("survival", "surv"), ("std_err", "std_err"), ("lower", "lower"),
                         ("upper", "upper")):
            assert rel(got[col], curve[key]) < 1e-6, col


KM = ["km_lung_sex", "km_veteran_celltype", "km_cohort_antidepressant", "km_cohort_all"]
KM_DATA = {"km_lung_sex": "lung", "km_veteran_celltype": "veteran",
           "km_cohort_antidepressant": "cohort_survival", "km_cohort_all": "cohort_survival"}


@pytest.mark.parametrize("name", KM)
def test_kaplan_meier_curves(name):
    ref = fixture(name)
    km = kaplan_meier(ref["formula"], data(KM_DATA[name]))
    c = km.curves
    r = ref["curve"]
    assert list(c["group"]) == r["strata"]
    np.testing.assert_allclose(c["time"], r["time"], rtol=1e-14)
    np.testing.assert_array_equal(c["n_risk"], r["n_risk"])
    np.testing.assert_array_equal(c["n_event"], r["n_event"])
    np.testing.assert_allclose(c["survival"], r["surv"], rtol=1e-8, atol=1e-12)
    for col, key in (("std_err", "std_err"), ("lower", "lower"), ("upper", "upper")):
        rv = np.array([np.nan if v is None else v for v in r[key]], dtype=float)
        np.testing.assert_allclose(c[col], rv, rtol=1e-8, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("name", KM)
def test_kaplan_meier_at_times_and_median(name):
    ref = fixture(name)
    km = kaplan_meier(ref["formula"], data(KM_DATA[name]))
    at = km.at(sorted(set(ref["at"]["time"])))
    r = pd.DataFrame(ref["at"])
    merged = at.merge(r, left_on=["group", "time"], right_on=["strata", "time"])
    assert len(merged) == len(r)
    np.testing.assert_allclose(merged["survival"], merged["surv"], rtol=1e-8)
    np.testing.assert_allclose(merged["lower_x"], merged["lower_y"], rtol=1e-8)
    np.testing.assert_allclose(merged["upper_x"], merged["upper_y"], rtol=1e-8)
    np.testing.assert_array_equal(merged["n_risk_x"], merged["n_risk_y"])
    med = km.median()
    m = ref["median"]
    for col, key in (("median", "median"), ("ci_lower_95", "lcl"), ("ci_upper_95", "ucl")):
        rv = np.array([np.nan if v is None else v for v in np.atleast_1d(m[key])], dtype=float)
        np.testing.assert_allclose(med[col], rv, rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("name", [k for k in KM if k != "km_cohort_all"])
def test_logrank(name):
    ref = fixture(name)
    km = kaplan_meier(ref["formula"], data(KM_DATA[name]))
    lr = km.logrank()
    assert rel(lr.attrs["chisq"], ref["logrank"]["chisq"]) < 1e-8
    assert lr.attrs["df"] == ref["logrank"]["df"]
    np.testing.assert_allclose(lr["observed"], ref["logrank"]["observed"])
    assert rel(lr["expected"], ref["logrank"]["expected"]) < 1e-10


@pytest.mark.parametrize("name, file", [("clogit_case_control", "case_control"),
                                        ("clogit_case_control_multi", "case_control_multi")])
def test_clogit(name, file):
    ref = fixture(name)
    fit = fit_clogit(ref["formula"], data(file))
    s = fit.summary()
    assert list(s.index) == list(ref["coef"])
    assert rel(s["coef"], vals(ref["coef"])) < 1e-6
    assert rel(s["se"], vals(ref["se"])) < 1e-6
    assert rel([fit.loglik_null, fit.loglik], ref["loglik"]) < 1e-8
    t = fit.tests()["statistic"]
    assert rel(t.iloc[0], ref["lr"]) < 1e-6
    assert rel(t.iloc[1], ref["wald"]) < 1e-6
    assert rel(t.iloc[2], ref["score"]) < 1e-6
    if name.endswith("multi"):
        assert fit.max_cases_per_set == 2


@pytest.fixture(scope="module")
def rem():
    return data("rem"), fixture("rem_matchit")


def test_rem_matching_is_matchit(rem):
    d, ref = rem
    res = rem_survival_comparison(d)
    # the same propensity (logit scale), caliper and matched pairs as MatchIt
    import statsmodels.api as sm

    X = np.column_stack([np.ones(len(d)), d["age_at_dx"], (d["sex"] == "M").astype(float)])
    glm = sm.GLM(d["non_rem_suppressing"].to_numpy(float), X,
                 family=sm.families.Binomial()).fit(tol=1e-12)
    assert rel(X @ glm.params, ref["distance"]) < 1e-6
    pair, width = match_nearest(X @ glm.params, d["non_rem_suppressing"].to_numpy())
    assert rel(width, ref["caliper"]) < 1e-6
    def pairs(ids, sub):
        g: dict = {}
        for i, k in zip(ids, sub, strict=True):
            g.setdefault(int(k), set()).add(i)
        return {frozenset(v) for v in g.values()}

    assert pairs(d["patient_id"][pair > 0], pair[pair > 0]) == pairs(ref["matched_ids"],
                                                                     ref["subclass"])
    assert res.n_unmatched == ref["n_unmatched_treated"]
    b = res.balance
    for name in ("distance", "age_at_dx", "sexM"):
        assert abs(b.loc[name, "smd_before"] - ref["smd_before"][name]) < 1e-6
        assert abs(b.loc[name, "smd_after"] - ref["smd_after"][name]) < 1e-6


def test_rem_hazard_ratios_and_survival(rem):
    d, ref = rem
    res = rem_survival_comparison(d)
    hr = res.hazard_ratios
    assert rel(np.log(hr.loc["crude", "hazard_ratio"]), ref["crude"]["coef"]) < 1e-6
    assert rel(hr.loc["crude", "se"], ref["crude"]["se"]) < 1e-6
    m = hr.loc["propensity matched"]
    assert rel(np.log(m["hazard_ratio"]), ref["matched"]["coef"]) < 1e-6
    assert rel(m["robust_se"], ref["matched"]["robust_se"]) < 1e-6
    assert rel(m["se"], ref["matched"]["se"]) < 1e-6
    s = ref["survival_24"]
    assert rel([hr.loc["crude", "survival_suppressing"],
                hr.loc["crude", "survival_non_suppressing"]], s["crude"]) < 1e-8
    assert rel([m["survival_suppressing"], m["survival_non_suppressing"]], s["matched"]) < 1e-8
