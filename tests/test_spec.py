"""Model specifications: the catalogue and its validation."""

from __future__ import annotations

import pytest

from alsfrs import ValidationError, available_specs, load_spec


def test_catalogue_loads_by_name():
    assert "linear_slope" in available_specs()
    s = load_spec("linear_slope")
    assert s.engine == "lmm" and s.family == "gaussian" and s.time_axis == "months"
    assert s.formula.startswith("alsfrs_r ~ months * (anxiolytic + hypnotic + antidepressant)")
    assert "(months | patient_id)" in s.formula
    assert s.exposure == {"lag_months": 12, "min_dispensings": 2}
    assert s.fit == {"reml": True}


def test_every_shipped_spec_is_valid():
    for name in available_specs():
        assert load_spec(name).name == name


def test_spec_from_file_and_all_problems_listed(tmp_path):
    good = tmp_path / "mine.toml"
    good.write_text('name = "mine"\nformula = "alsfrs_r ~ months + (months | patient_id)"\n')
    assert load_spec(good).formula == "alsfrs_r ~ months + (months | patient_id)"
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "other"\nformula = "alsfrs_r ~ visit"\nengine = "sas"\n'
                   'colour = "red"\n[exposure]\nlag_months = -1\n')
    with pytest.raises(ValidationError) as e:
        load_spec(bad)
    rules = sorted(p.rule for p in e.value.problems)
    assert rules == ["bad_formula", "bad_value", "bad_value", "name_mismatch", "unknown_key"]
    assert "bad.toml" in str(e.value)


def test_unknown_name_and_broken_toml(tmp_path):
    with pytest.raises(ValidationError, match=r"available: .*linear_slope"):
        load_spec("nonexistent_model")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n")
    with pytest.raises(ValidationError, match="not valid TOML"):
        load_spec(broken)


def test_catalogue_from_the_installed_package(tmp_path):
    """Outside the checkout, the installed package finds its catalogue."""
    import subprocess
    import sys

    code = ("import alsfrs, os; s = alsfrs.load_spec('linear_slope'); "
            "print(s.name, 'checkout' if os.path.exists(os.path.join("
            "os.path.dirname(alsfrs.__file__), '..', 'models', 'linear_slope.toml')) "
            "else 'installed')")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("linear_slope")
