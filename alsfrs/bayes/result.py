"""BayesResult: the posterior, read through the same interface as the mixed model."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from alsfrs import azcompat
from alsfrs.bayes.model import Design
from alsfrs.bayes.priors import PriorSet
from alsfrs.effects import EFFECT_COLUMNS, exposure_contrasts
from alsfrs.errors import Problem, ValidationError
from alsfrs.matrices import as_frame

__all__ = ["ESS_MIN", "RHAT_MAX", "BayesResult"]

#: Warning thresholds (Vehtari et al. 2021: R-hat below 1.01, bulk ESS above 400).
RHAT_MAX = 1.01
ESS_MIN = 400


def flat_draws(a: Any) -> np.ndarray:
    """Draws with chains stacked: (chain, draw, ...) -> (chain * draw, ...)."""
    a = np.asarray(a)
    return a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])


@dataclass(eq=False)
class BayesResult:
    """A fitted Bayesian hierarchical slope model.

    Attributes
    ----------
    idata : arviz.InferenceData
        ``posterior`` (``beta`` by lme4 term, ``sd``, ``corr``, ``chol``,
        ``sigma``, ``nu`` for Student-t, and ``patient_effects``),
        ``log_likelihood`` (per patient, marginal, for Gaussian fits; per visit
        for Student-t), ``posterior_predictive``, ``observed_data``,
        ``constant_data`` and ``sample_stats``.
    model : pymc.Model
        The PyMC model, to extend or re-sample.
    priors : PriorSet
        The priors used (defaults with overrides applied).
    timing : dict
        ``total_seconds``, ``sampling_seconds``, ``compile_seconds``.
    """

    formula: str
    family: str
    parameterization: str
    sampler: str
    seed: int
    idata: Any
    design: Design
    priors: PriorSet
    model: Any = field(repr=False, default=None)
    timing: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    _data: pd.DataFrame | None = field(repr=False, default=None)

    # -- basics ------------------------------------------------------------------------
    @property
    def nobs(self) -> int:
        return self.design.mm.n_obs

    @property
    def ngroups(self) -> int:
        return self.design.mm.n_groups

    @property
    def loo_unit(self) -> str:
        """Log-likelihood variable for LOO: ``y_by_patient`` (Gaussian) or ``y`` (per visit)."""
        return str(self.idata.posterior.attrs.get("loo_unit", "y_by_patient"))

    @property
    def time(self) -> str:
        return self.design.time

    def draws(self, name: str) -> np.ndarray:
        """Posterior draws of a variable, chains stacked: shape (draws, ...)."""
        return flat_draws(self.idata.posterior[name].values)

    # -- the shared interface -----------------------------------------------------------
    @cached_property
    def fixed_effects(self) -> pd.DataFrame:
        """Posterior mean, SD and equal-tailed 95% interval of each fixed effect."""
        b = self.draws("beta")
        lo, hi = np.quantile(b, [0.025, 0.975], axis=0)
        return pd.DataFrame({"estimate": b.mean(0), "std_error": b.std(0, ddof=1),
                             "ci_lower": lo, "ci_upper": hi},
                            index=pd.Index(self.design.fixed_names, name="term", dtype=object))

    @cached_property
    def variance_components(self) -> pd.DataFrame:
        """Posterior means, shaped like R's ``as.data.frame(VarCorr(fit))``."""
        mm = self.design.mm
        L = self.draws("chol")
        cov = np.einsum("dik,djk->dij", L, L)
        sd = self.draws("sd")
        sigma = self.draws("sigma")
        rows = []
        for block, grp in zip(mm.blocks, mm.block_names, strict=True):
            for a in block:
                rows.append((grp, mm.random_names[a], None, cov[:, a, a].mean(), sd[:, a].mean()))
            for ia, a in enumerate(block):
                for b in block[ia + 1:]:
                    corr = cov[:, a, b] / (sd[:, a] * sd[:, b])
                    rows.append((grp, mm.random_names[a], mm.random_names[b],
                                 cov[:, a, b].mean(), float(np.nanmean(corr))))
        rows.append(("Residual", None, None, float((sigma**2).mean()), float(sigma.mean())))
        return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"]).astype(
            {"grp": object, "var1": object, "var2": object})

    @cached_property
    def random_effects(self) -> pd.DataFrame:
        """Posterior mean of each patient's random effects."""
        e = self.idata.posterior["patient_effects"].values
        return pd.DataFrame(e.mean(axis=(0, 1)), index=self.design.mm.group_labels,
                            columns=self.design.random_names)

    @cached_property
    def random_effects_se(self) -> pd.DataFrame:
        """Posterior SD of each patient's random effects."""
        e = flat_draws(self.idata.posterior["patient_effects"].values)
        return pd.DataFrame(e.std(axis=0, ddof=1), index=self.design.mm.group_labels,
                            columns=self.design.random_names)

    @cached_property
    def coef(self) -> pd.DataFrame:
        """Each patient's own coefficients (fixed + random, posterior means), like lme4 ``coef``."""
        fe = self.fixed_effects["estimate"]
        out = pd.DataFrame(np.broadcast_to(fe.to_numpy(), (self.ngroups, len(fe))).copy(),
                           index=self.design.mm.group_labels, columns=list(fe.index))
        for name in self.design.random_names:
            if name in out:
                out[name] = out[name] + self.random_effects[name]
            else:
                out[name] = self.random_effects[name]
        return out

    @property
    def sigma(self) -> float:
        return float(self.draws("sigma").mean())

    def predict(self, newdata: Any = None, include_random: bool = True) -> np.ndarray:
        """Posterior mean prediction (with each known patient's own effects)."""
        mm = self.design.mm
        beta = self.fixed_effects["estimate"].to_numpy()
        b = self.random_effects.to_numpy()
        if newdata is None:
            pred = mm.X @ beta
            if include_random:
                pred = pred + np.einsum("nq,nq->n", mm.Z, b[mm.group])
            return pred
        frame = as_frame(newdata)
        pred = mm.fixed_design(frame) @ beta
        if include_random:
            if mm.grouping not in frame.columns:
                raise ValidationError(Problem(
                    rule="unknown_column", column=mm.grouping,
                    message=f"newdata has no {mm.grouping!r} column; add it or use "
                            "include_random=False"))
            Z = mm.random_design(frame)
            pos = pd.Index(mm.group_labels.astype(str)).get_indexer(
                frame[mm.grouping].astype(str))
            known = pos >= 0
            pred[known] += np.einsum("nq,nq->n", Z[known], b[pos[known]])
        return pred

    def exposure_effects(self, exposures: Any = None, time: str | None = None,
                         level: float = 0.95, margin: float = 0.1) -> pd.DataFrame:
        """Difference in monthly decline for each exposure, from the posterior.

        Same columns as :meth:`alsfrs.lmm.LmmResult.exposure_effects` (posterior
        means, posterior SDs and equal-tailed intervals at ``level``; the
        definitions are in :mod:`alsfrs.effects`), plus ``prob_faster``, the
        posterior probability that the exposure speeds decline, and
        ``prob_faster_by_margin``, that it does so by more than ``margin``
        points/month (default 0.1).
        """
        if not 0 < level < 1:
            raise ValidationError(Problem(rule="invalid_level", message="level must be in (0, 1)"))
        t = self.time if time is None else time
        contrasts = exposure_contrasts(self.design.mm, self._data, exposures, t)
        beta = self.draws("beta")
        a = (1 - level) / 2
        rows = []
        for c in contrasts:
            diff = beta[:, c.index]
            ref = beta @ c.reference
            pct = -100.0 * diff / np.abs(ref)
            dlo, dhi = np.quantile(diff, [a, 1 - a])
            plo, phi = np.quantile(pct, [a, 1 - a])
            rows.append({"exposure": c.exposure, "term": c.term, "difference": diff.mean(),
                         "std_error": diff.std(ddof=1), "ci_lower": dlo, "ci_upper": dhi,
                         "reference_slope": ref.mean(), "percent_faster": pct.mean(),
                         "percent_lower": plo, "percent_upper": phi,
                         "prob_faster": float((diff < 0).mean()),
                         "prob_faster_by_margin": float((diff < -margin).mean())})
        out = pd.DataFrame(rows, columns=["exposure", *EFFECT_COLUMNS, "prob_faster",
                                          "prob_faster_by_margin"]).set_index("exposure")
        out.attrs.update({"level": level, "margin": margin, "time": t})
        return out

    # -- summaries and diagnostics -------------------------------------------------------
    def _parameters(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """(summary name, posterior variable, index) for every reported parameter."""
        mm = self.design.mm
        out = [(n, "beta", (j,)) for j, n in enumerate(mm.fixed_names)]
        out += [(f"sd__{n}", "sd", (k,)) for k, n in enumerate(mm.random_names)]
        for block in mm.blocks:
            for ia, a in enumerate(block):
                for b in block[ia + 1:]:
                    out.append((f"cor__{mm.random_names[a]}.{mm.random_names[b]}", "corr", (a, b)))
        out.append(("sd__Observation", "sigma", ()))
        if "nu" in self.idata.posterior:
            out.append(("nu", "nu", ()))
        return out

    def summary(self, hdi_prob: float = 0.95) -> pd.DataFrame:
        """Posterior summary indexed by lme4 term names.

        Columns: ``mean, sd, hdi_lower, hdi_upper`` (highest-density interval at
        ``hdi_prob``), ``r_hat`` (rank-normalised split R-hat), ``ess_bulk``,
        ``ess_tail``. Random-effect SDs are ``sd__<term>``, correlations
        ``cor__<a>.<b>``, the residual SD ``sd__Observation`` (broom.mixed names).
        """
        params = self._parameters()
        vars_ = sorted({v for _, v, _ in params})
        rhat = azcompat.rhat(self.idata, vars_)
        ess_b = azcompat.ess(self.idata, vars_, "bulk")
        ess_t = azcompat.ess(self.idata, vars_, "tail")
        rows = []
        for name, var, idx in params:
            d = self.draws(var)[(slice(None), *idx)]
            lo, hi = azcompat.hdi(d, hdi_prob)
            rows.append({"term": name, "mean": d.mean(), "sd": d.std(ddof=1), "hdi_lower": lo,
                         "hdi_upper": hi, "r_hat": float(rhat[var][idx]),
                         "ess_bulk": float(ess_b[var][idx]), "ess_tail": float(ess_t[var][idx])})
        out = pd.DataFrame(rows).set_index("term")
        out.attrs["hdi_prob"] = hdi_prob
        return out

    def diagnostics(self) -> pd.DataFrame:
        """Sampler diagnostics with a pass/fail column.

        R-hat ≤ 1.01 and bulk/tail ESS ≥ 400 over every reported parameter
        (Vehtari et al. 2021), no divergent transitions, E-BFMI ≥ 0.3 in every chain.
        """
        s = self.summary()
        stats = self.idata.sample_stats
        div = int(np.asarray(stats["diverging"].values).sum()) if "diverging" in stats else 0
        try:
            bfmi = float(np.min(azcompat.bfmi(self.idata)))
        except (KeyError, ValueError, TypeError):  # pragma: no cover - sampler without energy
            bfmi = float("nan")
        rows = [
            ("max R-hat", float(s["r_hat"].max()), f"<= {RHAT_MAX}",
             bool(s["r_hat"].max() <= RHAT_MAX)),
            ("min bulk ESS", float(s["ess_bulk"].min()), f">= {ESS_MIN}",
             bool(s["ess_bulk"].min() >= ESS_MIN)),
            ("min tail ESS", float(s["ess_tail"].min()), f">= {ESS_MIN}",
             bool(s["ess_tail"].min() >= ESS_MIN)),
            ("divergent transitions", float(div), "0", div == 0),
            ("min E-BFMI", bfmi, ">= 0.3", bool(bfmi >= 0.3) if np.isfinite(bfmi) else True),
        ]
        return pd.DataFrame(rows, columns=["check", "value", "threshold", "passed"]
                            ).set_index("check")

    def diagnostic_messages(self) -> list[str]:
        """Plain statements of every failed diagnostic (empty when all pass)."""
        s = self.summary()
        msgs = []
        bad_r = s.index[s["r_hat"] > RHAT_MAX].tolist()
        if bad_r:
            msgs.append(f"R-hat above {RHAT_MAX} for {', '.join(bad_r)} (max "
                        f"{s['r_hat'].max():.3f}): the chains disagree; run longer")
        bad_e = s.index[s["ess_bulk"] < ESS_MIN].tolist()
        if bad_e:
            msgs.append(f"bulk ESS below {ESS_MIN} for {', '.join(bad_e)} (min "
                        f"{s['ess_bulk'].min():.0f}): increase draws")
        d = self.diagnostics().loc["divergent transitions", "value"]
        if d > 0:
            msgs.append(f"{int(d)} divergent transitions: the posterior may be biased; raise "
                        "target_accept or reparameterise")
        return msgs

    def loo(self) -> Any:
        """PSIS-LOO (leave one patient out for Gaussian fits)."""
        return azcompat.loo(self.idata, self.loo_unit)

    # -- display -----------------------------------------------------------------------
    def __repr__(self) -> str:
        return (f"<BayesResult {self.family}/{self.parameterization}: {self.formula}; "
                f"{self.nobs} visits, {self.ngroups} patients>")

    def __str__(self) -> str:
        s = self.summary()
        with pd.option_context("display.width", 120, "display.float_format", "{:.3f}".format):
            return (f"Bayesian hierarchical model ({self.family}, {self.parameterization}, "
                    f"{self.sampler})\nformula: {self.formula}\n"
                    f"{self.nobs} visits, {self.ngroups} patients; "
                    f"{self.settings.get('chains')} chains x {self.settings.get('draws')} draws"
                    f"\n\n{s.to_string()}")

    def save(self, path: str) -> object:
        """Save to one file (JSON + Parquet + netCDF in a zip; no pickle).

        Load it back with :func:`alsfrs.load_result`; every number round-trips exactly.
        """
        from alsfrs.persist import save_result

        return save_result(self, path)

    def _repr_html_(self) -> str:
        s = self.summary().round(3)
        head = (f"<p><strong>Bayesian hierarchical model</strong> ({html.escape(self.family)}, "
                f"{html.escape(self.parameterization)})<br><code>{html.escape(self.formula)}"
                f"</code><br>{self.nobs} visits, {self.ngroups} patients</p>")
        return head + s.to_html(escape=True)
