"""Drug-class exposures from dispensings: ATC classes, windows, lags, REM suppression.

Classes follow Chourpiliadis et al., JAMA Netw Open 2025;8(6):e2514437 (see
``shared/domain.md`` section 3): anxiolytics (ATC N05B), hypnotics and
sedatives (N05C) and antidepressants (N06A). Exposure there is *at least two
prescriptions of the class* before diagnosis, in windows of 0-1, 1-5 and more
than 5 years before diagnosis, the main estimates excluding the last year
(a 12-month lag). Lithium (N05AN) is not an antidepressant.

The exposure window
-------------------
A dispensing ``m`` months before diagnosis (``m = -months_since_diagnosis``,
months of 30.4375 days) counts when ``lag_months <= m < lookback_months``.
The intervals are half-open so that windows tile without overlap:
``lag=0, lookback=12`` is "0-1 year", ``lag=12, lookback=60`` "1-5 years",
``lag=60, lookback=None`` "more than 5 years". Dispensings after diagnosis,
in the lag period, before the lookback window, or of no studied class are not
counted; each is reported with its reason, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from alsfrs.errors import Problem, ValidationError
from alsfrs.io._table import EXCLUSION_COLUMNS, ROW, Table
from alsfrs.io.dispensings import read_dispensings
from alsfrs.io.patients import read_patients
from alsfrs.timeaxis import DAYS_PER_MONTH, MONTHS_PER_YEAR

__all__ = [
    "ANTIDEPRESSANT_SUBCLASSES",
    "DRUG_CLASSES",
    "REM_SUPPRESSION",
    "derive_exposures",
    "drug_class",
    "rem_suppression",
    "window_label",
]

#: Drug classes studied, by ATC prefix (Chourpiliadis 2025; WHO ATC index).
DRUG_CLASSES: dict[str, tuple[str, ...]] = {
    "anxiolytic": ("N05B",),
    "hypnotic": ("N05C",),
    "antidepressant": ("N06A",),
}

#: Antidepressant sub-classes by ATC prefix (WHO ATC index).
ANTIDEPRESSANT_SUBCLASSES: dict[str, tuple[str, ...]] = {
    "tca": ("N06AA",),  # non-selective monoamine reuptake inhibitors (tricyclics)
    "ssri": ("N06AB",),  # selective serotonin reuptake inhibitors
    "maoi": ("N06AF", "N06AG"),  # MAO inhibitors, non-selective and type A
    "other": ("N06AX",),  # other antidepressants (mirtazapine, venlafaxine, bupropion ...)
}

_REM_SOURCE = (
    "Mayers & Baldwin, Hum Psychopharmacol 2005;20:533-559; Wichniak et al., "
    "Curr Psychiatry Rep 2017;19:63 (shared/domain.md section 4)"
)

#: REM-sleep suppression by antidepressant, matched on the longest ATC prefix.
#: ``strong``: REM-suppressing; ``weak``: little or no REM suppression;
#: ``disputed``: reports disagree. Override with the ``rem_table`` argument.
REM_SUPPRESSION: pd.DataFrame = pd.DataFrame.from_records(
    [
        ("N06AA", "tricyclic antidepressants (except trimipramine)", "strong"),
        ("N06AA06", "trimipramine", "weak"),
        ("N06AB", "selective serotonin reuptake inhibitors", "strong"),
        ("N06AF", "non-selective MAO inhibitors", "strong"),
        ("N06AG", "MAO-A inhibitors (moclobemide)", "strong"),
        ("N06AX16", "venlafaxine", "strong"),
        ("N06AX21", "duloxetine", "strong"),
        ("N06AX11", "mirtazapine", "weak"),
        ("N06AX03", "mianserin", "weak"),
        ("N06AX22", "agomelatine", "weak"),
        ("N06AX06", "nefazodone", "weak"),
        ("N06AX05", "trazodone", "disputed"),
        ("N06AX12", "bupropion", "disputed"),
    ],
    columns=["atc", "drug", "rem_suppression"],
).assign(source=_REM_SOURCE)

_REM_LEVELS = ("strong", "weak", "disputed")
_REM_COLUMNS = {
    "strong": "antidepressant_rem_suppressing",
    "weak": "antidepressant_non_rem_suppressing",
    "disputed": "antidepressant_rem_disputed",
}


def _prefix_lookup(codes: pd.Series, table: Mapping[str, str]) -> pd.Series:
    """Map each code to the value of its longest matching prefix in ``table``."""
    out = pd.Series(pd.NA, index=codes.index, dtype=object)
    for prefix in sorted(table, key=len):  # longer prefixes overwrite shorter ones
        out[codes.str.startswith(prefix).fillna(False).to_numpy(dtype=bool)] = table[prefix]
    return out


def drug_class(atc: pd.Series, classes: Mapping[str, Sequence[str]] | None = None) -> pd.Series:
    """The studied drug class of each ATC code (``NA`` for none)."""
    classes = DRUG_CLASSES if classes is None else classes
    return _prefix_lookup(atc, {p: c for c, ps in classes.items() for p in ps})


def rem_suppression(atc: pd.Series, table: pd.DataFrame | None = None) -> pd.Series:
    """REM suppression (``strong``/``weak``/``disputed``) of each antidepressant code.

    Codes outside N06A, or matching no row of the table, give ``NA``.
    """
    table = REM_SUPPRESSION if table is None else _check_rem_table(table)
    mapping = dict(zip(table["atc"], table["rem_suppression"], strict=True))
    out = _prefix_lookup(atc, mapping)
    return out.where(atc.str.startswith("N06A").fillna(False).to_numpy(dtype=bool))


def _check_rem_table(table: pd.DataFrame) -> pd.DataFrame:
    problems = []
    for c in ("atc", "rem_suppression"):
        if c not in table:
            problems.append(Problem(rule="missing_column", message=f"REM table needs column '{c}'",
                                    source="rem_table", column=c))
    if not problems:
        bad = ~table["rem_suppression"].isin(_REM_LEVELS)
        for i in np.flatnonzero(bad.to_numpy()):
            problems.append(Problem(
                rule="rem_level", source="rem_table", row=table.index[i],
                column="rem_suppression",
                message=f"{table['rem_suppression'].iloc[i]!r} is not one of "
                        f"{', '.join(_REM_LEVELS)}"))
    if problems:
        raise ValidationError(problems, context="the REM-suppression table")
    return table.assign(atc=table["atc"].astype(str).str.upper().str.strip())


def _as_table(obj: Any, reader) -> Table:
    return obj if isinstance(obj, Table) else reader(obj)


def dispensing_months(dispensings: Table, patients: Table) -> pd.Series:
    """Months since diagnosis of each dispensing (negative before diagnosis).

    Raises ValidationError for dispensings of patients not in the patient table,
    and for dated dispensings of patients without a diagnosis date.
    """
    d = dispensings.data
    p = patients.data.set_index("patient_id")
    unknown = ~d["patient_id"].isin(p.index)
    problems = [
        Problem(rule="unknown_patient", source=dispensings.source, row=d[ROW].iloc[i],
                patient=d["patient_id"].iloc[i], column="patient_id",
                message="dispensing for a patient who is not in the patient table")
        for i in np.flatnonzero(unknown.to_numpy())
    ]
    if dispensings.meta.get("time") == "dispensing_date":
        if "diagnosis_date" not in p:
            problems.append(Problem(
                rule="missing_column", source=patients.source, column="diagnosis_date",
                message="dispensings are dated, so the patient table needs 'diagnosis_date'"))
            raise ValidationError(problems)
        dx = d["patient_id"].map(p["diagnosis_date"])
        no_dx = ~unknown & dx.isna()
        problems += [
            Problem(rule="date_missing", source=patients.source,
                    patient=d["patient_id"].iloc[i], column="diagnosis_date",
                    message="dated dispensings need this patient's diagnosis date")
            for i in np.flatnonzero(no_dx.to_numpy())
        ]
        months = (d["dispensing_date"] - dx).dt.days / DAYS_PER_MONTH
    else:
        months = d["months_since_diagnosis"].astype(float)
    if problems:
        raise ValidationError(problems, context="the dispensings")
    return months


def derive_exposures(
    dispensings: Any,
    patients: Any,
    lag_months: float = 12,
    lookback_months: float | None = None,
    *,
    min_dispensings: int = 2,
    classes: Mapping[str, Sequence[str]] | None = None,
    subclasses: bool = True,
    rem_table: pd.DataFrame | None = None,
    windows: Sequence[tuple[float, float | None]] | None = None,
) -> pd.DataFrame:
    """Per-patient drug-class exposures from dispensings.

    Parameters
    ----------
    dispensings, patients
        Tables from :func:`read_dispensings` / :func:`read_patients`, or anything
        those readers take (paths, DataFrames).
    lag_months
        Dispensings less than this many months before diagnosis are not counted
        (the lag that guards against reverse causation; 12 in Chourpiliadis 2025).
    lookback_months
        Dispensings this many months or more before diagnosis are not counted;
        ``None`` for no limit.
    min_dispensings
        Dispensings of a class within the window needed to be *exposed*
        (2 in Chourpiliadis 2025: "at least two prescriptions").
    classes
        Drug classes by ATC prefix; default :data:`DRUG_CLASSES`.
    subclasses
        Also derive antidepressant sub-classes (TCA, SSRI, MAOI, other) and
        REM-suppression groups.
    rem_table
        Replacement for :data:`REM_SUPPRESSION` (columns ``atc``, ``rem_suppression``).
    windows
        Exposure windows for risk analyses, in months before diagnosis, e.g.
        ``[(0, 12), (12, 60), (60, None)]`` (Chourpiliadis 2025: 0–1, 1–5 and more
        than 5 years). Each window ``(lo, hi)`` adds one 0/1 column per class,
        ``<class>_<label>`` (:func:`window_label`: ``antidepressant_0_1y``,
        ``antidepressant_1_5y``, ``antidepressant_5y_plus``): exposed when at least
        ``min_dispensings`` dispensings of the class fall in ``lo <= months before
        diagnosis < hi``. A window is its own lag and lookback (``(12, 60)`` is the
        1-year lag of the study, ``(0, 12)`` the year the main definition leaves
        out), so ``lag_months``/``lookback_months`` do not apply to the window
        columns; ``attrs["windows"]`` records them.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``patient_id`` (every patient in the patient table). For each
        class ``c``: ``c`` (0/1 exposed), ``c_n`` (dispensings in the window),
        ``c_years`` (years from the first to the last of them), and ``c_ddd`` (sum
        of DDDs) when the dispensings carry ``ddd``. With ``subclasses``:
        ``antidepressant_tca`` ... and ``antidepressant_rem_suppressing``,
        ``antidepressant_non_rem_suppressing``, ``antidepressant_rem_disputed``
        (0/1, same threshold). ``.attrs["excluded"]`` lists every dispensing not
        counted and why; ``.attrs["window"]`` records the definition.
    """
    if lag_months < 0:
        raise ValidationError(Problem(rule="bad_window", message="lag_months must be >= 0"))
    if lookback_months is not None and lookback_months <= lag_months:
        raise ValidationError(Problem(
            rule="bad_window",
            message=f"lookback_months ({lookback_months}) must exceed lag_months ({lag_months})"))
    if min_dispensings < 1:
        raise ValidationError(Problem(rule="bad_window", message="min_dispensings must be >= 1"))
    classes = DRUG_CLASSES if classes is None else dict(classes)
    disp = _as_table(dispensings, read_dispensings)
    pats = _as_table(patients, read_patients)
    months = dispensing_months(disp, pats)
    d = disp.data.assign(_months=months.to_numpy(), _before=-months.to_numpy())
    d["_class"] = drug_class(d["atc"], classes)

    lookback = np.inf if lookback_months is None else float(lookback_months)
    reason = pd.Series(pd.NA, index=d.index, dtype=object)
    rule = reason.copy()
    after = d["_before"] < 0
    in_lag = ~after & (d["_before"] < lag_months)
    too_early = d["_before"] >= lookback
    other = d["_class"].isna()
    for mask, r, text in (
        (other, "not_studied_class", "ATC code belongs to none of the studied classes ("
         + ", ".join(f"{k} {'/'.join(v)}" for k, v in classes.items()) + ")"),
        (after, "after_diagnosis", "dispensed after diagnosis"),
        (in_lag, "in_lag_period", f"dispensed less than {lag_months:g} months before "
         "diagnosis (lag period)"),
        (too_early, "before_window", f"dispensed {lookback:g} or more months before "
         "diagnosis (before the lookback window)"),
    ):
        m = mask.to_numpy(dtype=bool) & reason.isna().to_numpy()
        reason[m] = text
        rule[m] = r
    counted = reason.isna()
    excluded = pd.DataFrame({
        "table": "dispensings", "source": disp.source, "row": d[ROW],
        "patient_id": d["patient_id"], "rule": rule, "reason": reason,
    })[~counted].reset_index(drop=True)[EXCLUSION_COLUMNS]
    used = d[counted]

    index = pd.Index(pats.data["patient_id"], name="patient_id")
    out = pd.DataFrame(index=index)
    for cls in classes:
        out = out.join(_summarise(used[used["_class"] == cls], cls, min_dispensings,
                                  "ddd" in d), how="left")
    out = fill_missing_exposures(out)
    if subclasses and "antidepressant" in classes:
        ad = used[used["_class"] == "antidepressant"]
        sub = drug_class(ad["atc"], ANTIDEPRESSANT_SUBCLASSES)
        for name in ANTIDEPRESSANT_SUBCLASSES:
            n = ad[sub == name].groupby("patient_id").size()
            out[f"antidepressant_{name}"] = _flag(n, index, min_dispensings)
        rem = rem_suppression(ad["atc"], rem_table)
        for level, col in _REM_COLUMNS.items():
            n = ad[rem == level].groupby("patient_id").size()
            out[col] = _flag(n, index, min_dispensings)
    if windows:
        before = d["_before"].to_numpy()
        win_meta = []
        for lo, hi in _check_windows(windows):
            label = window_label(lo, hi)
            inside = (before >= lo) & (before < (np.inf if hi is None else hi))
            for cls in classes:
                n = d[inside & (d["_class"] == cls).fillna(False).to_numpy(dtype=bool)
                      ].groupby("patient_id").size()
                out[f"{cls}_{label}"] = _flag(n, index, min_dispensings)
            win_meta.append({"label": label, "from_months": float(lo),
                             "to_months": None if hi is None else float(hi)})
        out.attrs["windows"] = win_meta
    out.attrs["excluded"] = excluded
    out.attrs["window"] = {
        "lag_months": float(lag_months),
        "lookback_months": None if lookback_months is None else float(lookback_months),
        "min_dispensings": int(min_dispensings),
        "classes": {k: list(v) for k, v in classes.items()},
        "rule": "counted when lag_months <= months before diagnosis < lookback_months",
    }
    out.attrs["n_dispensings"] = {"read": disp.n_input_rows, "counted": int(counted.sum()),
                                  "not_counted": int((~counted).sum())}
    return out


def window_label(lo: float, hi: float | None) -> str:
    """Column suffix of an exposure window in months before diagnosis.

    Whole years are written in years, otherwise months: ``(0, 12)`` → ``"0_1y"``,
    ``(12, 60)`` → ``"1_5y"``, ``(60, None)`` → ``"5y_plus"``, ``(6, 18)`` →
    ``"6_18m"``.
    """
    years = lo % 12 == 0 and (hi is None or hi % 12 == 0)
    unit, k = ("y", 12.0) if years else ("m", 1.0)
    if hi is None:
        return f"{lo / k:g}{unit}_plus".replace(".", "p")
    return f"{lo / k:g}_{hi / k:g}{unit}".replace(".", "p")


def _check_windows(windows: Sequence[tuple[float, float | None]]
                   ) -> list[tuple[float, float | None]]:
    out = []
    problems = []
    for w in windows:
        try:
            lo, hi = w
            lo = float(lo)
            hi = None if hi is None else float(hi)
        except (TypeError, ValueError):
            problems.append(Problem(rule="bad_window", message=f"a window is (from, to) months "
                                    f"before diagnosis, got {w!r}"))
            continue
        if lo < 0 or (hi is not None and hi <= lo):
            problems.append(Problem(rule="bad_window", message=(
                f"window {w!r}: need 0 <= from < to (months before diagnosis)")))
            continue
        out.append((lo, hi))
    labels = [window_label(lo, hi) for lo, hi in out]
    if len(set(labels)) != len(labels):
        problems.append(Problem(rule="bad_window", message="windows must be distinct"))
    if problems:
        raise ValidationError(problems, context="the exposure windows")
    return out


def _flag(n: pd.Series, index: pd.Index, min_dispensings: int) -> np.ndarray:
    return (n.reindex(index, fill_value=0) >= min_dispensings).astype(int).to_numpy()


def _summarise(rows: pd.DataFrame, cls: str, min_dispensings: int, has_ddd: bool) -> pd.DataFrame:
    g = rows.groupby("patient_id")
    n = g.size()
    span_years = (g["_months"].max() - g["_months"].min()) / MONTHS_PER_YEAR
    frame = pd.DataFrame({f"{cls}_n": n, f"{cls}_years": span_years})
    if has_ddd:
        frame[f"{cls}_ddd"] = g["ddd"].sum(min_count=1)
    frame.index.name = "patient_id"
    frame.insert(0, cls, (frame[f"{cls}_n"] >= min_dispensings).astype(int))
    return frame


def fill_missing_exposures(frame: pd.DataFrame) -> pd.DataFrame:
    """Patients with no dispensing of a class: 0 flags, 0 counts, 0 years."""
    ints = {c: int for c in frame.columns if not c.endswith(("_years", "_ddd"))}
    return frame.fillna(0).astype(ints)
