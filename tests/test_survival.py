"""Cox and Kaplan–Meier: behaviour, bad input, the result contract, persistence, report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alsfrs
from alsfrs.errors import ValidationError
from alsfrs.figures import NotebookFigure
from alsfrs.report.registry import ReportContext, renderer_for
from alsfrs.results import DIAGNOSTIC_COLUMNS, ModelRecord, Result

FORMULA = ("Surv(months, event) ~ anxiolytic + hypnotic + antidepressant + age_at_dx + sex + "
           "onset_site")


@pytest.fixture(scope="module")
def cohort():
    return alsfrs.simulate_cohort(400, seed=21)


@pytest.fixture(scope="module")
def frame(cohort):
    return cohort.survival_frame()


@pytest.fixture(scope="module")
def cox(frame):
    return alsfrs.fit_cox(FORMULA, frame)


@pytest.fixture(scope="module")
def km(frame):
    return alsfrs.kaplan_meier("Surv(months, event) ~ onset_site", frame)


def test_cox_names_and_hazard_ratios(cox):
    s = cox.summary()
    assert list(s.index) == ["anxiolytic", "hypnotic", "antidepressant", "age_at_dx", "sexM",
                             "onset_sitebulbar"]
    np.testing.assert_allclose(s["hazard_ratio"], np.exp(s["coef"]))
    assert (s["ci_lower_95"] < s["hazard_ratio"]).all() and (s["hazard_ratio"] <
                                                              s["ci_upper_95"]).all()
    assert not cox.robust and s["robust_se"].isna().all()


def test_cox_accepts_a_cohort_through_its_survival_frame(cohort, cox):
    direct = alsfrs.fit_cox(FORMULA, cohort)
    pd.testing.assert_frame_equal(direct.summary(), cox.summary())
    km = alsfrs.kaplan_meier("Surv(months, event) ~ sex", cohort)
    assert km.group_labels == ["sex=F", "sex=M"]


def test_ties_option_and_bad_option(frame):
    b = alsfrs.fit_cox(FORMULA, frame, ties="breslow")
    assert b.model_spec.settings["ties"] == "breslow"
    with pytest.raises(ValidationError, match="bad_option"):
        alsfrs.fit_cox(FORMULA, frame, ties="exact")


def test_stratified_fit_has_a_baseline_per_stratum(frame):
    fit = alsfrs.fit_cox("Surv(months, event) ~ antidepressant + age_at_dx + strata(onset_site)",
                         frame)
    bh = fit.baseline_hazard()
    assert set(bh["stratum"]) == {"onset_site=spinal", "onset_site=bulbar"}
    assert (bh.groupby("stratum")["cumulative_hazard"].apply(
        lambda x: bool(np.all(np.diff(x.to_numpy()) >= 0)))).all()
    curves = fit.predict_survival(frame.head(3), [6, 12, 24])
    assert curves.shape == (3, 3) and ((curves > 0) & (curves <= 1)).all().all()
    assert (np.diff(curves.to_numpy(), axis=0) <= 0).all()


def test_cluster_gives_robust_ses(frame):
    fit = alsfrs.fit_cox("Surv(months, event) ~ antidepressant + cluster(patient_id)", frame)
    assert fit.robust and fit.n_clusters == len(frame)
    assert np.isfinite(fit.summary()["robust_se"]).all()


def test_complete_separation_is_a_clear_error():
    # every exposed patient dies before any unexposed one: the MLE is infinite
    df = pd.DataFrame({"t": np.arange(1.0, 21.0), "d": 1,
                       "x": [1] * 10 + [0] * 10, "z": np.tile([0.3, 0.1, 0.7, 0.2], 5)})
    with pytest.raises(ValidationError, match="separation") as err:
        alsfrs.fit_cox("Surv(t, d) ~ x + z", df)
    assert "monotone in x:" in str(err.value)


def test_no_events_and_empty_group_errors():
    df = pd.DataFrame({"t": [1.0, 2, 3, 4], "d": [0, 0, 0, 0], "x": [0.0, 1, 0, 1]})
    with pytest.raises(ValidationError, match="no_events"):
        alsfrs.fit_cox("Surv(t, d) ~ x", df)


@pytest.mark.parametrize("change, rule", [
    ({"months": -1.0}, "negative_time"),
    ({"months": np.nan}, "missing_values"),
    ({"event": 2}, "event_not_binary"),
])
def test_bad_times_and_events(frame, change, rule):
    bad = frame.copy()
    for k, v in change.items():
        bad.loc[bad.index[3], k] = v
    with pytest.raises(ValidationError, match=rule) as err:
        alsfrs.fit_cox(FORMULA, bad)
    assert isinstance(err.value, ValueError)


def test_constant_within_strata_is_an_error(frame):
    with pytest.raises(ValidationError, match="constant_within_strata"):
        alsfrs.fit_cox("Surv(months, event) ~ onset_site + age_at_dx + strata(onset_site)",
                       frame)


def test_cox_10000_patients_is_vectorised():
    # correctness at size (timing lives in benchmarks/survival.py)
    rng = np.random.default_rng(0)
    n = 10_000
    x = rng.normal(size=(n, 3))
    t = np.round(rng.exponential(np.exp(-(x @ [0.5, -0.3, 0.2]))) * 100) / 10 + 0.1
    df = pd.DataFrame({"t": t, "d": (rng.random(n) < 0.8).astype(int), "a": x[:, 0],
                       "b": x[:, 1], "c": x[:, 2]})
    fit = alsfrs.fit_cox("Surv(t, d) ~ a + b + c", df)
    np.testing.assert_allclose(fit.coef, [0.5, -0.3, 0.2], atol=0.05)


def test_km_at_median_and_logrank(km):
    at = km.at([0, 12, 24])
    assert list(at.columns) == ["group", "time", "survival", "lower", "upper", "n_risk"]
    assert len(at) == 6
    first = at[at["time"] == 0]
    assert (first["survival"] == 1).all()
    assert (at["lower"] <= at["survival"]).all() and (at["survival"] <= at["upper"]).all()
    med = km.median()
    assert list(med.index) == ["onset_site=spinal", "onset_site=bulbar"]
    assert (med["ci_lower_95"] <= med["median"]).all()
    lr = km.logrank()
    assert lr.attrs["df"] == 1 and 0 <= lr.attrs["p"] <= 1
    assert lr["observed"].sum() == km.curves["n_event"].sum()


def test_km_from_the_frame_without_a_formula(frame, km):
    other = alsfrs.kaplan_meier(frame, group="onset_site")
    pd.testing.assert_frame_equal(other.curves, km.curves)
    with pytest.raises(ValidationError, match="bad_option"):
        alsfrs.kaplan_meier(frame, frame)


def test_km_single_curve_has_no_logrank(frame):
    km1 = alsfrs.kaplan_meier("Surv(months, event) ~ 1", frame)
    assert km1.group_labels == ["all"] and not km1.has_logrank
    with pytest.raises(ValidationError, match="no_groups"):
        km1.logrank()


def test_km_rejects_expressions(frame):
    with pytest.raises(ValidationError, match="malformed_formula"):
        alsfrs.kaplan_meier("Surv(months, event) ~ age_at_dx > 60", frame)


@pytest.mark.parametrize("which", ["cox", "km"])
def test_contract_and_round_trip(which, cox, km, tmp_path):
    r = {"cox": cox, "km": km}[which]
    assert isinstance(r, Result)
    s = r.summary()
    assert all(np.issubdtype(s[c].dtype, np.number) for c in s.columns)
    d = r.diagnostics()
    assert tuple(d.columns) == DIAGNOSTIC_COLUMNS and d["passed"].dtype == bool
    assert isinstance(r.model_spec, ModelRecord)
    assert "<table" in r._repr_html_() and str(r)
    path = r.save(tmp_path / f"{which}.alsfrs")
    back = alsfrs.load_result(path)
    assert type(back) is type(r)
    pd.testing.assert_frame_equal(back.summary(), s, check_exact=True)
    if which == "cox":
        assert back.concordance == r.concordance
        pd.testing.assert_frame_equal(back.cox_zph(), r.cox_zph(), check_exact=True)
        pd.testing.assert_frame_equal(back.baseline_hazard(), r.baseline_hazard(),
                                      check_exact=True)
    else:
        pd.testing.assert_frame_equal(back.curves, r.curves, check_exact=True)
        assert back.logrank().attrs == r.logrank().attrs


def test_figures_and_report(cox, km, cohort, tmp_path):
    assert isinstance(km.plot(), NotebookFigure)
    assert isinstance(cox.plot_forest(), NotebookFigure)
    assert km.plot()._repr_png_()[:4] == b"\x89PNG"
    f = renderer_for(km).key_findings("Survival", km, ReportContext())
    assert "2-year survival" in f[0] and "%" in f[0]
    out = alsfrs.write_report({"Prognosis": cox, "Survival": km}, tmp_path / "r.html",
                              cohort=cohort)
    html = out.read_text()
    assert "number at risk" in html and "Hazard ratios" in html and "cox.zph" in html
