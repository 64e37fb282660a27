"""The command line: simulate -> validate round trip, errors, help."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from alsfrs.cli import main


def test_simulate_then_validate_uses_every_row(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["simulate", "--n-patients", "80", "--seed", "3", "--out", str(out)]) == 0
    for f in ("visits.csv", "patients.csv", "dispensings.csv", "truth.json"):
        assert (out / f).exists()
    assert json.loads((out / "truth.json").read_text())["seed"] == 3
    capsys.readouterr()
    code = main(["validate", str(out / "visits.csv"), "--patients", str(out / "patients.csv"),
                 "--dispensings", str(out / "dispensings.csv")])
    text = capsys.readouterr().out
    assert code == 0
    assert "every input row is used." in text
    assert "counted in the exposure window" in text


def test_malformed_visits_exit_1_naming_each_bad_row(tmp_path, capsys):
    out = tmp_path / "sim"
    main(["simulate", "--n-patients", "20", "--seed", "1", "--out", str(out)])
    v = pd.read_csv(out / "visits.csv", dtype=str)
    v.loc[0, "walking"] = "7"
    v.loc[2, "alsfrs_r"] = "60"
    v.loc[4, "patient_id"] = "NOBODY"
    v.to_csv(out / "bad.csv", index=False)
    capsys.readouterr()
    code = main(["validate", str(out / "bad.csv"), "--patients", str(out / "patients.csv")])
    text = capsys.readouterr().out
    assert code == 1
    assert "bad.csv, line 2" in text and "column 'walking'" in text
    assert "bad.csv, line 4" in text and "column 'alsfrs_r'" in text
    assert "bad.csv, line 6, patient NOBODY" in text


def test_visits_alone_and_exclude_mode(tmp_path, capsys):
    out = tmp_path / "sim"
    main(["simulate", "--n-patients", "20", "--seed", "1", "--out", str(out)])
    capsys.readouterr()
    assert main(["validate", str(out / "visits.csv")]) == 0
    assert "give --patients" in capsys.readouterr().out
    v = pd.read_csv(out / "visits.csv", dtype=str)
    v.loc[0, "walking"] = "7"
    v.to_csv(out / "bad.csv", index=False)
    assert main(["validate", str(out / "bad.csv"), "--patients", str(out / "patients.csv"),
                 "--errors", "exclude"]) == 0
    assert "item_range" in capsys.readouterr().out


def test_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n-patients", "150", "--draws", "200",
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "linear mixed model" in text and "Bayesian model" in text
    assert "antidepressant" in text and "truth" in text and "done in" in text
    for name in ("report.html", "fit_lmm.zip", "fit_bayes.zip", "truth.json"):
        assert (out / name).exists()
    html = (out / "report.html").read_text()
    assert "Simulated truth" in html and "Bayesian (collapsed)" in html
    # the saved fits make a report again from the command line
    capsys.readouterr()
    assert main(["report", str(out / "fit_lmm.zip"), str(out / "fit_bayes.zip"),
                 "--out", str(out / "again.html"), "--title", "Again",
                 "--visits", str(out / "visits.csv"), "--patients", str(out / "patients.csv"),
                 "--dispensings", str(out / "dispensings.csv")]) == 0
    again = (out / "again.html").read_text()
    assert "<title>Again</title>" in again and "fit_bayes" in again
    assert main(["report", str(out / "visits.csv"), "--out", str(out / "x.html")]) == 1


@pytest.mark.parametrize("cmd", [[], ["simulate"], ["validate"], ["demo"], ["specs"], ["report"]])
def test_help_everywhere(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([*cmd, "--help"])
    assert e.value.code == 0
    assert "usage: alsfrs" in capsys.readouterr().out


def test_specs_listing(capsys):
    assert main(["specs"]) == 0
    assert "linear_slope" in capsys.readouterr().out
    assert main(["specs", "linear_slope"]) == 0
    assert main(["specs", "nope"]) == 1
