"""JointResult: a fitted joint model, read through the shared result contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import xarray as xr

from alsfrs import azcompat
from alsfrs.bayes.result import ESS_MIN, RHAT_MAX, flat_draws
from alsfrs.effects import effects_from_draws, exposure_contrasts
from alsfrs.errors import Problem, ValidationError
from alsfrs.joint.design import JointDesign
from alsfrs.joint.hazard import BaselineSpec, cumulative_hazard, latent_effects_np, log_hazard
from alsfrs.joint.priors import JointPriors, shared_name
from alsfrs.results import (
    Display,
    DisplayTable,
    ModelRecord,
    Payload,
    Result,
    diagnostics_frame,
)

__all__ = ["JointResult", "augment"]

CHUNK = 100


def baseline_spec(jd: JointDesign) -> BaselineSpec:
    return BaselineSpec(kind=jd.baseline, knots=jd.knots, t_scale=jd.t_scale,
                        association=jd.association, closed_form=jd.closed_form,
                        quadrature_nodes=jd.quadrature_nodes, t_end=jd.t_end,
                        pspline=jd.pspline)


def _base_draws(post: Any, jd: JointDesign) -> np.ndarray:
    if jd.baseline == "pspline":
        return flat_draws(post["bs_coef"].values)
    if jd.baseline in ("piecewise", "spline"):
        return flat_draws(post["log_h0"].values)
    return np.stack([flat_draws(post["log_rate"].values),
                     flat_draws(post["log_shape"].values)], axis=1)


def _coefficients(jd: JointDesign, beta_c: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """Trajectory coefficients per power of time: list of (D, G)."""
    return [beta_c @ jd.P[d].T + np.einsum("gq,dgq->dg", jd.Q[d], b)
            for d in range(jd.degree + 1)]


def survival_loglik_np(jd: JointDesign, beta_c, b, gamma, alpha, alpha_s, base,
                       alpha_re=None) -> np.ndarray:
    """Per-patient survival log-likelihood given the random effects, (D, G).
    ``alpha_re`` (D, q): the log HRs of the shared random effects (``"shared"``)."""
    spec = baseline_spec(jd)
    coef = _coefficients(jd, beta_c, b)
    if jd.association == "shared":
        eta = np.einsum("dgq,dq->dg", b, alpha_re)
        alpha = np.zeros(len(alpha_re))
    else:
        eta = alpha[:, None] * (coef[0] - jd.m_ref)
    if gamma is not None and gamma.shape[1]:
        eta = eta + gamma @ jd.Wc.T
    a = alpha[:, None]
    a_s = None if alpha_s is None else alpha_s[:, None]
    T = jd.surv.time
    H = cumulative_hazard(spec, T[:, None], coef, eta, a, a_s, base)[..., 0]
    lh = log_hazard(spec, T, coef, eta, a, a_s, base)
    return jd.surv.event * lh - H


def augment(idata: Any, jd: JointDesign, seed: int) -> Any:
    """Posterior in the user's terms: β, SDs, correlations, γ, α, baseline, each patient's
    random effects (from z); per-patient log-likelihood; observed data."""
    from alsfrs.bayes.posterior import marginal_loglik

    post = idata.posterior
    C, Dn = post.sizes["chain"], post.sizes["draw"]
    beta = flat_draws(post["beta"].values)
    beta_c = jd.long.center(beta)
    chol, sigma = flat_draws(post["chol"].values), flat_draws(post["sigma"].values)
    z = flat_draws(post["z"].values)
    gamma = flat_draws(post["gamma"].values) if "gamma" in post else None
    alpha = flat_draws(post["alpha"].values) if "alpha" in post else None
    alpha_s = flat_draws(post["alpha_slope"].values) if "alpha_slope" in post else None
    alpha_re = flat_draws(post["alpha_shared"].values) if "alpha_shared" in post else None
    base = _base_draws(post, jd)
    D = beta.shape[0]
    G, q = z.shape[1], z.shape[2]
    b = np.empty((D, G, q))
    ll = np.empty((D, G))
    ll_long = marginal_loglik(jd.long, beta, chol, sigma)
    for s in range(0, D, CHUNK):
        e = min(D, s + CHUNK)
        b[s:e] = latent_effects_np(jd.long.stats, beta_c[s:e], chol[s:e], sigma[s:e], z[s:e])
        ll[s:e] = ll_long[s:e] + survival_loglik_np(
            jd, beta_c[s:e], b[s:e], None if gamma is None else gamma[s:e],
            None if alpha is None else alpha[s:e],
            None if alpha_s is None else alpha_s[s:e], base[s:e],
            None if alpha_re is None else alpha_re[s:e])
    keep = [v for v in ("beta", "sd", "corr", "chol", "sigma", "gamma", "alpha", "alpha_slope",
                        "alpha_shared", "log_h0", "log_rate", "log_shape", "log_h0_level",
                        "log_h0_trend", "tau_bs", "bs_coef") if v in post]
    new_post = post[keep].assign(patient_effects=(
        ("chain", "draw", "patient", "re_term"), b.reshape(C, Dn, G, q)))
    new_post.attrs = dict(post.attrs)
    patients = jd.patients
    log_lik = xr.Dataset({"joint_by_patient": (("chain", "draw", "patient"), ll.reshape(C, Dn, G))},
                         coords={"chain": new_post.chain, "draw": new_post.draw,
                                 "patient": patients})
    mm = jd.long.mm
    visit = np.arange(mm.n_obs)
    observed = xr.Dataset({"y": (("visit",), mm.y),
                           "event_time": (("patient",), jd.surv.time),
                           "event": (("patient",), jd.surv.event)},
                          coords={"visit": visit, "patient": patients})
    constant = xr.Dataset({"patient_index": (("visit",), mm.group)}, coords={"visit": visit})
    return azcompat.assemble(posterior=new_post, sample_stats=idata.sample_stats,
                             log_likelihood=log_lik, observed_data=observed,
                             constant_data=constant, attrs={"loo_unit": "joint_by_patient"})


@dataclass(eq=False)
class JointResult(Result):
    """A fitted Bayesian joint longitudinal–survival model.

    Attributes
    ----------
    idata : arviz.InferenceData
        ``posterior``: ``beta`` (longitudinal terms), ``sd``, ``corr``, ``chol``,
        ``sigma``, ``gamma`` (survival terms), ``alpha`` (current value),
        ``alpha_slope`` (``"value+slope"``), ``alpha_shared`` (``"shared"``: one per
        random effect), ``log_h0`` (piecewise: per piece; spline and pspline: at the
        knots), ``log_rate``/``log_shape`` (Weibull), ``bs_coef``, ``tau_bs``,
        ``log_h0_level``, ``log_h0_trend`` (pspline), ``patient_effects``;
        ``log_likelihood["joint_by_patient"]``: each patient's marginal longitudinal
        log-likelihood plus the survival log-likelihood given the patient's
        random effects (leave-one-patient-out LOO, conditional on b_i).
    design : JointDesign
    priors : JointPriors
    timing : dict
        ``total_seconds`` (compilation and sampling), ``sampling_seconds``.
    """

    kind: ClassVar[str] = "joint"

    longitudinal: str
    survival: str
    seed: int
    idata: Any
    design: JointDesign
    priors: JointPriors
    timing: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    visits: pd.DataFrame | None = field(repr=False, default=None)
    patients: pd.DataFrame | None = field(repr=False, default=None)

    # -- basics -------------------------------------------------------------------------
    @property
    def response(self) -> str:
        return self.design.long.mm.response

    @property
    def value_name(self) -> str:
        return f"value({self.response})"

    @property
    def slope_name(self) -> str:
        return f"slope({self.response})"

    @property
    def association_names(self) -> list[str]:
        """Rows of :meth:`hazard_ratios` that are association parameters."""
        if self.design.association == "shared":
            return [shared_name(self.response, n) for n in self.design.long.mm.random_names]
        names = [self.value_name]
        if self.design.association == "value+slope":
            names.append(self.slope_name)
        return names

    @property
    def nobs(self) -> int:
        return self.design.long.mm.n_obs

    @property
    def npatients(self) -> int:
        return self.design.long.mm.n_groups

    @property
    def nevents(self) -> int:
        return int(self.design.surv.event.sum())

    @property
    def time(self) -> str:
        return self.design.long.time

    @property
    def grouping(self) -> str:
        """The patient identifier column of the visits."""
        return self.design.long.mm.grouping

    def draws(self, name: str) -> np.ndarray:
        """Posterior draws of a variable, chains stacked: shape (draws, ...)."""
        return flat_draws(self.idata.posterior[name].values)

    # -- parameters ----------------------------------------------------------------------
    def _parameters(self) -> list[tuple[str, str, str, tuple[int, ...]]]:
        """(submodel, name, posterior variable, index) of every reported parameter."""
        mm = self.design.long.mm
        out = [("longitudinal", n, "beta", (j,)) for j, n in enumerate(mm.fixed_names)]
        out += [("longitudinal", f"sd__{n}", "sd", (k,)) for k, n in enumerate(mm.random_names)]
        for block in mm.blocks:
            for ia, a in enumerate(block):
                for b in block[ia + 1:]:
                    out.append(("longitudinal",
                                f"cor__{mm.random_names[a]}.{mm.random_names[b]}", "corr",
                                (a, b)))
        out.append(("longitudinal", "sd__Observation", "sigma", ()))
        out += [("survival", n, "gamma", (j,)) for j, n in enumerate(self.design.surv.names)]
        if "alpha_shared" in self.idata.posterior:
            out += [("survival", shared_name(self.response, n), "alpha_shared", (k,))
                    for k, n in enumerate(mm.random_names)]
        if "alpha" in self.idata.posterior:
            out.append(("survival", self.value_name, "alpha", ()))
        if "alpha_slope" in self.idata.posterior:
            out.append(("survival", self.slope_name, "alpha_slope", ()))
        if self.design.baseline == "piecewise":
            kn = self.design.knots
            for k in range(self.design.n_pieces):
                hi = "inf" if not np.isfinite(kn[k + 1]) else f"{kn[k + 1]:.1f}"
                out.append(("baseline", f"log_h0[{kn[k]:.1f}, {hi})", "log_h0", (k,)))
        elif self.design.baseline in ("spline", "pspline"):
            for k, t in enumerate(self.design.spline_knots):
                out.append(("baseline", f"log_h0({t:.1f})", "log_h0", (k,)))
            if self.design.baseline == "pspline":
                out.append(("baseline", "tau_bs", "tau_bs", ()))
        else:
            out += [("baseline", "log_rate", "log_rate", ()),
                    ("baseline", "log_shape", "log_shape", ())]
        return out

    @cached_property
    def _convergence(self) -> tuple[dict, dict, dict]:
        vars_ = sorted({v for _, _, v, _ in self._parameters()})
        return (azcompat.rhat(self.idata, vars_), azcompat.ess(self.idata, vars_, "bulk"),
                azcompat.ess(self.idata, vars_, "tail"))

    def summary(self, hdi_prob: float = 0.95) -> pd.DataFrame:
        """Posterior summary, one row per parameter, indexed by (submodel, term).

        Columns ``mean, sd, hdi_lower_<p>, hdi_upper_<p>, r_hat, ess_bulk, ess_tail``.
        Longitudinal terms use lme4/broom.mixed names; survival rows are log hazard
        ratios per unit (survival terms) and per ALSFRS-R point (``value(alsfrs_r)``);
        baseline rows are log hazards per month at mean covariates and ALSFRS-R equal to
        its mean over visits.
        """
        rhat, ess_b, ess_t = self._convergence
        pct = f"{round(100 * hdi_prob):d}"
        rows = []
        for sub, name, var, idx in self._parameters():
            d = self.draws(var)[(slice(None), *idx)]
            lo, hi = azcompat.hdi(d, hdi_prob)
            rows.append({"submodel": sub, "term": name, "mean": d.mean(), "sd": d.std(ddof=1),
                         f"hdi_lower_{pct}": lo, f"hdi_upper_{pct}": hi,
                         "r_hat": float(rhat[var][idx]), "ess_bulk": float(ess_b[var][idx]),
                         "ess_tail": float(ess_t[var][idx])})
        return pd.DataFrame(rows).set_index(["submodel", "term"])

    def longitudinal_effects(self, hdi_prob: float = 0.95) -> pd.DataFrame:
        """The longitudinal rows of :meth:`summary` (the shape of ``fit_bayes``'s summary)."""
        return self.summary(hdi_prob).loc["longitudinal"]

    def hazard_ratios(self, level: float = 0.95) -> pd.DataFrame:
        """Hazard ratios of the survival terms and of the association.

        Index: the survival terms (``anxiolytic``, ``sexM``, …) and
        ``value(alsfrs_r)`` (per ALSFRS-R point of the current true value;
        ``slope(alsfrs_r)`` per point/month of current slope), or with
        ``association="shared"`` ``ranef(alsfrs_r):(Intercept)`` (per point of the
        patient's level above average) and ``ranef(alsfrs_r):months`` (per point/month
        of slope above average, i.e. slower decline). Columns: posterior
        mean and SD of the log HR, the HR (posterior median) with its equal-tailed
        interval at ``level``, P(HR > 1), R-hat and bulk ESS.
        ``attrs["per_point_lost"]`` gives α in words as the HR per point *lost*.
        """
        if not 0 < level < 1:
            raise ValidationError(Problem(rule="invalid_level", message="level must be in (0, 1)"))
        rhat, ess_b, _ = self._convergence
        a = (1 - level) / 2
        pct = f"{round(100 * level):d}"
        rows = []
        for sub, name, var, idx in self._parameters():
            if sub != "survival":
                continue
            d = self.draws(var)[(slice(None), *idx)]
            lo, med, hi = np.quantile(d, [a, 0.5, 1 - a])
            rows.append({"term": name, "log_hr_mean": d.mean(), "log_hr_sd": d.std(ddof=1),
                         "hr": np.exp(med), f"hr_lower_{pct}": np.exp(lo),
                         f"hr_upper_{pct}": np.exp(hi), "prob_hr_gt_1": float((d > 0).mean()),
                         "r_hat": float(rhat[var][idx]), "ess_bulk": float(ess_b[var][idx])})
        out = pd.DataFrame(rows).set_index("term")
        out.attrs["level"] = level
        out.attrs["per_point_lost"] = self.association_in_words()
        return out

    def association_in_words(self) -> str:
        """α as the hazard ratio per ALSFRS-R point lost, in a sentence (``"shared"``: the
        HR per point of the patient's level below average and per point/month of faster
        decline than average)."""
        if self.design.association == "shared":
            return self._shared_in_words()
        al = self.draws("alpha")
        hr = np.exp(-np.median(al))
        lo, hi = np.exp(-np.quantile(al, [0.975, 0.025]))
        change = 100 * (hr - 1)
        verb = "raises" if change >= 0 else "lowers"
        return (f"each {self.response} point lost {verb} the hazard of death or invasive "
                f"ventilation by {abs(change):.0f}% (HR per point lost {hr:.3f}, 95% interval "
                f"{lo:.3f} to {hi:.3f})")

    def _shared_in_words(self) -> str:
        al = self.draws("alpha_shared")
        parts = []
        for k, name in enumerate(self.design.long.mm.random_names):
            # a lower level / a faster decline is a negative random effect: HR of −1 unit
            d = -al[:, k]
            hr = np.exp(np.median(d))
            lo, hi = np.exp(np.quantile(d, [0.025, 0.975]))
            change = 100 * (hr - 1)
            verb = "raises" if change >= 0 else "lowers"
            if name == "(Intercept)":
                what = (f"each {self.response} point a patient's level lies below the "
                        "average (random intercept)")
            elif name == self.time:
                per = "month" if self.time.startswith("months") else f"unit of {self.time}"
                what = (f"each {self.response} point per {per} of faster decline than "
                        "average (random slope)")
            else:
                what = f"each unit lower random effect {name}"
            parts.append(f"{what} {verb} the hazard of death or invasive ventilation by "
                         f"{abs(change):.0f}% (HR {hr:.3f}, 95% interval {lo:.3f} to {hi:.3f})")
        return "; ".join(parts)

    def exposure_effects(self, exposures: Any = None, level: float = 0.95,
                         margin: float = 0.1) -> pd.DataFrame:
        """Difference in monthly decline per exposure (columns as ``fit_bayes``), from the
        longitudinal submodel of the joint fit (corrected for informative dropout)."""
        if not 0 < level < 1:
            raise ValidationError(Problem(rule="invalid_level", message="level must be in (0, 1)"))
        mm = self.design.long.mm
        contrasts = exposure_contrasts(mm, self.visits.reset_index(drop=True), exposures,
                                       self.time)
        out = effects_from_draws(contrasts, self.draws("beta"), level, margin)
        out.attrs.update({"level": level, "margin": margin, "time": self.time})
        return out

    def loo(self) -> Any:
        """PSIS-LOO over patients (conditional on each patient's random effects)."""
        return azcompat.loo(self.idata, "joint_by_patient")

    # -- dynamic predictions ---------------------------------------------------------------
    def predict_survival(self, patient_history: pd.DataFrame, times: Any, *,
                         landmark: float | None = None, level: float = 0.95,
                         n_draws: int = 500, n_effects: int = 50,
                         seed: int | None = None) -> pd.DataFrame:
        """Conditional probability of remaining free of death/IMV, given the visits so far.

        For a patient alive at ``landmark`` (default: the last visit), with visits
        ``y`` up to then, ``π(t | landmark) = P(T > t | T > landmark, y)`` for each
        ``t`` in ``times``, as JMbayes2's ``predict(..., process = "event")``. For each
        posterior draw θ, ``π = E[S(t | b)] / E[S(landmark | b)]`` with b from the
        Gaussian conditional of the random effects given the visits under θ
        (``n_effects`` Monte Carlo draws; the ratio is exactly the expectation over
        p(b | y, T > landmark)); the band is the ``level`` interval over ``n_draws``
        posterior draws.

        Parameters
        ----------
        patient_history
            The patient's visits: the time column, the response and every covariate of
            both formulas (constant within patient); one patient, or several with the
            grouping column.
        times
            Future times (same axis as the visits); earlier ones are dropped.

        Returns
        -------
        DataFrame with columns ``patient_id`` (if several), ``time``, ``landmark``,
        ``mean``, ``median``, ``lower_<level>``, ``upper_<level>``.
        """
        from alsfrs.joint.design import _trajectory_polynomial

        jd = self.design
        mm = jd.long.mm
        hist = patient_history.reset_index(drop=True).copy()
        grouping = mm.grouping
        if grouping not in hist.columns:
            hist[grouping] = "patient"
        times = np.sort(np.atleast_1d(np.asarray(times, dtype=float)))
        rng = np.random.default_rng(self.seed if seed is None else seed)
        beta = self.draws("beta")
        D = beta.shape[0]
        sel = np.sort(rng.choice(D, size=min(n_draws, D), replace=False))
        beta, chol = beta[sel], self.draws("chol")[sel]
        sigma = self.draws("sigma")[sel]
        shared = jd.association == "shared"
        alpha = (np.zeros(len(sel)) if shared else self.draws("alpha")[sel])
        alpha_re = self.draws("alpha_shared")[sel] if shared else None
        gamma = self.draws("gamma")[sel] if "gamma" in self.idata.posterior else None
        alpha_s = self.draws("alpha_slope")[sel] if "alpha_slope" in self.idata.posterior \
            else None
        base = _base_draws(self.idata.posterior, jd)[sel]
        spec = baseline_spec(jd)
        pct = f"{round(100 * level):d}"
        out = []
        for pid, h in hist.groupby(grouping, sort=False):
            h = h.reset_index(drop=True)
            y = pd.to_numeric(h[mm.response]).to_numpy(dtype=float)
            X = mm.fixed_design(h)
            Z = mm.random_design(h)
            t_last = float(pd.to_numeric(h[self.time]).max())
            t0 = t_last if landmark is None else float(landmark)
            if t0 < t_last - 1e-9:
                raise ValidationError(Problem(
                    rule="visit_after_landmark", patient=pid, column=self.time,
                    message=f"visits after the landmark time {t0:g}"), context="predict_survival")
            P, Q = _trajectory_polynomial(mm, h, self.time, np.array([0]))
            W = self._survival_row(h.iloc[[0]])
            # conditional of b given the visits, per draw
            r = y[None, :] - beta @ X.T  # (D, n)
            lam = chol / sigma[:, None, None]
            ZL = np.einsum("nq,dqk->dnk", Z, lam)
            A = np.einsum("dnk,dnl->dkl", ZL, ZL) + np.eye(Z.shape[1])
            u = np.einsum("dnk,dn->dk", ZL, r)
            Ainv = np.linalg.inv(A)
            mean = np.einsum("dkj,dj->dk", lam, np.einsum("dkl,dl->dk", Ainv, u))
            cov = sigma[:, None, None] ** 2 * np.einsum("dkj,djl,dml->dkm", lam, Ainv, lam)
            Lc = np.linalg.cholesky(cov + 1e-12 * np.eye(cov.shape[-1]))
            e = rng.standard_normal((len(sel), n_effects, Z.shape[1]))
            bdraw = mean[:, None, :] + np.einsum("dkl,dml->dmk", Lc, e)  # (D, M, q)
            coef = []
            for d in range(P.shape[0]):
                c = (beta @ P[d, 0])[:, None] + bdraw @ Q[d, 0]
                coef.append(c)
            while len(coef) < jd.degree + 1:
                coef.append(np.zeros_like(coef[0]))
            if shared:
                eta = np.einsum("dmq,dq->dm", bdraw, alpha_re)
            else:
                eta = alpha[:, None] * (coef[0] - jd.m_ref)
            if gamma is not None and gamma.shape[1]:
                eta = eta + (gamma @ (W - jd.wbar))[:, None]
            tt = np.concatenate([[t0], times[times >= t0]])
            H = cumulative_hazard(spec, tt, coef, eta, alpha[:, None],
                                  None if alpha_s is None else alpha_s[:, None], base)
            S = np.exp(-H).mean(axis=1)  # (D, nt)
            pi = S[:, 1:] / S[:, :1]
            lo, med, hi = np.quantile(pi, [(1 - level) / 2, 0.5, 1 - (1 - level) / 2], axis=0)
            frame = pd.DataFrame({grouping: pid, "time": tt[1:], "landmark": t0,
                                  "mean": pi.mean(axis=0), "median": med,
                                  f"lower_{pct}": lo, f"upper_{pct}": hi})
            out.append(frame)
        res = pd.concat(out, ignore_index=True)
        if hist[grouping].nunique() == 1 and grouping not in patient_history.columns:
            res = res.drop(columns=[grouping])
        res.attrs["level"] = level
        return res

    def _survival_row(self, row: pd.DataFrame) -> np.ndarray:
        """The survival covariates of one patient as the fit coded them."""
        design = self.design.surv.spec
        if design is None or not self.design.surv.names:
            return np.zeros(0)
        return design.design(row)[0]

    # -- the contract ------------------------------------------------------------------------
    def diagnostics(self) -> pd.DataFrame:
        """R-hat ≤ 1.01 and bulk/tail ESS ≥ 400 over every reported parameter (Vehtari et
        al. 2021), no divergent transitions, E-BFMI ≥ 0.3 in every chain."""
        s = self.summary()
        stats = self.idata.sample_stats
        div = int(np.asarray(stats["diverging"].values).sum()) if "diverging" in stats else 0
        try:
            bfmi = float(np.min(azcompat.bfmi(self.idata)))
        except (KeyError, ValueError, TypeError):  # pragma: no cover
            bfmi = float("nan")

        def worst(col: str, fn: str) -> str:
            v = s[col]
            if v.isna().all():
                return "not computable (one chain, or too few draws)"
            i = getattr(v, fn)()
            return f"{i[1]} ({i[0]})"

        def check(name: str, col: str, fn: str, crit: str, ok) -> tuple:
            v = s[col]
            value = float(getattr(v, "max" if fn == "idxmax" else "min")())
            passed = bool(ok(value)) if np.isfinite(value) else False
            return (name, value, crit, passed, worst(col, fn))

        rows = [
            check("max R-hat", "r_hat", "idxmax", f"<= {RHAT_MAX}", lambda x: x <= RHAT_MAX),
            check("min bulk ESS", "ess_bulk", "idxmin", f">= {ESS_MIN}", lambda x: x >= ESS_MIN),
            check("min tail ESS", "ess_tail", "idxmin", f">= {ESS_MIN}", lambda x: x >= ESS_MIN),
            ("divergent transitions", div, "0", div == 0, ""),
            ("min E-BFMI", bfmi, ">= 0.3", bool(bfmi >= 0.3) if np.isfinite(bfmi) else True,
             ""),
        ]
        return diagnostics_frame(rows)

    @property
    def model_spec(self) -> ModelRecord:
        return ModelRecord(formula={"longitudinal": self.longitudinal,
                                    "survival": self.survival},
                           engine=self._engine_text(), settings=dict(self.settings),
                           seed=self.seed)

    def _engine_text(self) -> str:
        """PyMC's NUTS on the NumPy log density (closed-form designs) or on the PyMC
        model compiled by PyTensor (fits saved before the NumPy engine say neither)."""
        if self.settings.get("engine") == "numpy":
            return "pymc NUTS on a NumPy log density (joint)"
        return "pymc (joint)"

    def _display(self) -> Display:
        s = self.settings
        header = [("longitudinal", self.longitudinal), ("survival", self.survival),
                  ("association", str(s.get("association"))),
                  ("baseline hazard", self._baseline_text()),
                  ("cumulative hazard", "closed form" if self.design.closed_form else
                   f"Gauss-Legendre, {self.design.quadrature_nodes} nodes per piece"),
                  ("data", f"{self.npatients} patients, {self.nobs} visits, {self.nevents} "
                           "events"),
                  ("sampling", f"{s.get('chains')} chains x {s.get('draws')} draws "
                               f"({s.get('tune')} tuning), seed {self.seed}")]
        hr = self.hazard_ratios()
        long = self.longitudinal_effects()
        diag = self.diagnostics()
        return Display(
            title="Bayesian joint model: ALSFRS-R and death or invasive ventilation",
            header=header,
            tables=[DisplayTable("Hazard ratios (survival submodel)", hr),
                    DisplayTable("Longitudinal submodel", long),
                    DisplayTable("Diagnostics", diag)],
            notes=[hr.attrs["per_point_lost"], *self.diagnostic_messages()])

    def _baseline_text(self) -> str:
        jd = self.design
        if jd.baseline == "pspline":
            return (f"pspline: cubic B-spline, {jd.pspline.n_segments} equal segments over "
                    f"0-{jd.pspline.t_max:.1f}, second-difference penalty")
        if jd.baseline in ("piecewise", "spline"):
            return f"{jd.baseline}, {jd.n_pieces} pieces"
        return jd.baseline

    def _to_payload(self) -> Payload:
        jd = self.design
        mm = jd.long.mm
        vcols = [c for c in mm.variables if c in self.visits.columns]
        if self.time not in vcols:
            vcols.append(self.time)
        pcols = [c for c in self.patients.columns if c in set(jd.surv.levels) | {
            jd.surv.time_name, jd.surv.event_name} or c in _survival_variables(self.survival)]
        pats = self.patients[pcols].copy()
        pats.index.name = mm.grouping
        pats = pats.reset_index()
        fields = {"longitudinal": self.longitudinal, "survival": self.survival,
                  "seed": self.seed, "timing": dict(self.timing),
                  "settings": dict(self.settings),
                  "priors": self.priors.to_dict(self.response)}
        # categorical columns stay categorical: Parquet keeps the level order (reference)
        visits = self.visits[vcols].reset_index(drop=True).copy()
        return Payload(fields=fields, tables={"visits": visits, "patients": pats},
                       idata=self.idata)

    @classmethod
    def _from_payload(cls, payload: Payload) -> JointResult:
        from alsfrs.joint.fit import prepare_joint
        from alsfrs.joint.priors import resolve_joint_priors

        f = payload.fields
        s = f["settings"]
        visits, pf, jd = prepare_joint(
            f["longitudinal"], f["survival"], payload.tables["visits"],
            patients=payload.tables["patients"], association=s["association"],
            baseline=s["baseline"], n_pieces=int(s["n_pieces"]),
            quadrature=not s["closed_form"], quadrature_nodes=int(s["quadrature_nodes"]),
            time=s["time"])
        mm = jd.long.mm
        p = f["priors"]
        pri = resolve_joint_priors(
            {"longitudinal": p["longitudinal"], "survival": p["survival"]},
            fixed_names=mm.fixed_names, random_names=mm.random_names, blocks=mm.blocks,
            y=mm.y, time=jd.long.time, surv_names=jd.surv.names, response=mm.response,
            log_rate=0.0)
        return cls(longitudinal=f["longitudinal"], survival=f["survival"], seed=f["seed"],
                   idata=payload.idata, design=jd, priors=pri, timing=f["timing"],
                   settings=s, visits=visits, patients=pf)


def _survival_variables(formula: str) -> set[str]:
    from alsfrs.joint.fit import _parse_survival
    from alsfrs.joint.fit import _survival_variables as covariates

    f = _parse_survival(formula)
    return {f.time, f.event, *covariates(f)}
