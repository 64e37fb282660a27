"""Surv() formulas, the survival frame of a cohort and the checked survival arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alsfrs
from alsfrs.errors import ValidationError
from alsfrs.survival import excluded_patients, parse_surv_formula, split_at, survival_data


@pytest.fixture(scope="module")
def cohort():
    return alsfrs.simulate_cohort(200, seed=11)


def test_parse_right_censored():
    f = parse_surv_formula("Surv(months, event) ~ antidepressant + sex + strata(onset_site)"
                           " + cluster(patient_id)")
    assert (f.time, f.event, f.start) == ("months", "event", None)
    assert f.rhs == "antidepressant + sex"
    assert f.strata == ("onset_site",)
    assert f.cluster == "patient_id"
    assert not f.counting_process and f.has_covariates


def test_parse_counting_process_and_no_covariates():
    f = parse_surv_formula("Surv(start, stop, event) ~ 1")
    assert f.outcome_columns == ("start", "stop", "event")
    assert f.counting_process and not f.has_covariates
    g = parse_surv_formula("Surv(t, d) ~ strata(a, b)")
    assert g.strata == ("a", "b") and g.rhs == "1"


@pytest.mark.parametrize("text, needle", [
    ("months ~ x", "Surv"),
    ("Surv(months) ~ x", "2 (time, event)"),
    ("Surv(months, event == 2) ~ x", "column names"),
    ("Surv(months, event) ~ x:strata(s)", "separate terms"),
    ("Surv(months, event) ~ x + cluster(a) + cluster(b)", "one cluster"),
    ("Surv(months, event) ~ (x", "unbalanced"),
    ("Surv(months, event) ~ ", "no terms"),
])
def test_parse_errors(text, needle):
    with pytest.raises(ValidationError, match="malformed_formula") as err:
        parse_surv_formula(text)
    assert needle in str(err.value)


def test_survival_frame_diagnosis_and_onset(cohort):
    f = cohort.survival_frame()
    p = cohort.patients
    assert len(f) == len(p) and excluded_patients(f).empty
    assert len(pd.concat([f, f])) == 2 * len(f)  # attrs stay concat-safe
    np.testing.assert_allclose(f["months"], p["months_to_death_imv"].to_numpy())
    np.testing.assert_array_equal(f["event"], p["death_imv"].to_numpy(dtype=int))
    assert {"age_at_dx", "sex", "onset_site", "antidepressant"} <= set(f.columns)
    g = cohort.survival_frame(origin="onset")
    np.testing.assert_allclose(g["months"] - f["months"], p["diagnostic_delay_months"].to_numpy())
    assert g.attrs["origin"] == "onset"


def test_survival_frame_exclusions_are_listed(cohort):
    import copy

    c = copy.copy(cohort)
    c.patients = cohort.patients.copy()
    ids = c.patients.index[:3]
    c.patients.loc[ids[0], "months_to_death_imv"] = np.nan
    c.patients.loc[ids[1], ["months_to_death_imv", "death_imv"]] = [0.0, 0]
    c.patients.loc[ids[2], "diagnostic_delay_months"] = np.nan
    f = c.survival_frame()
    ex = excluded_patients(f)
    assert list(ex["patient_id"]) == list(ids[:2])
    assert set(ex["rule"]) == {"no_followup_time"}
    assert f.attrs["counts"]["excluded"] == 2 and len(f) == len(c.patients) - 2
    g = c.survival_frame(origin="onset")
    gx = excluded_patients(g)
    assert dict(zip(gx["patient_id"], gx["rule"], strict=True))[ids[2]] == "onset_missing"
    assert g.attrs["counts"]["excluded: onset_missing"] == 1


def test_survival_frame_needs_outcome(cohort):
    import copy

    c = copy.copy(cohort)
    c.patients = cohort.patients.drop(columns=["death_imv"])
    with pytest.raises(ValidationError, match="no_survival_outcome"):
        c.survival_frame()
    with pytest.raises(ValidationError, match="bad_origin"):
        cohort.survival_frame(origin="birth")


def test_survival_data_names_like_r(cohort):
    d = survival_data("Surv(months, event) ~ antidepressant + age_at_dx + sex + onset_site",
                      cohort.survival_frame())
    assert d.names == ("antidepressant", "age_at_dx", "sexM", "onset_sitebulbar")
    assert d.X.shape == (cohort.n_patients, 4) and d.start is None
    assert d.strata_labels == ("all",)


def test_survival_data_strata_labels_like_r():
    df = pd.DataFrame({"t": [1.0, 2, 3, 4, 5, 6], "d": [1, 0, 1, 1, 0, 1],
                       "x": [0.1, 0.5, 0.2, 0.9, 0.3, 0.4], "s": ["b", "a", "b", "a", "c", "c"]})
    d = survival_data("Surv(t, d) ~ x + strata(s)", df)
    assert d.strata_labels == ("s=a", "s=b", "s=c")
    np.testing.assert_array_equal(d.strata, [1, 0, 1, 0, 2, 2])


def _bad_frame():
    return pd.DataFrame({"t": [1.0, -2, np.nan, 4], "d": [1, 2, 0, 1], "x": [0.0, 1, 2, 3]})


def test_bad_input_lists_every_problem():
    df = _bad_frame()
    with pytest.raises(ValidationError) as err:
        survival_data("Surv(t, d) ~ x", df)
    assert [p.rule for p in err.value.problems] == ["missing_values"]
    df = df.fillna({"t": 3.0})
    with pytest.raises(ValidationError) as err:
        survival_data("Surv(t, d) ~ x", df)
    assert {p.rule for p in err.value.problems} == {"negative_time", "event_not_binary"}


def test_constant_within_strata_and_stop_after_start():
    df = pd.DataFrame({"t0": [0.0, 0, 1, 0], "t": [1.0, 2, 1, 4], "d": [1, 0, 1, 1],
                       "x": [1.0, 1, 2, 2], "s": [0, 0, 1, 1]})
    with pytest.raises(ValidationError, match="constant_within_strata"):
        survival_data("Surv(t, d) ~ x + strata(s)", df)
    with pytest.raises(ValidationError, match="stop_not_after_start"):
        survival_data("Surv(t0, t, d) ~ x", df)
    with pytest.raises(ValidationError, match="constant_covariate"):
        survival_data("Surv(t, d) ~ s0", df.assign(s0=1.0))
    with pytest.raises(ValidationError, match="unknown_column"):
        survival_data("Surv(t, d) ~ nope", df)


def test_split_at_counting_process():
    df = pd.DataFrame({"patient_id": ["a", "b", "c"], "months": [10.0, 5, 8],
                       "event": [1, 1, 0], "rilu": [4.0, np.nan, -1]})
    out = split_at(df, "rilu", "riluzole")
    assert list(out["patient_id"]) == ["a", "a", "b", "c"]
    np.testing.assert_array_equal(out["start"], [0, 4, 0, 0])
    np.testing.assert_array_equal(out["stop"], [4, 10, 5, 8])
    np.testing.assert_array_equal(out["event"], [0, 1, 1, 0])
    np.testing.assert_array_equal(out["riluzole"], [0, 1, 0, 1])
    d = survival_data("Surv(start, stop, event) ~ riluzole + cluster(patient_id)", out)
    assert d.start is not None and d.cluster is not None and len(d.cluster_labels) == 3


def test_treatment_start_from_dispensings_after_diagnosis():
    from alsfrs.simulate import simulate_tables
    from alsfrs.survival import treatment_start

    visits, patients, disp, _ = simulate_tables(60, seed=5)
    dx = pd.to_datetime(patients.set_index("patient_id")["diagnosis_date"])
    ids = list(dx.index[:3])
    extra = pd.DataFrame({  # riluzole 30 and 90 days after diagnosis; 10 days before for ids[2]
        "patient_id": [ids[0], ids[0], ids[1], ids[2]],
        "dispensing_date": [(dx[ids[0]] + pd.Timedelta(days=90)).strftime("%Y-%m-%d"),
                            (dx[ids[0]] + pd.Timedelta(days=30)).strftime("%Y-%m-%d"),
                            (dx[ids[1]] + pd.Timedelta(days=61)).strftime("%Y-%m-%d"),
                            (dx[ids[2]] - pd.Timedelta(days=10)).strftime("%Y-%m-%d")],
        "atc": "N07XX02", "ddd": 30.0})
    c = alsfrs.Cohort(visits, patients, pd.concat([disp, extra], ignore_index=True))
    start = treatment_start(c, "N07XX02")
    assert start.name == "months_to_n07xx02" and len(start) == c.n_patients
    assert start[ids[0]] == pytest.approx(30 / 30.4375)
    assert start[ids[1]] == pytest.approx(61 / 30.4375)
    assert np.isnan(start[ids[2]]) and start.notna().sum() == 2
    f = c.survival_frame()
    f["riluzole_start"] = f["patient_id"].map(start)
    tv = split_at(f, "riluzole_start", "riluzole")
    assert len(tv) == len(f) + int(((f["riluzole_start"] > 0)
                                    & (f["riluzole_start"] < f["months"])).sum())
