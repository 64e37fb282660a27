"""The Cohort: validated visits, patients and exposures, joined and cross-checked.

A :class:`Cohort` is what every model consumes, through :meth:`Cohort.to_frame`.
Validation happens here, once: readers check each table on its own, the Cohort
checks the tables against each other (unknown patients, visits before onset or
after death/invasive ventilation, dated visits without a diagnosis date), and
keeps the exclusions ledger (one :class:`~alsfrs.ledger.RowLedger` per table, the
same class the readers use): every input row is either used or listed in
:attr:`Cohort.exclusions` with its reason.

Symptom onset is optional: a patient without it keeps every visit, but has no
``months_since_onset`` and no ΔFS (both missing); :meth:`Cohort.describe` counts
such patients and ``to_frame(time="months_since_onset")`` leaves them out with
the reason in the frame's ``attrs["excluded_patients"]``. A model given the
plain ``to_frame()`` on ``months_since_onset`` refuses the missing values with a
:class:`~alsfrs.ValidationError` naming the patients.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from alsfrs.errors import Problem, ValidationError
from alsfrs.exposure import derive_exposures
from alsfrs.instrument import (
    ITEM_COLUMNS,
    MAX_TOTAL,
    domain_scores,
    merge_item5,
)
from alsfrs.io._table import Errors, Table
from alsfrs.io.dispensings import read_dispensings
from alsfrs.io.patients import read_patients
from alsfrs.io.proact import read_proact_tables
from alsfrs.io.visits import read_visits
from alsfrs.ledger import EXCLUSION_COLUMNS, ROW, RowLedger
from alsfrs.timeaxis import DAYS_PER_MONTH

__all__ = ["Cohort", "read_proact"]

#: Default exposure definition: Chourpiliadis 2025 (>= 2 dispensings, 12-month lag).
DEFAULT_EXPOSURE = {"lag_months": 12.0, "lookback_months": None, "min_dispensings": 2}


def _lookup(pid: pd.Series, values: pd.Series) -> pd.Series:
    """``values`` (indexed by patient) for each row of ``pid`` (NaN for unknown patients)."""
    out = values.reindex(pid.to_numpy())
    out.index = pid.index
    return out


#: Time columns of visits timed from entry into a trial (time origin: trial entry).
_ENTRY_TIMES = ("days_since_entry", "months_since_entry")


def read_proact(
    alsfrs: Any,
    *,
    history: Any = None,
    death: Any = None,
    demographics: Any = None,
    errors: Errors = "raise",
) -> Cohort:
    """Read PRO-ACT ALSFRS-R visits (and patient tables) into a :class:`Cohort`.

    Parameters
    ----------
    alsfrs
        ``PROACT_ALSFRS.csv`` (path or DataFrame): ``subject_id``, ``ALSFRS_Delta``,
        the items ``Q1_Speech`` ... ``Q9_Climbing_Stairs``, ``R_1_Dyspnea``,
        ``R_2_Orthopnea``, ``R_3_Respiratory_Insufficiency``, ``ALSFRS_R_Total``.
        Enough on its own: time is then counted from trial entry
        (``cohort.time_origin == "trial entry"``) and onset is unknown.
    history
        ``PROACT_ALSHISTORY.csv``: ``subject_id``, ``Onset_Delta``,
        ``Diagnosis_Delta`` and optionally ``Site_of_Onset``. When given, visits
        are placed relative to diagnosis (``months``) and onset
        (``months_since_onset``), and subjects without a history row are reported.
    death
        ``PROACT_DEATHDATA.csv``: ``subject_id``, ``Subject_Died`` (Yes/No),
        ``Death_Days``. Subjects not known to have died are censored at their
        last ALSFRS visit. The event is death only (PRO-ACT has no IMV date).
    demographics
        ``PROACT_DEMOGRAPHICS.csv``: ``subject_id``, ``Age`` (at trial entry),
        ``Sex`` (Female/Male). Age becomes ``age_at_dx`` with the history table,
        ``age_at_entry`` without it.
    errors
        ``"raise"`` or ``"exclude"``, as for the other readers.

    Returns
    -------
    Cohort
        Original-ALSFRS rows are in ``cohort.exclusions`` with rule
        ``original_alsfrs``; the death and demographics tables are in the row
        accounting.
    """
    t = read_proact_tables(alsfrs, history=history, death=death, demographics=demographics,
                           errors=errors)
    return Cohort(t.visits, t.patients, errors=errors, auxiliary=t.auxiliary)


class Cohort:
    """Validated ALSFRS-R visits, patients and drug-class exposures.

    Parameters
    ----------
    visits, patients
        Tables from :func:`~alsfrs.read_visits` / :func:`~alsfrs.read_patients`, or
        anything they read (CSV/Parquet paths, DataFrames in canonical format).
    dispensings
        Optional dispensings (table, path or DataFrame); exposures are then derived
        with :func:`~alsfrs.derive_exposures` and joined to the patients.
    exposure
        Keyword arguments for :func:`~alsfrs.derive_exposures` (``lag_months``,
        ``lookback_months``, ``min_dispensings`` ...). Default: at least 2
        dispensings more than 12 months before diagnosis (Chourpiliadis 2025).
    errors
        ``"raise"`` (default): any problem raises one ValidationError listing all
        of them. ``"exclude"``: offending rows go to :attr:`exclusions`; when no
        usable visit is left that is still a ValidationError (``no_usable_visits``).
    truth
        The generating parameters, for simulated cohorts.
    auxiliary
        Further input tables already joined into ``patients`` by a reader (e.g.
        PRO-ACT death and demographics): their rows read, used and excluded enter
        :meth:`row_accounting` and :attr:`exclusions`. The public hook through
        which readers account for tables without knowing the Cohort.

    Attributes
    ----------
    visits : pandas.DataFrame
        The visits used, with both time axes (``months`` since the time origin,
        ``months_since_onset``, missing where onset is unknown).
    patients : pandas.DataFrame
        One row per patient with visits, indexed by ``patient_id``: covariates,
        exposures and derived features (``baseline_alsfrs_r``, ``n_visits``,
        ``followup_months``, ``delta_fs``).
    exclusions : pandas.DataFrame
        Every input row not used: ``table, source, row, patient_id, rule, reason``.
    dispensings_not_counted : pandas.DataFrame
        Valid dispensings that the exposure definition does not count (after
        diagnosis, in the lag period, before the lookback window, other drug
        classes), with the same columns; see :meth:`exposure_accounting`.
    truth : dict or None
        The generating parameters, for simulated cohorts.
    time_origin : str
        What ``months`` counts from: ``"diagnosis"``, or ``"trial entry"`` for
        visits timed from entry into a trial (``days_since_entry``,
        ``months_since_entry``; e.g. PRO-ACT without the history table).
    """

    def __init__(
        self,
        visits: Any,
        patients: Any,
        dispensings: Any = None,
        *,
        exposure: Mapping[str, Any] | None = None,
        errors: Errors = "raise",
        truth: dict | None = None,
        auxiliary: Sequence[Table] = (),
    ) -> None:
        self.errors_policy = errors
        vt = visits if isinstance(visits, Table) else read_visits(visits, errors=errors)
        pt = patients if isinstance(patients, Table) else read_patients(patients, errors=errors)
        dt = None
        if dispensings is not None:
            dt = (dispensings if isinstance(dispensings, Table)
                  else read_dispensings(dispensings, errors=errors))
        self.tables: dict[str, Table] = {"visits": vt, "patients": pt}
        if dt is not None:
            self.tables["dispensings"] = dt
        self.exposure_definition: dict[str, Any] | None = None
        self.truth = truth
        self._build(vt, pt, dt, dict(exposure or {}), errors)
        for aux in auxiliary:
            self._account(aux)

    # -- construction ----------------------------------------------------------------
    def _build(self, vt: Table, pt: Table, dt: Table | None, exposure: dict, errors: Errors):
        pat = pt.data.set_index("patient_id", drop=False)
        vis = RowLedger.for_rows(vt.kind, vt.source, vt.data)
        v = vt.data
        known = v["patient_id"].isin(pat.index).to_numpy()
        vis.error(~known, "unknown_patient", "visit of a patient who is not in the patient table",
                  "patient_id", summary="are visits of patients who are not in the patient table")
        time = vt.meta["time"]
        self.time_origin = "trial entry" if time in _ENTRY_TIMES else "diagnosis"
        pid = v["patient_id"]
        delay = _lookup(pid, pat["diagnostic_delay_months"]).astype(float)
        if time == "visit_date":
            if "diagnosis_date" not in pat:
                raise ValidationError(Problem(
                    rule="missing_column", source=pt.source, column="diagnosis_date",
                    message="visits are dated, so the patient table needs 'diagnosis_date'"))
            dx = _lookup(pid, pat["diagnosis_date"])
            vis.error(known & dx.isna().to_numpy(), "date_missing",
                      "dated visit of a patient without a diagnosis date", "visit_date",
                      summary="are dated visits of patients without a diagnosis date")
            months = (v["visit_date"] - dx).dt.days / DAYS_PER_MONTH
        elif time in ("days_since_diagnosis", "days_since_entry"):
            months = v[time] / DAYS_PER_MONTH
        elif time in ("months_since_diagnosis", "months_since_entry"):
            months = v[time].astype(float)
        else:
            months = v[time].astype(float) - delay
            vis.error(known & delay.isna().to_numpy(), "onset_missing",
                      "visit timed from symptom onset, but the patient's onset is unknown "
                      "(no onset date or diagnostic delay in the patient table)", time,
                      summary="are timed from onset for patients whose onset is unknown")
        # onset relative to a trial entry is unknown
        months_onset = (months + delay if self.time_origin == "diagnosis"
                        else pd.Series(np.nan, index=months.index))
        before_onset = (months_onset < -1e-9).to_numpy()
        vis.error(before_onset, "visit_before_onset",
                  lambda i: f"visit {-months_onset.iloc[i]:.2f} months before symptom onset",
                  time, summary="are visits before symptom onset")
        if "death_imv" in pat:
            status = _lookup(pid, pat["death_imv"])
            end = _lookup(pid, pat["months_to_death_imv"]).astype(float)
            late = (months > end + 1e-9).to_numpy()
            died = (status == 1).to_numpy()
            vis.error(late & died, "visit_after_death",
                      lambda i: f"visit {months.iloc[i] - end.iloc[i]:.2f} months after death or "
                      "invasive ventilation", time,
                      summary="are visits after death or invasive ventilation")
            vis.error(late & ~died, "visit_after_censoring",
                      lambda i: f"visit {months.iloc[i] - end.iloc[i]:.2f} months after the end "
                      "of follow-up (censoring)", time,
                      summary="are visits after the end of follow-up (censoring)")

        disp_excl = pd.DataFrame(columns=EXCLUSION_COLUMNS)
        self.dispensings_not_counted = pd.DataFrame(columns=EXCLUSION_COLUMNS)
        exposures = None
        if dt is not None:
            dled = RowLedger.for_rows(dt.kind, dt.source, dt.data)
            dknown = dt.data["patient_id"].isin(pat.index).to_numpy()
            dled.error(~dknown, "unknown_patient",
                       "dispensing for a patient who is not in the patient table", "patient_id",
                       summary="are dispensings for patients who are not in the patient table")
            if dt.meta.get("time") == "dispensing_date" and "diagnosis_date" in pat:
                ddx = _lookup(dt.data["patient_id"], pat["diagnosis_date"])
                nodx = dknown & ddx.isna().to_numpy()
                dled.error(nodx, "date_missing",
                           "dated dispensing of a patient without a diagnosis date",
                           "dispensing_date")
            problems = vis.problems() + dled.problems()
            if problems and errors == "raise":
                raise ValidationError(problems, context="the cohort (cross-table checks)")
            dkeep, disp_excl = dled.resolve(dt.data)
            dt_used = Table("dispensings", dkeep, disp_excl.iloc[0:0], dt.source, len(dkeep),
                            dt.meta)
            settings = {**DEFAULT_EXPOSURE, **exposure}
            exposures = derive_exposures(dt_used, pt, **settings)
            self.dispensings_not_counted = exposures.attrs["excluded"]
            self.exposure_definition = exposures.attrs["window"]
        elif vis.problems() and errors == "raise":
            raise ValidationError(vis.problems(), context="the cohort (cross-table checks)")

        months_arr = months.to_numpy()
        vkeep_mask = vis.keep(len(v))
        vkept, vis_excl = vis.resolve(v)
        if len(vkept) == 0:  # nothing usable left is an error, never an empty cohort
            gone = pd.concat([vt.exclusions, vis_excl], ignore_index=True)
            why = ", ".join(f"{n} {rule}" for rule, n in gone["rule"].value_counts().items())
            raise ValidationError(Problem(
                rule="no_usable_visits", source=vt.source,
                message=(f"no usable visit is left: all {vt.n_input_rows} visit rows were "
                         f"excluded ({why})") if vt.n_input_rows else
                "the visits table has no rows"), context="the cohort")
        vkept = vkept.assign(months=months_arr[vkeep_mask],
                             months_since_onset=months_onset.to_numpy()[vkeep_mask])

        # patients without any usable visit are not analysed: say so
        has_visits = pat.index.isin(vkept["patient_id"].unique())
        pled = RowLedger.for_rows(pt.kind, pt.source, pt.data)
        pled.exclude(~has_visits, "no_visits", "patient has no usable ALSFRS-R visit")
        pkept, pat_excl = pled.resolve(pt.data)

        parts = [t for t in (vt.exclusions, vis_excl, pt.exclusions, pat_excl,
                             None if dt is None else dt.exclusions, disp_excl)
                 if t is not None and len(t)]
        self.exclusions = (pd.concat(parts, ignore_index=True)[EXCLUSION_COLUMNS] if parts
                           else pd.DataFrame(columns=EXCLUSION_COLUMNS))
        self._counts = {
            "visits": (vt.n_input_rows, len(vkept)),
            "patients": (pt.n_input_rows, len(pkept)),
        }
        if dt is not None:
            self._counts["dispensings"] = (dt.n_input_rows,
                                           dt.n_input_rows - len(dt.exclusions) - len(disp_excl))
        self.visits = self._visit_frame(vkept)
        self.patients = self._patient_frame(pkept, self.visits, exposures)

    def _visit_frame(self, v: pd.DataFrame) -> pd.DataFrame:
        items = merge_item5(v[list(ITEM_COLUMNS)])
        doms = domain_scores(items)
        base = v[["patient_id", ROW, "months", "months_since_onset", "alsfrs_r"]].copy()
        if "visit_date" in v:
            base.insert(2, "visit_date", v["visit_date"])
        out = pd.concat([base, items, doms], axis=1)
        out["alsfrs_r"] = out["alsfrs_r"].astype(float)
        out = out.sort_values(["patient_id", "months"], kind="stable").reset_index(drop=True)
        out.insert(1, "visit", out.groupby("patient_id").cumcount() + 1)
        return out

    def _patient_frame(self, p: pd.DataFrame, visits: pd.DataFrame,
                       exposures: pd.DataFrame | None) -> pd.DataFrame:
        pat = p.drop(columns=[ROW]).set_index("patient_id")
        g = visits.groupby("patient_id", sort=False)
        first = g.first()
        derived = pd.DataFrame({
            "n_visits": g.size(),
            "baseline_alsfrs_r": first["alsfrs_r"],
            "baseline_months": first["months"],
            "followup_months": g["months"].max() - g["months"].min(),
        })
        onset_to_first = first["months_since_onset"]
        # Kimura 2006: (48 - first ALSFRS-R) / months from onset to that visit
        derived["delta_fs"] = ((MAX_TOTAL - first["alsfrs_r"]) / onset_to_first).where(
            onset_to_first > 0)
        pat = pat.join(derived, how="left")
        if exposures is not None:
            clash = [c for c in exposures.columns if c in pat.columns]
            pat = pat.drop(columns=clash).join(exposures, how="left")
        pat.index.name = "patient_id"
        return pat

    def _account(self, table: Table) -> None:
        """Account for an auxiliary input table joined by a reader (e.g. PRO-ACT death)."""
        self.tables[table.kind] = table
        self._counts[table.kind] = (table.n_input_rows, len(table.data))
        if len(table.exclusions):
            self.exclusions = pd.concat([self.exclusions, table.exclusions[EXCLUSION_COLUMNS]],
                                        ignore_index=True)

    # -- views -----------------------------------------------------------------------
    @property
    def n_patients(self) -> int:
        return len(self.patients)

    @property
    def n_visits(self) -> int:
        return len(self.visits)

    @property
    def exposure_columns(self) -> list[str]:
        """Exposure flags present in the patient table (the studied classes)."""
        from alsfrs.exposure import DRUG_CLASSES

        classes = (self.exposure_definition or {}).get("classes", DRUG_CLASSES)
        return [c for c in classes if c in self.patients.columns]

    @property
    def onset_unknown(self) -> pd.Index:
        """Patients (ids) without a symptom onset: no ``months_since_onset``, no ΔFS."""
        delay = self.patients["diagnostic_delay_months"]
        if self.time_origin != "diagnosis":
            return self.patients.index.copy()
        return self.patients.index[delay.isna().to_numpy()]

    def to_frame(self, time: str | None = None) -> pd.DataFrame:
        """The long analysis frame: one row per visit, patient covariates joined.

        Columns: ``patient_id``, ``visit``, ``months`` (since the time origin,
        diagnosis by default; the default time axis), ``months_since_onset``,
        ``alsfrs_r``, the 12 items (item 5 as ``cutting`` plus ``gastrostomy``),
        the domain subscores, then the patient covariates, exposures and derived
        features.

        Parameters
        ----------
        time
            The analysis time axis, ``"months"`` or ``"months_since_onset"``. When
            given, patients without that axis (onset unknown) are left out and
            listed, with rule ``onset_missing`` and the reason, in the frame's
            ``attrs["excluded_patients"]`` (columns ``patient_id, rule, reason``).
            Default ``None``: every visit, ``months_since_onset`` missing (NaN)
            for patients whose onset is unknown.

        The frame's ``attrs["time_origin"]`` says what ``months`` counts from
        (``"diagnosis"`` or ``"trial entry"``).
        """
        v = self.visits.drop(columns=[ROW])
        pat = self.patients.drop(columns=[c for c in self.patients.columns if c in v.columns])
        frame = v.join(pat, on="patient_id")
        frame.attrs["time_origin"] = self.time_origin
        if time is None:
            return frame
        from alsfrs.timeaxis import TIME_AXES

        if time not in TIME_AXES:
            raise ValidationError(Problem(
                rule="bad_time_axis", column=time,
                message=f"time must be one of {', '.join(TIME_AXES)}, not {time!r}"))
        lacking = frame[time].isna().to_numpy()
        gone = pd.unique(frame.loc[lacking, "patient_id"])
        reason = ("symptom onset unknown: no time since onset" if time == "months_since_onset"
                  else f"no {time}")
        excluded = pd.DataFrame({"patient_id": gone, "rule": "onset_missing", "reason": reason},
                                columns=["patient_id", "rule", "reason"])
        frame = frame.loc[~frame["patient_id"].isin(gone)].reset_index(drop=True)
        frame.attrs["excluded_patients"] = excluded
        return frame

    def row_accounting(self) -> pd.DataFrame:
        """Rows read, used and excluded for each input table (read = used + excluded)."""
        rows = []
        for table, (n_in, n_used) in self._counts.items():
            n_ex = int((self.exclusions["table"] == table).sum())
            rows.append({"table": table, "read": n_in, "used": n_used, "excluded": n_ex})
        out = pd.DataFrame(rows).set_index("table")
        if not (out["read"] == out["used"] + out["excluded"]).all():  # pragma: no cover
            raise AssertionError(f"row accounting broken:\n{out}")
        return out

    def exposure_accounting(self) -> pd.DataFrame:
        """Dispensings used, split into counted in the exposure window and not counted (why)."""
        if "dispensings" not in self._counts:
            return pd.DataFrame(columns=["dispensings"])
        used = self._counts["dispensings"][1]
        nc = self.dispensings_not_counted
        rows = {"counted in the exposure window": used - len(nc)}
        for rule, n in nc.groupby("rule").size().items():
            rows[f"not counted: {rule.replace('_', ' ')}"] = int(n)
        return pd.DataFrame({"dispensings": pd.Series(rows, dtype=int)})

    def exclusion_summary(self) -> pd.DataFrame:
        """Excluded rows counted by table and rule."""
        if self.exclusions.empty:
            return pd.DataFrame(columns=["table", "rule", "rows"])
        return (self.exclusions.groupby(["table", "rule"]).size().rename("rows")
                .reset_index())

    def describe(self) -> pd.DataFrame:
        """One-column summary of the cohort, in clinical units."""
        p = self.patients
        rows: dict[str, Any] = {
            "patients": self.n_patients,
            "visits": self.n_visits,
            "visits per patient, median": float(p["n_visits"].median()),
            "follow-up months, median": float(p["followup_months"].median()),
            "baseline ALSFRS-R, mean": float(p["baseline_alsfrs_r"].mean()),
            "diagnostic delay months, median": float(p["diagnostic_delay_months"].median()),
            "patients without symptom onset": len(self.onset_unknown),
        }
        if "age_at_dx" in p:
            rows["age at diagnosis, mean"] = float(p["age_at_dx"].mean())
        if "sex" in p:
            rows["male, %"] = 100 * float((p["sex"] == "M").mean())
        if "onset_site" in p:
            rows["bulbar onset, %"] = 100 * float((p["onset_site"] == "bulbar").mean())
        if "death_imv" in p:
            rows["death or IMV, %"] = 100 * float((p["death_imv"] == 1).mean())
        if p["delta_fs"].notna().any():
            rows["ΔFS, median (points/month)"] = float(p["delta_fs"].median())
        for c in self.exposure_columns:
            rows[f"{c} exposed, %"] = 100 * float(p[c].mean())
        return pd.DataFrame({"value": pd.Series(rows, dtype=float)})

    def __repr__(self) -> str:
        return (f"<Cohort: {self.n_patients} patients, {self.n_visits} visits, "
                f"{len(self.exclusions)} input rows excluded>")

    def _repr_html_(self) -> str:
        desc = self.describe()
        acct = self.row_accounting()
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
                       f"<td>{_fmt(v)}</td></tr>" for k, v in desc["value"].items())
        arows = "".join(f"<tr><th style='text-align:left'>{html.escape(str(t))}</th>"
                        f"<td>{r.read}</td><td>{r.used}</td><td>{r.excluded}</td></tr>"
                        for t, r in acct.iterrows())
        return (
            "<div><strong>alsfrs Cohort</strong>"
            f"<table><tbody>{rows}</tbody></table>"
            "<table><thead><tr><th>table</th><th>read</th><th>used</th><th>excluded</th>"
            f"</tr></thead><tbody>{arows}</tbody></table></div>"
        )

    def survival_frame(self, origin: str = "diagnosis") -> pd.DataFrame:
        """One row per patient: months to death or IMV (or censoring) and the event flag.

        See :func:`alsfrs.survival.frame.survival_frame`; excluded patients and
        why are in ``.attrs["excluded"]``.
        """
        from alsfrs.survival.frame import survival_frame

        return survival_frame(self, origin=origin)


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"

