"""Report renderer of joint longitudinal–survival fits (:class:`alsfrs.joint.JointResult`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from alsfrs.joint.plots import dynamic_prediction_plot, hazard_ratio_plot
from alsfrs.joint.result import JointResult
from alsfrs.report.registry import (
    FigureBlock,
    Paragraph,
    ReportContext,
    Section,
    TableBlock,
    register_renderer,
)

__all__ = ["JointRenderer"]


def _truth_hrs(result: Any, ctx: ReportContext) -> dict[str, float] | None:
    truth = ctx.truth or {}
    sv = truth.get("survival")
    if not sv:
        return None
    out = dict(sv.get("hazard_ratios", {}))
    if "hazard_ratio_per_year_age" in sv:
        out["age_at_dx"] = sv["hazard_ratio_per_year_age"]
    if "hazard_ratio_bulbar" in sv:
        out["onset_sitebulbar"] = sv["hazard_ratio_bulbar"]
    out["sexM"] = 1.0
    if "hazard_ratio_per_point" in sv:
        out[result.value_name] = 1 / sv["hazard_ratio_per_point"]
    return out


@register_renderer(JointResult)
class JointRenderer:
    """Hazard ratios (table, forest plot, α in words), longitudinal effects, diagnostics and
    a dynamic prediction for one example patient (pseudonymised)."""

    def key_findings(self, name: str, result: Any, ctx: ReportContext) -> list[str]:
        hr = result.hazard_ratios(level=ctx.level)
        pct = f"{round(100 * ctx.level):d}"
        out = [f"{name}: {result.association_in_words()}."]
        given = ("for the same ALSFRS-R level and decline (random effects)"
                 if result.settings.get("association") == "shared"
                 else "at the same current ALSFRS-R")
        for term, row in hr.iterrows():
            if term in result.association_names:
                continue
            out.append(f"{name}: {term} — hazard ratio of death or invasive ventilation "
                       f"{row['hr']:.2f} ({pct}% interval {row[f'hr_lower_{pct}']:.2f} to "
                       f"{row[f'hr_upper_{pct}']:.2f}), {given}.")
        if result.diagnostic_messages():
            out.append(f"{name}: the sampler's diagnostics flag problems (see Diagnostics).")
        return out

    def sections(self, name: str, result: Any, ctx: ReportContext) -> list[Section]:
        truth = _truth_hrs(result, ctx)
        hr = result.hazard_ratios(level=ctx.level)
        if truth:
            hr = hr.assign(hr_truth=[truth.get(t, np.nan) for t in hr.index])
        blocks = [Paragraph(result.association_in_words() + "."),
                  TableBlock(hr, caption="Hazard ratios: survival terms per unit, the "
                                         "association per point of the current ALSFRS-R, or "
                                         "per unit of the patient's random effects for a "
                                         "shared-random-effects model (posterior median, "
                                         "equal-tailed interval)"),
                  FigureBlock(lambda: hazard_ratio_plot(result, truth=truth, level=ctx.level),
                              caption="Hazard ratios of death or invasive ventilation")]
        secs = [Section(f"{name}: joint model — survival", blocks)]
        long = result.longitudinal_effects()
        lblocks: list[Any] = [TableBlock(long, caption="Longitudinal submodel (posterior)")]
        try:
            ee = result.exposure_effects(level=ctx.level)
            if truth is not None and ctx.truth:
                ee = ee.assign(truth=[ctx.truth.get("exposure_slope_effects", {}).get(e, np.nan)
                                      for e in ee.index])
            lblocks.append(TableBlock(ee, caption="Difference in decline per exposure "
                                                  "(points/month), corrected for dropout"))
        except ValueError:
            pass
        secs.append(Section(f"{name}: joint model — decline", lblocks))
        example = self._example(result, ctx)
        if example is not None:
            hist, times, label = example
            secs.append(Section(f"{name}: dynamic prediction", [
                FigureBlock(lambda: dynamic_prediction_plot(result, hist, times, label=label,
                                                            level=ctx.level, seed=result.seed),
                            caption="Probability of remaining free of death or invasive "
                                    "ventilation after the last visit, given the visits so far")]))
        diag = result.diagnostics()
        secs.append(Section(f"{name}: diagnostics", [
            TableBlock(diag, caption="Sampler diagnostics"),
            TableBlock(result.model_spec.to_frame(), caption="Model", details=True)]))
        return secs

    @staticmethod
    def _example(result: Any, ctx: ReportContext):
        """A patient with several visits, first visits only, under a pseudonym."""
        visits = result.visits
        if visits is None or not len(visits):
            return None
        grouping = result.grouping
        counts = visits.groupby(grouping, sort=True).size()
        many = counts[counts >= 4]
        if many.empty:
            return None
        pid = many.index[len(many) // 2]
        hist = visits[visits[grouping] == pid].sort_values(result.time).iloc[:3].copy()
        label = f"patient {pid}" if ctx.show_ids else "example patient (pseudonymised)"
        if not ctx.show_ids:
            hist[grouping] = "example"
        t0 = float(pd.to_numeric(hist[result.time]).max())
        return hist, t0 + np.linspace(0.5, 24, 16), label
