"""lme4 formula parsing, R term naming and design matrices (alsfrs.formula, alsfrs.matrices)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alsfrs.errors import ValidationError
from alsfrs.formula import parse_formula, r_column_name, to_formulaic
from alsfrs.matrices import build_model_matrices

STANDARD = (
    "alsfrs_r ~ months * (anxiolytic + hypnotic + antidepressant) + age_at_dx + sex + "
    "onset_site + (months | patient_id)"
)


def small_cohort(n_patients: int = 30, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    nv = rng.integers(3, 7, n_patients)
    pid = np.repeat(np.arange(n_patients), nv)
    months = np.concatenate([np.arange(k) * 3.0 for k in nv]) + rng.uniform(0, 1, pid.size)
    frame = pd.DataFrame(
        {
            "patient_id": np.array([f"P{i:03d}" for i in range(n_patients)])[pid],
            "months": months,
            "age_at_dx": rng.normal(65, 10, n_patients)[pid],
            "sex": pd.Categorical(rng.choice(["F", "M"], n_patients)[pid], categories=["F", "M"]),
            "onset_site": pd.Categorical(
                rng.choice(["spinal", "bulbar"], n_patients)[pid],
                categories=["spinal", "bulbar", "other"],
            ),
            "anxiolytic": rng.binomial(1, 0.3, n_patients)[pid],
            "hypnotic": rng.binomial(1, 0.3, n_patients)[pid],
            "antidepressant": rng.binomial(1, 0.3, n_patients)[pid],
        }
    )
    frame["alsfrs_r"] = 40 - months + rng.normal(0, 1.7, pid.size)
    return frame


# -- parsing --------------------------------------------------------------------------
def test_parse_standard_formula() -> None:
    f = parse_formula(STANDARD)
    assert f.response == "alsfrs_r"
    assert (
        f.fixed
        == "months * (anxiolytic + hypnotic + antidepressant) + age_at_dx + sex + onset_site"
    )
    assert len(f.random) == 1
    term = f.random[0]
    assert (term.expression, term.grouping, term.correlated) == ("months", "patient_id", True)
    assert f.grouping == "patient_id"
    assert f.variable_order[:3] == ("alsfrs_r", "months", "anxiolytic")


@pytest.mark.parametrize(
    ("text", "expression", "correlated"),
    [
        ("y ~ x + (1 | g)", "1", True),
        ("y ~ x + (x || g)", "x", False),
        ("y ~ x + (0 + x | g)", "0 + x", True),
        ("y ~ x + I(x^2) + (x + I(x^2) | g)", "x + I(x^2)", True),
        ("y~x+(x|g)", "x", True),
    ],
)
def test_random_term_forms(text: str, expression: str, correlated: bool) -> None:
    term = parse_formula(text).random[0]
    assert term.expression == expression
    assert term.correlated is correlated
    assert term.grouping == "g"


def test_only_random_effects_gives_intercept_fixed_part() -> None:
    assert parse_formula("y ~ (1 | g)").fixed == "1"


def test_several_terms_with_one_grouping_factor() -> None:
    f = parse_formula("y ~ x + (1 | g) + (0 + x | g)")
    assert [t.expression for t in f.random] == ["1", "0 + x"]


def test_power_inside_I_is_translated() -> None:
    assert to_formulaic("x + I(x^2) + (a + b)^2") == "x + I(x**2) + (a + b)^2"


@pytest.mark.parametrize(
    ("text", "rule", "fragment"),
    [
        ("y + (1 | g)", "malformed_formula", "'~'"),
        ("y ~ x ~ z + (1|g)", "malformed_formula", "more than one '~'"),
        ("y ~ x + (1 | g", "malformed_formula", "unbalanced parentheses"),
        ("y ~ x", "no_random_effects", "no random-effects term"),
        ("y ~ x + (1 | g) + (1 | h)", "several_grouping_factors", "g, h"),
        ("y ~ x + (1 | a/b)", "unsupported_grouping", "nested"),
        ("y ~ x + (1 | a:b)", "unsupported_grouping", "a:b"),
        ("y ~ x + ( | g)", "malformed_formula", "no expression before '|'"),
        ("y ~ x + (x | )", "malformed_formula", "no grouping factor"),
        ("y ~ x + + (1|g)", "malformed_formula", "nothing on one side"),
        ("log(y) ~ x + (1|g)", "malformed_formula", "response must be a column name"),
        ("y ~ x * + z + (1|g)", "malformed_formula", "fixed-effects part"),
        ("y ~ x + 1 | g", "malformed_formula", "(expression | group)"),
        ("", "malformed_formula", "non-empty"),
    ],
)
def test_formula_errors(text: str, rule: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_formula(text)
    assert err.value.problems[0].rule == rule
    assert fragment in str(err.value)


# -- naming -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Intercept", "(Intercept)"),
        ("sex[T.M]", "sexM"),
        ("onset_site[T.bulbar]:months", "months:onset_sitebulbar"),
        ("months:anxiolytic", "months:anxiolytic"),
        ("I(months ** 2)", "I(months^2)"),
    ],
)
def test_r_column_names(name: str, expected: str) -> None:
    order = ("alsfrs_r", "months", "anxiolytic", "sex", "onset_site")
    assert r_column_name(name, order) == expected


def test_design_matrix_names_follow_model_matrix() -> None:
    mm = build_model_matrices(STANDARD, small_cohort())
    assert mm.fixed_names == (
        "(Intercept)",
        "months",
        "anxiolytic",
        "hypnotic",
        "antidepressant",
        "age_at_dx",
        "sexM",
        "onset_sitebulbar",  # unused level 'other' dropped, as droplevels
        "months:anxiolytic",
        "months:hypnotic",
        "months:antidepressant",
    )
    assert mm.random_names == ("(Intercept)", "months")
    assert mm.levels["onset_site"] == ["spinal", "bulbar"]
    assert mm.blocks == ((0, 1),)
    assert mm.block_names == ("patient_id",)


def test_interaction_order_and_quadratic_names() -> None:
    data = small_cohort()
    mm = build_model_matrices(
        "alsfrs_r ~ months + onset_site:months + I(months^2)"
        " + (months + I(months^2) || patient_id)",
        data,
    )
    assert mm.fixed_names == ("(Intercept)", "months", "I(months^2)", "months:onset_sitebulbar")
    assert mm.random_names == ("(Intercept)", "months", "I(months^2)")
    assert mm.blocks == ((0,), (1,), (2,))
    assert mm.block_names == ("patient_id", "patient_id.1", "patient_id.2")
    np.testing.assert_allclose(mm.Z[:, 2], data["months"].to_numpy() ** 2)


def test_string_columns_get_sorted_levels_and_categorical_order_is_kept() -> None:
    data = small_cohort()
    data["site_text"] = data["onset_site"].astype(str)
    mm = build_model_matrices("alsfrs_r ~ site_text + sex + (1 | patient_id)", data)
    assert mm.levels["site_text"] == ["bulbar", "spinal"]  # sorted, like an R factor
    assert "site_textspinal" in mm.fixed_names
    data["sex"] = pd.Categorical(data["sex"].astype(str), categories=["M", "F"])
    mm = build_model_matrices("alsfrs_r ~ sex + (1 | patient_id)", data)
    assert mm.fixed_names == ("(Intercept)", "sexF")  # first category is the reference


def test_group_labels_sorted_and_codes_consistent() -> None:
    data = small_cohort().sample(frac=1.0, random_state=1)  # shuffled rows
    mm = build_model_matrices("alsfrs_r ~ months + (months | patient_id)", data)
    assert list(mm.group_labels) == sorted(data["patient_id"].unique())
    np.testing.assert_array_equal(
        mm.group_labels.to_numpy()[mm.group], data["patient_id"].to_numpy()
    )


def test_sufficient_statistics_match_direct_computation() -> None:
    mm = build_model_matrices(STANDARD, small_cohort().sample(frac=1.0, random_state=2))
    st = mm.sufficient_statistics()
    for i in (0, 7, mm.n_groups - 1):
        rows = mm.group == i
        Zi, Xi, yi = mm.Z[rows], mm.X[rows], mm.y[rows]
        np.testing.assert_allclose(st.ZtZ[i], Zi.T @ Zi)
        np.testing.assert_allclose(st.ZtX[i], Zi.T @ Xi)
        np.testing.assert_allclose(st.Zty[i], Zi.T @ yi)
        assert st.yty[i] == pytest.approx(yi @ yi)
        assert st.n[i] == rows.sum()
    np.testing.assert_allclose(st.XtX, mm.X.T @ mm.X)
    np.testing.assert_allclose(st.Xty, mm.X.T @ mm.y)
    assert st.yty_total == pytest.approx(mm.y @ mm.y)
    assert st.n_obs == mm.n_obs and st.n_groups == mm.n_groups


def test_new_data_designs_use_fit_levels() -> None:
    data = small_cohort()
    mm = build_model_matrices(STANDARD, data)
    new = data.head(5).copy()
    new["onset_site"] = new["onset_site"].astype(str)  # plain strings in new data
    np.testing.assert_allclose(mm.fixed_design(new), mm.X[:5])
    np.testing.assert_allclose(mm.random_design(new), mm.Z[:5])
    bad = data.head(2).copy()
    bad["onset_site"] = ["other", "spinal"]
    with pytest.raises(ValidationError, match="other"):
        mm.fixed_design(bad)


# -- data validation ----------------------------------------------------------------------
def problem_of(formula: str, data: pd.DataFrame) -> ValidationError:
    with pytest.raises(ValidationError) as err:
        build_model_matrices(formula, data)
    return err.value


def test_unknown_column_is_named() -> None:
    err = problem_of("alsfrs_r ~ months + bmi + (months | patient_id)", small_cohort())
    assert err.problems[0].rule == "unknown_column"
    assert err.problems[0].column == "bmi"
    assert "'bmi'" in str(err)


def test_missing_values_name_column_count_and_patients() -> None:
    data = small_cohort()
    data.loc[[0, 1], "age_at_dx"] = np.nan
    data.loc[5, "alsfrs_r"] = np.nan
    err = problem_of(STANDARD, data)
    by_col = {p.column: p for p in err.problems}
    assert set(by_col) == {"age_at_dx", "alsfrs_r"}
    assert "2 row(s)" in by_col["age_at_dx"].message
    assert data.loc[0, "patient_id"] in by_col["age_at_dx"].message
    assert by_col["alsfrs_r"].rule == "missing_values"


def test_constant_covariate() -> None:
    data = small_cohort()
    data["hypnotic"] = 0
    err = problem_of(STANDARD, data)
    assert err.problems[0].rule == "constant_covariate"
    assert err.problems[0].column == "hypnotic"


def test_single_level_factor() -> None:
    data = small_cohort()
    data["sex"] = pd.Categorical(["F"] * len(data), categories=["F", "M"])
    err = problem_of(STANDARD, data)
    assert err.problems[0].rule == "constant_covariate"
    assert "sex" in str(err)


def test_rank_deficient_design_names_aliased_column() -> None:
    data = small_cohort()
    data["age_months"] = data["age_at_dx"] * 12
    err = problem_of("alsfrs_r ~ months + age_at_dx + age_months + (months | patient_id)", data)
    assert err.problems[0].rule == "rank_deficient"
    assert err.problems[0].column == "age_months"
    assert "'age_at_dx'" in str(err)


def test_aliased_interaction_is_named() -> None:
    data = small_cohort()
    data["treated"] = data["anxiolytic"]
    err = problem_of("alsfrs_r ~ months * (anxiolytic + treated) + (months | patient_id)", data)
    cols = {p.column for p in err.problems}
    assert cols == {"treated", "months:treated"}


def test_one_visit_per_patient_with_random_slope() -> None:
    data = small_cohort().groupby("patient_id").head(1)
    err = problem_of("alsfrs_r ~ months + (months | patient_id)", data)
    assert err.problems[0].rule == "unidentifiable_random_effects"
    assert "single observation" in str(err) and "months" in str(err)


def test_non_numeric_response() -> None:
    data = small_cohort()
    data["alsfrs_r"] = data["alsfrs_r"].astype(str)
    err = problem_of("alsfrs_r ~ months + (1 | patient_id)", data)
    assert err.problems[0].rule == "non_numeric_response"


def test_object_with_to_frame_is_accepted() -> None:
    data = small_cohort()

    class Holder:
        def to_frame(self) -> pd.DataFrame:
            return data

    mm = build_model_matrices("alsfrs_r ~ months + (months | patient_id)", Holder())
    assert mm.n_obs == len(data)
    with pytest.raises(ValidationError, match="DataFrame"):
        build_model_matrices("alsfrs_r ~ months + (months | patient_id)", [1, 2, 3])
