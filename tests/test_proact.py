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


def test_history_is_required_and_original_only_file_refused(tmp_path):
    with pytest.raises(TypeError):
        read_proact(os.path.join(D, "PROACT_ALSFRS.csv"))
    a = pd.read_csv(os.path.join(D, "PROACT_ALSFRS.csv"))
    orig = a.drop(columns=["R_1_Dyspnea", "R_2_Orthopnea", "R_3_Respiratory_Insufficiency",
                           "ALSFRS_R_Total"])
    with pytest.raises(ValidationError, match="original ALSFRS"):
        read_proact(orig, history=os.path.join(D, "PROACT_ALSHISTORY.csv"))
