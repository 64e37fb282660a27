"""Figures of survival results: Kaplan–Meier curves with a number-at-risk table, forest plots.

Every function returns a :class:`alsfrs.figures.NotebookFigure` (it shows itself
as a PNG in Jupyter) or draws on the ``ax`` given.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from alsfrs.figures import new_figure

__all__ = ["plot_forest", "plot_km", "risk_table_times"]

def _label(group: str) -> str:
    """``"sex=M"`` → ``"M"``; numeric levels keep their variable (``"antidepressant=1"``)."""
    value = group.split("=", 1)[-1]
    return group if value.replace(".", "").lstrip("-").isdigit() else value


_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def risk_table_times(max_time: float, n: int = 6) -> np.ndarray:
    """Round times for the number-at-risk table (multiples of 6 or 12 months when long)."""
    if max_time <= 0:
        return np.array([0.0])
    step = max_time / (n - 1)
    for nice in (1, 2, 3, 6, 12, 24, 30, 60, 90, 100, 180, 365, 500, 1000):
        if step <= nice:
            step = nice
            break
    return np.arange(0, max_time + 1e-9, step, dtype=float)


def plot_km(km: Any, ax: Any = None, *, risk_table: bool = True, times: Any = None,
            xlabel: str = "months", confidence: bool = True, title: str | None = None) -> Any:
    """Kaplan–Meier curves (steps, log-scale pointwise bands, censoring ticks) with the
    number at risk by group under the plot.

    Parameters
    ----------
    km : KaplanMeierResult
    ax : matplotlib Axes, optional
        Draw the curves there (no risk table); otherwise a new figure is made.
    risk_table : bool
        Add the number-at-risk table under the curves.
    times : sequence of float, optional
        Times of the risk table (default: round times over the follow-up).
    """
    curves = km.curves
    groups = km.group_labels
    tmax = float(curves["time"].max())
    times = risk_table_times(tmax) if times is None else np.asarray(times, dtype=float)
    if ax is None:
        fig = new_figure((7.0, 4.6 + (0.28 * len(groups) + 0.5 if risk_table else 0)))
        if risk_table:
            gs = fig.add_gridspec(2, 1, height_ratios=[4.0, 0.45 + 0.3 * len(groups)],
                                  hspace=0.18)
            ax = fig.add_subplot(gs[0])
            tab_ax = fig.add_subplot(gs[1], sharex=ax)
        else:
            ax = fig.add_subplot(111)
            tab_ax = None
    else:
        fig = ax.figure
        tab_ax = None
    for k, g in enumerate(groups):
        c = curves[curves["group"] == g]
        colour = _COLOURS[k % len(_COLOURS)]
        t = np.concatenate(([0.0], c["time"].to_numpy()))
        s = np.concatenate(([1.0], c["survival"].to_numpy()))
        label = _label(g)
        ax.step(t, s, where="post", color=colour, lw=1.8, label=label)
        if confidence:
            lo = np.concatenate(([1.0], c["lower"].to_numpy()))
            hi = np.concatenate(([1.0], c["upper"].to_numpy()))
            ax.fill_between(t, np.nan_to_num(lo, nan=0.0), np.nan_to_num(hi, nan=1.0),
                            step="post", color=colour, alpha=0.15, lw=0)
        cens = c[c["n_censor"] > 0]
        ax.plot(cens["time"], cens["survival"], "|", color=colour, ms=6, mew=1)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(-0.04 * tmax, tmax * 1.03)
    ax.set_ylabel("survival probability")
    ax.grid(alpha=0.3)
    if len(groups) > 1:
        ax.legend(frameon=False, loc="lower left")
    if title:
        ax.set_title(title)
    if tab_ax is not None:
        nar = km.number_at_risk(times)
        ax.tick_params(labelbottom=False)
        tab_ax.set_xlim(ax.get_xlim())
        tab_ax.set_ylim(-0.5, len(groups) - 0.5)
        for k, g in enumerate(groups):
            y = len(groups) - 1 - k
            for t_, n in zip(times, nar.loc[g].to_numpy(), strict=True):
                tab_ax.text(t_, y, f"{int(n):,d}", ha="center", va="center", fontsize=8,
                            color=_COLOURS[k % len(_COLOURS)])
        tab_ax.set_yticks(range(len(groups)))
        tab_ax.set_yticklabels([_label(g) for g in reversed(groups)], fontsize=8)
        tab_ax.set_xticks(times)
        tab_ax.set_xlabel(xlabel)
        tab_ax.set_title("number at risk", fontsize=8, loc="left", pad=3)
        for side in ("top", "right", "left"):
            tab_ax.spines[side].set_visible(False)
        tab_ax.tick_params(axis="y", length=0, pad=14)
    else:
        ax.set_xlabel(xlabel)
    return fig


def plot_forest(table: pd.DataFrame, *, estimate: str, lower: str, upper: str,
                xlabel: str = "hazard ratio (95% CI, log scale)", ax: Any = None,
                truth: dict[str, float] | None = None) -> Any:
    """A forest plot of ratios (hazard or odds ratios) with intervals on a log axis.

    ``table`` is indexed by term (one row each); ``truth`` adds the known values.
    """
    n = len(table)
    if ax is None:
        fig = new_figure((6.5, 0.9 + 0.38 * max(n, 1)))
        ax = fig.add_subplot(111)
    else:
        fig = ax.figure
    y = np.arange(n)[::-1]
    est = table[estimate].to_numpy(dtype=float)
    lo = table[lower].to_numpy(dtype=float)
    hi = table[upper].to_numpy(dtype=float)
    ax.hlines(y, lo, hi, color="#1f77b4", lw=1.6)
    ax.plot(est, y, "s", color="#1f77b4", ms=6, label="estimate")
    if truth:
        tv = np.array([truth.get(str(t), np.nan) for t in table.index], dtype=float)
        ok = np.isfinite(tv)
        if ok.any():
            ax.plot(tv[ok], y[ok], "x", color="#d62728", ms=7, mew=2, label="truth")
            ax.legend(frameon=False, fontsize=8, loc="best")
    ax.axvline(1.0, color="grey", lw=1, ls="--")
    ax.set_xscale("log")
    from matplotlib.ticker import FixedLocator, NullLocator

    span = np.concatenate([lo[np.isfinite(lo)], hi[np.isfinite(hi)], [1.0]])
    nice = np.array([0.1, 0.2, 0.25, 0.5, 0.67, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 6, 8, 10, 20])
    ticks = nice[(nice >= span.min() / 1.1) & (nice <= span.max() * 1.1)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.set_yticks(y)
    ax.set_yticklabels([str(t) for t in table.index], fontsize=9)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    return fig
