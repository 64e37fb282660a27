"""Kaplan–Meier curves and the log-rank test, with R's numbers (``survfit``, ``survdiff``).

:func:`kaplan_meier` estimates survival by group with R ``survfit``'s defaults:
Greenwood's variance of the cumulative hazard and confidence intervals on the
log scale (``conf.type = "log"``: ``S · exp(±z · se)``, the upper limit capped
at 1), the median with R's rule (the first time the curve is at or below 0.5;
the midpoint to the next drop when the curve sits exactly at 0.5) and its
interval (the same rule on the lower and upper curves), survival at chosen
times (:meth:`KaplanMeierResult.at`) and the log-rank test (``survdiff``,
``rho = 0``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import linalg, stats

from alsfrs.errors import Problem, ValidationError
from alsfrs.formula import _split_top
from alsfrs.results import Display, DisplayTable, ModelRecord, Payload, Result, diagnostics_frame
from alsfrs.survival.frame import survival_data
from alsfrs.survival.surv import parse_surv_formula

__all__ = ["KaplanMeierResult", "kaplan_meier", "logrank_test"]

CURVE_COLUMNS = ["group", "time", "n_risk", "n_event", "n_censor", "survival", "std_err",
                 "lower", "upper"]


def _km_steps(stop: np.ndarray, event: np.ndarray, start: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Event times and the Kaplan–Meier survival just after each (one group)."""
    ev = np.asarray(event).astype(bool)
    t = np.unique(stop[ev])
    d = np.searchsorted(np.sort(stop[ev]), t, side="right") - np.searchsorted(
        np.sort(stop[ev]), t, side="left")
    n = len(stop) - np.searchsorted(np.sort(stop), t, side="left")
    if start is not None:
        n = n - (len(start) - np.searchsorted(np.sort(start), t, side="left"))
    return t, np.cumprod(1.0 - d / n)


def _curve(stop: np.ndarray, event: np.ndarray, start: np.ndarray | None, z: float
           ) -> pd.DataFrame:
    ev = np.asarray(event).astype(bool)
    times = np.unique(stop)
    ss = np.sort(stop)
    se_ = np.sort(stop[ev])
    n_risk = len(stop) - np.searchsorted(ss, times, side="left")
    if start is not None:
        n_risk = n_risk - (len(start) - np.searchsorted(np.sort(start), times, side="left"))
    n_at = np.searchsorted(ss, times, side="right") - np.searchsorted(ss, times, side="left")
    d = np.searchsorted(se_, times, side="right") - np.searchsorted(se_, times, side="left")
    surv = np.cumprod(1.0 - d / n_risk)
    with np.errstate(divide="ignore", invalid="ignore"):
        inc = np.where(d > 0, d / (n_risk * (n_risk - d)), 0.0)
    std_err = np.sqrt(np.cumsum(inc))
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = surv > 0
        lower = np.where(ok, np.exp(np.log(np.where(ok, surv, 1)) - z * std_err), np.nan)
        upper = np.where(ok, np.minimum(np.exp(np.log(np.where(ok, surv, 1)) + z * std_err), 1),
                         np.nan)
    with np.errstate(invalid="ignore"):
        std_err = np.where(np.isfinite(std_err), surv * std_err, np.nan)  # SE of S (Greenwood)
    lower = np.where(np.isfinite(lower), lower, np.nan)
    upper = np.where(np.isfinite(upper), upper, np.nan)
    return pd.DataFrame({"time": times, "n_risk": n_risk.astype(int), "n_event": d.astype(int),
                         "n_censor": (n_at - d).astype(int), "survival": surv,
                         "std_err": std_err, "lower": lower, "upper": upper})


def _minmin(y: np.ndarray, x: np.ndarray) -> float:
    """R's rule for the median of a survival curve (``print.survfit``)."""
    tol = np.finfo(float).eps ** 0.5
    keep = ~np.isnan(y) & (y < 0.5 + tol)
    if not keep.any():
        return float("nan")
    x, y = x[keep], y[keep]
    if abs(y[0] - 0.5) < tol and np.any(y < y[0]):
        return float((x[0] + x[np.flatnonzero(y < y[0])[0]]) / 2)
    return float(x[0])


def _groups_formula(formula: str) -> tuple[str, list[str]]:
    f = parse_surv_formula(formula, allow_cluster=False)
    groups = list(f.strata)
    if f.has_covariates:
        for term in _split_top(f.rhs, "+"):
            t = term.strip().strip("`")
            if not t.replace("_", "a").replace(".", "a").isalnum():
                raise ValidationError(Problem(rule="malformed_formula", message=(
                    f"Kaplan–Meier groups must be column names, got {term.strip()!r}")),
                    context="the Kaplan–Meier formula")
            groups.append(t)
    lhs = "Surv(" + ", ".join(f.outcome_columns) + ")"
    rhs = f"strata({', '.join(groups)})" if groups else "1"
    return f"{lhs} ~ {rhs}", groups


def kaplan_meier(formula: Any, data: Any = None, *, time: str = "months",
                 event: str = "event", group: str | None = None, level: float = 0.95
                 ) -> KaplanMeierResult:
    """Kaplan–Meier survival curves by group, as R's ``survfit(Surv(...) ~ group)``.

    Parameters
    ----------
    formula : str, or the data
        ``"Surv(months, event) ~ 1"`` for one curve, ``"Surv(months, event) ~ sex"``
        or ``"~ sex + onset_site"`` for a curve per (combination of) level(s).
        ``Surv(start, stop, event)`` (left truncation) is accepted. Instead of a
        formula the data may come first: ``kaplan_meier(frame, group="sex")``
        (with ``time`` and ``event`` naming the columns).
    data : DataFrame or Cohort
        E.g. :meth:`Cohort.survival_frame` (a Cohort is used through it).
    time, event, group : str
        Column names when no formula is given.
    level : float
        Confidence level of the pointwise intervals.

    Returns
    -------
    KaplanMeierResult
    """
    if not isinstance(formula, str):
        if data is not None:
            raise ValidationError(Problem(rule="bad_option", message=(
                "give a formula and the data, or the data alone with time=, event=, group=")))
        formula, data = f"Surv({time}, {event}) ~ {group or 1}", formula
    inner, groups = _groups_formula(formula)
    sd = survival_data(inner, data, covariates=False, allow_cluster=False,
                       context="the Kaplan–Meier data")
    z = stats.norm.ppf(0.5 + level / 2)
    parts = []
    for s, label in enumerate(sd.strata_labels):
        rows = sd.strata == s
        c = _curve(sd.stop[rows], sd.event[rows], None if sd.start is None else sd.start[rows], z)
        c.insert(0, "group", label if groups else "all")
        parts.append(c)
    curves = pd.concat(parts, ignore_index=True)
    lr = None
    if len(sd.strata_labels) > 1 and sd.start is None:
        lr = logrank_test(sd.stop, sd.event, sd.strata, [str(g) for g in sd.strata_labels])
    return KaplanMeierResult(formula=formula, curves=curves, level=level, groups=groups,
                             logrank=lr)


def logrank_test(time: np.ndarray, event: np.ndarray, group: np.ndarray,
                 labels: list[str] | None = None) -> pd.DataFrame:
    """The log-rank test (R's ``survdiff``, ``rho = 0``).

    Returns
    -------
    DataFrame
        One row per group: ``n``, ``observed``, ``expected``, ``(O-E)^2/E``,
        ``(O-E)^2/V``; ``attrs["chisq"]``, ``attrs["df"]``, ``attrs["p"]``.
    """
    time = np.asarray(time, dtype=float)
    ev = np.asarray(event).astype(bool)
    g = np.asarray(group)
    G = int(g.max()) + 1
    labels = labels or [str(i) for i in range(G)]
    t = np.unique(time[ev])
    n_t = np.zeros((len(t), G))
    d_t = np.zeros((len(t), G))
    for k in range(G):
        sk = np.sort(time[g == k])
        ek = np.sort(time[(g == k) & ev])
        n_t[:, k] = len(sk) - np.searchsorted(sk, t, side="left")
        d_t[:, k] = np.searchsorted(ek, t, side="right") - np.searchsorted(ek, t, side="left")
    n = n_t.sum(axis=1)
    d = d_t.sum(axis=1)
    obs = d_t.sum(axis=0)
    E = (d[:, None] * n_t / n[:, None]).sum(axis=0)
    w = np.where(n > 1, d * (n - d) / np.maximum(n - 1, 1), 0.0) / n ** 2
    V = np.diag((w[:, None] * n_t * n[:, None]).sum(axis=0)) - (w[:, None, None] * n_t[:, :, None]
                                                                  * n_t[:, None, :]).sum(axis=0)
    diff = obs - E
    chisq = float(diff[:-1] @ linalg.solve(V[:-1, :-1], diff[:-1]))
    out = pd.DataFrame({"n": [int((g == k).sum()) for k in range(G)], "observed": obs,
                        "expected": E, "(O-E)^2/E": diff ** 2 / E,
                        "(O-E)^2/V": diff ** 2 / np.diag(V)},
                       index=pd.Index(labels, name="group"))
    out.attrs.update(chisq=chisq, df=G - 1, p=float(stats.chi2.sf(chisq, G - 1)))
    return out


class KaplanMeierResult(Result):
    """Kaplan–Meier curves (:func:`kaplan_meier`).

    Attributes
    ----------
    curves : DataFrame
        One row per group and distinct time: ``group, time, n_risk, n_event,
        n_censor, survival, std_err`` (Greenwood standard error of the survival,
        as R's ``summary.survfit``), ``lower``, ``upper`` (log-transformed interval).
    """

    kind: ClassVar[str] = "km"

    def __init__(self, *, formula: str, curves: pd.DataFrame, level: float,
                 groups: list[str], logrank: pd.DataFrame | None) -> None:
        self.formula = formula
        self.curves = curves
        self.level = float(level)
        self.groups = list(groups)
        self._logrank = logrank

    @property
    def group_labels(self) -> list[str]:
        """Groups in R's order (``"sex=F"``, ``"sex=M"``; ``"all"`` for one curve)."""
        return list(dict.fromkeys(self.curves["group"]))

    def at(self, times: Any) -> pd.DataFrame:
        """Survival, interval and number at risk at ``times`` (R's ``summary(fit, times)``).

        Returns one row per group and time: ``group, time, survival, lower, upper,
        n_risk`` (patients still at risk at that time).
        """
        times = np.atleast_1d(np.asarray(times, dtype=float))
        rows = []
        for g, c in self.curves.groupby("group", sort=False):
            t = c["time"].to_numpy()
            idx = np.searchsorted(t, times, side="right") - 1
            nxt = np.searchsorted(t, times, side="left")
            n0 = int(c["n_risk"].iloc[0])
            for j, tt in enumerate(times):
                i = idx[j]
                s, lo, up = ((1.0, 1.0, 1.0) if i < 0 else
                             tuple(c[["survival", "lower", "upper"]].iloc[i]))
                n_risk = int(c["n_risk"].iloc[nxt[j]]) if nxt[j] < len(c) else 0
                if i < 0 and nxt[j] == 0:
                    n_risk = n0
                rows.append((g, tt, float(s), float(lo), float(up), n_risk))
        return pd.DataFrame(rows, columns=["group", "time", "survival", "lower", "upper",
                                           "n_risk"])

    def median(self) -> pd.DataFrame:
        """Median survival time per group with its interval (R's ``print.survfit``)."""
        tag = _pct(self.level)
        rows = []
        for g, c in self.curves.groupby("group", sort=False):
            t = c["time"].to_numpy()
            rows.append((g, int(c["n_risk"].iloc[0]), int(c["n_event"].sum()),
                         _minmin(c["survival"].to_numpy(), t),
                         _minmin(c["lower"].to_numpy(), t), _minmin(c["upper"].to_numpy(), t)))
        return pd.DataFrame(rows, columns=["group", "n", "events", "median",
                                           f"ci_lower_{tag}", f"ci_upper_{tag}"]
                            ).set_index("group")

    @property
    def has_logrank(self) -> bool:
        """Whether the log-rank test is available (two or more groups, right-censored)."""
        return self._logrank is not None

    def logrank(self) -> pd.DataFrame:
        """The log-rank test (``attrs`` hold ``chisq``, ``df``, ``p``)."""
        if self._logrank is None:
            raise ValidationError(Problem(rule="no_groups", message=(
                "the log-rank test needs two or more groups of right-censored data")))
        return self._logrank

    def number_at_risk(self, times: Any) -> pd.DataFrame:
        """Patients at risk at ``times`` by group: rows groups, columns times."""
        a = self.at(times)
        return a.pivot(index="group", columns="time", values="n_risk").loc[self.group_labels]

    def plot(self, ax: Any = None, *, risk_table: bool = True, times: Any = None,
             xlabel: str = "months", confidence: bool = True) -> Any:
        """Kaplan–Meier curves with a number-at-risk table under the plot."""
        from alsfrs.survival.plots import plot_km

        return plot_km(self, ax=ax, risk_table=risk_table, times=times, xlabel=xlabel,
                       confidence=confidence)

    # -- contract ------------------------------------------------------------------------
    def summary(self) -> pd.DataFrame:
        return self.median()

    def diagnostics(self) -> pd.DataFrame:
        rows = []
        for g, c in self.curves.groupby("group", sort=False):
            last = float(c["survival"].iloc[-1])
            rows.append((f"median reached ({g})", last, "survival falls to 0.5 or below",
                         last <= 0.5, "" if last <= 0.5 else "median not estimable"))
        return diagnostics_frame(rows)

    @property
    def model_spec(self) -> ModelRecord:
        return ModelRecord(formula=self.formula, engine="km",
                           settings={"conf_type": "log", "variance": "Greenwood",
                                     "level": self.level})

    def _display(self) -> Display:
        tables = [DisplayTable("Median survival", self.median())]
        notes = []
        if self._logrank is not None:
            lr = self._logrank
            tables.append(DisplayTable("Log-rank test", lr))
            notes.append(f"log-rank chi-square {lr.attrs['chisq']:.3f} on {lr.attrs['df']} df, "
                         f"p = {lr.attrs['p']:.3g}")
        return Display(title="Kaplan–Meier survival", header=[("formula", self.formula)],
                       tables=tables, notes=notes)

    def _to_payload(self) -> Payload:
        tables = {"curves": self.curves}
        fields: dict[str, Any] = {"formula": self.formula, "level": self.level,
                                  "groups": self.groups}
        if self._logrank is not None:
            tables["logrank"] = self._logrank.reset_index()
            fields["logrank_attrs"] = dict(self._logrank.attrs)
        return Payload(fields=fields, tables=tables)

    @classmethod
    def _from_payload(cls, payload: Payload) -> KaplanMeierResult:
        f = payload.fields
        lr = payload.tables.get("logrank")
        if lr is not None:
            lr = lr.set_index("group")
            lr.attrs.update(f["logrank_attrs"])
        return cls(formula=f["formula"], curves=payload.tables["curves"], level=f["level"],
                   groups=list(f["groups"]), logrank=lr)


def _pct(level: float) -> str:
    return f"{100 * level:g}".replace(".", "_")
