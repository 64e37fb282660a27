"""Matched case-control simulation, the canonical files and exposure windows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import alsfrs
from alsfrs.cli import main
from alsfrs.errors import ValidationError
from alsfrs.exposure import window_label


def test_matching_on_age_and_sex_and_reproducibility():
    a = alsfrs.simulate_case_control(50, 3, seed=9)
    b = alsfrs.simulate_case_control(50, 3, seed=9)
    pd.testing.assert_frame_equal(a.sets, b.sets)
    pd.testing.assert_frame_equal(a.dispensings, b.dispensings)
    g = a.sets.groupby("set_id")
    assert (g.size() == 4).all() and (g["case"].sum() == 1).all()
    assert (g["age_at_index"].nunique() == 1).all() and (g["sex"].nunique() == 1).all()
    assert (g["index_date"].nunique() == 1).all()


def test_window_columns_follow_the_dispensings():
    st = alsfrs.simulate_case_control(30, 2, seed=4)
    f = st.to_frame()
    assert st.exposure_columns() == [f"{c}_{w}" for w in ("0_1y", "1_5y", "5y_plus")
                                     for c in ("anxiolytic", "hypnotic", "antidepressant")]
    # recount one column by hand: >= 2 hypnotic (N05C) dispensings 12-60 months before index
    d = st.dispensings.merge(st.sets[["patient_id", "index_date"]], on="patient_id")
    months = (pd.to_datetime(d["index_date"]) - pd.to_datetime(d["dispensing_date"])).dt.days
    months = months / 30.4375
    sel = d["atc"].str.startswith("N05C") & (months >= 12) & (months < 60)
    n = d[sel].groupby("patient_id").size().reindex(f["patient_id"], fill_value=0)
    np.testing.assert_array_equal(f["hypnotic_1_5y"], (n >= 2).astype(int).to_numpy())


def test_window_labels_and_bad_windows():
    assert window_label(0, 12) == "0_1y" and window_label(12, 60) == "1_5y"
    assert window_label(60, None) == "5y_plus" and window_label(6, 18) == "6_18m"
    st = alsfrs.simulate_case_control(10, 1, seed=1)
    with pytest.raises(ValidationError, match="bad_window"):
        alsfrs.derive_exposures(st.dispensings, pd.DataFrame({
            "patient_id": st.sets["patient_id"], "diagnosis_date": st.sets["index_date"],
            "diagnostic_delay_months": 0.0}), windows=[(12, 6)])


def test_cohort_exposure_windows_with_lag():
    c = alsfrs.Cohort(*alsfrs.simulate.simulate_tables(150, seed=3)[:3],
                      exposure={"windows": [(0, 12), (12, 60), (60, None)]})
    cols = ["antidepressant_0_1y", "antidepressant_1_5y", "antidepressant_5y_plus"]
    assert set(cols) <= set(c.patients.columns)
    # the main (lagged) flag needs >= 2 dispensings 12+ months before diagnosis: a patient
    # exposed in 1-5 y or > 5 y only is flagged; 0-1 y only is not (the lag year)
    p = c.patients
    only_lag = (p["antidepressant_0_1y"] == 1) & (p["antidepressant_1_5y"] == 0) & (
        p["antidepressant_5y_plus"] == 0) & (p["antidepressant_n"] < 2)
    assert (p.loc[only_lag, "antidepressant"] == 0).all()
    assert (p.loc[p["antidepressant_1_5y"] == 1, "antidepressant"] == 1).all()


def test_bad_settings_and_bad_sets(tmp_path):
    with pytest.raises(ValidationError, match="unknown_setting"):
        alsfrs.simulate_case_control(10, odds_ratios={"statin_0_1y": 2.0})
    with pytest.raises(ValidationError, match="bad_setting"):
        alsfrs.simulate_case_control(0)
    st = alsfrs.simulate_case_control(10, 2, seed=2)
    sets = st.sets.copy()
    sets.loc[sets["set_id"] == 2, "case"] = 0
    sets.loc[0, "case"] = 3
    with pytest.raises(ValidationError, match="case_not_binary"):
        alsfrs.read_case_control(sets, st.dispensings)
    sets.loc[0, "case"] = 1
    with pytest.raises(ValidationError, match="set_without_case"):
        alsfrs.read_case_control(sets, st.dispensings)


def test_cli_to_odds_ratios_in_a_few_lines(tmp_path, capsys):
    out = tmp_path / "cc"
    assert main(["simulate", "--case-control", "--n-cases", "150", "--controls-per-case", "3",
                 "--seed", "8", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    study = alsfrs.read_case_control(out / "sets.csv", out / "dispensings.csv")
    formula = json.loads((out / "truth.json").read_text())["formula"]
    fit = alsfrs.fit_clogit(formula, study)
    assert len(fit.by_window()) == 9 and fit.n_sets == 150 and fit.n == 600
