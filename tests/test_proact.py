"""PRO-ACT: the shipped made-up sample loads; original-ALSFRS rows are excluded."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from alsfrs import ValidationError, read_proact
from alsfrs.timeaxis import DAYS_PER_MONTH

D = os.path.join(os.path.dirname(__file__), "data", "proact")


def load(**kw):
    return read_proact(os.path.join(D, "PROACT_ALSFRS.csv"),
                       history=os.path.join(D, "PROACT_ALSHISTORY.csv"), **kw)


def test_sample_loads_with_accounting():
    c = load(death=os.path.join(D, "PROACT_DEATHDATA.csv"),
             demographics=os.path.join(D, "PROACT_DEMOGRAPHICS.csv"))
    acct = c.row_accounting()
    assert acct.loc["visits"].tolist() == [10, 8, 2]
    assert acct.loc["death"].tolist() == [3, 2, 1]
    orig = c.exclusions[c.exclusions["rule"] == "original_alsfrs"]
    assert orig["row"].tolist() == [5, 6] and set(orig["patient_id"]) == {"102"}
    f = c.to_frame()
    first = f[f["patient_id"] == "101"].iloc[0]
    assert first["months"] == pytest.approx(200 / DAYS_PER_MONTH)  # Delta 0, diagnosis -200
    assert first["months_since_onset"] == pytest.approx(520 / DAYS_PER_MONTH)
    p = c.patients
    assert p.loc["104", "death_imv"] == 1
    assert p.loc["104", "months_to_death_imv"] == pytest.approx(370 / DAYS_PER_MONTH)
    assert p.loc["101", "age_at_dx"] == pytest.approx(61 - 200 / 365.25, abs=0.01)
    assert p.loc["102", "onset_site"] == "bulbar" and p.loc["102", "sex"] == "F"
    assert bool(f.loc[f["patient_id"] == "104", "gastrostomy"].all())


def test_original_only_file_refused(tmp_path):
    a = pd.read_csv(os.path.join(D, "PROACT_ALSFRS.csv"))
    orig = a.drop(columns=["R_1_Dyspnea", "R_2_Orthopnea", "R_3_Respiratory_Insufficiency",
                           "ALSFRS_R_Total"])
    with pytest.raises(ValidationError, match="original ALSFRS"):
        read_proact(orig, history=os.path.join(D, "PROACT_ALSHISTORY.csv"))


# -- issue 8, fault 7: the ALS history table is optional -------------------------------
def test_alsfrs_table_alone_uses_time_from_trial_entry():
    c = read_proact(os.path.join(D, "PROACT_ALSFRS.csv"))
    assert c.time_origin == "trial entry"
    f = c.to_frame()
    first = f[f["patient_id"] == "101"]
    assert first["months"].tolist() == pytest.approx([0, 91 / DAYS_PER_MONTH,
                                                      182 / DAYS_PER_MONTH])
    assert f["months_since_onset"].isna().all()
    acct = c.row_accounting()
    assert acct.loc["visits"].tolist() == [10, 8, 2]
    assert (acct["read"] == acct["used"] + acct["excluded"]).all()
    assert c.describe().loc["patients without symptom onset", "value"] == c.n_patients


def test_death_and_demographics_without_history():
    c = read_proact(os.path.join(D, "PROACT_ALSFRS.csv"),
                    death=os.path.join(D, "PROACT_DEATHDATA.csv"),
                    demographics=os.path.join(D, "PROACT_DEMOGRAPHICS.csv"))
    assert c.time_origin == "trial entry"
    p = c.patients
    assert p.loc["104", "death_imv"] == 1
    assert p.loc["104", "months_to_death_imv"] == pytest.approx(250 / DAYS_PER_MONTH)
    assert p.loc["101", "age_at_entry"] == 61 and "age_at_dx" not in p
    acct = c.row_accounting()
    assert acct.loc["death"].tolist() == [3, 2, 1]  # subject 999 has no ALSFRS-R visit
    assert (acct["read"] == acct["used"] + acct["excluded"]).all()


def test_history_adds_diagnosis_anchored_time():
    c = load()
    assert c.time_origin == "diagnosis"
    assert c.to_frame()["months_since_onset"].notna().all()


def test_readers_do_not_import_cohort():
    import subprocess
    import sys

    code = ("import sys, alsfrs.io, alsfrs.io.proact; "
            "print('alsfrs.cohort' in sys.modules)")
    root = os.path.dirname(os.path.dirname(os.path.dirname(D)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": root})
    assert out.stdout.strip() == "False"
