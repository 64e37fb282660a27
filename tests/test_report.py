"""Report tables, saved results and the HTML report."""

from __future__ import annotations

import re
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest

import alsfrs
from alsfrs import ValidationError
from alsfrs.bayes import SamplingWarning
from alsfrs.report import tables
from alsfrs.report.html import write_report
from alsfrs.simulate import simulate_tables

FORMULA = "alsfrs_r ~ months * (anxiolytic + antidepressant) + sex + (months | patient_id)"


@pytest.fixture(scope="module")
def cohort():
    return alsfrs.simulate_cohort(120, seed=9)


@pytest.fixture(scope="module")
def lmm(cohort):
    return alsfrs.fit_lmm(FORMULA, cohort)


@pytest.fixture(scope="module")
def bayes(cohort):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return alsfrs.fit_bayes(FORMULA, cohort, chains=2, draws=200, tune=200, seed=4,
                                progressbar=False)


def test_parameter_tables_share_one_shape(lmm, bayes):
    a, b = tables.parameter_table(lmm), tables.parameter_table(bayes)
    assert list(a.columns) == list(b.columns) == ["label", "estimate", "std_error", "ci_lower",
                                                  "ci_upper"]
    assert list(a.index) == list(b.index)
    assert a.loc["months:antidepressant", "label"].startswith("Antidepressant use: difference")
    assert "points/month" in a.loc["months:antidepressant", "label"]
    assert a.loc["sexM", "label"].startswith("Male (vs female)")
    assert a.loc["sd__months", "label"] == "Between-patient SD of the slope (points/month)"
    assert a.loc["sd__Observation", "estimate"] == pytest.approx(lmm.sigma)
    assert b.loc["sd__months", "ci_lower"] < b.loc["sd__months", "estimate"] \
        < b.loc["sd__months", "ci_upper"]


def test_effect_sizes_by_hand(lmm, bayes):
    e = tables.effect_sizes(lmm)
    ee = lmm.exposure_effects()
    vc = lmm.variance_components
    slope_sd = vc.loc[(vc["var1"] == "months") & vc["var2"].isna(), "sdcor"].iloc[0]
    row = e.loc["antidepressant"]
    assert row["difference"] == ee.loc["antidepressant", "difference"]
    assert row["points_at_12m"] == pytest.approx(12 * row["difference"])
    assert row["points_at_6m_lower"] == pytest.approx(6 * row["ci_lower"])
    assert row["standardised"] == pytest.approx(row["difference"] / slope_sd)
    assert np.isnan(row["prob_faster"])
    b = tables.effect_sizes(bayes, margin=0.2)
    assert list(b.columns) == list(e.columns)
    d = bayes.draws("beta")[:, list(bayes.design.fixed_names).index("months:antidepressant")]
    assert b.loc["antidepressant", "prob_faster_by_margin"] == pytest.approx((d < -0.2).mean())
    assert b.attrs["margin"] == 0.2


def test_diagnostics_tables(lmm, bayes):
    for r in (lmm, bayes):
        d = tables.diagnostics_table(r)
        assert list(d.columns) == ["value", "criterion", "passed", "note"]
        assert d["passed"].dtype == bool
    assert tables.diagnostics_table(lmm).loc["optimiser converged", "passed"]
    # counts stay integers in the raw table
    assert isinstance(bayes.diagnostics().loc["divergent transitions", "value"], int)


def test_saved_results_round_trip_exactly(lmm, bayes, tmp_path):
    for r, name in ((lmm, "lmm.zip"), (bayes, "bayes.zip")):
        path = r.save(tmp_path / name)
        back = alsfrs.load_result(path)
        assert type(back) is type(r)
        pd.testing.assert_frame_equal(back.fixed_effects, r.fixed_effects, check_exact=True)
        pd.testing.assert_frame_equal(back.variance_components, r.variance_components,
                                      check_exact=True)
        pd.testing.assert_frame_equal(back.exposure_effects(), r.exposure_effects(),
                                      check_exact=True)
        np.testing.assert_array_equal(back.predict(), r.predict())
        with zipfile.ZipFile(path) as zf:
            assert not any(n.endswith((".pkl", ".pickle")) for n in zf.namelist())
    back = alsfrs.load_result(tmp_path / "lmm.zip")
    assert back.reml_criterion == lmm.reml_criterion
    np.testing.assert_array_equal(back.optimization.theta_final, lmm.optimization.theta_final)
    np.testing.assert_array_equal(alsfrs.load_result(tmp_path / "bayes.zip").draws("beta"),
                                  bayes.draws("beta"))


def test_corrupt_and_foreign_files_give_clear_errors(lmm, tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip file")
    with pytest.raises(ValidationError, match="not an alsfrs result file"):
        alsfrs.load_result(junk)
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(ValidationError, match=r"no alsfrs_result\.json"):
        alsfrs.load_result(foreign)
    good = lmm.save(tmp_path / "good.zip")
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(damaged, "w") as dst:
        for n in src.namelist():
            data = src.read(n)
            dst.writestr(n, data[: len(data) // 2] if n.endswith(".json") else data)
    with pytest.raises(ValidationError, match="damaged result file"):
        alsfrs.load_result(damaged)
    with pytest.raises(ValidationError, match="no such file"):
        alsfrs.load_result(tmp_path / "missing.zip")


def _no_external_requests(text: str) -> None:
    assert "<script" not in text.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<link" not in text.lower()


def test_report_is_self_contained(lmm, bayes, cohort, tmp_path):
    path = write_report({"Mixed model": lmm, "Bayesian": bayes}, tmp_path / "r.html",
                        cohort=cohort, title="Test <b>report</b>")
    text = path.read_text()
    _no_external_requests(text)
    assert "Test &lt;b&gt;report&lt;/b&gt;" in text
    for section in ("Key findings", "Data and row accounting", "Models", "Effects",
                    "Diagnostics", "Figures", "Software and reproducibility"):
        assert section in text
    # key findings come first, in words, before any table
    assert text.index("Key findings") < text.index("<table")
    assert re.search(r"Antidepressant use: \d\.\d\d points/month (faster|slower) decline "
                     r"\(95% (CI|credible interval)", text)
    assert text.count("data:image/png;base64,") >= 6
    assert "Simulated truth" in text
    visible = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    assert "P00" not in visible  # no patient identifiers (figures are pseudonymised)


def test_report_escapes_hostile_ids_and_hides_them(tmp_path):
    v, p, d, _ = simulate_tables(60, seed=2)
    ids = {pid: f"<script>alert('{i}')</script>" for i, pid in enumerate(p["patient_id"])}
    for t in (v, p, d):
        t["patient_id"] = t["patient_id"].map(ids)
    v = pd.concat([v, v.iloc[[0]].assign(patient_id="<img src=x onerror=alert(1)>")],
                  ignore_index=True)
    c = alsfrs.Cohort(v, p, d, errors="exclude")
    assert len(c.exclusions) == 1
    fit = alsfrs.fit_lmm("alsfrs_r ~ months * antidepressant + (months | patient_id)", c)
    text = write_report(fit, tmp_path / "h.html", cohort=c).read_text()
    _no_external_requests(text)
    assert "alert(" not in text and "onerror" not in text
    shown = write_report(fit, tmp_path / "s.html", cohort=c, show_ids=True,
                         figures=False).read_text()
    assert "<img src=x" not in shown and "&lt;img src=x onerror=alert(1)&gt;" in shown
