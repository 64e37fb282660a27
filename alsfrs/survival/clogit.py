"""Conditional logistic regression for matched case-control sets (R's ``clogit``).

:func:`fit_clogit` maximises the exact conditional likelihood (R's
``clogit(..., method = "exact")``, its default). For a set with one case among
``n`` members the contribution is ``exp(x_case β) / Σ_j exp(x_j β)`` — computed
for all 1:M sets at once with segment sums (no loop over sets, no overflow: the
largest risk score of each set is factored out). A set with ``d > 1`` cases
contributes ``exp(Σ_cases x β) / B(d, n)`` with ``B`` the sum over every subset
of ``d`` members of the product of their risk scores, computed with the
recursion ``B(k, m) = B(k, m-1) + r_m B(k-1, m-1)`` (Gail, Lubin & Rubinstein
1981) together with its first and second derivatives.

statsmodels' ``ConditionalLogit`` is not used: it enumerates subsets in a way
that overflows on large sets and has no R-validated tests; this module is
checked against R in ``tests/reference/survival_reference.R``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import linalg, stats

from alsfrs.errors import Problem, ValidationError
from alsfrs.formula import _split_top
from alsfrs.matrices import as_frame
from alsfrs.results import Display, DisplayTable, ModelRecord, Payload, Result, diagnostics_frame
from alsfrs.survival.cox import newton_raphson
from alsfrs.survival.frame import survival_data

__all__ = ["ClogitResult", "fit_clogit"]

_TIME = "_clogit_time_"


def fit_clogit(formula: str, data: Any, *, level: float = 0.95) -> ClogitResult:
    """Conditional logistic regression, as R's ``clogit(case ~ x + strata(set))``.

    Parameters
    ----------
    formula : str
        ``"case ~ anxiolytic_1_5y + hypnotic_0_1y + ... + strata(set_id)"``: the
        case indicator (1 = case, 0 = control) on the left, the matched set in
        ``strata()``.
    data : DataFrame or object with ``to_frame()``
        One row per person (e.g. :func:`alsfrs.simulate_case_control`).
    level : float
        Confidence level of the odds-ratio intervals.

    Returns
    -------
    ClogitResult

    Raises
    ------
    alsfrs.errors.ValidationError
        No ``strata()``, a case flag other than 0/1, a set with no case,
        missing values, a covariate constant within every set, complete separation.
    """
    sides = _split_top(" ".join(str(formula).split()), "~")
    if len(sides) != 2 or not re.match(r"^`?[A-Za-z_.][A-Za-z0-9_.]*`?$", sides[0].strip()):
        raise ValidationError(Problem(rule="malformed_formula", message=(
            f"write the formula as 'case ~ covariates + strata(set_id)', got {formula!r}")),
            context="the conditional logistic formula")
    case = sides[0].strip().strip("`")
    inner = f"Surv({_TIME}, {case}) ~ {sides[1]}"
    frame = as_frame(data)
    if _TIME in frame.columns:  # pragma: no cover - reserved name
        raise ValidationError(Problem(rule="reserved_column", message=f"{_TIME} is reserved"))
    sd = survival_data(inner, frame.assign(**{_TIME: 1.0}), allow_cluster=False,
                       context="the conditional logistic data")
    if not sd.formula.strata:
        raise ValidationError(Problem(rule="no_strata", message=(
            "conditional logistic regression needs the matched sets: add strata(set_id)")),
            context="the conditional logistic formula")
    n_sets = sd.n_strata
    cases = np.bincount(sd.strata, weights=sd.event, minlength=n_sets).astype(int)
    sizes = np.bincount(sd.strata, minlength=n_sets)
    no_case = np.flatnonzero(cases == 0)
    if len(no_case):
        shown = ", ".join(sd.strata_labels[i] for i in no_case[:5])
        more = f" and {len(no_case) - 5} more" if len(no_case) > 5 else ""
        raise ValidationError(Problem(rule="set_without_case", column=case, message=(
            f"{len(no_case)} matched set(s) have no case ({shown}{more}); every set needs "
            "one or more cases")), context="the conditional logistic data")
    eng = _Clogit(sd.X, sd.event.astype(bool), sd.strata, n_sets)
    beta, iters = newton_raphson(eng.evaluate, sd.X.shape[1], names=sd.names,
                                 context="the conditional logistic model")
    ll, _u, info = eng.evaluate(beta)
    ll0, u0, info0 = eng.evaluate(np.zeros(len(beta)))
    var = linalg.inv(info)
    var = (var + var.T) / 2
    return ClogitResult(formula=str(formula), names=sd.names, coef=beta, var=var, loglik=ll,
                        loglik_null=ll0, score_test=float(u0 @ linalg.solve(info0, u0)),
                        n=sd.n, n_sets=n_sets, n_cases=int(cases.sum()), iterations=iters,
                        level=level, max_cases_per_set=int(cases.max()),
                        set_size_median=float(np.median(sizes)))


class _Clogit:
    """Exact conditional log-likelihood, score and information."""

    def __init__(self, X: np.ndarray, case: np.ndarray, sets: np.ndarray, n_sets: int):
        order = np.argsort(sets, kind="stable")
        self.X = X[order] - X.mean(axis=0)
        self.case = case[order]
        self.sets = sets[order]
        counts = np.bincount(self.sets, minlength=n_sets)
        self.starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        self.ncase = np.bincount(self.sets, weights=self.case, minlength=n_sets).astype(int)
        single = self.ncase == 1
        self.single_rows = single[self.sets]
        # sets with several cases, grouped by (size, cases) so the recursion runs once
        # per group over stacked sets
        groups: dict[tuple[int, int], list[int]] = {}
        for s in np.flatnonzero(~single):
            groups.setdefault((int(counts[s]), int(self.ncase[s])), []).append(int(s))
        self.multi = []
        for (size, d), sets_ in groups.items():
            rows = (self.starts[np.array(sets_)][:, None] + np.arange(size)[None, :])
            self.multi.append((rows, d))
        rows = self.single_rows
        self.s_sets = self.sets[rows]
        s_counts = np.bincount(self.s_sets, minlength=n_sets)[single]
        self.s_starts = np.concatenate(([0], np.cumsum(s_counts)[:-1]))
        self.Xs = self.X[rows]
        self.cases_s = self.case[rows]

    def evaluate(self, beta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        p = len(beta)
        ll = 0.0
        u = np.zeros(p)
        info = np.zeros((p, p))
        if len(self.Xs):
            X = self.Xs
            eta = X @ beta
            mx = np.maximum.reduceat(eta, self.s_starts)
            seg = np.repeat(np.arange(len(self.s_starts)), np.diff(np.append(self.s_starts,
                                                                              len(eta))))
            r = np.exp(eta - mx[seg])
            S0 = np.add.reduceat(r, self.s_starts)
            S1 = np.add.reduceat(r[:, None] * X, self.s_starts, axis=0)
            S2 = np.add.reduceat(r[:, None, None] * X[:, :, None] * X[:, None, :],
                                 self.s_starts, axis=0)
            m = S1 / S0[:, None]
            ll += float(eta[self.cases_s].sum() - (np.log(S0) + mx).sum())
            u += X[self.cases_s].sum(axis=0) - m.sum(axis=0)
            info += (S2 / S0[:, None, None]).sum(axis=0) - m.T @ m
        for rows, d in self.multi:
            X = self.X[rows]  # (G, n, p)
            eta = X @ beta  # (G, n)
            mx = eta.max(axis=1)
            r = np.exp(eta - mx[:, None])
            G, n = eta.shape
            B = np.zeros((G, d + 1))
            B[:, 0] = 1.0
            dB = np.zeros((G, d + 1, p))
            d2B = np.zeros((G, d + 1, p, p))
            for i in range(n):
                x, ri = X[:, i, :], r[:, i]
                xx = x[:, :, None] * x[:, None, :]
                d2B[:, 1:] = d2B[:, 1:] + ri[:, None, None, None] * (
                    xx[:, None] * B[:, :-1, None, None]
                    + x[:, None, :, None] * dB[:, :-1, None, :]
                    + dB[:, :-1, :, None] * x[:, None, None, :] + d2B[:, :-1])
                dB[:, 1:] = dB[:, 1:] + ri[:, None, None] * (x[:, None, :] * B[:, :-1, None]
                                                             + dB[:, :-1])
                B[:, 1:] = B[:, 1:] + ri[:, None] * B[:, :-1]
            g = dB[:, d] / B[:, d, None]
            cs = self.case[rows]
            ll += float((eta * cs).sum() - (np.log(B[:, d]) + d * mx).sum())
            u += (X * cs[:, :, None]).sum(axis=(0, 1)) - g.sum(axis=0)
            info += (d2B[:, d] / B[:, d, None, None]).sum(axis=0) - g.T @ g
        return ll, u, info


class ClogitResult(Result):
    """A fitted conditional logistic regression (:func:`fit_clogit`).

    ``summary()``: ``coef`` (log odds ratio), ``odds_ratio``, ``se``, ``z``, ``p``
    and the odds ratio's interval ``ci_lower_95``/``ci_upper_95``.
    """

    kind: ClassVar[str] = "clogit"

    def __init__(self, *, formula: str, names: tuple[str, ...], coef: np.ndarray,
                 var: np.ndarray, loglik: float, loglik_null: float, score_test: float,
                 n: int, n_sets: int, n_cases: int, iterations: int, level: float,
                 max_cases_per_set: int, set_size_median: float) -> None:
        self.formula = formula
        self.names = tuple(names)
        self.coef = np.asarray(coef, dtype=float)
        self.var = np.asarray(var, dtype=float)
        self.loglik = float(loglik)
        self.loglik_null = float(loglik_null)
        self.score_test = float(score_test)
        self.n = int(n)
        self.n_sets = int(n_sets)
        self.n_cases = int(n_cases)
        self.iterations = int(iterations)
        self.level = float(level)
        self.max_cases_per_set = int(max_cases_per_set)
        self.set_size_median = float(set_size_median)

    @property
    def params(self) -> pd.Series:
        """Coefficients (log odds ratios) by R term name."""
        return pd.Series(self.coef, index=list(self.names), name="coef")

    @property
    def odds_ratios(self) -> pd.Series:
        """``exp(coef)`` by R term name."""
        return np.exp(self.params).rename("odds_ratio")

    def summary(self) -> pd.DataFrame:
        se = np.sqrt(np.diag(self.var))
        z = self.coef / se
        q = stats.norm.ppf(0.5 + self.level / 2)
        tag = f"{100 * self.level:g}".replace(".", "_")
        return pd.DataFrame({
            "coef": self.coef, "odds_ratio": np.exp(self.coef), "se": se, "z": z,
            "p": 2 * stats.norm.sf(np.abs(z)),
            f"ci_lower_{tag}": np.exp(self.coef - q * se),
            f"ci_upper_{tag}": np.exp(self.coef + q * se),
        }, index=pd.Index(list(self.names), name="term"))

    def by_window(self) -> pd.DataFrame:
        """Odds ratios arranged by drug class and exposure window.

        Terms named ``<class>_<window>`` (as :func:`alsfrs.derive_exposures` names
        window columns, e.g. ``antidepressant_1_5y``) are split into ``class`` and
        ``window``; other terms are left out.
        """
        s = self.summary().reset_index()
        pat = re.compile(r"^(?P<cls>[A-Za-z]+)_(?P<win>\d+(?:\.\d+)?_\d+(?:\.\d+)?[ym]|"
                         r"\d+(?:\.\d+)?[ym]_plus)$")
        m = s["term"].str.extract(pat)
        s = s.assign(drug_class=m["cls"], window=m["win"]).dropna(subset=["window"])
        return s.set_index(["drug_class", "window"]).drop(columns="term")

    def plot_forest(self, ax: Any = None, truth: dict[str, float] | None = None) -> Any:
        """Forest plot of the odds ratios (``truth``: known ORs of a simulation)."""
        from alsfrs.survival.plots import plot_forest

        t = f"{100 * self.level:g}".replace(".", "_")
        return plot_forest(self.summary(), estimate="odds_ratio", lower=f"ci_lower_{t}",
                           upper=f"ci_upper_{t}", ax=ax, truth=truth,
                           xlabel="odds ratio (95% CI, log scale)")

    def tests(self) -> pd.DataFrame:
        """Likelihood-ratio, Wald and score tests of all coefficients."""
        p = len(self.coef)
        lr = 2 * (self.loglik - self.loglik_null)
        wald = float(self.coef @ linalg.solve(self.var, self.coef, assume_a="pos"))
        rows = [("likelihood ratio", lr), ("wald", wald), ("score", self.score_test)]
        return pd.DataFrame([(n, s, p, float(stats.chi2.sf(s, p))) for n, s in rows],
                            columns=["test", "statistic", "df", "p"]).set_index("test")

    def diagnostics(self) -> pd.DataFrame:
        se = np.sqrt(np.diag(self.var))
        big = float(np.max(np.abs(self.coef / se)))
        return diagnostics_frame([
            ("converged", True, "Newton–Raphson: relative change in log-likelihood < 1e-11 "
             "and negligible step", True, f"{self.iterations} iterations"),
            ("cases per coefficient", self.n_cases / max(len(self.coef), 1),
             ">= 10 cases per coefficient", self.n_cases >= 10 * len(self.coef), ""),
            ("largest |coef / se|", big, "< 20 (larger suggests near separation)", big < 20,
             ""),
        ])

    @property
    def model_spec(self) -> ModelRecord:
        return ModelRecord(formula=self.formula, engine="clogit",
                           settings={"method": "exact", "level": self.level})

    def _display(self) -> Display:
        s = self.summary()
        tag = f"{100 * self.level:g}".replace(".", "_")
        return Display(
            title="Conditional logistic regression (matched sets, exact likelihood)",
            header=[("formula", self.formula),
                    ("n", f"{self.n:,d} in {self.n_sets:,d} matched sets, {self.n_cases:,d} "
                          "cases"),
                    ("log conditional likelihood",
                     f"{self.loglik:.3f} (null {self.loglik_null:.3f})")],
            tables=[DisplayTable("Odds ratios", s[["coef", "odds_ratio", f"ci_lower_{tag}",
                                                   f"ci_upper_{tag}", "se", "z", "p"]]),
                    DisplayTable("Tests of all coefficients", self.tests())])

    def _to_payload(self) -> Payload:
        fields = {k: getattr(self, k) for k in (
            "formula", "coef", "var", "loglik", "loglik_null", "score_test", "n", "n_sets",
            "n_cases", "iterations", "level", "max_cases_per_set", "set_size_median")}
        fields["names"] = list(self.names)
        return Payload(fields=fields)

    @classmethod
    def _from_payload(cls, payload: Payload) -> ClogitResult:
        f = dict(payload.fields)
        return cls(**{**f, "names": tuple(f["names"]), "coef": np.asarray(f["coef"]),
                      "var": np.asarray(f["var"])})
