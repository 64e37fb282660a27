"""Model matrices: numeric columns with bad cells (issue 8, fault 9) and design plans."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alsfrs.errors import ValidationError
from alsfrs.lmm import LmmFitter, fit_lmm
from alsfrs.matrices import DesignPlan, build_model_matrices
from tests.test_lmm import EXPOSURE_MODEL, cohort, simulate

AGE_MODEL = "alsfrs_r ~ months + age_at_dx + sex + (months | patient_id)"


def with_text_ages(bad: dict[int, str]) -> pd.DataFrame:
    data = cohort().copy()
    ages = data["age_at_dx"].round(1).astype(str).astype(object)
    for row, value in bad.items():
        ages.iloc[row] = value
    return data.assign(age_at_dx=ages)


def test_a_word_among_numbers_is_an_error_naming_column_rows_and_values():
    data = with_text_ages({3: "sixty", 10: "n/a?"})
    with pytest.raises(ValidationError) as info:
        fit_lmm(AGE_MODEL, data)
    problems = info.value.problems
    assert {p.rule for p in problems} == {"non_numeric_value"}
    assert {p.column for p in problems} == {"age_at_dx"}
    assert [p.row for p in problems] == [3, 10]
    assert "'sixty'" in problems[0].message and "'n/a?'" in problems[1].message
    assert problems[0].patient == data["patient_id"].iloc[3]


def test_many_bad_cells_are_summarised():
    data = with_text_ages({k: "unknown" for k in range(0, 40, 2)})
    with pytest.raises(ValidationError) as info:
        build_model_matrices(AGE_MODEL, data)
    problems = info.value.problems
    assert len(problems) == 6  # five rows named, then one line for the other 15
    assert "15 more row(s)" in problems[-1].message and "'unknown'" in problems[-1].message


def test_a_text_response_with_a_bad_cell_is_named():
    data = cohort().copy()
    y = data["alsfrs_r"].round(2).astype(str).astype(object)
    y.iloc[5] = "forty"
    with pytest.raises(ValidationError, match="'forty'"):
        fit_lmm(AGE_MODEL, data.assign(alsfrs_r=y))


def test_genuinely_categorical_text_stays_a_factor():
    data = cohort().copy()
    data["sex"] = data["sex"].astype(str).astype(object)  # 'F'/'M' as plain text
    data["onset_site"] = data["onset_site"].astype(str).astype(object)
    mm = build_model_matrices(AGE_MODEL + " + onset_site", data)
    assert "sexM" in mm.fixed_names and "onset_sitespinal" in mm.fixed_names


def test_new_data_with_a_bad_number_is_an_error_not_a_shifted_matrix():
    fit = fit_lmm(AGE_MODEL, cohort())
    new = cohort().head(6).copy()
    new["age_at_dx"] = new["age_at_dx"].astype(object)
    new.iloc[2, new.columns.get_loc("age_at_dx")] = "sixty"
    with pytest.raises(ValidationError) as info:
        fit.predict(new)
    assert info.value.problems[0].column == "age_at_dx"
    assert "'sixty'" in info.value.problems[0].message


# -- design plans and LmmFitter ----------------------------------------------------------------
def test_refit_by_plan_gives_the_numbers_of_a_full_fit():
    fitter = LmmFitter(EXPOSURE_MODEL)
    fitter.fit(cohort())
    assert fitter._plan is None  # a one-off fit does not make a plan
    other = simulate(n_patients=150, seed=99)
    fitter.matrices(other)
    assert isinstance(fitter._plan, DesignPlan)
    via_plan = fitter.matrices(other)
    full = build_model_matrices(EXPOSURE_MODEL, other)
    np.testing.assert_array_equal(via_plan.X, full.X)
    np.testing.assert_array_equal(via_plan.Z, full.Z)
    np.testing.assert_array_equal(via_plan.group, full.group)
    assert via_plan.fixed_names == full.fixed_names
    a, b = fitter.fit(other), fit_lmm(EXPOSURE_MODEL, other)
    assert a.reml_criterion == b.reml_criterion
    pd.testing.assert_frame_equal(a.fixed_effects, b.fixed_effects)


def test_refit_on_data_the_plan_does_not_cover_takes_the_full_path():
    fitter = LmmFitter(EXPOSURE_MODEL)
    fitter.fit(cohort())
    fitter.fit(cohort())
    other = simulate(n_patients=150, seed=5)
    other["onset_site"] = other["onset_site"].cat.set_categories(
        ["spinal", "bulbar", "other"])
    other.loc[other.index[:9], "onset_site"] = "other"  # a level unseen by the first data
    assert fitter._plan.build(other) is None
    fit = fitter.fit(other)
    assert "onset_siteother" in fit.fixed_effects.index
    broken = other.assign(months=other["months"].where(other.index != 4))
    with pytest.raises(ValidationError, match="missing value"):
        fitter.fit(broken)


def test_formulas_beyond_the_plan_still_fit():
    formula = "alsfrs_r ~ months + I(months^2) + (months | patient_id)"
    fitter = LmmFitter(formula)
    fitter.fit(cohort())
    fitter.fit(cohort())
    assert fitter._plan is None and fitter._plan_tried
    assert fitter.fit(simulate(seed=3)).converged


def test_satterthwaite_is_computed_only_when_asked_for():
    fit = fit_lmm(EXPOSURE_MODEL, cohort())
    assert type(fit.__dict__["_lazy_fixed_effects"]).__name__ == "_Deferred"
    est = fit.fixef  # estimates need no df
    assert type(fit.__dict__["_lazy_fixed_effects"]).__name__ == "_Deferred"
    fe = fit.fixed_effects
    assert list(fe.columns) == ["estimate", "std_error", "df", "t_value", "p_value",
                                "ci_lower", "ci_upper"]
    np.testing.assert_array_equal(fe["estimate"].to_numpy(), est.to_numpy())
    assert fit.fixed_effects is fe  # computed once
    assert np.all(np.isfinite(fe["df"])) and set(fit.satterthwaite) >= {"vcov_varpar", "jacobian"}
