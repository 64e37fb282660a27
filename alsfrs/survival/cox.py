"""Cox proportional-hazards regression with R's numbers (``survival::coxph``).

:func:`fit_cox` maximises the partial likelihood by Newton–Raphson with step
halving, with Efron's handling of tied event times (R's default; ``"breslow"``
on request), strata, ``(start, stop]`` counting-process data (time-varying
covariates, left truncation) and robust (sandwich) standard errors, grouped by
``cluster()`` as R's ``coxph(..., cluster = id)``. The risk-set sums are in
:mod:`alsfrs.survival._riskset`; every number is checked against R in
``tests/reference/survival_reference.R``.

Why not statsmodels' ``PHReg``: its coefficients agree with R (Efron ties,
strata, and — checked — ``entry`` on ``(start, stop]`` data, to 1e-12), but its
robust variance (``fit(groups=...)``) differs from R's ``cluster()`` by up to
0.5% with Efron ties (Breslow-type score residuals) and is NaN with ``entry``;
it has no ``cox.zph``, no concordance and no ``survfit.coxph`` baseline for
Efron ties. All of these come from the same pseudo-event sums here, so one
vectorised implementation gives them consistently (and 5-10 times faster,
``benchmarks/survival.py``).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import linalg, stats

from alsfrs.errors import Problem, ValidationError
from alsfrs.matrices import build_design
from alsfrs.results import Display, DisplayTable, ModelRecord, Payload, Result, diagnostics_frame
from alsfrs.survival._riskset import RiskSets
from alsfrs.survival.frame import SurvivalData, survival_data
from alsfrs.survival.surv import parse_surv_formula

__all__ = ["CoxResult", "fit_cox"]

TIES = ("efron", "breslow")


class _NoConvergence(Exception):
    pass


def newton_raphson(fun, p: int, *, max_iter: int = 50, tol: float = 1e-11,
                   names: tuple[str, ...] = (), context: str = "the Cox model"
                   ) -> tuple[np.ndarray, int]:
    """Maximise a concave log-likelihood ``fun(beta) -> (ll, score, info)`` from 0.

    Newton–Raphson with step halving (as R's ``coxph.fit``). Converged when the
    log-likelihood changes by less than ``tol`` (relative) and the Newton step
    is negligible. A log-likelihood that converges while a coefficient keeps
    moving (a monotone likelihood: complete separation) or no convergence in
    ``max_iter`` iterations raise a :class:`ValidationError`.
    """
    beta = np.zeros(p)
    ll, u, info = fun(beta)
    flat = 0
    for it in range(1, max_iter + 1):
        step = _solve(info, u, names, context)
        new = beta + step
        ll_new, u_new, info_new = fun(new)
        halvings = 0
        while not (np.isfinite(ll_new) and ll_new >= ll - 1e-12 * abs(ll)) and halvings < 30:
            step = step / 2
            new = beta + step
            ll_new, u_new, info_new = fun(new)
            halvings += 1
        small_ll = abs(ll_new - ll) <= tol * max(abs(ll_new), 1.0)
        rel_step = np.max(np.abs(step) / np.maximum(np.abs(new), 1.0)) if p else 0.0
        beta, ll, u, info = new, ll_new, u_new, info_new
        if small_ll and rel_step < 1e-8:
            # one more Newton step would not move beta (quadratic convergence)
            return beta, it
        if small_ll and rel_step > 1e-3:
            flat += 1
            if flat >= 3:
                nxt = _solve(info, u, names, context)
                moving = [names[j] if names else str(j) for j in range(p)
                          if abs(nxt[j]) > 1e-3 * max(abs(beta[j]), 1.0)]
                raise ValidationError(Problem(rule="separation", message=(
                    f"the likelihood is monotone in {', '.join(moving)}: the estimate runs off "
                    "to infinity (complete separation — e.g. every exposed patient had the "
                    "event before any unexposed one, or a level with no events); drop or "
                    "regroup the covariate")), context=context)
        else:
            flat = 0
    raise ValidationError(Problem(rule="no_convergence", message=(
        f"Newton–Raphson did not converge in {max_iter} iterations (last relative step "
        f"{rel_step:.2g}); check for extreme covariate values or separation")), context=context)


def _solve(info: np.ndarray, u: np.ndarray, names: tuple[str, ...], context: str) -> np.ndarray:
    if info.size == 0:
        return np.zeros(0)
    try:
        c = linalg.cho_factor(info, check_finite=True)
        return linalg.cho_solve(c, u)
    except (linalg.LinAlgError, ValueError):
        d = np.diag(info)
        bad = [names[j] if names else str(j) for j in range(len(d)) if not d[j] > 1e-12]
        raise ValidationError(Problem(rule="singular_information", message=(
            "the information matrix is not positive definite"
            + (f" (no information on {', '.join(bad)}: e.g. no events in one group)" if bad
               else "") + "; the coefficients cannot be estimated")), context=context) from None


def fit_cox(formula: str, data: Any, *, ties: str = "efron", robust: bool | None = None,
            level: float = 0.95) -> CoxResult:
    """Fit a Cox proportional-hazards model, as R's ``coxph``.

    Parameters
    ----------
    formula : str
        ``"Surv(months, event) ~ anxiolytic + hypnotic + antidepressant + age_at_dx + sex"``;
        ``Surv(start, stop, event)`` for time-varying covariates; ``strata(x)`` for a
        baseline hazard per level; ``cluster(id)`` for robust SEs grouped by ``id``.
    data : DataFrame or Cohort
        One row per patient (or per ``(start, stop]`` interval), e.g.
        :meth:`Cohort.survival_frame`; a Cohort is used through its survival frame.
    ties : {"efron", "breslow"}
        Handling of tied event times; ``"efron"`` is R's default.
    robust : bool, optional
        Robust (sandwich) standard errors (R's ``robust = TRUE``); default: when
        ``cluster()`` is given. Without ``cluster()`` each row is its own cluster.
    level : float
        Confidence level of the hazard-ratio intervals.

    Returns
    -------
    CoxResult

    Raises
    ------
    alsfrs.errors.ValidationError
        Bad data (see :func:`~alsfrs.survival.frame.survival_data`), no events,
        complete separation (a monotone likelihood), no convergence.
    """
    if ties not in TIES:
        raise ValidationError(Problem(rule="bad_option", message=(
            f"ties must be one of {', '.join(TIES)}, got {ties!r}")))
    sd = survival_data(formula, data, context="the Cox model data")
    return _fit(sd, ties=ties, robust=robust, level=level, data=data)


def _fit(sd: SurvivalData, *, ties: str, robust: bool | None, level: float,
         data: Any = None) -> CoxResult:
    if sd.n_events == 0:
        raise ValidationError(Problem(rule="no_events", message="there are no events"),
                              context="the Cox model data")
    rs = RiskSets(sd.stop, sd.event, sd.start, sd.strata, sd.X)
    p = sd.X.shape[1]

    def fun(b):
        ll, u, info, _ = rs.pseudo(b, ties)
        return ll, u, info

    beta, iters = newton_raphson(fun, p, names=sd.names)
    ll, _u, info, ps = rs.pseudo(beta, ties)
    ll0, u0, info0, _ = rs.pseudo(np.zeros(p), ties)
    var = linalg.inv(info)
    var = (var + var.T) / 2
    robust = sd.cluster is not None if robust is None else bool(robust)
    rvar = None
    if robust:
        res = rs.score_residuals(beta, ps)
        dfb = res @ var
        if sd.cluster is not None:
            g = np.zeros((int(sd.cluster.max()) + 1, p))
            np.add.at(g, sd.cluster, dfb)
            dfb = g
        rvar = dfb.T @ dfb
    score_test = float(u0 @ linalg.solve(info0, u0, assume_a="pos"))
    frame = None
    if data is not None and sd.design is not None:
        from alsfrs.matrices import as_frame

        f = as_frame(data)
        frame = f[list(sd.design.variables)].reset_index(drop=True)
    return CoxResult(
        formula=sd.formula.text, names=sd.names, coef=beta, var=var, robust_var=rvar,
        loglik=ll, loglik_null=ll0, score_test=score_test, n=sd.n, n_events=sd.n_events,
        iterations=iters, ties=ties, level=level, strata_labels=sd.strata_labels,
        terms=sd.design.terms if sd.design is not None else tuple((n, (i,)) for i, n in
                                                                   enumerate(sd.names)),
        arrays={"X": sd.X, "stop": sd.stop, "event": sd.event.astype(np.int8),
                "start": sd.start, "strata": sd.strata,
                "cluster": sd.cluster}, n_clusters=(None if sd.cluster is None
                                                    else len(sd.cluster_labels)),
        covariate_frame=frame)


class CoxResult(Result):
    """A fitted Cox model (:func:`fit_cox`).

    ``summary()`` has one row per coefficient: ``coef`` (log hazard ratio),
    ``hazard_ratio``, ``se`` (the model-based SE), ``robust_se`` (when robust),
    ``z`` and ``p`` (from the robust SE when robust, as R), and the hazard
    ratio's interval ``ci_lower_95``/``ci_upper_95``.

    The result keeps the model's covariate matrix, times, events, strata and
    cluster codes (no identifiers), so that :meth:`cox_zph`, :meth:`baseline_hazard`,
    :attr:`concordance` and :meth:`predict_survival` work after ``save``/``load``.
    """

    kind: ClassVar[str] = "cox"

    def __init__(self, *, formula: str, names: tuple[str, ...], coef: np.ndarray,
                 var: np.ndarray, robust_var: np.ndarray | None, loglik: float,
                 loglik_null: float, score_test: float, n: int, n_events: int,
                 iterations: int, ties: str, level: float, strata_labels: tuple[str, ...],
                 terms: tuple, arrays: dict[str, Any], n_clusters: int | None,
                 covariate_frame: pd.DataFrame | None = None,
                 cache: dict[str, Any] | None = None) -> None:
        self.formula = formula
        self.names = tuple(names)
        self.coef = np.asarray(coef, dtype=float)
        self.var = np.asarray(var, dtype=float)
        self.robust_var = None if robust_var is None else np.asarray(robust_var, dtype=float)
        self.loglik = float(loglik)
        self.loglik_null = float(loglik_null)
        self.score_test = float(score_test)
        self.n = int(n)
        self.n_events = int(n_events)
        self.iterations = int(iterations)
        self.ties = ties
        self.level = float(level)
        self.strata_labels = tuple(strata_labels)
        self.terms = tuple((str(t), tuple(int(i) for i in ix)) for t, ix in terms)
        self.arrays = arrays
        self.n_clusters = n_clusters
        self.covariate_frame = covariate_frame
        self._cache = dict(cache or {})

    # -- numbers ---------------------------------------------------------------------
    @property
    def params(self) -> pd.Series:
        """Coefficients (log hazard ratios) by R term name."""
        return pd.Series(self.coef, index=list(self.names), name="coef")

    @property
    def hazard_ratios(self) -> pd.Series:
        """``exp(coef)`` by R term name."""
        return np.exp(self.params).rename("hazard_ratio")

    @property
    def robust(self) -> bool:
        """Whether robust (sandwich) standard errors are used."""
        return self.robust_var is not None

    @property
    def cov_params(self) -> pd.DataFrame:
        """The variance matrix used for inference (robust when robust)."""
        v = self.robust_var if self.robust else self.var
        return pd.DataFrame(v, index=list(self.names), columns=list(self.names))

    def summary(self) -> pd.DataFrame:
        se = np.sqrt(np.diag(self.var))
        use = np.sqrt(np.diag(self.robust_var)) if self.robust else se
        z = self.coef / use
        q = stats.norm.ppf(0.5 + self.level / 2)
        tag = _pct(self.level)
        out = pd.DataFrame({
            "coef": self.coef, "hazard_ratio": np.exp(self.coef), "se": se,
            "robust_se": use if self.robust else np.nan, "z": z,
            "p": 2 * stats.norm.sf(np.abs(z)),
            f"ci_lower_{tag}": np.exp(self.coef - q * use),
            f"ci_upper_{tag}": np.exp(self.coef + q * use),
        }, index=pd.Index(list(self.names), name="term"))
        return out

    def tests(self) -> pd.DataFrame:
        """Likelihood-ratio, Wald and score tests of all coefficients (R's ``summary.coxph``)."""
        p = len(self.coef)
        lr = 2 * (self.loglik - self.loglik_null)
        v = self.robust_var if self.robust else self.var
        wald = float(self.coef @ linalg.solve(v, self.coef, assume_a="pos"))
        rows = [("likelihood ratio", lr), ("wald" + (" (robust)" if self.robust else ""), wald),
                ("score (log-rank)", self.score_test)]
        return pd.DataFrame([(n, s, p, float(stats.chi2.sf(s, p))) for n, s in rows],
                            columns=["test", "statistic", "df", "p"]).set_index("test")

    # -- risk sets (rebuilt on demand) -------------------------------------------------
    def _riskset(self) -> RiskSets:
        a = self.arrays
        return RiskSets(np.asarray(a["stop"]), np.asarray(a["event"]),
                        None if a.get("start") is None else np.asarray(a["start"]),
                        np.asarray(a["strata"]), np.asarray(a["X"], dtype=float))

    @cached_property
    def _pseudo(self):
        rs = self._riskset()
        return rs, rs.pseudo(self.coef, self.ties)[3]

    @property
    def concordance(self) -> float:
        """Harrell's concordance of the linear predictor (R's ``concordance(fit)``):
        pairs within strata, comparable when the shorter time is an event;
        ties in the predictor count one half; ties in time are not compared."""
        if "concordance" not in self._cache:
            self._cache["concordance"] = _concordance(self.arrays, self.coef)
        return self._cache["concordance"]

    def linear_predictor(self) -> np.ndarray:
        """``x β`` of every fitted row, centred at the covariate means (as R's
        ``fit$linear.predictors``)."""
        X = np.asarray(self.arrays["X"], dtype=float)
        return (X - X.mean(axis=0)) @ self.coef

    def baseline_hazard(self) -> pd.DataFrame:
        """Baseline cumulative hazard (covariates at 0) at every time of each stratum.

        R's ``basehaz(fit, centered = FALSE)``: the hazard increments are those of
        ``survfit.coxph`` (Efron's for Efron ties, Breslow's otherwise).
        Columns ``stratum``, ``time``, ``cumulative_hazard``.
        """
        rs, ps = self._pseudo
        # h on the shifted, centred scale -> covariates at 0
        scale = np.exp(-(ps.shift + rs.means @ self.coef))
        rows = []
        for g in rs.groups:
            sel = ps.stratum == g["s"]
            times = np.unique(rs.stop[g["rows"]])
            cum = np.concatenate(([0.0], np.cumsum(ps.h[sel] * scale)))
            idx = np.searchsorted(ps.time[sel], times, side="right")
            rows.append(pd.DataFrame({"stratum": self.strata_labels[g["s"]], "time": times,
                                      "cumulative_hazard": cum[idx]}))
        return pd.concat(rows, ignore_index=True)

    def predict_survival(self, data: Any, times: Any, *, ci: bool = False) -> pd.DataFrame:
        """Predicted survival curves of the rows of ``data`` (R's ``survfit(fit, newdata)``).

        Parameters
        ----------
        data : DataFrame
            Covariates (and strata columns, for stratified fits) of the patients.
        times : float or sequence of float
        ci : bool, default False
            Also the standard error and the log-transformed interval (R's default
            ``conf.type = "log"``; the variance of the cumulative hazard includes the
            uncertainty of the coefficients, robust when the fit is robust).

        Returns
        -------
        DataFrame
            Without ``ci``: times × rows of ``data``. With ``ci``: one row per
            patient and time, columns ``row, time, survival, std_err`` (of the
            survival), ``lower``, ``upper``.
        """
        if ci:
            return self._predict_interval(data, times)
        from alsfrs.matrices import as_frame

        times = np.atleast_1d(np.asarray(times, dtype=float))
        frame = as_frame(data)
        X = self._design().design(frame)
        stratum = self._strata_of(frame)
        bh = self.baseline_hazard()
        H = np.zeros((len(times), len(frame)))
        for k, label in enumerate(self.strata_labels):
            cols = np.flatnonzero(stratum == k)
            if not len(cols):
                continue
            b = bh[bh["stratum"] == label]
            idx = np.searchsorted(b["time"].to_numpy(), times, side="right") - 1
            h0 = np.where(idx >= 0, b["cumulative_hazard"].to_numpy()[np.maximum(idx, 0)], 0.0)
            H[:, cols] = h0[:, None]
        surv = np.exp(-H * np.exp(X @ self.coef)[None, :])
        out = pd.DataFrame(surv, index=pd.Index(times, name="time"), columns=frame.index)
        return out

    def _predict_interval(self, data: Any, times: Any) -> pd.DataFrame:
        from alsfrs.matrices import as_frame

        times = np.atleast_1d(np.asarray(times, dtype=float))
        frame = as_frame(data)
        X = self._design().design(frame)
        stratum = self._strata_of(frame)
        rs, ps = self._pseudo
        V = self.robust_var if self.robust else self.var
        xc = X - rs.means
        risk = np.exp(xc @ self.coef)
        h = ps.h * np.exp(-ps.shift)  # increments with risk scores exp((x - means) beta)
        z = stats.norm.ppf(0.5 + self.level / 2)
        rows = []
        for k in range(len(self.strata_labels)):
            cols = np.flatnonzero(stratum == k)
            sel = ps.stratum == k
            if not len(cols):
                continue
            cH = np.concatenate(([0.0], np.cumsum(h[sel])))
            cH2 = np.concatenate(([0.0], np.cumsum(h[sel] ** 2)))
            cXH = np.vstack([np.zeros((1, len(self.coef))),
                             np.cumsum(h[sel][:, None] * ps.xbar[sel], axis=0)])
            J = np.searchsorted(ps.time[sel], times, side="right")
            for c in cols:
                dt = cH[J][:, None] * xc[c][None, :] - cXH[J]
                var_h = (cH2[J] + np.einsum("tp,pq,tq->t", dt, V, dt)) * risk[c] ** 2
                cum = cH[J] * risk[c]
                surv = np.exp(-cum)
                se = np.sqrt(var_h)
                rows.append(pd.DataFrame({
                    "row": frame.index[c], "time": times, "survival": surv,
                    "std_err": surv * se, "lower": surv * np.exp(-z * se),
                    "upper": np.minimum(surv * np.exp(z * se), 1.0)}))
        return pd.concat(rows, ignore_index=True)

    def _strata_of(self, frame: pd.DataFrame) -> np.ndarray:
        f = parse_surv_formula(self.formula)
        if not f.strata:
            return np.zeros(len(frame), dtype=int)
        keys = frame[list(f.strata)].astype(str)
        lab = (f.strata[0] + "=" + keys[f.strata[0]] if len(f.strata) == 1 else
               keys.apply(lambda r: ", ".join(f"{k}={r[k]}" for k in f.strata), axis=1))
        unknown = sorted(set(lab) - set(self.strata_labels))
        if unknown:
            raise ValidationError(Problem(rule="unknown_level", message=(
                f"strata {', '.join(unknown)} were not in the fitted data")), context="new data")
        return np.array([self.strata_labels.index(v) for v in lab], dtype=int)

    def _design(self):
        if self.covariate_frame is None:
            raise ValidationError(Problem(rule="no_design", message=(
                "this result has no covariate data to code new data with")))
        if "design" not in self._cache:
            f = parse_surv_formula(self.formula)
            self._cache["design"] = build_design(
                f.rhs, self.covariate_frame, variable_order=f.variable_order, intercept=False,
                check_rank=False)
        return self._cache["design"]

    def cox_zph(self, transform: str = "km", terms: bool = True) -> pd.DataFrame:
        """Test of proportional hazards, as R's ``cox.zph`` (survival ≥ 3.0).

        The score test of adding ``x · g(t)`` for each term (and all at once:
        ``GLOBAL``) at the fitted β, with ``g`` the Kaplan–Meier transform of time
        (``transform="km"``, R's default), ``"identity"``, ``"log"`` or ``"rank"``.

        Returns
        -------
        DataFrame
            Index: R's term labels and ``GLOBAL``; columns ``chisq``, ``df``, ``p``.
        """
        key = f"zph_{transform}_{terms}"
        if key in self._cache:
            return self._cache[key]
        rs, ps = self._pseudo
        p = len(self.coef)
        stop = rs.stop
        ev = rs.event
        if transform == "km":
            from alsfrs.survival.km import _km_steps

            t_u, surv = _km_steps(stop, ev, None if rs.start is None else rs.start)
            idx = np.searchsorted(t_u, stop, side="left")  # times strictly below
            tt = 1.0 - np.concatenate(([1.0], surv))[idx]
        elif transform == "identity":
            tt = stop.copy()
        elif transform == "log":
            tt = np.log(stop)
        elif transform == "rank":
            tt = stats.rankdata(stop)
        else:
            raise ValidationError(Problem(rule="bad_option", message=(
                f"transform must be km, identity, log or rank, got {transform!r}")))
        gtime = tt - tt[ev].mean()
        # g at each pseudo-event: all events at one time share g(t)
        g_k = np.empty(len(rs.k_time))
        for gr in rs.groups:
            rows = gr["ev"]
            k_of = gr["k0"] + np.searchsorted(gr["times"], stop[rows])
            g_k[k_of] = gtime[rows]
        gj = g_k[ps.k]
        X = rs.X
        u2 = (gtime[ev][:, None] * X[ev]).sum(axis=0) - (gj[:, None] * ps.xbar).sum(axis=0)
        cov = ps.cov
        i11 = cov.sum(axis=0)
        i12 = (gj[:, None, None] * cov).sum(axis=0)
        i22 = (gj[:, None, None] ** 2 * cov).sum(axis=0)
        imat = np.block([[i11, i12], [i12.T, i22]])
        u = np.concatenate([np.zeros(p), u2])
        groups = self.terms if terms else tuple((n, (i,)) for i, n in enumerate(self.names))
        rows = []
        for name, jj in groups:
            kk = list(range(p)) + [p + j for j in jj]
            sub = imat[np.ix_(kk, kk)]
            uu = u[kk]
            rows.append((name, float(uu @ linalg.solve(sub, uu)), len(jj)))
        rows.append(("GLOBAL", float(u @ linalg.solve(imat, u)), p))
        out = pd.DataFrame(rows, columns=["term", "chisq", "df"]).set_index("term")
        out["p"] = stats.chi2.sf(out["chisq"], out["df"])
        self._cache[key] = out
        return out

    def plot_forest(self, ax: Any = None) -> Any:
        """Forest plot of the hazard ratios with their intervals."""
        from alsfrs.survival.plots import plot_forest

        t = _pct(self.level)
        return plot_forest(self.summary(), estimate="hazard_ratio", lower=f"ci_lower_{t}",
                           upper=f"ci_upper_{t}", ax=ax)

    # -- contract ----------------------------------------------------------------------
    def diagnostics(self) -> pd.DataFrame:
        se = np.sqrt(np.diag(self.var))
        zph = self.cox_zph()
        glob = float(zph.loc["GLOBAL", "p"])
        cond = float(np.linalg.cond(self.var))
        return diagnostics_frame([
            ("converged", True, "Newton–Raphson: relative change in log-likelihood < 1e-11 "
             "and negligible step", True, f"{self.iterations} iterations"),
            ("events per coefficient", self.n_events / max(len(self.coef), 1),
             ">= 10 events per coefficient", self.n_events >= 10 * len(self.coef), ""),
            ("largest |coef / se|", float(np.max(np.abs(self.coef / se))),
             "< 20 (larger suggests near separation)",
             bool(np.max(np.abs(self.coef / se)) < 20), ""),
            ("variance condition number", cond, "< 1e8", cond < 1e8, ""),
            ("proportional hazards (cox.zph GLOBAL p)", glob, "p >= 0.05 (no evidence "
             "against proportional hazards)", glob >= 0.05,
             "see cox_zph() for each term"),
        ])

    @property
    def model_spec(self) -> ModelRecord:
        return ModelRecord(formula=self.formula, engine="cox",
                           settings={"ties": self.ties, "robust": self.robust,
                                     "level": self.level})

    def _display(self) -> Display:
        s = self.summary()
        tag = _pct(self.level)
        cols = ["coef", "hazard_ratio", f"ci_lower_{tag}", f"ci_upper_{tag}", "se"]
        cols += ["robust_se"] if self.robust else []
        cols += ["z", "p"]
        header = [("formula", self.formula), ("ties", self.ties),
                  ("n", f"{self.n:,d}, events {self.n_events:,d}"),
                  ("log partial likelihood", f"{self.loglik:.3f} (null {self.loglik_null:.3f})"),
                  ("concordance", f"{self.concordance:.3f}")]
        if len(self.strata_labels) > 1:
            header.append(("strata", ", ".join(self.strata_labels)))
        if self.n_clusters is not None:
            header.append(("clusters", f"{self.n_clusters:,d}"))
        notes = ([f"robust (sandwich) standard errors{' by cluster' if self.n_clusters else ''}"
                  "; z and p use them"] if self.robust else [])
        return Display(
            title="Cox proportional-hazards model",
            header=header,
            tables=[DisplayTable("Hazard ratios", s[cols]),
                    DisplayTable("Tests of all coefficients", self.tests()),
                    DisplayTable("Proportional hazards (cox.zph, KM time scale)",
                                 self.cox_zph())],
            notes=notes)

    def _to_payload(self) -> Payload:
        fields = {k: getattr(self, k) for k in (
            "formula", "coef", "var", "loglik", "loglik_null", "score_test", "n", "n_events",
            "iterations", "ties", "level", "n_clusters")}
        fields["names"] = list(self.names)
        fields["robust_var"] = self.robust_var
        fields["strata_labels"] = list(self.strata_labels)
        fields["terms"] = [[t, list(ix)] for t, ix in self.terms]
        fields["arrays"] = {k: v for k, v in self.arrays.items() if v is not None}
        fields["concordance"] = self.concordance
        tables = {} if self.covariate_frame is None else {"covariates": self.covariate_frame}
        return Payload(fields=fields, tables=tables)

    @classmethod
    def _from_payload(cls, payload: Payload) -> CoxResult:
        f = dict(payload.fields)
        arrays = {k: np.asarray(v) for k, v in f.pop("arrays").items()}
        arrays.setdefault("start", None)
        arrays.setdefault("cluster", None)
        conc = f.pop("concordance")
        return cls(**{**f, "names": tuple(f["names"]),
                      "strata_labels": tuple(f["strata_labels"]),
                      "terms": tuple((t, tuple(ix)) for t, ix in f["terms"])},
                   arrays=arrays, covariate_frame=payload.tables.get("covariates"),
                   cache={"concordance": conc})


def _pct(level: float) -> str:
    v = 100 * level
    return f"{v:g}".replace(".", "_")


def _count_below(values: np.ndarray, prefix: np.ndarray, query: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """For each query k: how many of ``values[:prefix[k]]`` are ``< query[k]`` and ``<= query[k]``.

    Offline dominance counting by a bottom-up merge over position blocks, each level one
    sort and two ``searchsorted`` calls: O(n log² n), no Python loop over rows.
    """
    n, m = len(values), len(query)
    if n == 0 or m == 0:
        return np.zeros(m, dtype=np.int64), np.zeros(m, dtype=np.int64)
    levels = np.unique(np.concatenate([values, query]))
    rv = np.searchsorted(levels, values).astype(np.int64)
    rq = np.searchsorted(levels, query).astype(np.int64)
    R = len(levels) + 1
    # sequence: point j at slot 2j+1, query k just before point prefix[k] (slot 2*prefix)
    pos_p = 2 * np.arange(n, dtype=np.int64) + 1
    pos_q = 2 * np.asarray(prefix, dtype=np.int64)
    less = np.zeros(m, dtype=np.int64)
    le = np.zeros(m, dtype=np.int64)
    size = 1
    total = 2 * n + 2
    while size < total:
        blk_p, half_p = pos_p // (2 * size), (pos_p // size) % 2
        blk_q, half_q = pos_q // (2 * size), (pos_q // size) % 2
        left = np.sort(blk_p[half_p == 0] * R + rv[half_p == 0])
        right = half_q == 1
        if right.any() and len(left):
            base = blk_q[right] * R
            lo = np.searchsorted(left, base, side="left")
            less[right] += np.searchsorted(left, base + rq[right], side="left") - lo
            le[right] += np.searchsorted(left, base + rq[right], side="right") - lo
        size *= 2
    return less, le


def _concordance(arrays: dict[str, Any], coef: np.ndarray) -> float:
    """R's concordance for a Cox fit: over the risk set at each event time (rows at risk,
    censored at that time included, events at that time excluded), the pairs where the
    patient with the event has the higher risk score; ties in the score count one half."""
    X = np.asarray(arrays["X"], dtype=float)
    eta = X @ coef
    stop = np.asarray(arrays["stop"], dtype=float)
    ev = np.asarray(arrays["event"]).astype(bool)
    start = arrays.get("start")
    start = None if start is None else np.asarray(start, dtype=float)
    strata = np.asarray(arrays["strata"])
    conc = disc = tied = 0.0
    for s in np.unique(strata):
        rows = np.flatnonzero(strata == s)
        st, et, dead = stop[rows], eta[rows], ev[rows]
        t = st[dead]
        # stop order: descending time, censored before events at the same time
        o = np.lexsort((dead, -st))
        n_after = len(st) - np.searchsorted(np.sort(st), t, side="right")
        cens_sorted = np.sort(st[~dead])
        n_cens_at = (np.searchsorted(cens_sorted, t, side="right")
                     - np.searchsorted(cens_sorted, t, side="left"))
        prefix = n_after + n_cens_at
        less, le = _count_below(et[o], prefix, et[dead])
        size = prefix.astype(float)
        if start is not None:
            sa = start[rows]
            o2 = np.argsort(-sa, kind="stable")
            pre2 = len(sa) - np.searchsorted(np.sort(sa), t, side="left")  # start >= t
            less2, le2 = _count_below(et[o2], pre2, et[dead])
            less, le, size = less - less2, le - le2, size - pre2
        conc += float(less.sum())
        tied += float((le - less).sum())
        disc += float((size - le).sum())
    total = conc + disc + tied
    return (conc + tied / 2) / total if total else float("nan")
