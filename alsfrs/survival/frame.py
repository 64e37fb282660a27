"""Survival data: the per-patient survival frame of a cohort, and validated arrays for a fit.

Two public entry points:

:func:`survival_frame`
    One row per patient of a :class:`~alsfrs.Cohort` with the time to death or
    invasive ventilation (IMV) or censoring, in months from diagnosis or from
    symptom onset, and the event flag, joined to the covariates and exposures.
    Patients who cannot be analysed are listed in ``frame.attrs["excluded"]``
    with a reason, never dropped silently.
:func:`survival_data`
    A survival formula (:mod:`alsfrs.survival.surv`) and a data frame turned
    into the checked arrays every survival engine uses (:class:`SurvivalData`).
:func:`split_at`
    Counting-process ``(start, stop]`` rows for a treatment started during
    follow-up (a time-varying covariate, as R's ``tmerge``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alsfrs.errors import Problem, ValidationError
from alsfrs.matrices import Design, _check_rank, as_frame, build_design
from alsfrs.survival.surv import SurvFormula, parse_surv_formula

__all__ = [
    "EXCLUDED_COLUMNS",
    "ORIGINS",
    "SurvivalData",
    "excluded_patients",
    "split_at",
    "survival_data",
    "survival_frame",
    "treatment_start",
]

#: Time origins of :func:`survival_frame`.
ORIGINS = ("diagnosis", "onset")
#: Columns of ``survival_frame(...).attrs["excluded"]``.
EXCLUDED_COLUMNS = ["patient_id", "rule", "reason"]


def survival_frame(cohort: Any, origin: str = "diagnosis") -> pd.DataFrame:
    """One row per patient: time to death or invasive ventilation (or censoring), and the event.

    Parameters
    ----------
    cohort : Cohort
        A cohort whose patient table has ``death_imv`` (1 = died or started
        invasive ventilation, 0 = censored) and ``months_to_death_imv`` (months
        from diagnosis to the event or to censoring).
    origin : {"diagnosis", "onset"}
        Time zero. ``"onset"`` adds the diagnostic delay (months from symptom
        onset to diagnosis) to every time.

    Returns
    -------
    pandas.DataFrame
        Columns ``patient_id``, ``months`` (time from the origin to the event or
        censoring), ``event`` (0/1), then every patient covariate, exposure and
        derived feature of ``cohort.patients``. ``attrs``:

        ``"excluded"``
            patients not in the frame, a list of records with ``patient_id``,
            ``rule`` and ``reason`` (``no_followup_time``: the time or status is
            missing, or the patient is censored at time zero; ``onset_missing``:
            onset is unknown, onset origin only); :func:`excluded_patients` gives
            them as a DataFrame (plain records keep ``pd.concat`` working);
        ``"origin"``, ``"time_unit"``
            the time origin and unit;
        ``"counts"``
            patients in the cohort, analysed and excluded (by rule).

    Raises
    ------
    alsfrs.errors.ValidationError
        ``no_survival_outcome`` when the patient table has no ``death_imv``;
        ``bad_origin`` for an unknown origin.
    """
    if origin not in ORIGINS:
        raise ValidationError(Problem(rule="bad_origin", message=f"origin must be one of "
                                      f"{', '.join(ORIGINS)}, got {origin!r}"))
    p = cohort.patients
    if "death_imv" not in p.columns or "months_to_death_imv" not in p.columns:
        raise ValidationError(Problem(
            rule="no_survival_outcome", column="death_imv",
            message="the patient table has no survival outcome: give 'death_imv' (0/1) with "
                    "'months_to_death_imv' or 'death_imv_date'"), context="the cohort")
    ids = p.index.to_numpy()
    status = pd.to_numeric(p["death_imv"], errors="coerce").astype(float).to_numpy()
    months = pd.to_numeric(p["months_to_death_imv"], errors="coerce").astype(float).to_numpy()
    reasons: dict[int, tuple[str, str]] = {}
    no_time = ~np.isfinite(months) | ~np.isfinite(status)
    for i in np.flatnonzero(no_time):
        reasons[i] = ("no_followup_time", "the time to death/IMV or censoring, or the status, "
                      "is missing")
    if origin == "onset":
        delay = (pd.to_numeric(p["diagnostic_delay_months"], errors="coerce").astype(float)
                 .to_numpy() if "diagnostic_delay_months" in p else np.full(len(p), np.nan))
        for i in np.flatnonzero(~np.isfinite(delay)):
            reasons.setdefault(int(i), ("onset_missing", "symptom onset is unknown, so the "
                                        "time from onset cannot be computed"))
        months = months + delay
    zero = np.isfinite(months) & (months <= 0) & (status == 0)
    for i in np.flatnonzero(zero):
        reasons.setdefault(int(i), ("no_followup_time", "censored at time zero (no follow-up "
                                    "time)"))
    keep = np.ones(len(p), dtype=bool)
    keep[list(reasons)] = False
    covars = p.drop(columns=["death_imv", "months_to_death_imv"]).loc[keep]
    out = pd.DataFrame({"patient_id": ids[keep], "months": months[keep],
                        "event": status[keep].astype(int)})
    out = pd.concat([out, covars.reset_index(drop=True)], axis=1)
    excluded = pd.DataFrame.from_records(
        [(ids[i], *reasons[i]) for i in sorted(reasons)], columns=EXCLUDED_COLUMNS)
    out.attrs["excluded"] = excluded.to_dict("records")
    out.attrs["origin"] = origin
    out.attrs["time_unit"] = f"months since {origin}"
    out.attrs["counts"] = {"patients": len(p), "analysed": int(keep.sum()),
                           "excluded": int((~keep).sum()),
                           **{f"excluded: {k}": int(v) for k, v in
                              excluded.groupby("rule").size().items()}}
    return out


def excluded_patients(frame: pd.DataFrame) -> pd.DataFrame:
    """The patients left out of a :func:`survival_frame`, with the rule and reason."""
    return pd.DataFrame.from_records(frame.attrs.get("excluded", []), columns=EXCLUDED_COLUMNS)


def treatment_start(cohort: Any, atc: str | Sequence[str]) -> pd.Series:
    """Months from diagnosis to the first dispensing after diagnosis of a drug.

    For a treatment started during follow-up, e.g. riluzole (ATC ``N07XX02``) or
    edaravone (``N07XX14``); use with :func:`split_at` to fit it as a time-varying
    covariate.

    Parameters
    ----------
    cohort : Cohort
        A cohort with dispensings.
    atc : str or sequence of str
        ATC code prefix(es) of the drug.

    Returns
    -------
    pandas.Series
        Indexed by ``patient_id`` (every patient of the cohort), NaN for patients
        never dispensed the drug after diagnosis.
    """
    from alsfrs.exposure import dispensing_months

    tables = getattr(cohort, "tables", {})
    if "dispensings" not in tables:
        raise ValidationError(Problem(rule="no_dispensings", message=(
            "treatment start times need the cohort's dispensings")))
    disp, pats = tables["dispensings"], tables["patients"]
    known = disp.data["patient_id"].isin(pats.data["patient_id"]).to_numpy()
    d = disp.data.loc[known]
    from alsfrs.io._table import Table

    months = dispensing_months(Table("dispensings", d, disp.exclusions, disp.source, len(d),
                                     disp.meta), pats).to_numpy()
    prefixes = (atc,) if isinstance(atc, str) else tuple(atc)
    code = d["atc"].astype(str).str.upper()
    hit = np.zeros(len(d), dtype=bool)
    for pre in prefixes:
        hit |= code.str.startswith(pre.upper().strip()).to_numpy()
    sel = hit & (months >= 0)
    first = pd.Series(months[sel], index=d["patient_id"].to_numpy()[sel]).groupby(level=0).min()
    out = first.reindex(cohort.patients.index)
    out.name = "months_to_" + "_".join(p.lower() for p in prefixes)
    out.index.name = "patient_id"
    return out


def split_at(frame: pd.DataFrame, switch: str, covariate: str, *, time: str = "months",
             event: str = "event", id_column: str = "patient_id") -> pd.DataFrame:
    """Counting-process rows for a treatment started during follow-up.

    Each patient with a finite ``switch`` time strictly inside ``(0, time)``
    gets two rows, ``(0, switch]`` with ``covariate = 0`` and no event, and
    ``(switch, time]`` with ``covariate = 1`` and the patient's event; other
    patients keep one row (``covariate = 1`` when the switch time is ``<= 0``).
    Fit with ``Surv(start, stop, event) ~ covariate + ... + cluster(patient_id)``
    (the same layout as R's ``tmerge``).

    Parameters
    ----------
    frame : DataFrame
        One row per patient, e.g. from :func:`survival_frame`.
    switch : str
        Column with the time the treatment started (NaN = never).
    covariate : str
        Name of the 0/1 column to create.
    time, event, id_column : str
        Columns of the follow-up time, event flag and patient identifier.

    Returns
    -------
    pandas.DataFrame
        Columns ``start`` and ``stop`` added, one or two rows per patient.
    """
    t = frame[time].to_numpy(dtype=float)
    s = frame[switch].to_numpy(dtype=float)
    inside = np.isfinite(s) & (s > 0) & (s < t)
    before = frame.assign(start=0.0, stop=np.where(inside, s, t),
                          **{covariate: (np.isfinite(s) & (s <= 0)).astype(int)})
    before[event] = np.where(inside, 0, frame[event].to_numpy())
    after = frame.loc[inside].assign(start=s[inside], stop=t[inside], **{covariate: 1})
    before.attrs = {}
    after.attrs = {}
    out = pd.concat([before, after], ignore_index=True)
    return out.sort_values([id_column, "start"], kind="stable").reset_index(drop=True)


@dataclass(frozen=True, eq=False)
class SurvivalData:
    """The checked arrays of a survival model (rows in input order).

    Attributes
    ----------
    formula : SurvFormula
    stop : ndarray, shape (n,)
        Event or censoring time (``stop`` of ``(start, stop]``).
    event : ndarray of int, shape (n,)
        1 = event, 0 = censored.
    start : ndarray or None
        Entry time of ``(start, stop]`` rows; ``None`` for right-censored data.
    X : ndarray, shape (n, p)
        Covariates, R's treatment coding without an intercept.
    names : tuple of str
        R names of the columns of ``X``.
    design : Design
        Rebuilds ``X`` for new data (:meth:`Design.design`).
    strata : ndarray of int, shape (n,)
        Stratum code of each row (all 0 without ``strata()``).
    strata_labels : tuple of str
        R's label of each stratum (``"onset_site=bulbar"``).
    cluster : ndarray of int or None
        Cluster code of each row when ``cluster()`` was given.
    cluster_labels : ndarray or None
        The cluster identifiers.
    index : pandas.Index
        Index labels of the input rows.
    """

    formula: SurvFormula
    stop: np.ndarray
    event: np.ndarray
    start: np.ndarray | None
    X: np.ndarray
    names: tuple[str, ...]
    design: Design | None
    strata: np.ndarray
    strata_labels: tuple[str, ...]
    cluster: np.ndarray | None
    cluster_labels: np.ndarray | None
    index: pd.Index

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.stop.shape[0])

    @property
    def n_events(self) -> int:
        """Number of events."""
        return int(self.event.sum())

    @property
    def n_strata(self) -> int:
        """Number of strata."""
        return len(self.strata_labels)


def _rows(index: pd.Index, mask: np.ndarray, limit: int = 5) -> str:
    labels = list(index[np.asarray(mask, dtype=bool)])
    shown = ", ".join(str(x) for x in labels[:limit])
    return shown + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


def survival_data(formula: str | SurvFormula, data: Any, *, covariates: bool = True,
                  allow_cluster: bool = True, context: str = "the survival data"
                  ) -> SurvivalData:
    """Check a survival formula against data and build the arrays of the fit.

    Parameters
    ----------
    formula : str or SurvFormula
        ``Surv(time, event) ~ ...`` or ``Surv(start, stop, event) ~ ...``.
    data : DataFrame, Cohort, or object with ``to_frame()``
        A Cohort (anything with ``survival_frame()``) is used through its
        survival frame (months from diagnosis).
    covariates : bool, default True
        Whether the model needs covariates (Cox, clogit) or takes none (Kaplan–Meier,
        where the right-hand side names the groups).
    allow_cluster : bool, default True
        Whether ``cluster()`` is accepted.
    context : str
        Where problems are reported (for messages).

    Returns
    -------
    SurvivalData

    Raises
    ------
    alsfrs.errors.ValidationError
        Listing every problem: unknown columns, missing values (rows named),
        negative times, ``stop <= start``, an event flag other than 0/1, no
        covariates, a covariate constant within every stratum, aliased columns.
    """
    f = formula if isinstance(formula, SurvFormula) else parse_surv_formula(
        formula, allow_cluster=allow_cluster)
    if not isinstance(data, pd.DataFrame) and callable(getattr(data, "survival_frame", None)):
        data = data.survival_frame()
    frame = as_frame(data)
    if len(frame) == 0:
        raise ValidationError(Problem(rule="no_data", message="the data have no rows"),
                              context=context)
    design_vars: list[str] = []
    if f.has_covariates:
        from formulaic import Formula

        from alsfrs.formula import to_formulaic

        design_vars = sorted(Formula(to_formulaic(f.rhs)).required_variables)
    needed = list(dict.fromkeys([*f.outcome_columns, *design_vars, *f.strata,
                                 *([f.cluster] if f.cluster else [])]))
    unknown = [c for c in needed if c not in frame.columns]
    if unknown:
        raise ValidationError([Problem(rule="unknown_column", column=c, message=(
            f"the formula uses {c!r}, which is not a column of the data"))
            for c in unknown], context=context)
    problems: list[Problem] = []
    for c in needed:
        na = frame[c].isna().to_numpy()
        if na.any():
            problems.append(Problem(rule="missing_values", column=c, message=(
                f"{int(na.sum())} row(s) have a missing value (rows {_rows(frame.index, na)}); "
                "remove or impute them before fitting")))
    if problems:
        raise ValidationError(problems, context=context)

    def numeric(c: str) -> np.ndarray | None:
        col = frame[c]
        if pd.api.types.is_bool_dtype(col):
            return col.to_numpy(dtype=float)
        if not pd.api.types.is_numeric_dtype(col):
            problems.append(Problem(rule="non_numeric_time", column=c,
                                    message=f"{c!r} must be numeric (dtype {col.dtype})"))
            return None
        v = col.to_numpy(dtype=float)
        if not np.all(np.isfinite(v)):
            bad = ~np.isfinite(v)
            problems.append(Problem(rule="non_finite_time", column=c, message=(
                f"{int(bad.sum())} row(s) are not finite (rows {_rows(frame.index, bad)})")))
        return v

    stop = numeric(f.time)
    start = numeric(f.start) if f.start else None
    ev = numeric(f.event)
    if stop is not None:
        neg = stop < 0
        if neg.any():
            problems.append(Problem(rule="negative_time", column=f.time, message=(
                f"{int(neg.sum())} row(s) have a negative time (rows {_rows(frame.index, neg)})")))
    if start is not None and stop is not None:
        bad = ~(stop > start)
        if bad.any():
            problems.append(Problem(rule="stop_not_after_start", column=f.time, message=(
                f"{int(bad.sum())} row(s) have stop <= start; an interval (start, stop] must "
                f"have positive length (rows {_rows(frame.index, bad)})")))
    if ev is not None:
        bad = ~np.isin(ev, (0.0, 1.0))
        if bad.any():
            vals = ", ".join(map(str, sorted(set(ev[bad].tolist()))[:5]))
            problems.append(Problem(rule="event_not_binary", column=f.event, message=(
                f"the event flag must be 0 (censored) or 1 (event); {int(bad.sum())} row(s) "
                f"have {vals} (rows {_rows(frame.index, bad)})")))
    if problems:
        raise ValidationError(problems, context=context)
    assert stop is not None and ev is not None

    # strata
    if f.strata:
        keys = frame[list(f.strata)].astype(str)
        if len(f.strata) == 1:
            lab = f.strata[0] + "=" + keys[f.strata[0]]
        else:
            lab = keys.apply(lambda r: ", ".join(f"{k}={r[k]}" for k in f.strata), axis=1)
        codes, uniq = _codes(frame[list(f.strata)], lab)
        strata, strata_labels = codes, tuple(uniq)
    else:
        strata, strata_labels = np.zeros(len(frame), dtype=np.intp), ("all",)
    cluster = cluster_labels = None
    if f.cluster:
        cluster, cluster_labels = pd.factorize(frame[f.cluster], sort=True)
        cluster_labels = np.asarray(cluster_labels)

    design: Design | None = None
    if f.has_covariates and covariates:
        design = build_design(f.rhs, frame, variable_order=f.variable_order, intercept=False,
                              check_rank=False)
        X, names = design.X, design.names
        if X.shape[1] == 0:
            raise ValidationError(Problem(rule="no_covariates", message=(
                "the model has no covariates")), context=context)
        _check_within_strata(X, names, strata, len(strata_labels), bool(f.strata), context)
    elif covariates:
        raise ValidationError(Problem(rule="no_covariates", message=(
            f"the formula {f.text!r} has no covariates to estimate")), context=context)
    else:
        X, names = np.zeros((len(frame), 0)), ()
    return SurvivalData(formula=f, stop=stop, event=ev.astype(np.int8), start=start, X=X,
                        names=names, design=design, strata=strata, strata_labels=strata_labels,
                        cluster=cluster, cluster_labels=cluster_labels, index=frame.index)


def _codes(keys: pd.DataFrame, labels: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Stratum codes ordered as R orders ``strata()`` levels (sorted by the variables)."""
    order_cols = []
    for c in keys.columns:
        col = keys[c]
        if isinstance(col.dtype, pd.CategoricalDtype):
            order_cols.append(pd.Categorical(col).remove_unused_categories().codes)
        else:
            order_cols.append(pd.factorize(col, sort=True)[0])
    combo = pd.DataFrame({f"k{i}": v for i, v in enumerate(order_cols)})
    combo["label"] = labels.to_numpy()
    first = combo.drop_duplicates().sort_values([f"k{i}" for i in range(len(order_cols))])
    uniq = first["label"].tolist()
    code = {lab: i for i, lab in enumerate(uniq)}
    return np.array([code[v] for v in labels.to_numpy()], dtype=np.intp), uniq


def _check_within_strata(X: np.ndarray, names: Sequence[str], strata: np.ndarray, k: int,
                         stratified: bool, context: str) -> None:
    """A covariate constant within every stratum (or overall) cannot be estimated."""
    counts = np.bincount(strata, minlength=k).astype(float)
    means = np.zeros((k, X.shape[1]))
    np.add.at(means, strata, X)
    means /= np.maximum(counts, 1)[:, None]
    Xc = X - means[strata]
    scale = np.maximum(np.abs(X).max(axis=0), 1.0)
    flat = np.all(np.abs(Xc) <= 1e-12 * scale, axis=0)
    if flat.any():
        where = "within every stratum" if stratified else "(every row has the same value)"
        raise ValidationError([Problem(rule="constant_within_strata" if stratified else
                                       "constant_covariate", column=names[j], message=(
            f"the covariate {names[j]!r} is constant {where}; its effect cannot be estimated "
            "— drop it from the formula")) for j in np.flatnonzero(flat)], context=context)
    _check_rank(Xc, names)
