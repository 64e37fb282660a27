"""Exposures: a hand-computed example at the window edges, in months and in dates."""

from __future__ import annotations

import pandas as pd
import pytest

from alsfrs import REM_SUPPRESSION, ValidationError, derive_exposures
from alsfrs.exposure import rem_suppression

PATIENTS = pd.DataFrame({"patient_id": ["P1", "P2", "P3", "P4"],
                         "diagnosis_date": ["2020-01-01"] * 4,
                         "diagnostic_delay_months": [10.0] * 4})


def disp_months() -> pd.DataFrame:
    return pd.DataFrame([
        ("P1", -12.0, "N05BA01"),     # exactly 12 months before: counted (lag <= m)
        ("P1", -11.999, "N05BA01"),   # inside the lag year: not counted
        ("P1", -59.99, "N05BB01"),    # just inside the 60-month lookback: counted
        ("P1", -60.0, "N05BA04"),     # at the lookback edge: not counted (m < lookback)
        ("P1", 1.0, "N05BA01"),       # after diagnosis: not counted
        ("P2", -30.0, "N06AB06"),     # a single antidepressant dispensing
        ("P3", -20.0, "N06AX11"),     # mirtazapine twice: exposed, not REM-suppressing
        ("P3", -25.0, "N06AX11"),
        ("P4", -40.0, "N05AN01"),     # lithium: not a studied class
    ], columns=["patient_id", "months_since_diagnosis", "atc"])


def test_window_edges_by_hand():
    e = derive_exposures(disp_months(), PATIENTS, lag_months=12, lookback_months=60)
    assert e.loc["P1", "anxiolytic"] == 1 and e.loc["P1", "anxiolytic_n"] == 2
    assert e.loc["P1", "anxiolytic_years"] == pytest.approx((59.99 - 12.0) / 12)
    assert e.loc["P2", "antidepressant"] == 0 and e.loc["P2", "antidepressant_n"] == 1
    assert e.loc["P3", "antidepressant"] == 1 and e.loc["P3", "antidepressant_other"] == 1
    assert e.loc["P3", "antidepressant_non_rem_suppressing"] == 1
    assert e.loc["P3", "antidepressant_rem_suppressing"] == 0
    assert e.loc["P3", "antidepressant_years"] == pytest.approx(5 / 12)
    assert e.loc["P4"].drop(["anxiolytic_years", "hypnotic_years",
                             "antidepressant_years"]).sum() == 0
    assert list(e.index) == ["P1", "P2", "P3", "P4"]
    ex = e.attrs["excluded"]
    assert sorted(ex["rule"]) == ["after_diagnosis", "before_window", "in_lag_period",
                                  "not_studied_class"]
    assert e.attrs["n_dispensings"] == {"read": 9, "counted": 5, "not_counted": 4}


def test_min_dispensings_one_and_no_lag():
    e = derive_exposures(disp_months(), PATIENTS, lag_months=0, min_dispensings=1)
    assert e.loc["P2", "antidepressant"] == 1
    assert e.loc["P2", "antidepressant_ssri"] == 1
    assert e.loc["P2", "antidepressant_rem_suppressing"] == 1
    assert e.loc["P1", "anxiolytic_n"] == 4  # lag 0, no lookback: all but the one after dx


def test_dates_use_the_days_per_month_constant():
    d = pd.DataFrame({"patient_id": ["P1"] * 4,
                      "dispensing_date": ["2019-01-01", "2018-12-31", "2018-06-01", "2019-06-01"],
                      "atc": ["N05CF01"] * 4})
    e = derive_exposures(d, PATIENTS, lag_months=12)
    # 2019-01-01 is 365 days before diagnosis = 11.99 months: inside the lag year
    assert e.loc["P1", "hypnotic_n"] == 2
    assert set(e.attrs["excluded"]["row"]) == {0, 3}


def test_rem_table_is_documented_and_overridable():
    assert {"atc", "drug", "rem_suppression", "source"} <= set(REM_SUPPRESSION.columns)
    assert "Mayers" in REM_SUPPRESSION["source"].iloc[0]
    codes = pd.Series(["N06AA09", "N06AA06", "N06AX05", "N05CF01", "N06AX26"])
    assert rem_suppression(codes).tolist()[:3] == ["strong", "weak", "disputed"]
    assert pd.isna(rem_suppression(codes).iloc[3]) and pd.isna(rem_suppression(codes).iloc[4])
    mine = pd.concat([REM_SUPPRESSION, pd.DataFrame({"atc": ["N06AX26"], "drug": ["vortioxetine"],
                                                     "rem_suppression": ["strong"]})])
    assert rem_suppression(codes, mine).iloc[4] == "strong"
    with pytest.raises(ValidationError, match="is not one of"):
        rem_suppression(codes, mine.assign(rem_suppression="maybe"))


def test_unknown_patient_and_bad_window():
    d = disp_months()
    d.loc[0, "patient_id"] = "ZZ"
    with pytest.raises(ValidationError) as e:
        derive_exposures(d, PATIENTS)
    assert e.value.problems[0].rule == "unknown_patient"
    assert e.value.problems[0].patient == "ZZ"
    with pytest.raises(ValidationError, match="must exceed lag_months"):
        derive_exposures(disp_months(), PATIENTS, lag_months=12, lookback_months=6)


def test_dated_dispensings_need_diagnosis_dates():
    d = pd.DataFrame({"patient_id": ["P1"], "dispensing_date": ["2018-01-01"], "atc": ["N06AB06"]})
    with pytest.raises(ValidationError, match="needs 'diagnosis_date'"):
        derive_exposures(d, PATIENTS.drop(columns="diagnosis_date"))
