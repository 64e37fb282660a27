"""BayesResult: the posterior, read through the same interface as the mixed model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from alsfrs import azcompat
from alsfrs.bayes.model import Design
from alsfrs.bayes.priors import PriorSet
from alsfrs.effects import effects_from_draws, exposure_contrasts
from alsfrs.errors import Problem, ValidationError
from alsfrs.longitudinal import LongitudinalResult, interval_columns
from alsfrs.matrices import as_frame
from alsfrs.results import (
    Display,
    DisplayTable,
    ModelRecord,
    Payload,
    diagnostics_frame,
    versions,
)

__all__ = ["ESS_MIN", "RHAT_MAX", "BayesResult"]

#: Warning thresholds (Vehtari et al. 2021: R-hat below 1.01, bulk ESS above 400).
RHAT_MAX = 1.01
ESS_MIN = 400


def flat_draws(a: Any) -> np.ndarray:
    """Draws with chains stacked: (chain, draw, ...) -> (chain * draw, ...)."""
    a = np.asarray(a)
    return a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])


@dataclass(eq=False)
class BayesResult(LongitudinalResult):
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
    versions: dict[str, str] = field(repr=False, default_factory=versions)

    kind = "bayes"
    short_name = "Bayes"

    # -- basics ------------------------------------------------------------------------
    @property
    def matrices(self) -> Any:
        """The shared model matrices (``design.mm``)."""
        return self.design.mm

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

    def exposure_effects(self, exposures: Any = None, *, level: float = 0.95,
                         margin: float = 0.1, time: str | None = None) -> pd.DataFrame:
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
        out = effects_from_draws(contrasts, self.draws("beta"), level, margin)
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

        Columns: ``mean, sd, hdi_lower_95, hdi_upper_95`` (highest-density interval at
        ``hdi_prob``; the names carry the level), ``r_hat`` (rank-normalised split
        R-hat), ``ess_bulk``, ``ess_tail``. Random-effect SDs are ``sd__<term>``, correlations
        ``cor__<a>.<b>``, the residual SD ``sd__Observation`` (broom.mixed names).
        """
        params = self._parameters()
        lo_name, hi_name = interval_columns(hdi_prob, "hdi")
        vars_ = sorted({v for _, v, _ in params})
        rhat = azcompat.rhat(self.idata, vars_)
        ess_b = azcompat.ess(self.idata, vars_, "bulk")
        ess_t = azcompat.ess(self.idata, vars_, "tail")
        rows = []
        for name, var, idx in params:
            d = self.draws(var)[(slice(None), *idx)]
            lo, hi = azcompat.hdi(d, hdi_prob)
            rows.append({"term": name, "mean": d.mean(), "sd": d.std(ddof=1), lo_name: lo,
                         hi_name: hi, "r_hat": float(rhat[var][idx]),
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
             bool(s["r_hat"].max() <= RHAT_MAX), _worst(s["r_hat"], max)),
            ("min bulk ESS", float(s["ess_bulk"].min()), f">= {ESS_MIN}",
             bool(s["ess_bulk"].min() >= ESS_MIN), _worst(s["ess_bulk"], min)),
            ("min tail ESS", float(s["ess_tail"].min()), f">= {ESS_MIN}",
             bool(s["ess_tail"].min() >= ESS_MIN), _worst(s["ess_tail"], min)),
            ("divergent transitions", div, "0", div == 0,
             "raise target_accept or reparameterise" if div else ""),
            ("min E-BFMI", bfmi, ">= 0.3", bool(bfmi >= 0.3) if np.isfinite(bfmi) else True,
             "" if np.isfinite(bfmi) else "not available for this sampler"),
        ]
        return diagnostics_frame(rows)

    def loo(self) -> Any:
        """PSIS-LOO (leave one patient out for Gaussian fits)."""
        return azcompat.loo(self.idata, self.loo_unit)

    # -- the result contract -------------------------------------------------------------
    def parameters(self, level: float = 0.95) -> pd.DataFrame:
        """Every parameter: posterior mean, SD and equal-tailed interval at ``level``."""
        a = (1 - level) / 2
        rows = []
        for name, var, idx in self._parameters():
            d = self.draws(var)[(slice(None), *idx)]
            lo, hi = np.quantile(d, [a, 1 - a])
            rows.append({"term": name, "estimate": d.mean(), "std_error": d.std(ddof=1),
                         "ci_lower": lo, "ci_upper": hi})
        out = pd.DataFrame(rows).set_index("term")
        out.attrs["interval"] = f"equal-tailed {100 * level:g}% posterior"
        return out

    def prior_table(self) -> list[tuple[str, str]]:
        """The priors of the fitted model's own parameters (``nu`` only for Student-t;
        correlations only where a random-effects block has several terms)."""
        rows = [(k, str(v)) for k, v in self.priors.fixed.items()]
        rows += [(f"sd__{k}", str(v)) for k, v in self.priors.sd.items()]
        if any(len(b) > 1 for b in self.design.mm.blocks):
            rows.append(("cor__ (correlation matrix)", f"lkj({self.priors.lkj_eta:g})"))
        rows.append(("sigma", str(self.priors.sigma)))
        if self.family != "gaussian":
            rows.append(("nu", str(self.priors.nu)))
        return rows

    def posterior_predictive_scores(self) -> np.ndarray | None:
        """Replicated visit scores (draws × visits) from ``idata.posterior_predictive``,
        or None when the result holds none."""
        pp = getattr(self.idata, "posterior_predictive", None)
        if pp is None or "y" not in pp:
            return None
        return flat_draws(pp["y"].values)

    def slope_sd_draws(self) -> np.ndarray | float:
        names = list(self.design.random_names)
        if self.time in names:
            return self.draws("sd")[:, names.index(self.time)]
        return float("nan")

    def coefficient_draws(self, terms: Any) -> np.ndarray:
        names = list(self.design.fixed_names)
        return self.draws("beta")[:, [names.index(t) for t in terms]]

    @property
    def model_spec(self) -> ModelRecord:
        return ModelRecord(formula=self.formula, engine="pymc",
                           settings={"family": self.family,
                                     "parameterization": self.parameterization,
                                     "sampler": self.sampler, "time": self.time,
                                     **self.settings},
                           seed=self.seed, versions=dict(self.versions))

    def _display(self) -> Display:
        st = self.settings
        header = [("Formula", self.formula),
                  ("Model", f"{self.family}, {self.parameterization}, sampler {self.sampler}"),
                  ("Data", f"{self.nobs} visits, {self.ngroups} patients"),
                  ("Sampling", f"{st.get('chains')} chains × {st.get('draws')} draws "
                               f"(+ {st.get('tune')} tuning), seed {self.seed}")]
        return Display(title="Bayesian hierarchical model", header=header,
                       tables=[DisplayTable("Posterior summary (95% HDI)", self.summary())],
                       notes=self.diagnostic_messages())

    def _to_payload(self, full: bool = False, **options: Any) -> Payload:
        """What a saved Bayesian fit holds.

        The sampled draws (``beta``, ``sd``, ``corr``, ``chol``, ``sigma``, ``nu``)
        and the sampler statistics always. For the collapsed parameterisation the
        per-patient effects, the per-patient log-likelihood and the posterior
        predictive draws are exact functions of those draws and the seed, so they
        are recomputed on loading (bit for bit) instead of stored, unless
        ``full=True``: a 1,000-patient fit then takes a few MB, not 50.
        """
        idata = self.idata
        recompute = self.parameterization == "collapsed" and not full
        if recompute:
            post = idata.posterior
            keep = [v for v in ("beta", "sd", "corr", "chol", "sigma", "nu") if v in post]
            idata = azcompat.assemble(posterior=post[keep], sample_stats=idata.sample_stats)
        fields = {"formula": self.formula, "family": self.family,
                  "parameterization": self.parameterization, "sampler": self.sampler,
                  "seed": self.seed, "time": self.time, "timing": self.timing,
                  "settings": self.settings, "priors": dataclasses.asdict(self.priors),
                  "versions": self.versions, "recompute_derived": recompute}
        return Payload(fields=fields, tables={"data": self.data}, idata=idata)

    @classmethod
    def _from_payload(cls, payload: Payload) -> BayesResult:
        from alsfrs.bayes.model import build_model, make_design
        from alsfrs.bayes.priors import Prior
        from alsfrs.matrices import build_model_matrices

        f = payload.fields
        data = payload.tables["data"]
        p = f["priors"]

        def prior(d: dict) -> Prior:
            return Prior(d["dist"], tuple(d["params"]))

        priors = PriorSet(fixed={k: prior(v) for k, v in p["fixed"].items()},
                          sd={k: prior(v) for k, v in p["sd"].items()},
                          sigma=prior(p["sigma"]), lkj_eta=float(p["lkj_eta"]), nu=prior(p["nu"]))
        design = make_design(build_model_matrices(f["formula"], data), f["time"])
        model = build_model(design, priors, family=f["family"],
                            parameterization=f["parameterization"])
        idata = payload.idata
        if f.get("recompute_derived"):
            from alsfrs.bayes.fit import augment_posterior

            idata = augment_posterior(idata, design, f["family"], f["parameterization"],
                                      f["seed"])
        return cls(formula=f["formula"], family=f["family"],
                   parameterization=f["parameterization"], sampler=f["sampler"], seed=f["seed"],
                   idata=idata, design=design, priors=priors, model=model,
                   timing=f["timing"], settings=f["settings"], _data=data,
                   versions=f.get("versions", {}))

    def __repr__(self) -> str:
        return (f"<BayesResult {self.family}/{self.parameterization}: {self.formula}; "
                f"{self.nobs} visits, {self.ngroups} patients>")


def _worst(col: pd.Series, pick: Any) -> str:
    """Which parameter is worst on a diagnostic (for the note)."""
    col = col.dropna()
    if col.empty:  # e.g. R-hat of a single chain is not defined
        return "not computable from these draws"
    name = col.idxmax() if pick is max else col.idxmin()
    return f"worst: {name}"
