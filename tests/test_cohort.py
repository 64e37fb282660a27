"""Cohort: cross-table checks, time axes, derived features, the exclusions ledger."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alsfrs import Cohort, ValidationError
from alsfrs.timeaxis import DAYS_PER_MONTH


def test_accounting_holds(tables):
    v, p, d, _ = tables
    c = Cohort(v, p, d)
    acct = c.row_accounting()
    assert (acct["read"] == acct["used"] + acct["excluded"]).all()
    assert acct.loc["visits", "read"] == len(v)
    assert acct.loc["dispensings", "used"] == len(d)
    ea = c.exposure_accounting()["dispensings"]
    assert ea.sum() == len(d)


def test_time_axes_and_derived_features(tables):
    v, p, d, _ = tables
    c = Cohort(v, p, d)
    f = c.to_frame()
    row = f.iloc[0]
    pat = p.set_index("patient_id").loc[row["patient_id"]]
    days = (pd.Timestamp(v["visit_date"].iloc[0]) - pd.Timestamp(pat["diagnosis_date"])).days
    assert row["months"] == pytest.approx(days / DAYS_PER_MONTH)
    delay = (pd.Timestamp(pat["diagnosis_date"]) - pd.Timestamp(pat["onset_date"])).days
    assert row["months_since_onset"] == pytest.approx((days + delay) / DAYS_PER_MONTH)
    first = f.groupby("patient_id").first()
    dfs = (48 - first["alsfrs_r"]) / first["months_since_onset"]
    np.testing.assert_allclose(c.patients.loc[first.index, "delta_fs"], dfs)
    assert (c.patients["n_visits"] == f.groupby("patient_id").size()).all()
    for col in ("patient_id", "visit", "months", "months_since_onset", "alsfrs_r", "cutting",
                "gastrostomy", "bulbar", "respiratory", "age_at_dx", "sex", "onset_site",
                "anxiolytic", "hypnotic", "antidepressant", "baseline_alsfrs_r", "delta_fs"):
        assert col in f.columns
    assert (f[["bulbar", "fine_motor", "gross_motor", "respiratory"]].sum(axis=1)
            == f["alsfrs_r"]).all()
    assert not f[["months", "alsfrs_r", "age_at_dx"]].isna().any().any()


def test_cross_table_problems_all_listed(tables):
    v, p, _d, _ = tables
    pid0 = p["patient_id"].iloc[0]
    died = p.index[p["death_imv"] == 1][0]
    v.loc[0, "patient_id"] = "GHOST"
    late = v.index[v["patient_id"] == p.loc[died, "patient_id"]][0]
    v.loc[late, "visit_date"] = "2030-01-01"
    early = v.index[v["patient_id"] == pid0][-1]
    v.loc[early, "visit_date"] = "1990-01-01"
    with pytest.raises(ValidationError) as e:
        Cohort(v, p)
    rules = {pr.rule for pr in e.value.problems}
    assert {"unknown_patient", "visit_after_death", "visit_before_onset"} <= rules
    msg = str(e.value)
    assert "GHOST" in msg and "after death or invasive ventilation" in msg


def test_exclude_mode(tables):
    v, p, _, _ = tables
    v.loc[0, "patient_id"] = "GHOST"
    v.loc[5, "walking"] = 9
    c = Cohort(v, p, errors="exclude")
    assert set(c.exclusions["rule"]) >= {"unknown_patient", "item_range"}
    acct = c.row_accounting()
    assert acct.loc["visits", "read"] == len(v)
    assert acct.loc["visits", "used"] == len(v) - 2


def test_dated_visits_need_diagnosis_dates(tables):
    v, p, _, _ = tables
    with pytest.raises(ValidationError, match="needs 'diagnosis_date'"):
        Cohort(v, p.drop(columns=["diagnosis_date", "death_imv", "death_imv_date"])
               .assign(diagnostic_delay_months=10.0).drop(columns="onset_date"))


def test_patients_without_visits_are_excluded_with_reason(tables):
    v, p, _, _ = tables
    lonely = p.iloc[[0]].assign(patient_id="LONELY")
    c = Cohort(v, pd.concat([p, lonely], ignore_index=True))
    ex = c.exclusions.set_index("patient_id")
    assert ex.loc["LONELY", "rule"] == "no_visits"
    assert "LONELY" not in c.patients.index


def test_repr_html_escapes(tables):
    v, p, _, _ = tables
    c = Cohort(v, p)
    h = c._repr_html_()
    assert "<table>" in h and "patients" in h
    assert "P000" not in h  # no identifiers in the summary


# -- issue 8, fault 7: onset is optional ------------------------------------------------
def _without_onset(p, which):
    p = p.copy()
    p["onset_date"] = p["onset_date"].astype(object)
    p.loc[p["patient_id"].isin(which), "onset_date"] = None
    return p


def test_missing_onset_keeps_the_patient_and_counts_it(tables):
    v, p, d, _ = tables
    gone = list(p["patient_id"].iloc[:2])
    c = Cohort(v, _without_onset(p, gone), d)
    assert c.exclusions.empty  # no "not in the patient table" cascade
    assert set(gone) <= set(c.patients.index)
    f = c.to_frame()
    assert f.loc[f["patient_id"].isin(gone), "months_since_onset"].isna().all()
    assert f.loc[~f["patient_id"].isin(gone), "months_since_onset"].notna().all()
    assert not f["months"].isna().any()
    assert c.patients.loc[gone, "delta_fs"].isna().all()
    assert c.describe().loc["patients without symptom onset", "value"] == 2
    assert sorted(c.onset_unknown) == sorted(gone)


def test_onset_origin_frame_excludes_patients_with_a_reason(tables):
    v, p, _, _ = tables
    gone = list(p["patient_id"].iloc[:3])
    c = Cohort(v, _without_onset(p, gone))
    f = c.to_frame(time="months_since_onset")
    assert not set(gone) & set(f["patient_id"])
    assert not f["months_since_onset"].isna().any()
    ex = f.attrs["excluded_patients"]
    assert sorted(ex["patient_id"]) == sorted(gone)
    assert set(ex["rule"]) == {"onset_missing"}
    assert len(c.to_frame(time="months")) == c.n_visits
    with pytest.raises(ValidationError, match="time must be one of"):
        c.to_frame(time="weeks")


def test_model_on_onset_time_refuses_nan(tables):
    from alsfrs import fit_lmm

    v, p, _, _ = tables
    c = Cohort(v, _without_onset(p, list(p["patient_id"].iloc[:2])))
    with pytest.raises(ValidationError, match="months_since_onset"):
        fit_lmm("alsfrs_r ~ months_since_onset + (months_since_onset | patient_id)", c)
    fit = fit_lmm("alsfrs_r ~ months_since_onset + (months_since_onset | patient_id)",
                  c.to_frame(time="months_since_onset"))
    assert fit is not None


def test_onset_time_visits_need_onset(tables):
    v, p, _, _ = tables
    c0 = Cohort(v, p)
    f = c0.to_frame()[["patient_id", "months_since_onset", "alsfrs_r"]]
    pats = p.drop(columns=["onset_date"])
    pats = pats.assign(diagnostic_delay_months=c0.patients.loc[p["patient_id"],
                                                               "diagnostic_delay_months"].to_numpy())
    pats.loc[0, "diagnostic_delay_months"] = None
    with pytest.raises(ValidationError) as e:
        Cohort(f, pats)
    assert {(pr.rule, pr.column) for pr in e.value.problems} == {
        ("onset_missing", "months_since_onset")}
    assert all(pr.patient == p["patient_id"].iloc[0] for pr in e.value.problems)


def test_nothing_usable_left_is_an_error(tables):
    """Fault 2 (API side): excluding every visit is not an empty cohort."""
    v, p, _, _ = tables
    v["visit_date"] = pd.to_datetime(v["visit_date"]).dt.strftime("%d/%m/%Y")
    with pytest.raises(ValidationError) as e:
        Cohort(v, p, errors="exclude")
    assert [pr.rule for pr in e.value.problems] == ["no_usable_visits"]
    assert f"{len(v)} date_invalid" in str(e.value)
