"""The REM-suppression comparison: matching, balance, recovery of a known hazard ratio."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alsfrs
from alsfrs.errors import ValidationError
from alsfrs.exposure import REM_SUPPRESSION
from alsfrs.report.registry import ReportContext, renderer_for
from alsfrs.survival.rem import match_nearest


@pytest.fixture(scope="module")
def cohort():
    return alsfrs.simulate_cohort(1500, seed=12, hazard_ratio_rem=1.5,
                                  exposure_prevalence={"antidepressant": 0.4})


@pytest.fixture(scope="module")
def rem(cohort):
    return alsfrs.rem_survival_comparison(cohort)


def test_groups_are_counted_and_only_single_class_users_compared(rem, cohort):
    c = rem.counts
    assert c["patients"].sum() == cohort.n_patients
    hr = rem.hazard_ratios
    assert hr.loc["crude", "n_suppressing"] == c.loc["suppressing", "patients"]
    assert hr.loc["crude", "n_non_suppressing"] == c.loc["non_suppressing", "patients"]
    assert c.loc["mixed", "status"].startswith("excluded")


def test_matching_is_one_to_one_within_the_caliper():
    rng = np.random.default_rng(3)
    d = rng.normal(size=300)
    treat = (rng.random(300) < 0.2).astype(int)
    pair, width = match_nearest(d, treat, 0.2)
    assert width == pytest.approx(0.2 * np.std(d, ddof=1))
    for k in range(1, pair.max() + 1):
        members = np.flatnonzero(pair == k)
        assert len(members) == 2 and treat[members].sum() == 1
        assert abs(d[members[0]] - d[members[1]]) <= width
    unmatched, _ = match_nearest(d, treat, None)
    assert (unmatched[treat == 1] > 0).all()  # no caliper: every treated unit matched


def test_balance_improves_and_result_contract(rem, tmp_path):
    b = rem.balance
    assert abs(b.loc["distance", "smd_after"]) <= abs(b.loc["distance", "smd_before"]) + 1e-12
    assert {"age_at_dx", "sexM"} <= set(b.index)
    back = alsfrs.load_result(rem.save(tmp_path / "rem.alsfrs"))
    pd.testing.assert_frame_equal(back.summary(), rem.summary(), check_exact=True)
    pd.testing.assert_frame_equal(back.balance, rem.balance, check_exact=True)
    assert back.kaplan_meier(True).curves.equals(rem.kaplan_meier(True).curves)
    assert rem.diagnostics()["passed"].dtype == bool


def test_key_findings_in_clinical_words(rem, cohort):
    f = renderer_for(rem).key_findings("REM", rem, ReportContext(truth=cohort.truth))
    assert "2-year survival" in f[0] and "REM-suppressing" in f[0] and "%" in f[0]
    assert any("simulated hazard ratio was 1.50" in x for x in f)


def test_user_rem_table_reclassifies(cohort, rem):
    # call venlafaxine (N06AX16) non-suppressing: more non-suppressing users
    table = REM_SUPPRESSION.copy()
    table.loc[table["atc"] == "N06AX16", "rem_suppression"] = "weak"
    other = alsfrs.rem_survival_comparison(cohort, rem_table=table)
    assert (other.counts.loc["non_suppressing", "patients"]
            > rem.counts.loc["non_suppressing", "patients"])
    # and mirtazapine, the only non-suppressing drug here, as suppressing: none left
    table = REM_SUPPRESSION.copy()
    table.loc[table["atc"] == "N06AX11", "rem_suppression"] = "strong"
    with pytest.raises(ValidationError, match="too_few_patients"):
        alsfrs.rem_survival_comparison(cohort, rem_table=table)


def test_bad_input(cohort):
    f = cohort.survival_frame()
    with pytest.raises(ValidationError, match="missing_column"):
        alsfrs.rem_survival_comparison(f.drop(columns=["antidepressant_rem_suppressing"]))
    with pytest.raises(ValidationError, match="unknown_column"):
        alsfrs.rem_survival_comparison(cohort, match_on=("age_at_dx", "race"))
    none = f.assign(antidepressant_non_rem_suppressing=0)
    with pytest.raises(ValidationError, match="too_few_patients"):
        alsfrs.rem_survival_comparison(none)


@pytest.mark.slow
def test_recovers_the_rem_hazard_ratio_at_realistic_size():
    # Fowler 2025: 2,492 vs 365 users; here about 2,200 vs 370 (HR 1.21 as published)
    c = alsfrs.simulate_cohort(6000, seed=2025, hazard_ratio_rem=1.21,
                               exposure_prevalence={"antidepressant": 0.5})
    r = alsfrs.rem_survival_comparison(c)
    for analysis in ("crude", "propensity matched"):
        row = r.hazard_ratios.loc[analysis]
        assert row["ci_lower_95"] <= 1.21 <= row["ci_upper_95"], r.hazard_ratios


def test_recovers_a_rem_hazard_ratio(rem):
    # moderate size (fast): the true HR 1.5 lies in both intervals
    for analysis in ("crude", "propensity matched"):
        row = rem.hazard_ratios.loc[analysis]
        assert row["ci_lower_95"] <= 1.5 <= row["ci_upper_95"], rem.hazard_ratios
