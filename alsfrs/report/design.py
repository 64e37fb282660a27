"""Report renderers for trial-design results: inputs, n, power curves, in plain words."""

from __future__ import annotations

from typing import Any

import numpy as np

from alsfrs.design.assurance import AssuranceResult
from alsfrs.design.combined import CafsResult
from alsfrs.design.results import METHOD_NAMES, PowerSimulationResult, SampleSizeResult
from alsfrs.report.registry import (
    FigureBlock,
    Paragraph,
    ReportContext,
    Section,
    TableBlock,
    register_renderer,
)

__all__ = ["AssuranceRenderer", "CafsRenderer", "PowerSimulationRenderer", "SampleSizeRenderer"]


def _visits(months: Any) -> str:
    m = [f"{v:g}" for v in months]
    return ", ".join(m[:-1]) + f" and {m[-1]} months" if len(m) > 1 else f"{m[0]} months"


def _effect_words(effect: float, pct: float | None) -> str:
    e = f"{effect:.3g} ALSFRS-R points per month"
    if pct is None:
        return f"a slowing of {e}"
    return f"a {100 * pct:.0f}% slowing of decline ({e})"


@register_renderer(SampleSizeResult)
class SampleSizeRenderer:
    """Sample size / power / detectable effect by formula."""

    def key_findings(self, name: str, result: SampleSizeResult, ctx: ReportContext
                     ) -> list[str]:
        s = result.summary()
        lost = 1 - result.completing
        attr = f", with {100 * lost:.0f}% not reaching the last visit" if lost > 0 else ""
        effect = _effect_words(result.effect, result.pct_slowing)
        if result.solved_for == "n":
            return [f"To detect {effect} with {100 * result.power:.0f}% power "
                    f"(two-sided alpha {result.alpha:g}), {int(s.loc['treatment', 'n'])} "
                    f"treated and {int(s.loc['control', 'n'])} control patients are needed "
                    f"({int(s.loc['total', 'n_enrolled'])} enrolled in total), for visits at "
                    f"{_visits(result.months)}{attr} ({METHOD_NAMES[result.method]})."]
        if result.solved_for == "power":
            return [f"With {result.n_per_arm} treated patients, the power to detect {effect} "
                    f"is {100 * result.power:.0f}%{attr}."]
        return [f"With {result.n_per_arm} treated patients and {100 * result.power:.0f}% "
                f"power, the smallest detectable effect is {effect}{attr}."]

    def sections(self, name: str, result: SampleSizeResult, ctx: ReportContext
                 ) -> list[Section]:
        blocks = [
            Paragraph(" ".join(self.key_findings(name, result, ctx))),
            Paragraph("The effect is the difference between arms in the mean ALSFRS-R slope, "
                      "analysed with a linear mixed model with a random intercept and slope; "
                      "the variances come from the pilot "
                      f"({result.pilot.source})."),
            TableBlock(result.summary(), "Patients per arm (exact, rounded up, enrolled)",
                       digits=2),
            TableBlock(result.inputs(), "Design inputs", details=True),
            FigureBlock(lambda: result.power_curve(),
                        "Power against patients per arm for several effect sizes"),
        ]
        return [Section(f"Trial design: {name}", blocks)]


@register_renderer(PowerSimulationResult)
class PowerSimulationRenderer:
    """Power by simulation."""

    def key_findings(self, name: str, result: PowerSimulationResult, ctx: ReportContext
                     ) -> list[str]:
        s = result.summary()
        out = []
        death = ("with death or invasive ventilation as informative dropout"
                 if result.settings["death"] != "none" else "without deaths")
        for _, r in s.iterrows():
            pct = r["pct_slowing"] if np.isfinite(r["pct_slowing"]) else None
            out.append(f"With {int(r['n_per_arm'])} patients per arm and "
                       f"{_effect_words(r['effect'], pct)}, simulated power is "
                       f"{100 * r['power']:.0f}% (95% Monte Carlo interval "
                       f"{100 * r['power_ci_lower_95']:.0f}–{100 * r['power_ci_upper_95']:.0f}%), "
                       f"{death}, analysed by {result.settings['analysis']}.")
        return out[:4]

    def sections(self, name: str, result: PowerSimulationResult, ctx: ReportContext
                 ) -> list[Section]:
        blocks: list[Any] = [
            Paragraph(f"{result.settings['n_trials']:,} simulated trials per design, visits at "
                      f"{_visits(result.settings['months'])}; seed {result.seed}."),
            TableBlock(result.summary(), "Simulated power, bias, coverage and fit warnings",
                       digits=3),
        ]
        if result.summary()["n_per_arm"].nunique() > 1:
            blocks.append(FigureBlock(lambda: result.power_curve(),
                                      "Simulated power with 95% Monte Carlo bands; dashed: "
                                      "Edland's formula without deaths"))
        return [Section(f"Power by simulation: {name}", blocks)]


@register_renderer(AssuranceResult)
class AssuranceRenderer:
    """Bayesian assurance."""

    def key_findings(self, name: str, result: AssuranceResult, ctx: ReportContext
                     ) -> list[str]:
        t = result.table
        n = t.index[0]
        return [f"Averaged over the design prior ({result.settings['prior']}), the probability "
                f"of a successful trial with {n} patients per arm is "
                f"{100 * t['assurance'].iloc[0]:.0f}% (power at the prior mean "
                f"{100 * t['power_at_prior_mean'].iloc[0]:.0f}%)."]

    def sections(self, name: str, result: AssuranceResult, ctx: ReportContext) -> list[Section]:
        blocks: list[Any] = [Paragraph(" ".join(self.key_findings(name, result, ctx))),
                             TableBlock(result.summary(), "Assurance by patients per arm",
                                        digits=3)]
        if len(result.table) > 1:
            blocks.append(FigureBlock(lambda: result.power_curve(),
                                      "Assurance and power at the prior mean"))
        return [Section(f"Assurance: {name}", blocks)]


@register_renderer(CafsResult)
class CafsRenderer:
    """CAFS group comparison (no patient identifiers unless ``show_ids``)."""

    def key_findings(self, name: str, result: CafsResult, ctx: ReportContext) -> list[str]:
        r = result.test.iloc[0]
        return [f"On the combined assessment of function and survival at "
                f"{result.settings['horizon_months']:g} months, {r['treatment']} has mean rank "
                f"{r['mean_rank_treatment']:.1f} against {r['mean_rank_control']:.1f} for "
                f"{r['control']} (win probability {r['win_probability']:.2f}; p = "
                f"{r['p_value']:.3g}, {r['test']})."]

    def sections(self, name: str, result: CafsResult, ctx: ReportContext) -> list[Section]:
        blocks: list[Any] = [Paragraph(" ".join(self.key_findings(name, result, ctx))),
                             TableBlock(result.summary(), "CAFS comparison", digits=4)]
        if ctx.show_ids:
            blocks.append(TableBlock(result.scores, "Scores per patient", details=True))
        return [Section(f"CAFS: {name}", blocks)]
