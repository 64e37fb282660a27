"""The simulator: deterministic, calibrated, and its truth recoverable."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from alsfrs import ValidationError, simulate_cohort
from alsfrs.simulate import simulate_tables


def per_patient_slopes(frame: pd.DataFrame, min_visits: int = 3) -> pd.Series:
    """OLS slope of ALSFRS-R on months for each patient with enough visits."""
    def slope(g: pd.DataFrame) -> float:
        return float(np.polyfit(g["months"], g["alsfrs_r"], 1)[0])

    counts = frame.groupby("patient_id")["months"].transform("size")
    f = frame[counts >= min_visits]
    return f.groupby("patient_id")[["months", "alsfrs_r"]].apply(slope)


def test_same_seed_same_cohort():
    a = simulate_tables(40, seed=5)
    b = simulate_tables(40, seed=5)
    for x, y in zip(a[:3], b[:3], strict=True):
        pd.testing.assert_frame_equal(x, y)
    assert json.dumps(a[3]) == json.dumps(b[3])
    c = simulate_tables(40, seed=6)
    assert not a[0].equals(c[0])


def test_truth_is_complete_and_json_ready():
    c = simulate_cohort(50, seed=2)
    t = c.truth
    for key in ("seed", "settings", "formula", "fixed_effects", "exposure_slope_effects",
                "exposure_hazard_ratios", "random_effects", "residual_sd", "patient_effects",
                "exposure_definition"):
        assert key in t
    json.dumps(t)
    assert t["exposure_hazard_ratios"] == {"anxiolytic": 1.52, "hypnotic": 1.23,
                                           "antidepressant": 1.72}


def test_scores_are_valid_integers_and_items_sum_to_total():
    v, _p, _d, _ = simulate_tables(200, seed=3)
    items = v.drop(columns=["patient_id", "visit_date", "alsfrs_r"])
    assert ((items.fillna(0) >= 0) & (items.fillna(0) <= 4)).all().all()
    assert (items.notna().sum(axis=1) == 12).all()  # exactly one form of item 5
    assert (items.sum(axis=1) == v["alsfrs_r"]).all()
    assert v["alsfrs_r"].between(0, 48).all()


def test_exposures_match_truth_and_every_row_is_used():
    c = simulate_cohort(300, seed=4)
    pe = pd.DataFrame(c.truth["patient_effects"]).set_index("patient_id")
    for e in ("anxiolytic", "hypnotic", "antidepressant"):
        assert (c.patients[e] == pe.loc[c.patients.index, e]).all(), e
    assert c.exclusions.empty
    assert c.n_patients == 300


def test_mean_slope_recovered_by_per_patient_regression():
    c = simulate_cohort(2000, seed=7, exposure_slope={e: 0.0 for e in
                                                      ("anxiolytic", "hypnotic",
                                                       "antidepressant")})
    slopes = per_patient_slopes(c.to_frame(), min_visits=4)
    pe = pd.DataFrame(c.truth["patient_effects"]).set_index("patient_id")
    true_mean = pe.loc[slopes.index, "slope"].mean()
    # per-patient OLS is unbiased for each patient's slope (floor effects aside)
    assert slopes.mean() == pytest.approx(true_mean, abs=0.06)
    # and the cohort's mean decline is near 1 point/month (Atassi 2014)
    assert -1.35 < slopes.mean() < -0.85


def test_exposure_difference_has_the_right_sign_at_large_n():
    c = simulate_cohort(4000, seed=8)
    slopes = per_patient_slopes(c.to_frame(), min_visits=4)
    exposed = c.patients.loc[slopes.index, "antidepressant"] == 1
    diff = slopes[exposed].mean() - slopes[~exposed].mean()
    assert diff < -0.05  # truth -0.20; informative dropout attenuates it


def test_no_exposure_effect_override_and_bad_settings():
    t = simulate_tables(30, seed=1, exposure_slope={"antidepressant": 0.0})[3]
    assert t["exposure_slope_effects"]["antidepressant"] == 0.0
    assert t["exposure_slope_effects"]["anxiolytic"] == -0.15  # merged with defaults
    with pytest.raises(ValidationError, match="unknown simulation setting 'slop'"):
        simulate_tables(30, seed=1, slop=-1)
    with pytest.raises(ValidationError, match="sd_slope: must be a positive number"):
        simulate_tables(30, seed=1, sd_slope=-1)
    with pytest.raises(ValidationError, match="n_patients"):
        simulate_tables(0, seed=1)
