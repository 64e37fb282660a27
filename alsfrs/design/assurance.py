"""Bayesian assurance: the probability of trial success averaged over the effect.

O'Hagan & Stevens (2001): with a design prior ``π(θ)`` for the true
difference in slope, assurance is ``∫ P(success | θ) π(θ) dθ``. When the
analysis is normal (the estimate ``θ̂ ~ N(θ, s²)`` with ``s`` from the
sample-size formula) and the prior is normal ``N(m, v)``, the integral has a
closed form: ``θ̂`` is marginally ``N(m, s² + v)``, so

    P(significant benefit) = Φ((m − z s) / √(s² + v)),   z = z_{1−α/2}.

With posterior draws as the prior (e.g. an exposure's slope effect from
:func:`alsfrs.fit_bayes`) the power is averaged over the draws; for other
analyses (CAFS, deaths) each simulated trial draws its own effect from the
prior (``analysis="simulation"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from alsfrs.design.formulas import power as formula_power
from alsfrs.errors import Problem, ValidationError
from alsfrs.results import Display, DisplayTable, ModelRecord, Payload, Result, diagnostics_frame

__all__ = ["AssuranceResult", "assurance", "normal_assurance"]


def normal_assurance(prior_mean: float, prior_sd: float, se: float, alpha: float = 0.05,
                     success: str = "benefit") -> float:
    """Closed-form assurance of a normal analysis under a normal prior.

    ``success="benefit"``: a significant positive effect (two-sided level
    ``alpha``); ``"any"``: significant in either direction.
    """
    z = stats.norm.ppf(1 - alpha / 2)
    sd = np.sqrt(se**2 + prior_sd**2)
    a = stats.norm.cdf((prior_mean - z * se) / sd)
    if success == "any":
        a = a + stats.norm.cdf((-prior_mean - z * se) / sd)
    return float(a)


def _prior_draws(prior: Any, term: str | None, scale: float, n_draws: int, rng: Any
                 ) -> tuple[np.ndarray | None, tuple[float, float] | None, str]:
    """(draws, normal (mean, sd), description) of the design prior."""
    if hasattr(prior, "draws") and hasattr(prior, "fixed_effects"):
        names = list(prior.fixed_effects.index)
        if term is None:
            inter = [n for n in names if ":" in n]
            if len(inter) != 1:
                raise ValidationError(Problem(
                    rule="bad_setting", column="term",
                    message=f"name the effect with term= (one of {names})"))
            term = inter[0]
        if term not in names:
            raise ValidationError(Problem(rule="bad_setting", column="term",
                                          message=f"{term!r} is not a term of the fit "
                                                  f"({names})"))
        d = np.asarray(prior.draws("beta"))[:, names.index(term)] * scale
        return d, None, f"posterior draws of {term} ({len(d):,})" + (
            f" × {scale:g}" if scale != 1 else "")
    if hasattr(prior, "dist") and hasattr(prior, "rvs"):  # frozen scipy distribution
        if prior.dist.name == "norm":
            m, s = float(prior.mean()) * scale, float(prior.std()) * abs(scale)
            return None, (m, s), f"normal(mean {m:.4g}, sd {s:.4g})"
        d = np.asarray(prior.rvs(size=n_draws, random_state=rng), dtype=float) * scale
        return d, None, f"{prior.dist.name} distribution ({n_draws:,} draws)"
    arr = np.asarray(prior, dtype=float).ravel()
    if arr.size < 2 or not np.all(np.isfinite(arr)):
        raise ValidationError(Problem(
            rule="bad_setting", column="prior_effect",
            message="prior_effect must be a Bayesian fit, a scipy distribution or an array of "
                    "finite draws"))
    return arr * scale, None, f"{arr.size:,} draws"


def assurance(prior_effect: Any, n_per_arm: int | Sequence[int], *, pilot: Any,
              months: Sequence[float] = (0, 3, 6, 9, 12), method: str = "edland",
              attrition: float | Sequence[float] | None = None, ratio: float = 1.0,
              alpha: float = 0.05, term: str | None = None, scale: float = 1.0,
              success: str = "benefit", analysis: str = "formula", n_draws: int = 4000,
              seed: int | None = None, **simulation: Any) -> AssuranceResult:
    """Probability of a successful trial averaged over a design prior for the effect.

    Parameters
    ----------
    prior_effect : BayesResult, scipy frozen distribution or array of draws
        The design prior for the difference in slope (points per month,
        positive = slower decline). From a Bayesian fit, the posterior draws of
        ``term`` (e.g. ``"months:antidepressant"``) times ``scale`` (e.g.
        ``-1``: a treatment that undoes an exposure's faster decline).
    n_per_arm : int or sequence of int
    pilot : fitted result, PilotParameters or mapping
        Variance components for the trial's analysis.
    months, method, attrition, ratio, alpha
        As :func:`alsfrs.design.sample_size`.
    success : {"benefit", "any"}
        Significant benefit (default) or significance in either direction.
    analysis : {"formula", "simulation"}
        Normal analysis by formula (closed form for a normal prior, else
        averaged over draws), or simulated trials (each with its own effect
        drawn from the prior; ``simulation`` keywords go to
        :func:`alsfrs.design.simulate_power`, e.g. ``death="joint"``,
        ``analysis="cafs"`` via ``trial_analysis=``).
    n_draws : int
        Draws from a non-normal distribution prior (and trials for
        ``analysis="simulation"``).
    seed : int, optional

    Returns
    -------
    AssuranceResult
    """
    if success not in ("benefit", "any"):
        raise ValidationError(Problem(rule="bad_setting", column="success",
                                      message="success must be 'benefit' or 'any'"))
    if analysis not in ("formula", "simulation"):
        raise ValidationError(Problem(rule="bad_setting", column="analysis",
                                      message="analysis must be 'formula' or 'simulation'"))
    rng = np.random.default_rng(seed)
    draws, normal, described = _prior_draws(prior_effect, term, float(scale), n_draws, rng)
    sizes = [int(n) for n in np.atleast_1d(n_per_arm)]
    rows = []
    for n in sizes:
        f = formula_power(pilot, n_per_arm=n, effect=1.0, months=months, method=method,
                          attrition=attrition, ratio=ratio, alpha=alpha)
        se = f.standard_error(n)
        z = stats.norm.ppf(1 - alpha / 2)
        mean = normal[0] if normal else float(np.mean(draws))
        sd = normal[1] if normal else float(np.std(draws, ddof=1))
        row = {"n_per_arm": n, "standard_error": se, "prior_mean": mean, "prior_sd": sd,
               "power_at_prior_mean": float(stats.norm.cdf(mean / se - z) + (
                   stats.norm.cdf(-mean / se - z) if success == "any" else 0.0)),
               "normal_approximation": normal_assurance(mean, sd, se, alpha, success)}
        if analysis == "formula":
            if normal:
                row["assurance"] = row["normal_approximation"]
                row["mc_se"] = 0.0
            else:
                p = stats.norm.cdf(draws / se - z)
                if success == "any":
                    p = p + stats.norm.cdf(-draws / se - z)
                row["assurance"] = float(p.mean())
                row["mc_se"] = float(p.std(ddof=1) / np.sqrt(p.size))
        else:
            from alsfrs.design.simulate import simulate_power

            eff = draws if draws is not None else rng.normal(normal[0], normal[1], n_draws)
            eff = eff if eff.size <= n_draws else rng.choice(eff, n_draws, replace=False)
            trial_analysis = simulation.pop("trial_analysis", "lmm")
            sim = simulate_power(pilot, n_per_arm=n, effect=float(np.mean(eff)), months=months,
                                 n_trials=int(eff.size), analysis=trial_analysis,
                                 attrition=attrition, ratio=ratio, alpha=alpha,
                                 seed=None if seed is None else int(seed) + n,
                                 _effect_draws=eff, **simulation)
            tr = sim.trials
            sig = tr["p_value"] < alpha
            if success == "benefit":
                sig &= tr["estimate"] > (0.5 if trial_analysis == "cafs" else 0.0)
            row["assurance"] = float(sig.mean())
            row["mc_se"] = float(np.sqrt(row["assurance"] * (1 - row["assurance"]) / len(tr)))
        rows.append(row)
    table = pd.DataFrame(rows).set_index("n_per_arm")
    settings = {"months": [float(x) for x in months], "method": method, "ratio": float(ratio),
                "alpha": float(alpha), "success": success, "analysis": analysis,
                "prior": described, "term": term, "scale": float(scale)}
    return AssuranceResult(table=table, settings=settings, seed=seed)


class AssuranceResult(Result):
    """Assurance (probability of success averaged over the design prior) per n per arm.

    Attributes
    ----------
    table : DataFrame
        Index ``n_per_arm``; ``assurance``, its Monte Carlo SE ``mc_se``,
        ``standard_error`` of the effect estimate, the prior mean and SD,
        ``power_at_prior_mean`` and the ``normal_approximation``.
    """

    kind: ClassVar[str] = "assurance"

    def __init__(self, table: pd.DataFrame, settings: dict[str, Any], seed: int | None = None
                 ) -> None:
        self.table = table
        self.settings = settings
        self.seed = seed

    @property
    def assurance(self) -> float:
        """Assurance at the first n per arm."""
        return float(self.table["assurance"].iloc[0])

    def summary(self) -> pd.DataFrame:
        return self.table.copy()

    def diagnostics(self) -> pd.DataFrame:
        worst = float(self.table["mc_se"].max())
        return diagnostics_frame([("mc_se", worst, "Monte Carlo SE < 0.01", worst < 0.01)])

    @property
    def model_spec(self) -> ModelRecord:
        return ModelRecord(formula=None, engine=f"assurance:{self.settings['analysis']}",
                           settings=dict(self.settings), seed=self.seed)

    def _display(self) -> Display:
        st = self.settings
        return Display(
            title="Assurance (O'Hagan & Stevens 2001)",
            header=[("design prior", st["prior"]), ("analysis", st["analysis"]),
                    ("success", "significant benefit" if st["success"] == "benefit"
                     else "significant in either direction"),
                    ("alpha", f"{st['alpha']:g}"), ("method", st["method"])],
            tables=[DisplayTable("Assurance by patients per arm", self.table, digits=4)])

    def _to_payload(self) -> Payload:
        return Payload(fields={"settings": self.settings, "seed": self.seed},
                       tables={"table": self.table.reset_index()})

    @classmethod
    def _from_payload(cls, payload: Payload) -> AssuranceResult:
        return cls(table=payload.tables["table"].set_index("n_per_arm"),
                   settings=dict(payload.fields["settings"]), seed=payload.fields["seed"])

    def __repr__(self) -> str:
        return f"<AssuranceResult {self.assurance:.3f} at n = {self.table.index[0]}>"

    def power_curve(self, ax: Any = None) -> Any:
        """Assurance and power at the prior mean against n per arm."""
        from alsfrs.design.results import power_curve_figure

        t = self.table
        return power_curve_figure(t.index.to_numpy(), {
            "assurance": t["assurance"].to_numpy(),
            "power at the prior mean": t["power_at_prior_mean"].to_numpy()}, ax=ax,
            markers=True, title="Assurance")
