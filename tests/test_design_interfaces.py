"""Trial design through the flat API, the command line, pilots and the report renderers."""

from __future__ import annotations

import pandas as pd
import pytest

import alsfrs
from alsfrs import design
from alsfrs.cli import main
from alsfrs.report import registry

PARAMS = ["--sig2-i", "27", "--sig2-s", "0.49", "--cov-si", "-0.728", "--sig2-e", "2.82",
          "--slope", "-0.95", "--intercept", "38"]


@pytest.fixture(scope="module")
def pilot_fit():
    cohort = alsfrs.simulate_cohort(150, seed=3)
    return alsfrs.fit_lmm("alsfrs_r ~ months + (months | patient_id)", cohort)


def test_flat_api():
    assert alsfrs.cafs is design.cafs
    assert callable(alsfrs.design.sample_size) and callable(alsfrs.design.simulate_power)


def test_pilot_from_lmm_fit(pilot_fit):
    pp = design.pilot_parameters(pilot_fit)
    vc = pilot_fit.variance_components
    assert pp.slope == pilot_fit.fixed_effects.loc["months", "estimate"]
    assert pp.sig2_e == pytest.approx(pilot_fit.sigma**2)
    assert pp.sig2_s == vc[(vc.var1 == "months") & vc.var2.isna()]["vcov"].iloc[0]
    assert pp.cov_si == vc[vc.var2 == "months"]["vcov"].iloc[0]
    r = design.sample_size(pilot_fit, pct_slowing=0.25)
    assert r.effect == pytest.approx(0.25 * abs(pp.slope))


def test_pilot_random_intercept_only_and_bayes_like():
    d = pd.read_csv("tests/reference/data/sleepstudy.csv", dtype={"Subject": str})
    fit = alsfrs.fit_lmm("Reaction ~ Days + (1 | Subject)", d)
    pp = design.pilot_parameters(fit)
    assert pp.sig2_s == 0 and pp.cov_si == 0 and pp.slope == pytest.approx(10.467, abs=1e-3)

    class Posterior:  # what a BayesResult offers: posterior means in the same layout
        fixed_effects = pd.DataFrame({"estimate": [38.0, -1.0]},
                                     index=pd.Index(["(Intercept)", "months"], name="term"))
        variance_components = pd.DataFrame({
            "grp": ["patient_id", "patient_id", "patient_id", "Residual"],
            "var1": ["(Intercept)", "months", "(Intercept)", None],
            "var2": [None, None, "months", None], "vcov": [25.0, 0.5, -0.7, 2.9],
            "sdcor": [5.0, 0.7, -0.2, 1.7]})
        formula = "alsfrs_r ~ months + (months | patient_id)"

    pb = design.pilot_parameters(Posterior())
    assert (pb.sig2_i, pb.sig2_s, pb.cov_si, pb.sig2_e, pb.slope) == (25, 0.5, -0.7, 2.9, -1)
    with pytest.raises(alsfrs.ValidationError):
        design.pilot_parameters(object())


def test_cli_sample_size(capsys, tmp_path, pilot_fit):
    assert main(["design", "sample-size", *PARAMS, "--slowing", "0.25", "--attrition",
                 "0.0625", "0.0625", "0.125", "0.125", "0.625", "--method", "all"]) == 0
    out = capsys.readouterr().out
    assert "Sample size" in out and "liuliang" in out and "166.20" in out
    path = tmp_path / "pilot.zip"
    pilot_fit.save(path)
    assert main(["design", "sample-size", "--pilot", str(path), "--slowing", "0.25",
                 "--months", "0", "3", "6", "9", "12", "--power", "0.8", "--attrition",
                 "0.3"]) == 0
    n = design.sample_size(pilot_fit, pct_slowing=0.25, attrition=0.3).n_per_arm
    assert f"{n:,}" in capsys.readouterr().out


def test_cli_simulate_and_errors(capsys):
    assert main(["design", "simulate", *PARAMS, "--slowing", "0.3", "--n-per-arm", "30",
                 "--trials", "4", "--death", "joint", "--quiet"]) == 0
    assert "Power by simulation" in capsys.readouterr().out
    assert main(["design", "sample-size", "--sig2-s", "1", "--sig2-e", "1",
                 "--slowing", "0.25"]) == 1  # no slope for a percentage
    assert "slope" in capsys.readouterr().out


def test_renderers_registered(monkeypatch):
    monkeypatch.setattr(registry, "_BUILTIN", ("alsfrs.report.design",))
    monkeypatch.setattr(registry, "_loaded", False)
    ctx = registry.ReportContext()
    n = design.sample_size(sig2_i=27, sig2_s=0.49, cov_si=-0.7, sig2_e=2.8, slope=-0.95,
                           pct_slowing=0.25, attrition=0.3)
    sim = design.simulate_power(dict(sig2_s=0.49, sig2_e=2.8, slope=-0.95), n_per_arm=[20, 30],
                                pct_slowing=0.3, n_trials=3, seed=1)
    cafs = design.cafs(pd.DataFrame({"patient_id": list("ABCD"), "arm": [0, 0, 1, 1],
                                     "time": [3, 12, 12, 12], "event": [1, 0, 0, 0],
                                     "change": [None, -6, -3, -4]}))
    ass = design.assurance([0.1, 0.2, 0.3], [50, 100], pilot=dict(sig2_s=0.49, sig2_e=2.8))
    for name, res in (("n", n), ("sim", sim), ("cafs", cafs), ("assurance", ass)):
        r = registry.renderer_for(res)
        findings = r.key_findings(name, res, ctx)
        assert findings and all(isinstance(f, str) for f in findings)
        sections = r.sections(name, res, ctx)
        assert sections and sections[0].blocks
        for b in sections[0].blocks:
            if isinstance(b, registry.FigureBlock):
                fig = b.figure() if callable(b.figure) else b.figure
                assert fig._repr_png_()[:4] == b"\x89PNG"
    assert "167 treated" in registry.renderer_for(n).key_findings("n", n, ctx)[0] or \
        f"{n.n_per_arm} treated" in registry.renderer_for(n).key_findings("n", n, ctx)[0]
    # no patient identifiers unless asked
    blocks = registry.renderer_for(cafs).sections("c", cafs, ctx)[0].blocks
    assert not any(isinstance(b, registry.TableBlock) and "A" in b.frame.index for b in blocks)


def _results():
    p = dict(sig2_i=27.0, sig2_s=0.49, cov_si=-0.7, sig2_e=2.8, slope=-0.95, intercept=38.0)
    yield design.sample_size(p, pct_slowing=0.25, attrition=[0.1, 0.1, 0.1, 0.1, 0.6])
    yield design.simulate_power(p, n_per_arm=[20, 25], pct_slowing=0.3, n_trials=3, seed=2,
                                death="joint")
    yield design.assurance([0.1, 0.2, 0.35], [50, 80], pilot=p)
    yield design.cafs(pd.DataFrame({"patient_id": ["A", "B", "C", "D"], "arm": [0, 0, 1, 1],
                                    "time": [3.5, 12, 12, 7], "event": [1, 0, 0, 0],
                                    "change": [None, -6.25, -3, -4]}))


@pytest.mark.parametrize("result", list(_results()), ids=lambda r: r.kind)
def test_payload_round_trip_is_exact(result, tmp_path):
    """Every number survives the payload and its JSON/Parquet encoding bit for bit."""
    import json

    from alsfrs import persist

    payload = result._to_payload()
    fields = persist._dec(json.loads(json.dumps(persist._enc(payload.fields))))
    tables = {}
    for k, v in payload.tables.items():
        path = tmp_path / f"{k}.parquet"
        v.to_parquet(path)
        tables[k] = pd.read_parquet(path)
    back = type(result)._from_payload(type(payload)(fields=fields, tables=tables))
    pd.testing.assert_frame_equal(back.summary(), result.summary(), check_exact=True)
    assert str(back) == str(result)
    assert back.model_spec.settings == result.model_spec.settings


@pytest.mark.parametrize("result", list(_results()), ids=lambda r: r.kind)
def test_save_and_load(result, tmp_path):
    path = result.save(tmp_path / "r.zip")
    back = alsfrs.load_result(path)
    assert type(back) is type(result)
    pd.testing.assert_frame_equal(back.summary(), result.summary(), check_exact=True)
    assert str(back) == str(result)


def test_html_report_of_design_results(tmp_path):
    results = {r.kind: r for r in _results()}
    path = alsfrs.write_report(results, tmp_path / "design.html", title="Trial <design>")
    html = path.read_text()
    assert "Trial &lt;design&gt;" in html
    assert "patients per arm" in html.lower() and "CAFS" in html
    assert "data:image/png;base64" in html
    assert ">A<" not in html  # no patient identifiers without show_ids


@pytest.mark.parametrize("result", list(_results()), ids=lambda r: r.kind)
def test_design_results_satisfy_the_contract(result):
    import numpy as np

    from alsfrs.results import DIAGNOSTIC_COLUMNS, ModelRecord, result_types

    s = result.summary()
    assert isinstance(s, pd.DataFrame) and len(s) > 0
    assert all(np.issubdtype(s[c].dtype, np.number) for c in s.columns)
    d = result.diagnostics()
    assert tuple(d.columns) == DIAGNOSTIC_COLUMNS and d.index.name == "check"
    assert d["passed"].dtype == bool
    spec = result.model_spec
    assert isinstance(spec, ModelRecord) and "numpy" in spec.versions
    assert "<table" in result._repr_html_() and str(result)
    assert result_types()[result.kind] is type(result)
