"""Reader for the PRO-ACT database (Pooled Resource Open-Access ALS Clinical Trials).

PRO-ACT times (``ALSFRS_Delta``, ``Onset_Delta``, ``Diagnosis_Delta``,
``Death_Days``) are days relative to trial entry (see ``shared/domain.md``
section 2). With the ALS history table alsfrs re-anchors them at diagnosis, so
that PRO-ACT visits share the time axes of every other cohort; without it the
time origin is trial entry (``days_since_entry``) and onset is unknown.

ALSFRS rows with the original ALSFRS item ``Q10_Respiratory`` but none of the
ALSFRS-R items R1-R3 are the original 10-item scale and are reported as
excluded, never mixed in.

This module reads tables only: :func:`read_proact_tables` returns the visits, the
patients and the auxiliary tables (death, demographics) with their row accounting;
:func:`alsfrs.read_proact` builds the :class:`~alsfrs.Cohort` from them (through
its public ``auxiliary=`` hook). Readers never import the Cohort.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alsfrs.errors import Problem, ValidationError
from alsfrs.io._table import EXCLUSION_COLUMNS, Errors, Table, load_frame
from alsfrs.io.patients import read_patients
from alsfrs.io.visits import read_visits
from alsfrs.ledger import ROW
from alsfrs.timeaxis import DAYS_PER_MONTH, DAYS_PER_YEAR

__all__ = ["PROACT_ITEMS", "ProactTables", "read_proact_tables"]

#: PRO-ACT ALSFRS columns -> alsfrs canonical item names.
PROACT_ITEMS = {
    "Q1_Speech": "speech",
    "Q2_Salivation": "salivation",
    "Q3_Swallowing": "swallowing",
    "Q4_Handwriting": "handwriting",
    "Q5a_Cutting_without_Gastrostomy": "cutting_food",
    "Q5b_Cutting_with_Gastrostomy": "cutting_food_gastrostomy",
    "Q6_Dressing_and_Hygiene": "dressing_hygiene",
    "Q7_Turning_in_Bed": "turning_in_bed",
    "Q8_Walking": "walking",
    "Q9_Climbing_Stairs": "climbing_stairs",
    "R_1_Dyspnea": "dyspnea",
    "R_2_Orthopnea": "orthopnea",
    "R_3_Respiratory_Insufficiency": "respiratory_insufficiency",
}
_R = ("R_1_Dyspnea", "R_2_Orthopnea", "R_3_Respiratory_Insufficiency")


def _num(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s.astype("string").str.strip(), errors="coerce").astype(float)


def _require(frame: pd.DataFrame, name: str, cols: tuple[str, ...]) -> list[Problem]:
    return [Problem(rule="missing_column", source=name, column=c,
                    message=f"PRO-ACT column '{c}' is missing") for c in cols if c not in frame]


@dataclass
class ProactTables:
    """The PRO-ACT tables read and checked, ready for :class:`~alsfrs.Cohort`.

    Attributes
    ----------
    visits, patients
        The visits (``days_since_diagnosis``, or ``days_since_entry`` without the
        history table) and the patient table.
    auxiliary
        Tables joined into the patient table (``death``, ``demographics``), each
        with its rows read, used and excluded, for the cohort's row accounting.
    """

    visits: Table
    patients: Table
    auxiliary: list[Table] = field(default_factory=list)


def read_proact_tables(
    alsfrs: Any,
    *,
    history: Any = None,
    death: Any = None,
    demographics: Any = None,
    errors: Errors = "raise",
) -> ProactTables:
    """Read PRO-ACT ALSFRS-R visits and patient tables (see :func:`alsfrs.read_proact`)."""
    def named(src: Any, default: str) -> str | None:
        return default if isinstance(src, pd.DataFrame) else None

    al = load_frame(alsfrs, kind="PRO-ACT ALSFRS", name=named(alsfrs, "PROACT_ALSFRS"))
    af, aname, alabels = al.frame, al.name, al.labels
    problems = list(al.problems) + _require(af, aname, ("subject_id", "ALSFRS_Delta"))
    hf = None
    if history is not None:
        hl = load_frame(history, kind="PRO-ACT ALS history",
                        name=named(history, "PROACT_ALSHISTORY"))
        hf, hname, hlabels = hl.frame, hl.name, hl.labels
        problems += list(hl.problems)
        problems += _require(hf, hname, ("subject_id", "Onset_Delta", "Diagnosis_Delta"))
    if not any(c in af for c in _R) and "ALSFRS_R_Total" not in af:
        problems.append(Problem(
            rule="original_alsfrs", source=aname,
            message="no ALSFRS-R items (R_1_Dyspnea, R_2_Orthopnea, "
                    "R_3_Respiratory_Insufficiency) or ALSFRS_R_Total: this is the original "
                    "ALSFRS (10 items, 0-40), not the ALSFRS-R"))
    if problems:
        raise ValidationError(problems, context="the PRO-ACT tables")

    # --- the patients: the history table, or the subjects of the ALSFRS table -------
    if hf is not None:
        hist = pd.DataFrame({"patient_id": hf["subject_id"].to_numpy()}, index=hlabels)
        onset_d = _num(hf["Onset_Delta"]).to_numpy()
        dx_d = _num(hf["Diagnosis_Delta"]).to_numpy()
        hist["diagnostic_delay_months"] = np.where(
            np.isnan(onset_d) | np.isnan(dx_d), hf["Onset_Delta"].astype(object),
            (dx_d - onset_d) / DAYS_PER_MONTH)
        if "Site_of_Onset" in hf:
            hist["onset_site"] = hf["Site_of_Onset"].to_numpy()
        dx_by_subject = pd.Series(dx_d, index=hf["subject_id"].astype("string").str.strip())
        dx_by_subject = dx_by_subject[~dx_by_subject.index.duplicated()]
        pname, unknown_rule, unknown_reason = hname, "no_history", \
            "subject not in the ALS history table"
    else:
        sids = af["subject_id"].astype("string").str.strip()
        first = ~sids.duplicated() & sids.notna()
        hist = pd.DataFrame({"patient_id": sids[first].to_numpy()},
                            index=np.array(alabels, dtype=object)[first.to_numpy()])
        dx_by_subject = pd.Series(0.0, index=sids[first].to_numpy())  # origin: trial entry
        pname, unknown_rule, unknown_reason = aname, "no_alsfrs", \
            "subject has no row in the ALSFRS table"
    auxiliary: list[Table] = []

    def joined(src: Any, kind: str, default_name: str, cols: tuple[str, ...]) -> pd.DataFrame:
        ld = load_frame(src, kind=kind, name=named(src, default_name))
        f, n, lab = ld.frame, ld.name, ld.labels
        probs = list(ld.problems) + _require(f, n, ("subject_id", *cols))
        if probs:
            raise ValidationError(probs, context=f"the {kind} table")
        f = f.assign(_sid=f["subject_id"].astype("string").str.strip())
        known = f["_sid"].isin(dx_by_subject.index).to_numpy()
        labels = np.array(lab, dtype=object)
        excl = pd.DataFrame({"table": kind, "source": n, "row": labels[~known],
                             "patient_id": f["_sid"][~known].to_numpy(), "rule": unknown_rule,
                             "reason": unknown_reason}, columns=EXCLUSION_COLUMNS)
        used = f[known].drop(columns="_sid").copy()
        used.insert(0, ROW, labels[known])
        auxiliary.append(Table(kind, used.reset_index(drop=True), excl, n, len(f), {}))
        return f[known].drop_duplicates("_sid").set_index("_sid")

    sid = hist["patient_id"].astype("string").str.strip()
    if demographics is not None:
        dem = joined(demographics, "demographics", "PROACT_DEMOGRAPHICS", ("Age", "Sex"))
        age_entry = sid.map(_num(dem["Age"]))
        if hf is not None:
            hist["age_at_dx"] = (age_entry + sid.map(dx_by_subject) / DAYS_PER_YEAR).round(2)
        else:
            hist["age_at_entry"] = age_entry.to_numpy()
        hist["sex"] = sid.map(dem["Sex"]).to_numpy()

    # --- visits: ALSFRS-R rows only ----------------------------------------------------
    r_present = pd.concat([_num(af[c]) if c in af else pd.Series(np.nan, index=af.index)
                           for c in _R], axis=1).notna().any(axis=1)
    if "ALSFRS_R_Total" in af:
        r_present |= _num(af["ALSFRS_R_Total"]).notna()
    original = ~r_present.to_numpy()
    orig_excl = pd.DataFrame({
        "table": "visits", "source": aname, "row": np.array(alabels, dtype=object)[original],
        "patient_id": af["subject_id"].astype("string").str.strip()[original].to_numpy(),
        "rule": "original_alsfrs",
        "reason": "original ALSFRS row (Q10_Respiratory, no R1-R3 items): a different scale "
                  "(10 items, 0-40), not used"}, columns=EXCLUSION_COLUMNS)
    vf = af[~original]
    vlabels = list(np.array(alabels, dtype=object)[~original])
    vis = pd.DataFrame({"patient_id": vf["subject_id"].to_numpy()}, index=vlabels)
    delta = _num(vf["ALSFRS_Delta"]).to_numpy()
    vsid = vf["subject_id"].astype("string").str.strip()
    vdx = vsid.map(dx_by_subject).to_numpy(dtype=float)
    vtime = "days_since_diagnosis" if hf is not None else "days_since_entry"
    vis[vtime] = np.where(
        np.isnan(delta), vf["ALSFRS_Delta"].astype(object),
        np.where(np.isnan(vdx), delta, delta - vdx))  # unknown subjects: flagged by Cohort
    for src, dst in PROACT_ITEMS.items():
        if src in vf:
            vis[dst] = vf[src].to_numpy()
    if "ALSFRS_R_Total" in vf:
        vis["alsfrs_r"] = vf["ALSFRS_R_Total"].to_numpy()
    vt = read_visits(vis, errors=errors, name=aname)
    vt = Table("visits", vt.data, pd.concat([orig_excl, vt.exclusions], ignore_index=True)
               if len(orig_excl) else vt.exclusions, aname, len(af), vt.meta, vt.notes)

    if death is not None:
        dth = joined(death, "death", "PROACT_DEATHDATA", ("Subject_Died",))
        died = sid.map(dth["Subject_Died"].astype("string").str.strip().str.lower()
                       .map({"yes": 1, "no": 0}))
        ddays = sid.map(_num(dth["Death_Days"])) if "Death_Days" in dth else np.nan
        last = vt.data.groupby("patient_id")[vtime].max()
        last_visit = sid.map(last)
        hist["death_imv"] = died.fillna(0).astype(int).to_numpy()
        t_event = (ddays - sid.map(dx_by_subject)) / DAYS_PER_MONTH
        t_cens = (last_visit / DAYS_PER_MONTH).fillna(0.0)  # no visit: excluded later
        hist["months_to_death_imv"] = np.where(hist["death_imv"] == 1, t_event, t_cens)
    pt = read_patients(hist, errors=errors, name=pname)
    return ProactTables(vt, pt, auxiliary)
