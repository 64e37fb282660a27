"""Survival on REM-sleep-suppressing versus non-suppressing antidepressants (Fowler 2025).

:func:`rem_survival_comparison` repeats the analysis of Fowler et al. (ATS 2025)
on a cohort: patients exposed to antidepressants of **one** REM class only
(classified by :data:`alsfrs.exposure.REM_SUPPRESSION`, or the user's table;
users of both classes, of drugs of disputed effect and of unclassified drugs
are counted and left out), two-year survival by class (Kaplan–Meier with
R's intervals), the crude Cox hazard ratio, and a propensity-score-matched
analysis:

* the propensity of being a non-suppressing user from a logistic regression
  on ``match_on`` (statsmodels GLM), on the logit scale;
* 1:1 greedy nearest-neighbour matching without replacement, largest
  propensity first, with a caliper of ``caliper`` standard deviations of the
  logit propensity (over all patients), as R's ``MatchIt::matchit(...,
  method = "nearest", distance = "glm", link = "linear.logit", caliper = 0.2,
  std.caliper = TRUE)``: for each treated unit the nearest eligible control on
  each side in the sorted propensity (within the caliper) are the candidates,
  the closer one wins and a tie goes to the lower propensity (MatchIt 4.5's
  rule). Checked against MatchIt 4.5.1 given the logit propensity scaled by
  1e8 as its distance: that version compares distances with an integer
  ``abs()`` on some builds, which silently ignores any caliper below 1 on the
  distance scale (fixed in later MatchIt); the scaling makes the truncation
  immaterial while leaving the standardised caliper and the order unchanged;
* standardised mean differences before and after matching as MatchIt's
  ``summary()`` (difference in means over the SD of the non-suppressing group
  in the full sample; ``sqrt(p(1-p))`` for 0/1 columns);
* the hazard ratio on the matched sample with robust standard errors clustered
  on the matched pair (R: ``coxph(..., cluster = subclass)``).

The hazard ratio compares non-suppressing with REM-suppressing users (Fowler:
HR 1.21 crude, 1.23 matched, non-suppressing users dying sooner).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from alsfrs.errors import Problem, ValidationError
from alsfrs.matrices import build_design
from alsfrs.results import Display, DisplayTable, ModelRecord, Payload, Result, diagnostics_frame
from alsfrs.survival.cox import fit_cox
from alsfrs.survival.km import KaplanMeierResult, kaplan_meier

__all__ = ["RemComparisonResult", "match_nearest", "rem_groups", "rem_survival_comparison"]

GROUP = "rem_class"
TREAT = "non_rem_suppressing"
LABELS = {1: "non_suppressing", 0: "suppressing"}
_FLAGS = ("antidepressant_rem_suppressing", "antidepressant_non_rem_suppressing",
          "antidepressant_rem_disputed")


def rem_groups(frame: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame]:
    """REM class of every patient and the count of each group.

    Returns the class per row (``"suppressing"``, ``"non_suppressing"``,
    ``"mixed"``, ``"disputed"``, ``"unclassified"``, ``"no antidepressant"``) and
    a table of counts with whether each group is compared and why not.
    """
    missing = [c for c in (*_FLAGS, "antidepressant") if c not in frame.columns]
    if missing:
        raise ValidationError([Problem(rule="missing_column", column=c, message=(
            f"the REM comparison needs {c!r} (give the cohort dispensings)"))
            for c in missing], context="the REM comparison")
    s, w, d = (frame[c].to_numpy(dtype=int) for c in _FLAGS)
    ad = frame["antidepressant"].to_numpy(dtype=int)
    k = s + w + d
    cls = np.select(
        [k >= 2, (s == 1) & (k == 1), (w == 1) & (k == 1), (d == 1) & (k == 1), ad == 1],
        ["mixed", "suppressing", "non_suppressing", "disputed", "unclassified"],
        "no antidepressant")
    reasons = {
        "suppressing": "compared", "non_suppressing": "compared",
        "mixed": "excluded: antidepressants of more than one REM class",
        "disputed": "excluded: only drugs whose REM effect is disputed (trazodone, bupropion)",
        "unclassified": "excluded: antidepressant user without a drug of the REM table "
                        "dispensed often enough",
        "no antidepressant": "not an antidepressant user",
    }
    counts = pd.Series(cls).value_counts()
    table = pd.DataFrame({"patients": [int(counts.get(g, 0)) for g in reasons],
                          "status": list(reasons.values())},
                         index=pd.Index(list(reasons), name="group"))
    return pd.Series(cls, index=frame.index, name=GROUP), table


def match_nearest(distance: np.ndarray, treat: np.ndarray, caliper: float | None = 0.2,
                  *, order: str = "largest") -> tuple[np.ndarray, float | None]:
    """1:1 nearest-neighbour matching without replacement, as MatchIt 4.5 (``nearest``).

    Parameters
    ----------
    distance : ndarray
        The distance measure (here the logit propensity score) of every unit.
    treat : ndarray of 0/1
        1 for the focal ("treated") group, matched in turn.
    caliper : float or None
        In standard deviations of ``distance`` over all units (``std.caliper``).
    order : {"largest", "smallest", "data"}
        Order in which treated units are matched (MatchIt's ``m.order``).

    Returns
    -------
    pair : ndarray of int
        Pair number (1, 2, ...) of every matched unit, 0 for unmatched units
        (numbered in the order treated units appear in the data, as MatchIt's
        ``subclass``).
    caliper_width : float or None
        The caliper on the distance scale.
    """
    distance = np.asarray(distance, dtype=float)
    treat = np.asarray(treat).astype(int)
    n = len(distance)
    width = None if caliper is None else float(caliper) * float(np.std(distance, ddof=1))
    pos_sorted = np.argsort(distance, kind="stable")  # R's order(distance)
    where = np.empty(n, dtype=int)
    where[pos_sorted] = np.arange(n)
    treated = np.flatnonzero(treat == 1)
    if order == "largest":
        seq = treated[np.argsort(-distance[treated], kind="stable")]
    elif order == "smallest":
        seq = treated[np.argsort(distance[treated], kind="stable")]
    else:
        seq = treated
    eligible = treat == 0
    match_of = np.full(n, -1)
    for t in seq:
        ii = where[t]
        found = []  # (distance, unit): nearest eligible control on the left, then right
        for direction in (-1, 1):
            j = ii
            while True:
                j += direction
                if j < 0 or j >= n:
                    break
                u = pos_sorted[j]
                if not eligible[u]:
                    continue
                dist = abs(distance[t] - distance[u])
                if width is not None and dist > width:
                    break
                found.append((dist, u))
                break
        if not found:
            continue
        best = found[0]
        if len(found) == 2 and found[1][0] < found[0][0]:  # a tie goes to the left
            best = found[1]
        eligible[best[1]] = False
        match_of[t] = best[1]
    pair = np.zeros(n, dtype=int)
    k = 0
    for t in treated:  # subclass numbers follow the data order of treated units
        if match_of[t] >= 0:
            k += 1
            pair[t] = k
            pair[match_of[t]] = k
    return pair, width


def _smd(x: np.ndarray, treat: np.ndarray, keep: np.ndarray | None = None) -> tuple:
    t1 = treat == 1
    binary = bool(np.all((x == 0) | (x == 1)))
    xt = x[t1]
    sd = np.sqrt(xt.mean() * (1 - xt.mean())) if binary else np.std(xt, ddof=1)
    sel = np.ones(len(x), dtype=bool) if keep is None else keep
    mt, mc = x[sel & t1].mean(), x[sel & ~t1].mean()
    diff = mt - mc
    return mt, mc, (diff / sd if abs(diff) > np.sqrt(np.finfo(float).eps) else diff)


def rem_survival_comparison(
    cohort: Any,
    horizon_months: float = 24,
    match_on: Sequence[str] = ("age_at_dx", "sex"),
    *,
    rem_table: pd.DataFrame | None = None,
    caliper: float | None = 0.2,
    origin: str = "diagnosis",
    level: float = 0.95,
) -> RemComparisonResult:
    """Compare survival on REM-suppressing and non-suppressing antidepressants.

    Parameters
    ----------
    cohort : Cohort or DataFrame
        A cohort with dispensings (its survival frame is used), or a survival frame
        with ``months``, ``event``, ``antidepressant`` and the REM flags of
        :func:`alsfrs.derive_exposures`.
    horizon_months : float
        Survival is reported at this time (24: two-year survival).
    match_on : sequence of str
        Covariates of the propensity score (Fowler: age, sex, race).
    rem_table : DataFrame, optional
        A replacement for :data:`alsfrs.exposure.REM_SUPPRESSION` (the cohort's
        dispensings are then re-classified with the cohort's exposure definition).
    caliper : float or None
        Caliper in SDs of the logit propensity; ``None`` for none.
    origin : {"diagnosis", "onset"}
        Time origin of the survival frame.
    level : float
        Confidence level.

    Returns
    -------
    RemComparisonResult
    """
    if isinstance(cohort, pd.DataFrame):
        frame = cohort.reset_index(drop=True)
    else:
        frame = cohort.survival_frame(origin=origin)
        if rem_table is not None:
            frame = _reclassify(cohort, frame, rem_table)
    cls, counts = rem_groups(frame)
    keep = cls.isin(["suppressing", "non_suppressing"]).to_numpy()
    a = frame.loc[keep].reset_index(drop=True)
    a[GROUP] = cls[keep].to_numpy()
    a[TREAT] = (a[GROUP] == "non_suppressing").astype(int)
    n1, n0 = int(a[TREAT].sum()), int((a[TREAT] == 0).sum())
    if n1 < 2 or n0 < 2:
        raise ValidationError(Problem(rule="too_few_patients", message=(
            f"the comparison needs patients in both REM classes (non-suppressing {n1}, "
            f"suppressing {n0})")), context="the REM comparison")
    missing = [c for c in match_on if c not in a.columns]
    if missing:
        raise ValidationError([Problem(rule="unknown_column", column=c, message=(
            f"match_on uses {c!r}, which is not a patient covariate")) for c in missing],
            context="the REM comparison")

    km_all = kaplan_meier(f"Surv(months, event) ~ {GROUP}", a, level=level)
    crude = fit_cox(f"Surv(months, event) ~ {TREAT}", a, level=level)

    # propensity score (logistic regression, logit scale)
    import statsmodels.api as sm

    design = build_design(" + ".join(match_on), a, variable_order=tuple(match_on))
    glm = sm.GLM(a[TREAT].to_numpy(dtype=float), design.X,
                 family=sm.families.Binomial()).fit(tol=1e-12, maxiter=100)
    logit_ps = design.X @ glm.params
    pair, width = match_nearest(logit_ps, a[TREAT].to_numpy(), caliper)
    a["pair"] = pair
    a["logit_ps"] = logit_ps
    m = a[pair > 0].reset_index(drop=True)
    if m[TREAT].sum() < 2:
        raise ValidationError(Problem(rule="too_few_matches", message=(
            "fewer than two matched pairs within the caliper")), context="the REM comparison")
    km_matched = kaplan_meier(f"Surv(months, event) ~ {GROUP}", m, level=level)
    matched = fit_cox(f"Surv(months, event) ~ {TREAT} + cluster(pair)", m, level=level)

    # balance
    treat = a[TREAT].to_numpy()
    cols = {"distance": logit_ps}
    for j, name in enumerate(design.names):
        if name != "(Intercept)":
            cols[name] = design.X[:, j]
    rows = []
    for name, x in cols.items():
        b = _smd(x, treat)
        af = _smd(x, treat, pair > 0)
        rows.append((name, *b, *af))
    balance = pd.DataFrame(rows, columns=[
        "covariate", "mean_non_suppressing_before", "mean_suppressing_before", "smd_before",
        "mean_non_suppressing_after", "mean_suppressing_after", "smd_after"]
    ).set_index("covariate")

    hr_rows = []
    tag = f"{100 * level:g}".replace(".", "_")
    for label, fit, km, data in (("crude", crude, km_all, a),
                                 ("propensity matched", matched, km_matched, m)):
        s = fit.summary().iloc[0]
        at = km.at(horizon_months).set_index("group")
        hr_rows.append({
            "analysis": label, "hazard_ratio": s["hazard_ratio"],
            f"ci_lower_{tag}": s[f"ci_lower_{tag}"], f"ci_upper_{tag}": s[f"ci_upper_{tag}"],
            "p": s["p"], "se": s["se"], "robust_se": s["robust_se"],
            "n_non_suppressing": int(data[TREAT].sum()),
            "n_suppressing": int((data[TREAT] == 0).sum()),
            "events": int(data["event"].sum()),
            "survival_non_suppressing": at.loc[f"{GROUP}=non_suppressing", "survival"],
            "survival_suppressing": at.loc[f"{GROUP}=suppressing", "survival"],
        })
    survival = pd.concat([
        km_all.at(horizon_months).assign(analysis="crude"),
        km_matched.at(horizon_months).assign(analysis="propensity matched")],
        ignore_index=True)
    survival["group"] = survival["group"].str.replace(f"{GROUP}=", "", regex=False)
    survival = survival.set_index(["analysis", "group"])
    ps = pd.DataFrame({"coef": np.asarray(glm.params), "se": np.asarray(glm.bse)},
                      index=pd.Index(design.names, name="term"))
    return RemComparisonResult(
        horizon_months=float(horizon_months), match_on=list(match_on), caliper=caliper,
        caliper_width=width, level=level, counts=counts,
        hazard_ratios=pd.DataFrame(hr_rows).set_index("analysis"), survival=survival,
        balance=balance, propensity_model=ps, curves_all=km_all.curves,
        curves_matched=km_matched.curves,
        n_unmatched=int(((pair == 0) & (treat == 1)).sum()))


def _reclassify(cohort: Any, frame: pd.DataFrame, rem_table: pd.DataFrame) -> pd.DataFrame:
    from alsfrs.exposure import derive_exposures

    if "dispensings" not in getattr(cohort, "tables", {}):
        raise ValidationError(Problem(rule="no_dispensings", message=(
            "a REM table can only be applied to a cohort with dispensings")))
    definition = dict(cohort.exposure_definition or {})
    ex = derive_exposures(cohort.tables["dispensings"], cohort.tables["patients"],
                          lag_months=definition.get("lag_months", 12.0),
                          lookback_months=definition.get("lookback_months"),
                          min_dispensings=definition.get("min_dispensings", 2),
                          rem_table=rem_table)
    out = frame.drop(columns=[c for c in _FLAGS if c in frame.columns])
    return out.join(ex[list(_FLAGS)], on="patient_id")


class RemComparisonResult(Result):
    """The REM-suppression survival comparison (:func:`rem_survival_comparison`)."""

    kind: ClassVar[str] = "rem"

    def __init__(self, *, horizon_months: float, match_on: list[str], caliper: float | None,
                 caliper_width: float | None, level: float, counts: pd.DataFrame,
                 hazard_ratios: pd.DataFrame, survival: pd.DataFrame, balance: pd.DataFrame,
                 propensity_model: pd.DataFrame, curves_all: pd.DataFrame,
                 curves_matched: pd.DataFrame, n_unmatched: int) -> None:
        self.horizon_months = horizon_months
        self.match_on = list(match_on)
        self.caliper = caliper
        self.caliper_width = caliper_width
        self.level = float(level)
        self.counts = counts
        self.hazard_ratios = hazard_ratios
        self.survival = survival
        self.balance = balance
        self.propensity_model = propensity_model
        self.curves_all = curves_all
        self.curves_matched = curves_matched
        self.n_unmatched = int(n_unmatched)

    def kaplan_meier(self, matched: bool = False) -> KaplanMeierResult:
        """The Kaplan–Meier curves by REM class (all patients or the matched sample)."""
        return KaplanMeierResult(formula=f"Surv(months, event) ~ {GROUP}",
                                 curves=self.curves_matched if matched else self.curves_all,
                                 level=self.level, groups=[GROUP], logrank=None)

    def plot(self, matched: bool = False, ax: Any = None) -> Any:
        """Kaplan–Meier curves by REM class with the number at risk."""
        return self.kaplan_meier(matched).plot(ax=ax)

    def summary(self) -> pd.DataFrame:
        return self.hazard_ratios

    def diagnostics(self) -> pd.DataFrame:
        worst = float(self.balance.drop(index="distance")["smd_after"].abs().max())
        n1 = int(self.hazard_ratios.loc["crude", "n_non_suppressing"])
        return diagnostics_frame([
            ("largest |SMD| after matching", worst, "< 0.1", worst < 0.1,
             "standardised mean differences of the matching covariates"),
            ("non-suppressing users matched", (n1 - self.n_unmatched) / n1,
             ">= 0.9 of the non-suppressing users", (n1 - self.n_unmatched) / n1 >= 0.9,
             f"{self.n_unmatched} without a match within the caliper"),
        ])

    @property
    def model_spec(self) -> ModelRecord:
        return ModelRecord(
            formula=f"Surv(months, event) ~ {TREAT}",
            engine="rem",
            settings={"horizon_months": self.horizon_months, "match_on": self.match_on,
                      "caliper_sd_logit_ps": self.caliper, "matching": "1:1 nearest, "
                      "without replacement, largest first (MatchIt nearest)",
                      "level": self.level})

    def _display(self) -> Display:
        tag = f"{100 * self.level:g}".replace(".", "_")
        hr = self.hazard_ratios[["hazard_ratio", f"ci_lower_{tag}", f"ci_upper_{tag}", "p",
                                 "n_non_suppressing", "n_suppressing",
                                 "survival_non_suppressing", "survival_suppressing"]]
        return Display(
            title="Survival on REM-suppressing vs non-suppressing antidepressants",
            header=[("horizon", f"{self.horizon_months:g} months"),
                    ("propensity score", "logistic on " + ", ".join(self.match_on)),
                    ("matching", "1:1 nearest neighbour without replacement, caliper "
                     + ("none" if self.caliper is None else
                        f"{self.caliper:g} SD of the logit PS ({self.caliper_width:.4g})"))],
            tables=[DisplayTable("Hazard ratio, non-suppressing vs suppressing", hr),
                    DisplayTable(f"Survival at {self.horizon_months:g} months", self.survival),
                    DisplayTable("Balance (standardised mean differences)", self.balance),
                    DisplayTable("Patients by REM class", self.counts)],
            notes=["matched HR uses robust SEs clustered on the matched pair"])

    def _to_payload(self) -> Payload:
        return Payload(
            fields={"horizon_months": self.horizon_months, "match_on": self.match_on,
                    "caliper": self.caliper, "caliper_width": self.caliper_width,
                    "level": self.level, "n_unmatched": self.n_unmatched},
            tables={"counts": self.counts.reset_index(),
                    "hazard_ratios": self.hazard_ratios.reset_index(),
                    "survival": self.survival.reset_index(),
                    "balance": self.balance.reset_index(),
                    "propensity_model": self.propensity_model.reset_index(),
                    "curves_all": self.curves_all, "curves_matched": self.curves_matched})

    @classmethod
    def _from_payload(cls, payload: Payload) -> RemComparisonResult:
        t = payload.tables
        return cls(**payload.fields, counts=t["counts"].set_index("group"),
                   hazard_ratios=t["hazard_ratios"].set_index("analysis"),
                   survival=t["survival"].set_index(["analysis", "group"]),
                   balance=t["balance"].set_index("covariate"),
                   propensity_model=t["propensity_model"].set_index("term"),
                   curves_all=t["curves_all"], curves_matched=t["curves_matched"])
