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
import io
import platform
import warnings
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup

from alsfrs.report import tables

__all__ = ["render_report", "write_report"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
PACKAGES = ("alsfrs", "numpy", "pandas", "scipy", "statsmodels", "formulaic", "pymc", "pytensor",
            "arviz", "matplotlib", "jinja2")


def _table(frame: pd.DataFrame, *, index: bool = True, digits: int = 3) -> Markup:
    """A DataFrame as escaped HTML, numbers rounded for display only."""
    shown = frame.copy()
    for c in shown.columns:
        if shown[c].dtype == bool:
            shown[c] = np.where(shown[c], "pass", "FAIL")
    html_text = shown.to_html(escape=True, index=index, na_rep="–", border=0,
                              float_format=lambda x: f"{x:,.{digits}f}")
    html_text = html_text.replace("<td>pass</td>", '<td class="pass">pass</td>')
    html_text = html_text.replace("<td>FAIL</td>", '<td class="fail">FAIL</td>')
    return Markup(html_text)


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _named(results: Any) -> dict[str, Any]:
    if isinstance(results, Mapping):
        return {str(k): v for k, v in results.items()}
    if not isinstance(results, Sequence):
        results = [results]
    out: dict[str, Any] = {}
    for r in results:
        if hasattr(r, "idata"):
            base = f"Bayesian ({r.parameterization})"
        else:
            base = f"Mixed model ({'REML' if getattr(r, 'reml', True) else 'ML'})"
        name, k = base, 2
        while name in out:
            name, k = f"{base} {k}", k + 1
        out[name] = r
    return out


def _spec_table(r: Any) -> pd.DataFrame:
    if hasattr(r, "idata"):
        rows = {"engine": "Bayesian hierarchical model (PyMC NUTS)", "family": r.family,
                "parameterization": r.parameterization, "sampler": r.sampler,
                "chains × draws (+ tuning)": f"{r.settings.get('chains')} × "
                f"{r.settings.get('draws')} (+ {r.settings.get('tune')})",
                "seed": str(r.seed)}
    else:
        rows = {"engine": "linear mixed model (profiled deviance)",
                "criterion": "REML" if r.reml else "ML",
                "optimiser": r.optimization.optimizer,
                "inference": "Satterthwaite df (lmerTest), Wald 95% intervals"}
    return pd.DataFrame({"setting": list(rows), "value": [str(v) for v in rows.values()]})


def _versions() -> pd.DataFrame:
    rows = [("python", platform.python_version())]
    for p in PACKAGES:
        try:
            rows.append((p, metadata.version(p)))
        except metadata.PackageNotFoundError:  # pragma: no cover
            rows.append((p, "not installed"))
    return pd.DataFrame(rows, columns=["package", "version"])


def _figures(named: dict[str, Any], truth: dict | None) -> tuple[str | None, list]:
    from alsfrs.report import plots

    figs: list[dict[str, str]] = []
    forest = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            forest = _png(plots.forest_plot(named, truth=truth))
        except Exception as exc:
            figs.append({"png": "", "caption": f"forest plot unavailable: {exc}"})
        first_name, first = next(iter(named.items()))
        exposures = list(first.exposure_effects().index)
        figs.append({"png": _png(plots.trajectory_plot(first)),
                     "caption": f"Observed ALSFRS-R and fitted lines of a random sample of "
                                f"patients (pseudonymised), {first_name}."})
        for e in exposures:
            figs.append({"png": _png(plots.mean_trajectory_plot(first, e)),
                         "caption": f"Population mean trajectory with 95% band, "
                                    f"{tables._name(e).lower()} vs none ({first_name})."})
            figs.append({"png": _png(plots.slope_distribution_plot(first, e)),
                         "caption": f"Per-patient slopes by {tables._name(e).lower()} "
                                    f"({first_name})."})
        for name, r in named.items():
            if hasattr(r, "idata"):
                figs.append({"png": _png(plots.ppc_plot(r)),
                             "caption": f"Posterior predictive check of visit scores, {name}."})
                figs.append({"png": _png(plots.rank_plot(r)),
                             "caption": f"Rank plots of the chains, {name}."})
                figs.append({"png": _png(plots.prior_posterior_plot(r)),
                             "caption": f"Prior and posterior of the key effects, {name}."})
    return forest, [f for f in figs if f["png"]]


def render_report(results: Any, *, cohort: Any = None, title: str = "alsfrs report",
                  show_ids: bool = False, margin: float = 0.1, figures: bool = True) -> str:
    """The report as an HTML string (see :func:`write_report`)."""
    named = _named(results)
    if not named:
        from alsfrs.errors import Problem, ValidationError

        raise ValidationError(Problem(rule="bad_option", message="write_report needs a result"))
    truth = getattr(cohort, "truth", None) if cohort is not None else None
    models = []
    seeds: list[tuple[str, str]] = []
    if truth:
        seeds.append(("simulation", str(truth.get("seed"))))
    for name, r in named.items():
        priors = None
        if hasattr(r, "idata"):
            priors = _table(pd.DataFrame(r.priors.table(), columns=["parameter", "prior"]),
                            index=False)
            seeds.append((name, str(r.seed)))
        eff = tables.effect_sizes(r, margin=margin)
        if truth:
            eff.insert(1, "truth", [truth["exposure_slope_effects"].get(e, np.nan)
                                    for e in eff.index])
        models.append({
            "name": name, "formula": r.formula, "nobs": r.nobs, "ngroups": r.ngroups,
            "spec": _table(_spec_table(r), index=False), "priors": priors,
            "effects": _table(eff), "parameters": _table(tables.parameter_table(r)),
            "diagnostics": _table(tables.diagnostics_table(r)),
            "warnings": (r.diagnostic_messages() if hasattr(r, "diagnostic_messages")
                         else list(getattr(r, "warnings", ()))),
        })
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
    forest, figs = _figures(named, truth["exposure_slope_effects"] if truth else None) \
        if figures else (None, [])
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    from alsfrs import __version__

    return env.get_template("report.html.j2").render(
        title=title, version=__version__, show_ids=show_ids,
        generated=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"), cohort=cohort_ctx,
        models=models, margin=f"{margin:g}", forest=forest, truth=truth_table, figures=figs,
        software=_table(_versions(), index=False), seeds=seeds)


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
                 figures: bool = True) -> Path:
    """Write one self-contained HTML report.

    Parameters
    ----------
    results
        A fitted result, a list of them, or a mapping name → result (mixed-model
        and Bayesian fits side by side).
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

    Returns
    -------
    pathlib.Path
        The file written.
    """
    text = render_report(results, cohort=cohort, title=title, show_ids=show_ids,
                         margin=margin, figures=figures)
    path = Path(path)
    path.write_text(text, encoding="utf-8")
    return path
