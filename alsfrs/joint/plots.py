"""Figures of a joint fit: hazard-ratio forest plot and dynamic survival predictions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from alsfrs.figures import new_figure

__all__ = ["dynamic_prediction_plot", "hazard_ratio_plot"]


def hazard_ratio_plot(result: Any, truth: dict[str, float] | None = None, ax: Any = None,
                      level: float = 0.95) -> Any:
    """Forest plot of the survival hazard ratios (log scale), truth marked if given."""
    hr = result.hazard_ratios(level=level)
    pct = f"{round(100 * level):d}"
    fig = None
    if ax is None:
        fig = new_figure((6.5, 0.5 + 0.45 * len(hr)))
        ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(hr))[::-1]
    ax.errorbar(hr["hr"], y, xerr=[hr["hr"] - hr[f"hr_lower_{pct}"],
                                   hr[f"hr_upper_{pct}"] - hr["hr"]],
                fmt="o", color="C0", capsize=3, label=f"joint model ({pct}% interval)")
    if truth:
        tv = [truth.get(t, np.nan) for t in hr.index]
        ax.plot(tv, y, "x", color="C3", markersize=8, label="simulated truth")
    ax.axvline(1.0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_yticks(y, [str(t) for t in hr.index])
    ax.set_xlabel("hazard ratio of death or invasive ventilation (per unit; per point for "
                  "value(), per unit of the random effect for ranef())")
    ax.legend(loc="best", fontsize=8)
    return fig if fig is not None else ax.figure


def dynamic_prediction_plot(result: Any, patient_history: pd.DataFrame, times: Any, *,
                            label: str = "example patient", ax: Any = None,
                            level: float = 0.95, seed: int | None = None) -> Any:
    """The patient's visits (left axis) and the predicted probability of remaining free of
    death/IMV after the last visit with its credible band (right axis)."""
    pred = result.predict_survival(patient_history, times, level=level, seed=seed)
    pct = f"{round(100 * level):d}"
    fig = None
    if ax is None:
        fig = new_figure((6.5, 4.0))
        ax = fig.add_subplot(1, 1, 1)
    t = pd.to_numeric(patient_history[result.time]).to_numpy()
    ax.plot(t, patient_history[result.response].to_numpy(dtype=float), "o-", color="C0",
            label=f"{result.response} at visits")
    ax.set_xlabel(result.time)
    ax.set_ylabel(result.response)
    ax.set_ylim(0, 48)
    ax2 = ax.twinx()
    t0 = float(pred["landmark"].iloc[0])
    tt = np.concatenate([[t0], pred["time"].to_numpy()])
    ax2.plot(tt, np.concatenate([[1.0], pred["median"]]), color="C3",
             label="P(free of death/IMV)")
    ax2.fill_between(tt, np.concatenate([[1.0], pred[f"lower_{pct}"]]),
                     np.concatenate([[1.0], pred[f"upper_{pct}"]]), color="C3", alpha=0.2,
                     label=f"{pct}% band")
    ax2.set_ylim(0, 1.02)
    ax2.set_ylabel("probability free of death or IMV")
    ax.axvline(t0, color="grey", ls=":", lw=0.8)
    ax.set_title(label)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="lower left", fontsize=8)
    return fig if fig is not None else ax.figure
