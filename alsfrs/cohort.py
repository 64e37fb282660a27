"""The Cohort: validated visits, patients and exposures, joined and cross-checked.

A :class:`Cohort` is what every model consumes, through :meth:`Cohort.to_frame`.
Validation happens here, once: readers check each table on its own, the Cohort
checks the tables against each other (unknown patients, visits before onset or
after death/invasive ventilation, dated visits without a diagnosis date), and
keeps the exclusions ledger: every input row is either used or listed in
:attr:`Cohort.exclusions` with its reason.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
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
from alsfrs.io._table import EXCLUSION_COLUMNS, ROW, Errors, Table
from alsfrs.io.dispensings import read_dispensings
from alsfrs.io.patients import read_patients
from alsfrs.io.visits import read_visits
from alsfrs.timeaxis import DAYS_PER_MONTH

__all__ = ["Cohort"]

#: Default exposure definition: Chourpiliadis 2025 (>= 2 dispensings, 12-month lag).
DEFAULT_EXPOSURE = {"lag_months": 12.0, "lookback_months": None, "min_dispensings": 2}


@dataclass
class _Ledger:
    """Row-level outcomes of the cross-table checks on one input table."""

    table: Table
    errors: dict[int, list[Problem]]
    excluded: dict[int, tuple[str, str]]

    @classmethod
    def of(cls, table: Table) -> _Ledger:
        return cls(table, {}, {})

    def error(self, mask: np.ndarray, rule: str, message, column: str | None = None) -> None:
        d = self.table.data
        for i in np.flatnonzero(np.asarray(mask, dtype=bool)):
            msg = message(int(i)) if callable(message) else message
            self.errors.setdefault(int(i), []).append(Problem(
                rule=rule, message=msg, source=self.table.source, row=d[ROW].iloc[i],
                patient=d["patient_id"].iloc[i], column=column))

    def exclude(self, mask: np.ndarray, rule: str, message: str) -> None:
        for i in np.flatnonzero(np.asarray(mask, dtype=bool)):
            if int(i) not in self.errors:
                self.excluded.setdefault(int(i), (rule, message))

    def problems(self) -> list[Problem]:
        return [p for i in sorted(self.errors) for p in self.errors[i]]

    def resolve(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Rows kept, and the ledger of rows dropped here (errors become exclusions)."""
        d = self.table.data
        drop = sorted(set(self.errors) | set(self.excluded))
        records = []
        for i in drop:
            if i in self.errors:
                probs = self.errors[i]
                rule = probs[0].rule
                reason = "; ".join(p.message for p in probs)
            else:
                rule, reason = self.excluded[i]
            records.append({"table": self.table.kind, "source": self.table.source,
                            "row": d[ROW].iloc[i], "patient_id": d["patient_id"].iloc[i],
                            "rule": rule, "reason": reason})
        keep = np.ones(len(d), dtype=bool)
        keep[drop] = False
        return (d.loc[keep].reset_index(drop=True),
                pd.DataFrame.from_records(records, columns=EXCLUSION_COLUMNS))


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
        of them. ``"exclude"``: offending rows go to :attr:`exclusions`.

    Attributes
    ----------
    visits : pandas.DataFrame
        The visits used, with both time axes.
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

    # -- construction ----------------------------------------------------------------
    def _build(self, vt: Table, pt: Table, dt: Table | None, exposure: dict, errors: Errors):
        pat = pt.data.set_index("patient_id", drop=False)
        vis = _Ledger.of(vt)
        v = vt.data
        known = v["patient_id"].isin(pat.index).to_numpy()
        vis.error(~known, "unknown_patient", "visit of a patient who is not in the patient table",
                  "patient_id")
        time = vt.meta["time"]
        pid = v["patient_id"]
        delay = pid.map(pat["diagnostic_delay_months"]).astype(float)
        if time == "visit_date":
            if "diagnosis_date" not in pat:
                raise ValidationError(Problem(
                    rule="missing_column", source=pt.source, column="diagnosis_date",
                    message="visits are dated, so the patient table needs 'diagnosis_date'"))
            dx = pid.map(pat["diagnosis_date"])
            vis.error(known & dx.isna().to_numpy(), "date_missing",
                      "dated visit of a patient without a diagnosis date", "visit_date")
            months = (v["visit_date"] - dx).dt.days / DAYS_PER_MONTH
        elif time == "days_since_diagnosis":
            months = v[time] / DAYS_PER_MONTH
        elif time == "months_since_diagnosis":
            months = v[time].astype(float)
        else:
            months = v[time].astype(float) - delay
        months_onset = months + delay
        before_onset = (months_onset < -1e-9).to_numpy()
        vis.error(before_onset, "visit_before_onset",
                  lambda i: f"visit {-months_onset.iloc[i]:.2f} months before symptom onset",
                  time)
        if "death_imv" in pat:
            status = pid.map(pat["death_imv"])
            end = pid.map(pat["months_to_death_imv"]).astype(float)
            late = (months > end + 1e-9).to_numpy()
            died = (status == 1).to_numpy()
            vis.error(late & died, "visit_after_death",
                      lambda i: f"visit {months.iloc[i] - end.iloc[i]:.2f} months after death or "
                      "invasive ventilation", time)
            vis.error(late & ~died, "visit_after_censoring",
                      lambda i: f"visit {months.iloc[i] - end.iloc[i]:.2f} months after the end "
                      "of follow-up (censoring)", time)

        disp_excl = pd.DataFrame(columns=EXCLUSION_COLUMNS)
        self.dispensings_not_counted = pd.DataFrame(columns=EXCLUSION_COLUMNS)
        exposures = None
        if dt is not None:
            dled = _Ledger.of(dt)
            dknown = dt.data["patient_id"].isin(pat.index).to_numpy()
            dled.error(~dknown, "unknown_patient",
                       "dispensing for a patient who is not in the patient table", "patient_id")
            if dt.meta.get("time") == "dispensing_date" and "diagnosis_date" in pat:
                nodx = dknown & dt.data["patient_id"].map(pat["diagnosis_date"]).isna().to_numpy()
                dled.error(nodx, "date_missing",
                           "dated dispensing of a patient without a diagnosis date",
                           "dispensing_date")
            problems = vis.problems() + dled.problems()
            if problems and errors == "raise":
                raise ValidationError(problems, context="the cohort (cross-table checks)")
            dkeep, disp_excl = dled.resolve()
            dt_used = Table("dispensings", dkeep, disp_excl.iloc[0:0], dt.source, len(dkeep),
                            dt.meta)
            settings = {**DEFAULT_EXPOSURE, **exposure}
            exposures = derive_exposures(dt_used, pt, **settings)
            self.dispensings_not_counted = exposures.attrs["excluded"]
            self.exposure_definition = exposures.attrs["window"]
        elif vis.problems() and errors == "raise":
            raise ValidationError(vis.problems(), context="the cohort (cross-table checks)")

        months_arr = months.to_numpy()
        vkeep_mask = np.ones(len(v), dtype=bool)
        vkeep_mask[list(set(vis.errors) | set(vis.excluded))] = False
        vkept, vis_excl = vis.resolve()
        vkept = vkept.assign(months=months_arr[vkeep_mask],
                             months_since_onset=months_onset.to_numpy()[vkeep_mask])

        # patients without any usable visit are not analysed: say so
        has_visits = pat.index.isin(vkept["patient_id"].unique())
        pled = _Ledger.of(pt)
        pled.exclude(~has_visits, "no_visits", "patient has no usable ALSFRS-R visit")
        pkept, pat_excl = pled.resolve()

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

    def _add_accounting(self, table: str, n_read: int, n_used: int,
                        exclusions: pd.DataFrame) -> None:
        """Account for an auxiliary input table joined by a reader (e.g. PRO-ACT death)."""
        self._counts[table] = (n_read, n_used)
        if len(exclusions):
            self.exclusions = pd.concat([self.exclusions, exclusions[EXCLUSION_COLUMNS]],
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

    def to_frame(self) -> pd.DataFrame:
        """The long analysis frame: one row per visit, patient covariates joined.

        Columns: ``patient_id``, ``visit``, ``months`` (since diagnosis, the default
        time axis), ``months_since_onset``, ``alsfrs_r``, the 12 items (item 5 as
        ``cutting`` plus ``gastrostomy``), the domain subscores, then the patient
        covariates, exposures and derived features.
        """
        v = self.visits.drop(columns=[ROW])
        pat = self.patients.drop(columns=[c for c in self.patients.columns if c in v.columns])
        return v.join(pat, on="patient_id")

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

