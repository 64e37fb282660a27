"""Report renderers of longitudinal decline models (mixed model, Bayesian model).

Registered for :class:`~alsfrs.longitudinal.LongitudinalResult` (everything a
decline model has: effects in clinical words, the compact and the full effect
table, parameters, diagnostics, trajectory figures) and, adding what only a
posterior has (priors, posterior predictive check, rank plots, prior against
posterior), for :class:`~alsfrs.bayes.result.BayesResult`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from alsfrs.bayes.result import BayesResult
from alsfrs.instrument import MAX_TOTAL as TOTAL_MAX
from alsfrs.longitudinal import LongitudinalResult
from alsfrs.report import tables
from alsfrs.report.registry import (
    FigureBlock,
    Paragraph,
    ReportContext,
    Section,
    TableBlock,
    register_renderer,
)

__all__ = ["BayesRenderer", "LongitudinalRenderer", "effect_sentence"]


def _truth(ctx: ReportContext) -> dict[str, float] | None:
    t = ctx.truth or {}
    return t.get("exposure_slope_effects")


def _interval_word(result: Any) -> str:
    return "credible interval" if getattr(result, "idata", None) is not None else "CI"


def effect_sentence(row: pd.Series, level: float, interval: str, time_unit: str = "month"
                    ) -> str:
    """One exposure's effect on decline in plain words.

    "Antidepressant use: 0.26 points/month faster decline (95% CI 0.13 to 0.39),
    26% faster; about 3 points lower after 12 months; probability of faster
    decline > 0.99."
    """
    d, lo, hi = float(row["difference"]), float(row["ci_lower"]), float(row["ci_upper"])
    faster = d < 0
    word = "faster" if faster else "slower"
    a, b = (-hi, -lo) if faster else (lo, hi)  # the interval of the stated quantity
    pct = abs(float(row["percent_faster"]))
    at12 = d * 12
    if round(abs(at12)) < 1:
        later = f"less than 1 point of difference after 12 {time_unit}s"
    else:
        n = round(abs(at12))
        later = (f"about {n} point{'s' if n != 1 else ''} "
                 f"{'lower' if at12 < 0 else 'higher'} after 12 {time_unit}s")
    text = (f"{row['label']}: {abs(d):.2f} points/{time_unit} {word} decline "
            f"({100 * level:g}% {interval} {a:.2f} to {b:.2f}), {pct:.0f}% {word}; {later}")
    p = row.get("prob_faster", np.nan)
    if p is not None and np.isfinite(p):
        shown = "> 0.99" if p > 0.99 else "< 0.01" if p < 0.01 else f"= {p:.2f}"
        text += f"; probability of faster decline {shown}"
    return text + "."


@register_renderer(LongitudinalResult)
class LongitudinalRenderer:
    """Decline models: key findings, effects, parameters, diagnostics, trajectories."""

    def _effects(self, result: Any, ctx: ReportContext) -> pd.DataFrame:
        return result.effect_sizes(margin=float(ctx.extra.get("margin", 0.1)), level=ctx.level)

    def key_findings(self, name: str, result: Any, ctx: ReportContext) -> list[str]:
        try:
            eff = self._effects(result, ctx)
        except ValueError:  # no exposure × time interaction in this model
            return []
        unit = "month" if result.time.startswith("months") else result.time
        return [f"{effect_sentence(row, ctx.level, _interval_word(result), unit)} [{name}]"
                for _, row in eff.iterrows()]

    def sections(self, name: str, result: Any, ctx: ReportContext) -> list[Section]:
        out: list[Section] = []
        try:
            eff = self._effects(result, ctx)
        except ValueError as exc:
            eff = None
            out.append(Section(f"{name}: effects on decline",
                               [Paragraph(f"No exposure effects: {exc}")], part="effects"))
        if eff is not None:
            compact = tables.clinical_effects_table(eff, _truth(ctx))
            # one column per exposure, one row per measure: fits the page however many
            # measures there are
            full = eff.drop(columns=["label"]).T
            full.index.name = "measure"
            out.append(Section(f"{name}: effects on decline", [
                TableBlock(compact, caption=f"Difference in ALSFRS-R decline, exposed vs "
                                            f"unexposed ({_interval_word(result)}s at "
                                            f"{100 * ctx.level:g}%). Negative = faster decline.",
                           digits=2),
                TableBlock(full, caption="All effect-size columns (raw numbers)", details=True),
            ], part="effects"))
        spec = result.model_spec.to_frame()
        blocks: list[Any] = [
            Paragraph(f"{result.nobs} visits of {result.ngroups} patients; time variable "
                      f"{result.time!r}."),
            TableBlock(spec, caption="Model specification", index=True),
            TableBlock(result.parameter_table(ctx.level),
                       caption="Parameters with plain-language labels", details=True),
        ]
        blocks += self.extra_model_blocks(name, result, ctx)
        out.append(Section(name, blocks, part="models"))
        diag = result.diagnostics()
        dblocks: list[Any] = [TableBlock(diag, caption="Checks, the criterion each uses, and "
                                                       "whether it passed", digits=4)]
        dblocks += [Paragraph(m) for m in result.diagnostic_messages()]
        out.append(Section(name, dblocks, part="diagnostics"))
        out.append(Section(name, self.figures(name, result, ctx, eff), part="figures"))
        return out

    def extra_model_blocks(self, name: str, result: Any, ctx: ReportContext) -> list[Any]:
        return []

    def figures(self, name: str, result: Any, ctx: ReportContext,
                eff: pd.DataFrame | None) -> list[Any]:
        from alsfrs.report import plots

        figs: list[Any] = [FigureBlock(
            lambda: plots.trajectory_plot(result),
            f"Observed ALSFRS-R and fitted lines of a random sample of patients "
            f"(pseudonymised), {name}.")]
        for e in ([] if eff is None else list(eff.index)):
            label = tables.EXPOSURE_LABELS.get(e, e).lower()
            figs.append(FigureBlock(
                lambda e=e: plots.mean_trajectory_plot(result, e),
                f"Population mean trajectory with {100 * ctx.level:g}% band, {label} vs none "
                f"({name})."))
            figs.append(FigureBlock(
                lambda e=e: plots.slope_distribution_plot(result, e),
                f"Per-patient slopes by {label} ({name})."))
        return figs


@register_renderer(BayesResult)
class BayesRenderer(LongitudinalRenderer):
    """Bayesian decline models: adds priors and the posterior's own checks."""

    def extra_model_blocks(self, name: str, result: Any, ctx: ReportContext) -> list[Any]:
        pri = pd.DataFrame(result.prior_table(), columns=["parameter", "prior"])
        return [TableBlock(pri.set_index("parameter"),
                           caption="Priors of the fitted model (their reasoning: "
                                   "alsfrs.bayes.priors)")]

    def figures(self, name: str, result: Any, ctx: ReportContext,
                eff: pd.DataFrame | None) -> list[Any]:
        from alsfrs.report import plots

        figs = super().figures(name, result, ctx, eff)
        figs.append(FigureBlock(lambda: plots.ppc_plot(result), _ppc_caption(name, result)))
        figs.append(FigureBlock(lambda: plots.rank_plot(result),
                                f"Rank plots of the chains (uniform when they agree), {name}."))
        figs.append(FigureBlock(lambda: plots.prior_posterior_plot(result),
                                f"Prior and posterior of the key effects, {name}."))
        return figs


def _ppc_caption(name: str, result: Any) -> str:
    """What the posterior predictive check shows, in words, from the replicated scores."""
    rep = result.posterior_predictive_scores()
    if rep is None:
        return f"Posterior predictive check of visit scores, {name}."
    obs = result.matrices.y
    lo, hi = float(np.min(rep)), float(np.max(rep))
    below = float(np.mean(rep < 0))
    above = float(np.mean(rep > TOTAL_MAX))
    text = (f"Posterior predictive check of visit scores, {name}: observed scores range "
            f"{obs.min():.0f}–{obs.max():.0f}; replicated scores range {lo:.1f} to {hi:.1f}.")
    if below > 0 or above > 0:
        text += (f" The Gaussian model does not reproduce the floor at 0 and the ceiling at "
                 f"{TOTAL_MAX}: {100 * below:.1f}% of replicated scores fall below 0 and "
                 f"{100 * above:.1f}% above {TOTAL_MAX}.")
    else:
        text += f" No replicated score falls outside 0–{TOTAL_MAX}."
    return text
