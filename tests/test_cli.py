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
    assert "joint model" in text and "value(alsfrs_r)" in text and "hazard ratios" in text
    for name in ("report.html", "fit_lmm.zip", "fit_bayes.zip", "fit_joint.zip", "truth.json"):
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


# -- issue 8: faults 2, 4, 11 -------------------------------------------------------------
def _sim(tmp_path, n=20):
    out = tmp_path / "sim"
    main(["simulate", "--n-patients", str(n), "--seed", "1", "--out", str(out)])
    return out


def test_nothing_usable_left_is_an_error(tmp_path, capsys):
    """Fault 2: excluding every row is not 'valid: 0 patients'."""
    out = _sim(tmp_path)
    v = pd.read_csv(out / "visits.csv", dtype=str)
    v["visit_date"] = pd.to_datetime(v["visit_date"]).dt.strftime("%d/%m/%Y")
    v.to_csv(out / "ddmm.csv", index=False)
    capsys.readouterr()
    code = main(["validate", str(out / "ddmm.csv"), "--patients", str(out / "patients.csv"),
                 "--errors", "exclude"])
    text = capsys.readouterr().out
    assert code == 1
    assert "valid: 0" not in text
    assert "no usable" in text.splitlines()[-1] or "no usable" in text
    assert "dayfirst" in text or "--date-format" in text
    # the suggested option reads it
    assert main(["validate", str(out / "ddmm.csv"), "--patients", str(out / "patients.csv"),
                 "--date-format", "%d/%m/%Y"]) == 0


def test_an_excluding_run_says_so_in_its_last_line(tmp_path, capsys):
    out = _sim(tmp_path)
    v = pd.read_csv(out / "visits.csv", dtype=str)
    v.loc[[0, 3], "walking"] = "7"
    v.to_csv(out / "bad.csv", index=False)
    capsys.readouterr()
    assert main(["validate", str(out / "bad.csv"), "--patients", str(out / "patients.csv"),
                 "--errors", "exclude"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "2 input rows excluded" in last and "visits 2" in last


def test_cli_reader_options(tmp_path, capsys):
    """Fault 4: --sep, --date-format and --columns old=new reach every reader."""
    out = _sim(tmp_path)
    v = pd.read_csv(out / "visits.csv", dtype=str).rename(columns={"patient_id": "pnr"})
    p = pd.read_csv(out / "patients.csv", dtype=str).rename(columns={"patient_id": "pnr"})
    for f in (v, p):
        for c in [c for c in f.columns if c.endswith("_date")]:
            f[c] = pd.to_datetime(f[c]).dt.strftime("%d.%m.%Y")
    v.to_csv(out / "v.csv", sep=";", index=False)
    p.to_csv(out / "p.csv", sep=";", index=False)
    capsys.readouterr()
    code = main(["validate", str(out / "v.csv"), "--patients", str(out / "p.csv"),
                 "--sep", ";", "--date-format", "%d.%m.%Y", "--columns", "pnr=patient_id"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "valid: 20 patients" in text
    with pytest.raises(SystemExit) as e:
        main(["validate", str(out / "v.csv"), "--columns", "pnr"])
    assert e.value.code == 2
    assert main(["validate", str(out / "v.csv"), "--sep", ";",
                 "--columns", "nothing=patient_id"]) == 1


def _run_cli(args, tmp_path):
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    return subprocess.run([sys.executable, "-m", "alsfrs.cli", *args], capture_output=True,
                          text=True, env=env, cwd=tmp_path)


def test_broken_pipe_is_quiet(tmp_path):
    """Fault 11: `alsfrs validate ... | head` ends without a traceback."""
    import os
    import subprocess
    import sys

    out = _sim(tmp_path, n=150)
    v = pd.read_csv(out / "visits.csv", dtype=str)
    v.loc[v.index[10:], "walking"] = "9"
    v.to_csv(out / "bad.csv", index=False)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmd = (f"'{sys.executable}' -m alsfrs.cli validate '{out / 'bad.csv'}' --patients "
           f"'{out / 'patients.csv'}' --errors exclude --show-exclusions | head -n 2")
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": root})
    assert len(r.stdout.splitlines()) == 2
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr


def test_help_imports_nothing_heavy(tmp_path):
    """Fault 11: `alsfrs --help` loads neither pandas nor the engines (speed: benchmarks/)."""
    code = ("import sys, alsfrs, alsfrs.cli\n"
            "try:\n    alsfrs.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('pandas', 'numpy', 'scipy', 'pymc', 'arviz', 'matplotlib',"
            " 'formulaic') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    r = _run_cli([], tmp_path)  # no command: prints help, exit 2
    assert r.returncode == 2 and "usage: alsfrs" in r.stdout
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": root})
    assert "HEAVY []" in r.stdout, r.stdout + r.stderr


def test_flat_api_is_lazy_and_complete():
    import alsfrs

    for name in alsfrs.__all__:
        assert name in dir(alsfrs)
        assert getattr(alsfrs, name) is not None
    with pytest.raises(AttributeError):
        alsfrs.no_such_name  # noqa: B018
    # modules stay reachable as attributes, as with the former eager imports
    assert alsfrs.bayes.fit_bayes is alsfrs.fit_bayes
    assert alsfrs.report.html.write_report is alsfrs.write_report
