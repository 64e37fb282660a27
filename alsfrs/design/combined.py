"""CAFS: the Combined Assessment of Function and Survival (Berry et al. 2013).

Every patient is compared with every other patient:

1. **Survival first.** If both died (death or invasive ventilation) by the
   horizon, the one who died later wins; equal times (within ``time_tie``)
   score 0. If only one died by the horizon, the other wins — provided the
   other is known to have outlived them (see *censoring* below).
2. **Then function.** If neither died by the horizon, the one with the larger
   change in ALSFRS-R from baseline (the smaller decline) wins; changes within
   ``change_tie`` of each other (default 0: exactly equal) score 0.

A win scores +1, a loss −1, a tie or an undecidable pair 0. A patient's CAFS
score is the sum over all other patients; the scores are ranked (average ranks
for ties; higher rank = better outcome).

Censoring before the horizon (``censored=``), for a patient lost to follow-up
alive at time ``c`` before the horizon, whose change is the last observed one:

``"gehan"`` (default)
    Against a patient who died at ``T``: wins if ``c >= T`` (known to have
    outlived them), otherwise the pair is undecidable (0). Against a patient
    who did not die: compared on the last observed change.
``"alive"``
    Treated as alive at the horizon: wins against every death; compared on the
    last observed change.
``"zero"``
    As ``"gehan"`` against deaths; every functional comparison involving the
    patient scores 0.

Deaths after the horizon count as alive at the horizon. The group comparison is
the Finkelstein–Schoenfeld test (the sum of the treated group's scores against
its permutation variance ``n1 n0 / (N (N − 1)) Σ U_i²``) or, with
``test="rank_ancova"``, least squares of the ranks on the group and
covariates. Scoring is O(N log N) (sorting and binary search), so 10,000
patients take milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from alsfrs.errors import Problem, ValidationError
from alsfrs.results import (
    Display,
    DisplayTable,
    ModelRecord,
    Payload,
    Result,
    diagnostics_frame,
)

__all__ = ["CENSORING_RULES", "CafsResult", "cafs", "cafs_frame", "pairwise_wins"]

CENSORING_RULES = ("gehan", "alive", "zero")


@dataclass
class _Set:
    died: np.ndarray  # bool
    t: np.ndarray  # death time (died) or censoring time (others)
    censored: np.ndarray  # bool: alive, follow-up ended before the horizon
    change: np.ndarray

    def subset(self, mask: np.ndarray) -> _Set:
        return _Set(self.died[mask], self.t[mask], self.censored[mask], self.change[mask])


def _count_less(sorted_v: np.ndarray, x: np.ndarray, tol: float) -> np.ndarray:
    """#(v < x - tol) for each x."""
    return np.searchsorted(sorted_v, x - tol, side="left")


def _count_greater(sorted_v: np.ndarray, x: np.ndarray, tol: float) -> np.ndarray:
    """#(v > x + tol) for each x."""
    return sorted_v.size - np.searchsorted(sorted_v, x + tol, side="right")


def pairwise_wins(x: _Set, y: _Set, censored: str = "gehan", time_tie: float = 0.0,
                  change_tie: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Wins and losses of each patient of ``x`` against all patients of ``y``."""
    wins = np.zeros(x.died.size, dtype=np.int64)
    losses = np.zeros(x.died.size, dtype=np.int64)
    yd = np.sort(y.t[y.died])
    yc = np.sort(y.t[y.censored])
    n_y_complete = int((~y.died & ~y.censored).sum())
    # -- patients of x who died -----------------------------------------------------------
    d = x.died
    if d.any():
        T = x.t[d]
        wins[d] += _count_less(yd, T, time_tie)
        losses[d] += _count_greater(yd, T, time_tie) + n_y_complete
        if censored == "alive":
            losses[d] += yc.size
        else:  # censored at or after the death: known to have outlived it
            losses[d] += yc.size - np.searchsorted(yc, T, side="left")
    # -- patients of x alive at their last follow-up ------------------------------------
    a = ~x.died
    if a.any():
        comp = a & ~x.censored
        cen = a & x.censored
        wins[comp] += yd.size
        if censored == "alive":
            wins[cen] += yd.size
        else:
            wins[cen] += np.searchsorted(yd, x.t[cen], side="right")
        # function: against the patients of y who did not die
        pool = ~y.died if censored != "zero" else (~y.died & ~y.censored)
        ych = np.sort(y.change[pool])
        who = a if censored != "zero" else comp
        if who.any():
            ch = x.change[who]
            wins[who] += _count_less(ych, ch, change_tie)
            losses[who] += _count_greater(ych, ch, change_tie)
    return wins, losses


def _as_set(frame: pd.DataFrame, time: str, event: str, change: str, horizon: float) -> _Set:
    t = frame[time].to_numpy(dtype=float)
    ev = frame[event].to_numpy(dtype=float).astype(bool)
    died = ev & (t <= horizon)
    censored = ~died & (t < horizon) & ~ev
    tt = np.where(died | censored, t, horizon)
    return _Set(died, tt, censored, frame[change].to_numpy(dtype=float))


def _validate(patients: Any, cols: dict[str, str], id_col: str, horizon: float,
              censored: str) -> pd.DataFrame:
    if not isinstance(patients, pd.DataFrame):
        raise ValidationError(Problem(rule="bad_input", message="cafs needs a DataFrame with one "
                                      f"row per patient, got {type(patients).__name__}"))
    frame = patients.copy()
    if id_col in frame.columns:
        frame = frame.set_index(id_col)
    problems = []
    for role, c in cols.items():
        if c not in frame.columns:
            problems.append(Problem(rule="missing_column", column=c,
                                    message=f"no {role} column {c!r}"))
    if censored not in CENSORING_RULES:
        problems.append(Problem(rule="bad_setting", column="censored",
                                message=f"censored must be one of {CENSORING_RULES}, "
                                        f"got {censored!r}"))
    if not np.isfinite(horizon) or horizon <= 0:
        problems.append(Problem(rule="bad_setting", column="horizon_months",
                                message=f"horizon_months must be > 0, got {horizon!r}"))
    if problems:
        raise ValidationError(problems, context="CAFS")
    if frame.index.has_duplicates:
        dup = frame.index[frame.index.duplicated()].unique()[:5].tolist()
        problems.append(Problem(rule="duplicate_patient", column=id_col,
                                message=f"one row per patient is needed; repeated: {dup}"))
    t = pd.to_numeric(frame[cols["time"]], errors="coerce")
    ev = pd.to_numeric(frame[cols["event"]], errors="coerce")
    ch = pd.to_numeric(frame[cols["change"]], errors="coerce")
    for pid in frame.index[t.isna() | (t < 0)][:20]:
        problems.append(Problem(rule="bad_time", patient=str(pid), column=cols["time"],
                                message="time must be a number >= 0"))
    for pid in frame.index[~ev.isin([0, 1])][:20]:
        problems.append(Problem(rule="bad_event", patient=str(pid), column=cols["event"],
                                message="event must be 0 or 1"))
    died = (ev == 1) & (t <= horizon)
    for pid in frame.index[~died & ev.isin([0, 1]) & ~np.isfinite(ch)][:20]:
        problems.append(Problem(rule="missing_change", patient=str(pid), column=cols["change"],
                                message="patients alive at the horizon (or censored) need a "
                                        "finite change from baseline"))
    if frame[cols["group"]].isna().any():
        for pid in frame.index[frame[cols["group"]].isna()][:20]:
            problems.append(Problem(rule="missing_group", patient=str(pid),
                                    column=cols["group"], message="group is missing"))
    elif frame[cols["group"]].nunique() != 2:
        problems.append(Problem(rule="bad_group", column=cols["group"],
                                message=f"CAFS compares two groups; found "
                                        f"{frame[cols['group']].nunique()}"))
    if problems:
        raise ValidationError(problems, context="CAFS")
    frame[cols["time"]] = t.astype(float)
    frame[cols["event"]] = ev.astype(int)
    frame[cols["change"]] = ch.astype(float)
    return frame


def cafs(patients: pd.DataFrame, *, group: str = "arm", time: str = "time",
         event: str = "event", change: str = "change", horizon_months: float = 12.0,
         treatment: Any = None, censored: str = "gehan", time_tie: float = 0.0,
         change_tie: float = 0.0, test: str = "finkelstein-schoenfeld",
         covariates: Sequence[str] | None = None, id: str = "patient_id") -> CafsResult:
    """Score and rank patients by CAFS and compare two groups.

    Parameters
    ----------
    patients : DataFrame
        One row per patient (``id`` column or index): ``time`` to death/IMV or
        to the end of follow-up (months from baseline), ``event`` (1 = died or
        invasive ventilation), ``change`` in ALSFRS-R from baseline to the
        horizon (or to the last visit for patients censored before it; may be
        missing for patients who died before the horizon), and ``group``.
        Build it from a Cohort with :func:`cafs_frame`.
    group : str
        Column with exactly two groups.
    horizon_months : float, default 12
    treatment : optional
        The group level tested as "treatment" (default: the larger sorted level).
    censored : {"gehan", "alive", "zero"}
        Rule for patients censored alive before the horizon (module docstring).
    time_tie, change_tie : float, default 0
        Differences at most this large are ties (score 0).
    test : {"finkelstein-schoenfeld", "rank_ancova"}
    covariates : sequence of str, optional
        Covariates of the rank ANCOVA (least squares of the ranks on the group
        and covariates).

    Returns
    -------
    CafsResult
        ``.scores`` (index patient id; ``group``, ``score``, ``rank``, ``wins``,
        ``losses``) and ``.test`` (one row: statistic, p value, mean ranks).
    """
    cols = {"group": group, "time": time, "event": event, "change": change}
    if test not in ("finkelstein-schoenfeld", "rank_ancova"):
        raise ValidationError(Problem(rule="bad_setting", column="test",
                                      message="test must be 'finkelstein-schoenfeld' or "
                                              f"'rank_ancova', got {test!r}"))
    covariates = list(covariates or [])
    frame = _validate(patients, {**cols, **{f"covariate {c}": c for c in covariates}}, id,
                      float(horizon_months), censored)
    levels = sorted(frame[group].unique().tolist())
    if treatment is None:
        treatment = levels[-1]
    if treatment not in levels:
        raise ValidationError(Problem(rule="bad_setting", column="treatment",
                                      message=f"treatment {treatment!r} is not a level of "
                                              f"{group!r} ({levels})"))
    control = next(v for v in levels if v != treatment)
    s = _as_set(frame, time, event, change, float(horizon_months))
    kw = dict(censored=censored, time_tie=time_tie, change_tie=change_tie)
    wins, losses = pairwise_wins(s, s, **kw)
    score = wins - losses
    rank = stats.rankdata(score)
    trt = (frame[group] == treatment).to_numpy()
    w_tc, l_tc = pairwise_wins(s.subset(trt), s.subset(~trt), **kw)
    scores = pd.DataFrame({"group": frame[group].to_numpy(), "score": score, "rank": rank,
                           "wins": wins, "losses": losses,
                           "died": s.died, "censored": s.censored}, index=frame.index)
    n1, n0 = int(trt.sum()), int((~trt).sum())
    N = n1 + n0
    row: dict[str, Any] = {
        "treatment": treatment, "control": control, "n_treatment": n1, "n_control": n0,
        "mean_rank_treatment": float(rank[trt].mean()),
        "mean_rank_control": float(rank[~trt].mean()),
        "wins_treatment": int(w_tc.sum()), "wins_control": int(l_tc.sum()),
        "ties": int(n1 * n0 - w_tc.sum() - l_tc.sum()),
    }
    row["win_probability"] = (row["wins_treatment"] + 0.5 * row["ties"]) / (n1 * n0)
    row["win_ratio"] = (row["wins_treatment"] / row["wins_control"]
                        if row["wins_control"] > 0 else np.inf)
    if test == "finkelstein-schoenfeld":
        T = float(score[trt].sum())
        V = n1 * n0 / (N * (N - 1)) * float(np.sum(score.astype(float) ** 2)) if N > 1 else 0.0
        z = T / np.sqrt(V) if V > 0 else np.nan
        row.update(test="finkelstein-schoenfeld", statistic=z, score_sum_treatment=T,
                   variance=V, df=np.nan,
                   p_value=float(2 * stats.norm.sf(abs(z))) if np.isfinite(z) else np.nan)
    else:
        import statsmodels.api as sm

        X = pd.DataFrame({"treatment": trt.astype(float)}, index=frame.index)
        for c in covariates:
            X[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
        X = sm.add_constant(X, has_constant="add")
        fit = sm.OLS(rank, X.to_numpy()).fit()
        row.update(test="rank_ancova", statistic=float(fit.tvalues[1]),
                   score_sum_treatment=float(score[trt].sum()), variance=np.nan,
                   df=float(fit.df_resid), p_value=float(fit.pvalues[1]),
                   rank_difference=float(fit.params[1]),
                   rank_difference_se=float(fit.bse[1]))
    settings = dict(group=group, time=time, event=event, change=change,
                    horizon_months=float(horizon_months), censored=censored,
                    time_tie=float(time_tie), change_tie=float(change_tie), test=test,
                    covariates=covariates)
    return CafsResult(scores=scores, test=pd.DataFrame([row], index=pd.Index(["cafs"],
                      name="comparison")), settings=settings)


class CafsResult(Result):
    """CAFS scores, ranks and the group comparison.

    Attributes
    ----------
    scores : DataFrame
        Index patient id; ``group``, ``score`` (wins − losses), ``rank``,
        ``wins``, ``losses``, ``died`` (by the horizon), ``censored`` (before it).
    test : DataFrame
        One row: the test, statistic, p value, group mean ranks, between-group
        wins, ties, win probability and win ratio.
    settings : dict
    """

    kind: ClassVar[str] = "cafs"

    def __init__(self, scores: pd.DataFrame, test: pd.DataFrame, settings: dict[str, Any]
                 ) -> None:
        self.scores = scores
        self.test = test
        self.settings = settings

    @property
    def p_value(self) -> float:
        return float(self.test["p_value"].iloc[0])

    def summary(self) -> pd.DataFrame:
        """The comparison's numbers (group labels and the test's name are in ``.test``)."""
        return self.test.select_dtypes("number").copy()

    def diagnostics(self) -> pd.DataFrame:
        sc = self.scores
        n_c = int(sc["censored"].sum())
        rows = [
            ("score_sum", int(sc["score"].sum()), "scores sum to 0 (each pair counted both ways)",
             int(sc["score"].sum()) == 0),
            ("censored_before_horizon", n_c, "reported (rule: " + self.settings["censored"] + ")",
             True, f"{n_c} of {len(sc)} patients censored alive before the horizon"),
            ("group_size", int(min(self.test["n_treatment"].iloc[0],
                                   self.test["n_control"].iloc[0])),
             ">= 10 per group (normal approximation)",
             min(self.test["n_treatment"].iloc[0], self.test["n_control"].iloc[0]) >= 10),
        ]
        return diagnostics_frame(rows)

    @property
    def model_spec(self) -> ModelRecord:
        return ModelRecord(formula=None, engine="cafs", settings=dict(self.settings))

    def _display(self) -> Display:
        r = self.test.iloc[0]
        header = [
            ("horizon", f"{self.settings['horizon_months']:g} months"),
            ("patients", f"{int(r['n_treatment'])} {r['treatment']} vs "
                         f"{int(r['n_control'])} {r['control']}"),
            ("censoring rule", self.settings["censored"]),
            ("test", str(r["test"])),
        ]
        by_group = self.scores.groupby("group").agg(
            patients=("score", "size"), died=("died", "sum"), censored=("censored", "sum"),
            mean_score=("score", "mean"), mean_rank=("rank", "mean"))
        by_group[["died", "censored"]] = by_group[["died", "censored"]].astype(int)
        cols = ["statistic", "p_value", "mean_rank_treatment", "mean_rank_control",
                "win_probability", "win_ratio"]
        return Display(title="CAFS: combined assessment of function and survival",
                       header=header,
                       tables=[DisplayTable("Groups", by_group, digits=2),
                               DisplayTable("Comparison", self.test[cols], digits=4)])

    def _to_payload(self) -> Payload:
        # tables are stored without their index: keep it as a column
        return Payload(fields={"settings": self.settings,
                               "index_names": [self.scores.index.name, self.test.index.name]},
                       tables={"scores": self.scores.reset_index(),
                               "test": self.test.reset_index()})

    @classmethod
    def _from_payload(cls, payload: Payload) -> CafsResult:
        ids, comp = payload.fields["index_names"]
        scores = payload.tables["scores"].set_index(ids if ids is not None else "index")
        test = payload.tables["test"].set_index(comp)
        return cls(scores=scores, test=test, settings=dict(payload.fields["settings"]))

    def __repr__(self) -> str:
        r = self.test.iloc[0]
        return (f"<CafsResult {int(r['n_treatment'])} vs {int(r['n_control'])}: "
                f"p = {r['p_value']:.4g}>")


def cafs_frame(data: Any, *, group: str, horizon_months: float = 12.0, time: str = "months",
               outcome: str = "alsfrs_r", id: str = "patient_id",
               event: str = "death_imv", event_time: str = "months_to_death_imv",
               baseline: str = "first") -> pd.DataFrame:
    """One row per patient for :func:`cafs`, from a Cohort (or a long visit frame with
    the patient columns joined).

    Baseline is each patient's first visit (``baseline="first"``); times are
    months from it. ``change`` is the ALSFRS-R at the last visit at or before
    baseline + horizon minus the baseline ALSFRS-R; ``time`` is the time from
    baseline to death/IMV or end of follow-up (``event_time`` is on the
    cohort's time axis, e.g. months since diagnosis).

    Returns
    -------
    DataFrame
        Index ``id``; columns ``<group>``, ``time``, ``event``, ``change``,
        ``baseline``, ``last_visit``.
    """
    frame = data.to_frame() if hasattr(data, "to_frame") else data
    if not isinstance(frame, pd.DataFrame):
        raise ValidationError(Problem(rule="bad_input",
                                      message="cafs_frame needs a Cohort or a DataFrame"))
    need = [id, time, outcome, group, event, event_time]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise ValidationError([Problem(rule="missing_column", column=c,
                                       message=f"no column {c!r}") for c in missing],
                              context="cafs_frame")
    if baseline != "first":
        raise ValidationError(Problem(rule="bad_setting", column="baseline",
                                      message="baseline must be 'first'"))
    v = frame[need].dropna(subset=[time, outcome]).sort_values([id, time])
    g = v.groupby(id, sort=True)
    t0 = g[time].first()
    y0 = g[outcome].first()
    rel = v[time].to_numpy() - v[id].map(t0).to_numpy()
    within = v[rel <= horizon_months]
    last = within.groupby(id, sort=True).last()
    ev_time = g[event_time].first() - t0
    out = pd.DataFrame({
        group: g[group].first(),
        "time": ev_time.clip(lower=0),
        "event": g[event].first().astype(int),
        "change": last[outcome] - y0,
        "baseline": y0,
        "last_visit": last[time] - t0,
    })
    out.index.name = id
    return out
