"""The report as a browser shows it: headless Chromium at 1,280 px (skipped without it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import alsfrs

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("report_layout", ROOT / "tools" / "report_layout.py")
layout = importlib.util.module_from_spec(spec)
spec.loader.exec_module(layout)

pytestmark = pytest.mark.skipif(layout.chromium() is None,
                                reason="Chromium (Debian package 'chromium') is not installed")


def test_report_fits_a_1280px_window(tmp_path):
    cohort = alsfrs.simulate_cohort(150, seed=5)
    formula = ("alsfrs_r ~ months * (anxiolytic + hypnotic + antidepressant) + age_at_dx + sex"
               " + onset_site + (months | patient_id)")
    fit = alsfrs.fit_lmm(formula, cohort)
    report = alsfrs.write_report({"Mixed model": fit}, tmp_path / "r.html", cohort=cohort)
    m = layout.measure(report, width=1280)
    assert len(m["tables"]) >= 8
    assert layout.too_wide(m) == []
    assert m["scroll"] <= m["page"]
    assert all(im["natural"] > 0 for im in m["images"])  # every figure decoded
