"""Report renderers of survival and case-control results.

Cox models (hazard ratios, forest plot, the proportional-hazards test),
Kaplan–Meier curves (with the number at risk under the plot, as clinicians
expect, the median and survival at round times, the log-rank test),
conditional logistic regression (odds ratios by exposure window) and the
REM-suppression comparison (balance table, crude and matched hazard ratios).
Key findings are written in clinical words ("2-year survival 47% vs 41%").
"""

from __future__ import annotations

import numpy as np

from alsfrs.report.registry import (
    FigureBlock,
    Paragraph,
    ReportContext,
    Section,
    TableBlock,
    register_renderer,
)
from alsfrs.survival.clogit import ClogitResult
from alsfrs.survival.cox import CoxResult
from alsfrs.survival.km import KaplanMeierResult
from alsfrs.survival.plots import plot_forest, plot_km
from alsfrs.survival.rem import RemComparisonResult

__all__ = ["ClogitRenderer", "CoxRenderer", "KaplanMeierRenderer", "RemRenderer",
           "ratio_sentence"]


def _pct(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{100 * x:.0f}%"


def _tag(level: float) -> str:
    return f"{100 * level:g}".replace(".", "_")


def ratio_sentence(term: str, ratio: float, lo: float, hi: float, level: float, what: str
                   ) -> str:
    """"Antidepressant: hazard ratio 1.72 (95% CI 1.30 to 2.29), 72% higher hazard"."""
    change = ratio - 1
    word = "higher" if change > 0 else "lower"
    return (f"{term}: {what} {ratio:.2f} ({100 * level:g}% CI {lo:.2f} to {hi:.2f}), "
            f"{abs(100 * change):.0f}% {word} {'hazard' if 'hazard' in what else 'odds'}"
            f"{'' if lo > 1 or hi < 1 else ' (the interval includes no difference)'}.")


def _label(group: str) -> str:
    """``"sex=M"`` → ``"M"``; numeric levels keep their variable (``"antidepressant=1"``)."""
    value = group.split("=", 1)[-1]
    return group if value.replace(".", "").lstrip("-").isdigit() else value


@register_renderer(CoxResult)
class CoxRenderer:
    """Hazard ratios, forest plot, tests and the proportional-hazards test."""

    def key_findings(self, name: str, result: CoxResult, ctx: ReportContext) -> list[str]:
        s = result.summary()
        t = _tag(result.level)
        out = [f"{name}: " + ratio_sentence(term, r["hazard_ratio"], r[f"ci_lower_{t}"],
                                            r[f"ci_upper_{t}"], result.level,
                                            "hazard ratio of death or IMV")
               for term, r in s.iterrows() if r["p"] < 0.05][:5]
        zph = result.cox_zph()
        if float(zph.loc["GLOBAL", "p"]) < 0.05:
            out.append(f"{name}: the proportional-hazards assumption is doubtful (cox.zph "
                       f"global p = {float(zph.loc['GLOBAL', 'p']):.3f}).")
        return out

    def sections(self, name: str, result: CoxResult, ctx: ReportContext) -> list[Section]:
        s = result.summary()
        t = _tag(result.level)
        cols = ["hazard_ratio", f"ci_lower_{t}", f"ci_upper_{t}", "p"]
        return [
            Section(f"{name}: hazard ratios (Cox model)", [
                Paragraph(f"{result.formula}; {result.n:,d} patients, {result.n_events:,d} "
                          f"events; ties: {result.ties}; concordance "
                          f"{result.concordance:.3f}."),
                TableBlock(s[cols], caption="Hazard ratios"),
                TableBlock(s, caption="All coefficients", details=True),
                FigureBlock(lambda: plot_forest(s, estimate="hazard_ratio",
                                                lower=f"ci_lower_{t}", upper=f"ci_upper_{t}"),
                            caption="Hazard ratios with confidence intervals"),
            ], part="effects"),
            Section(f"{name}: proportional hazards and tests", [
                TableBlock(result.cox_zph(), caption="cox.zph (Kaplan–Meier time scale): "
                           "a small p suggests the hazard ratio changes over time"),
                TableBlock(result.tests(), caption="Tests of all coefficients"),
                TableBlock(result.diagnostics()[["value", "criterion", "passed"]],
                           caption="Diagnostics"),
            ], part="diagnostics"),
        ]


@register_renderer(KaplanMeierResult)
class KaplanMeierRenderer:
    """Curves with the number at risk, median and survival at round times, log-rank."""

    horizons = (12.0, 24.0, 36.0)

    def _horizon(self, km: KaplanMeierResult) -> float:
        tmax = float(km.curves["time"].max())
        ok = [h for h in self.horizons if h <= tmax]
        return 24.0 if 24.0 in ok else (ok[-1] if ok else tmax / 2)

    def key_findings(self, name: str, result: KaplanMeierResult, ctx: ReportContext
                     ) -> list[str]:
        h = self._horizon(result)
        at = result.at(h)
        years = f"{h / 12:g}-year" if h % 12 == 0 else f"{h:g}-month"
        parts = [f"{_pct(r['survival'])} ({_label(r['group'])})" for _, r in at.iterrows()]
        text = f"{name}: {years} survival " + " vs ".join(parts)
        med = result.median()
        meds = [f"{_label(g)} {r['median']:.1f}" for g, r in med.iterrows()
                if np.isfinite(r["median"])]
        if meds:
            text += "; median survival " + ", ".join(meds) + " months"
        if result.has_logrank:
            text += f" (log-rank p = {result.logrank().attrs['p']:.3g})"
        return [text + "."]

    def sections(self, name: str, result: KaplanMeierResult, ctx: ReportContext
                 ) -> list[Section]:
        tmax = float(result.curves["time"].max())
        times = [h for h in self.horizons if h <= tmax] or [tmax / 2]
        at = result.at(times)
        blocks: list = [
            FigureBlock(lambda: plot_km(result), caption="Kaplan–Meier survival with the "
                        "number at risk under the plot (shaded: pointwise 95% CI, log scale)"),
            TableBlock(result.median(), caption="Median survival (months)"),
            TableBlock(at.set_index(["group", "time"]), caption="Survival at round times"),
        ]
        if result.has_logrank:
            lr = result.logrank()
            blocks.append(TableBlock(lr, caption=f"Log-rank test: chi-square "
                                     f"{lr.attrs['chisq']:.2f} on {lr.attrs['df']} df, "
                                     f"p = {lr.attrs['p']:.3g}"))
        return [Section(f"{name}: Kaplan–Meier survival", blocks, part="effects")]


@register_renderer(ClogitResult)
class ClogitRenderer:
    """Odds ratios (by exposure window when the terms are windows)."""

    def key_findings(self, name: str, result: ClogitResult, ctx: ReportContext) -> list[str]:
        s = result.summary()
        t = _tag(result.level)
        return [f"{name}: " + ratio_sentence(term, r["odds_ratio"], r[f"ci_lower_{t}"],
                                             r[f"ci_upper_{t}"], result.level,
                                             "odds ratio of ALS")
                for term, r in s.iterrows() if r["p"] < 0.05][:6]

    def sections(self, name: str, result: ClogitResult, ctx: ReportContext) -> list[Section]:
        s = result.summary()
        t = _tag(result.level)
        bw = result.by_window()
        truth = (ctx.truth or {}).get("odds_ratios") if ctx.truth else None
        blocks: list = [Paragraph(
            f"{result.formula}; {result.n:,d} people in {result.n_sets:,d} matched sets "
            f"({result.n_cases:,d} cases); exact conditional likelihood.")]
        if len(bw):
            wide = bw["odds_ratio"].unstack("window")
            blocks.append(TableBlock(wide, caption="Odds ratios by drug class and window "
                                     "before diagnosis"))
        blocks += [
            TableBlock(s[["odds_ratio", f"ci_lower_{t}", f"ci_upper_{t}", "p"]],
                       caption="Odds ratios"),
            FigureBlock(lambda: plot_forest(s, estimate="odds_ratio", lower=f"ci_lower_{t}",
                                            upper=f"ci_upper_{t}", truth=truth,
                                            xlabel="odds ratio (95% CI, log scale)"),
                        caption="Odds ratios with confidence intervals"),
            TableBlock(result.tests(), caption="Tests of all coefficients", details=True),
        ]
        return [Section(f"{name}: risk by exposure (conditional logistic regression)", blocks,
                        part="effects")]


@register_renderer(RemComparisonResult)
class RemRenderer:
    """The REM comparison: survival at the horizon, both hazard ratios, balance."""

    def key_findings(self, name: str, result: RemComparisonResult, ctx: ReportContext
                     ) -> list[str]:
        hr = result.hazard_ratios
        t = _tag(result.level)
        h = result.horizon_months
        years = f"{h / 12:g}-year" if h % 12 == 0 else f"{h:g}-month"
        out = []
        for analysis, r in hr.iterrows():
            out.append(
                f"{name} ({analysis}): {years} survival {_pct(r['survival_suppressing'])} on "
                f"REM-suppressing vs {_pct(r['survival_non_suppressing'])} on non-suppressing "
                f"antidepressants; hazard ratio (non-suppressing vs suppressing) "
                f"{r['hazard_ratio']:.2f} ({100 * result.level:g}% CI {r[f'ci_lower_{t}']:.2f}"
                f" to {r[f'ci_upper_{t}']:.2f}), {int(r['n_non_suppressing']):,d} vs "
                f"{int(r['n_suppressing']):,d} patients.")
        true = (ctx.truth or {}).get("hazard_ratio_rem") if ctx.truth else None
        if true is not None and true != 1.0:
            out.append(f"{name}: the simulated hazard ratio was {true:.2f}.")
        return out

    def sections(self, name: str, result: RemComparisonResult, ctx: ReportContext
                 ) -> list[Section]:
        t = _tag(result.level)
        hr = result.hazard_ratios
        return [
            Section(f"{name}: REM-suppressing vs non-suppressing antidepressants", [
                Paragraph("Patients exposed to antidepressants of one REM class only; "
                          "propensity score from " + ", ".join(result.match_on) +
                          "; 1:1 nearest-neighbour matching without replacement"
                          + ("" if result.caliper is None else
                             f", caliper {result.caliper:g} SD of the logit propensity") +
                          "; matched hazard ratio with robust SEs clustered on the pair."),
                TableBlock(hr[["hazard_ratio", f"ci_lower_{t}", f"ci_upper_{t}", "p",
                               "n_non_suppressing", "n_suppressing"]],
                           caption="Hazard ratio, non-suppressing vs suppressing"),
                TableBlock(result.survival, caption=f"Survival at "
                           f"{result.horizon_months:g} months"),
                FigureBlock(lambda: plot_km(result.kaplan_meier(False),
                                            title="all patients of one REM class"),
                            caption="Kaplan–Meier survival by REM class"),
                FigureBlock(lambda: plot_km(result.kaplan_meier(True),
                                            title="propensity-matched"),
                            caption="Kaplan–Meier survival, matched sample"),
            ], part="effects"),
            Section(f"{name}: balance and patients", [
                TableBlock(result.balance, caption="Standardised mean differences before and "
                           "after matching (|SMD| < 0.1 is balanced)"),
                TableBlock(result.counts, caption="Patients by REM class"),
                TableBlock(result.diagnostics()[["value", "criterion", "passed"]],
                           caption="Diagnostics"),
            ], part="diagnostics"),
        ]

