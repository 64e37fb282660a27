"""The one result contract: every result type, the registries, display and persistence."""

from __future__ import annotations

import ast
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alsfrs
from alsfrs.bayes.fit import SamplingWarning
from alsfrs.figures import NotebookFigure
from alsfrs.report import plots
from alsfrs.report.html import render_report
from alsfrs.report.longitudinal import LongitudinalRenderer
from alsfrs.report.registry import FigureBlock, Section, renderer_for
from alsfrs.results import DIAGNOSTIC_COLUMNS, ModelRecord, Result, result_types

ROOT = Path(__file__).resolve().parents[1]
FORMULA = "alsfrs_r ~ months * antidepressant + (months | patient_id)"


@pytest.fixture(scope="module")
def cohort():
    return alsfrs.simulate_cohort(120, seed=11)


@pytest.fixture(scope="module")
def fits(cohort):
    lmm = alsfrs.fit_lmm(FORMULA, cohort)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        bayes = alsfrs.fit_bayes(FORMULA, cohort, chains=2, draws=150, tune=150, seed=3,
                                 progressbar=False)
    return {"LMM": lmm, "Bayes": bayes}


def test_every_result_satisfies_the_contract(fits):
    for r in fits.values():
        assert isinstance(r, Result)
        s = r.summary()
        assert isinstance(s, pd.DataFrame) and len(s) > 0
        assert all(np.issubdtype(s[c].dtype, np.number) for c in s.columns)
        d = r.diagnostics()
        assert tuple(d.columns) == DIAGNOSTIC_COLUMNS and d.index.name == "check"
        assert d["passed"].dtype == bool
        spec = r.model_spec
        assert isinstance(spec, ModelRecord) and spec.formula == FORMULA
        assert "python" in spec.versions and "numpy" in spec.versions
        assert isinstance(str(r), str) and "<table" in r._repr_html_()
        assert type(r).kind in result_types()


def test_interval_columns_state_their_type(fits):
    assert {"ci_lower_95", "ci_upper_95"} <= set(fits["LMM"].summary().columns)
    assert {"hdi_lower_95", "hdi_upper_95"} <= set(fits["Bayes"].summary().columns)
    assert "hdi_lower_90" in fits["Bayes"].summary(hdi_prob=0.9).columns


def test_print_summary_rounds_summary_keeps_raw(fits, capsys):
    lmm = fits["LMM"]
    lmm.print_summary()
    out = capsys.readouterr().out
    raw = lmm.summary().loc["months", "estimate"]
    assert f"{raw:.4f}" in out and repr(raw) not in out


def test_time_variable_taken_from_the_model(cohort):
    """Fault 8: a model on months since onset reports on that axis, not "months"."""
    f = "alsfrs_r ~ months_since_onset * antidepressant + (months_since_onset | patient_id)"
    fit = alsfrs.fit_lmm(f, cohort)
    assert fit.time == "months_since_onset"
    eff = fit.exposure_effects()
    assert eff.loc["antidepressant", "term"] == "months_since_onset:antidepressant"
    html = render_report(fit, cohort=cohort, figures=True)
    assert "could not be drawn" not in html



def test_spec_time_axis_reaches_the_fit(cohort, tmp_path):
    """Fault 8: ``time_axis`` of a specification is used by ``fit_model``."""
    toml = tmp_path / "onset.toml"
    toml.write_text('name = "onset"\nformula = "alsfrs_r ~ months_since_onset * antidepressant'
                    ' + months + (months_since_onset | patient_id)"\nengine = "lmm"\n'
                    'time_axis = "months_since_onset"\n')
    fit = alsfrs.load_spec(str(toml)).fit_model(cohort)
    assert fit.time == "months_since_onset"
    assert list(fit.exposure_effects()["term"]) == ["months_since_onset:antidepressant"]


def test_lmm_convergence_is_judged_from_the_record(fits):
    """Fault 10: "optimiser converged" is not a constant."""
    import dataclasses

    lmm = fits["LMM"]
    assert lmm.diagnostics().loc["optimiser converged", "passed"]
    bad = dataclasses.replace(lmm, optimization=dataclasses.replace(
        lmm.optimization, newton_decrement=0.5))
    d = bad.diagnostics()
    assert not d.loc["optimiser converged", "passed"]
    assert not d.loc["Newton decrement at the end", "passed"]
    assert "Newton decrement" in " ".join(bad.diagnostic_messages())


def test_figures_display_in_a_notebook_without_pyplot(fits):
    """Fault 1: a returned figure has a PNG representation for IPython."""
    fig = plots.forest_plot(fits)
    assert isinstance(fig, NotebookFigure)
    png = fig._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    from IPython.core.formatters import PNGFormatter

    assert PNGFormatter()(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failing_figure_is_reported_not_dropped(fits, monkeypatch):
    """Fault 10: a figure that fails says so in the report."""
    def boom(*a, **k):
        raise RuntimeError("no ink")

    monkeypatch.setattr(plots, "trajectory_plot", boom)
    html = render_report(fits["LMM"])
    assert "could not be drawn: RuntimeError: no ink" in html
    assert "Observed ALSFRS-R and fitted lines" in html


def test_a_new_result_type_needs_only_a_renderer(tmp_path):
    """Adding a model adds a class and a renderer; the report and persistence follow."""
    from alsfrs.report.registry import Paragraph, register_renderer
    from alsfrs.results import Display, Payload, diagnostics_frame

    class Toy(Result):
        kind = "toy_for_test"

        def __init__(self, x: float) -> None:
            self.x = x

        def summary(self):
            return pd.DataFrame({"estimate": [self.x]}, index=pd.Index(["x"], name="term"))

        def diagnostics(self):
            return diagnostics_frame([("fine", 1, "1", True)])

        @property
        def model_spec(self):
            return ModelRecord(formula=None, engine="toy")

        def _display(self):
            return Display("Toy", tables=[])

        def _to_payload(self, **options):
            return Payload(fields={"x": self.x})

        @classmethod
        def _from_payload(cls, payload):
            return cls(payload.fields["x"])

    @register_renderer(Toy)
    class ToyRenderer:
        def key_findings(self, name, result, ctx):
            return [f"x is {result.x}"]

        def sections(self, name, result, ctx):
            return [Section("toy", [Paragraph("<b>bold</b>")])]

    html = render_report(Toy(0.1 + 0.2))
    assert "x is 0.30000000000000004" in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    back = alsfrs.load_result(Toy(0.1 + 0.2).save(tmp_path / "toy.zip"))
    assert back.x == 0.1 + 0.2


def test_renderers_dispatch_by_type(fits):
    assert isinstance(renderer_for(fits["LMM"]), LongitudinalRenderer)
    assert type(renderer_for(fits["Bayes"])).__name__ == "BayesRenderer"
    with pytest.raises(TypeError, match="no report renderer"):
        renderer_for(object())
    assert isinstance(FigureBlock(None), FigureBlock)


def test_report_code_has_no_engine_checks():
    """The report reads results only through the contract: no isinstance on engine types,
    no private attributes of results, no engine constants."""
    engines = {"LmmResult", "BayesResult", "CoxResult", "JointResult"}
    for path in (ROOT / "alsfrs" / "report").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance":
                names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
                assert not names & engines, f"{path.name}:{node.lineno} isinstance on an engine"
            if isinstance(node, ast.Attribute) and node.attr in ("_data", "design"):
                raise AssertionError(f"{path.name}:{node.lineno} reads result.{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module == "alsfrs.lmm":
                raise AssertionError(f"{path.name}:{node.lineno} imports engine internals")


def test_bayesian_save_is_small_and_exact(fits, tmp_path):
    """Fault 11: recomputable draws are not stored; loading recomputes them bit for bit."""
    bayes = fits["Bayes"]
    small = bayes.save(tmp_path / "b.zip")
    full = bayes.save(tmp_path / "bf.zip", full=True)
    assert small.stat().st_size < full.stat().st_size / 5
    back = alsfrs.load_result(small)
    for group in ("posterior", "log_likelihood", "posterior_predictive"):
        a, b = getattr(bayes.idata, group), getattr(back.idata, group)
        for v in a.data_vars:
            np.testing.assert_array_equal(a[v].values, b[v].values)
    with zipfile.ZipFile(small) as zf:
        meta = json.loads(zf.read("alsfrs_result.json"))
    assert meta["kind"] == "bayes" and meta["module"] == "alsfrs.bayes.result"
