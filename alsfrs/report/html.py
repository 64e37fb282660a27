"""The self-contained HTML report.

One file, images inline (PNG, base64), no script and no external request, so it
opens offline and can be mailed. Built from a Jinja2 template with autoescaping:
every user string (titles, column names, labels, formulas) is escaped. Patient
identifiers appear only with ``show_ids=True``: tables that could hold them are
summarised by reason instead, and figures are pseudonymised.
"""

from __future__ import annotations

import base64
import datetime as _dt
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup

from alsfrs.figures import png_bytes
from alsfrs.report import tables
from alsfrs.report.registry import (
    PARTS,
    FigureBlock,
    Paragraph,
    ReportContext,
    TableBlock,
    renderer_for,
)
from alsfrs.results import format_frame, has_exposure_effects, versions

__all__ = ["render_report", "write_report"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
PACKAGES = ("alsfrs", "numpy", "pandas", "scipy", "statsmodels", "formulaic", "pymc", "pytensor",
            "arviz", "matplotlib", "jinja2")


def _table(frame: pd.DataFrame, *, index: bool = True, digits: int = 3) -> Markup:
    """A DataFrame as escaped HTML: numbers rounded for display only, counts as
    integers, flags as yes/no, pass/fail columns marked."""
    shown = format_frame(frame, digits)
    if "passed" in frame.columns and frame["passed"].dtype == bool:
        shown["passed"] = np.where(frame["passed"].to_numpy(), "pass", "FAIL")
    html_text = shown.to_html(escape=True, index=index, na_rep="–", border=0)
    html_text = html_text.replace("<td>pass</td>", '<td class="pass">pass</td>')
    html_text = html_text.replace("<td>FAIL</td>", '<td class="fail">FAIL</td>')
    return Markup(html_text)


def _png(fig: Any) -> str:
    return base64.b64encode(png_bytes(fig)).decode("ascii")


def _named(results: Any) -> dict[str, Any]:
    """Results by display name: a mapping as given; otherwise named by the engine's
    short name and numbered when repeated."""
    if isinstance(results, Mapping):
        return {str(k): v for k, v in results.items()}
    if not isinstance(results, Sequence):
        results = [results]
    out: dict[str, Any] = {}
    for r in results:
        base = str(getattr(r, "short_name", type(r).__name__))
        name, k = base, 2
        while name in out:
            name, k = f"{base} {k}", k + 1
        out[name] = r
    return out


def _figure(block: FigureBlock) -> dict[str, str]:
    """Render a figure block; a failure is reported in its place, never dropped."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig = block.figure() if callable(block.figure) else block.figure
            return {"png": _png(fig), "caption": block.caption, "error": ""}
    except Exception as exc:  # a figure must never take the whole report down
        return {"png": "", "caption": block.caption,
                "error": f"This figure could not be drawn: {type(exc).__name__}: {exc}"}


def _blocks(blocks: Sequence[Any], figures: bool) -> list[dict[str, Any]]:
    out = []
    for b in blocks:
        if isinstance(b, Paragraph):
            out.append({"type": "p", "text": b.text})
        elif isinstance(b, TableBlock):
            out.append({"type": "table", "caption": b.caption, "details": b.details,
                        "html": _table(b.frame, index=b.index, digits=b.digits)})
        elif isinstance(b, FigureBlock) and figures:
            out.append({"type": "figure", **_figure(b)})
    return out


def _comparison_figure(named: dict[str, Any], ctx: ReportContext, figures: bool
                       ) -> dict[str, Any] | None:
    """The forest plot of every result that reports exposure effects, side by side."""
    with_effects = {k: v for k, v in named.items() if has_exposure_effects(v)}
    if not with_effects or not figures:
        return None
    from alsfrs.report import plots

    truth = (ctx.truth or {}).get("exposure_slope_effects")
    caption = ("Difference in decline per exposure, by model, with "
               f"{100 * ctx.level:g}% intervals (dots and bars)")
    caption += "; open diamonds mark the simulated truth." if truth else "."
    return _figure(FigureBlock(
        lambda: plots.forest_plot(with_effects, truth=truth, level=ctx.level), caption))


def render_report(results: Any, *, cohort: Any = None, title: str = "alsfrs report",
                  show_ids: bool = False, margin: float = 0.1, figures: bool = True,
                  level: float = 0.95) -> str:
    """The report as an HTML string (see :func:`write_report`)."""
    named = _named(results)
    if not named:
        from alsfrs.errors import Problem, ValidationError

        raise ValidationError(Problem(rule="bad_option", message="write_report needs a result"))
    truth = getattr(cohort, "truth", None) if cohort is not None else None
    ctx = ReportContext(truth=truth, show_ids=show_ids, level=level, cohort=cohort,
                        extra={"margin": margin})
    findings: list[str] = []
    parts: dict[str, list[dict[str, Any]]] = {p: [] for p in PARTS}
    specs = []
    for name, r in named.items():
        renderer = renderer_for(r)
        findings += renderer.key_findings(name, r, ctx)
        for sec in renderer.sections(name, r, ctx):
            parts.setdefault(sec.part, []).append(
                {"title": sec.title, "blocks": _blocks(sec.blocks, figures)})
        spec = r.model_spec
        specs.append((name, spec.seed))
    cohort_ctx = None
    if cohort is not None:
        cohort_ctx = {
            "describe": _table(cohort.describe()),
            "accounting": _table(cohort.row_accounting()),
            "exclusions": _table(cohort.exclusion_summary(), index=False)
            if len(cohort.exclusions) else None,
            "exposure": _table(cohort.exposure_accounting())
            if "dispensings" in cohort.tables else None,
            "exposure_rule": _exposure_rule(cohort),
            "excluded_rows": _table(cohort.exclusions, index=False)
            if show_ids and len(cohort.exclusions) else None,
        }
    truth_table = None
    if truth:
        tt = pd.DataFrame({"slope effect (points/month)": truth["exposure_slope_effects"],
                           "hazard ratio (death or IMV)": truth["exposure_hazard_ratios"]})
        tt.index = [tables._name(e) for e in tt.index]
        truth_table = _table(tt)
    seeds = ([("simulation", str(truth.get("seed")))] if truth else []) + [
        (n, str(s)) for n, s in specs if s is not None]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    from alsfrs import __version__

    return env.get_template("report.html.j2").render(
        title=title, version=__version__, show_ids=show_ids,
        generated=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"), cohort=cohort_ctx,
        findings=findings, parts=parts, comparison=_comparison_figure(named, ctx, figures),
        truth=truth_table, software=_table(_versions(), index=False), seeds=seeds,
        level=f"{100 * level:g}")


def _versions() -> pd.DataFrame:
    v = versions(PACKAGES)
    return pd.DataFrame(list(v.items()), columns=["package", "version"])


def _exposure_rule(cohort: Any) -> str:
    d = cohort.exposure_definition or {}
    if not d:
        return ""
    look = d.get("lookback_months")
    return (f"Exposed: at least {d['min_dispensings']} dispensings of the class from "
            f"{d['lag_months']:g} months before diagnosis"
            + (f" back to {look:g} months" if look else "") + "; "
            + d.get("rule", "") + ".")


def write_report(results: Any, path: str | Path, cohort: Any = None, *,
                 title: str = "alsfrs report", show_ids: bool = False, margin: float = 0.1,
                 figures: bool = True, level: float = 0.95) -> Path:
    """Write one self-contained HTML report.

    Parameters
    ----------
    results
        A fitted result, a list of them, or a mapping name → result: any alsfrs
        result (each type has a renderer in :mod:`alsfrs.report.registry`).
    path
        The ``.html`` file to write.
    cohort
        The Cohort the models were fitted to: adds the data section (row
        accounting, exclusions by reason, exposure window) and, for simulated
        cohorts, the truth beside the estimates.
    title
        The report's title (escaped).
    show_ids
        Show patient identifiers (the list of excluded rows). Off by default.
    margin
        Clinically relevant difference in decline for the posterior probabilities
        (points/month).
    figures
        Include the figures (set False for a quick text-only report).
    level
        Interval level for every table and figure (default 0.95).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    text = render_report(results, cohort=cohort, title=title, show_ids=show_ids,
                         margin=margin, figures=figures, level=level)
    path = Path(path)
    path.write_text(text, encoding="utf-8")
    return path
