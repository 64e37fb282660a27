"""Figures of fitted decline models, in clinical units.

Every function returns a :class:`matplotlib.figure.Figure`. Figures are built
with :class:`~matplotlib.figure.Figure` directly, so they are never registered
with :mod:`matplotlib.pyplot` (nothing to close, nothing shown by accident);
pass ``ax=`` to draw into an Axes of your own instead, and the function returns
``ax.figure``. Only plain matplotlib is used, so ``rcParams``, style sheets and
the property cycle restyle every figure.

The functions read results through the interface shared by both engines
(:class:`alsfrs.LmmResult` and :class:`alsfrs.BayesResult`); the diagnostic
figures (:func:`ppc_plot`, :func:`trace_plot`, :func:`rank_plot`,
:func:`prior_posterior_plot`) need a Bayesian fit. Every ArviZ call goes
through :mod:`alsfrs.azcompat`.

Patient identifiers never appear on a figure: patients are shown as
"Patient 1", "Patient 2", ... (numbered within the figure).
"""

from __future__ import annotations

import contextlib
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy import stats

from alsfrs import azcompat
from alsfrs.effects import time_derivative
from alsfrs.errors import Problem, ValidationError
from alsfrs.figures import new_figure
from alsfrs.longitudinal import LongitudinalResult
from alsfrs.matrices import ModelMatrices
from alsfrs.timeaxis import time_label

__all__ = [
    "forest_plot",
    "mean_trajectory_plot",
    "ppc_plot",
    "prior_posterior_plot",
    "rank_plot",
    "slope_distribution_plot",
    "trace_plot",
    "trajectory_plot",
]

#: Axis labels in clinical units.
SCORE_LABEL = "ALSFRS-R (points)"
DIFFERENCE_LABEL = "Difference in decline (points/month)"
SLOPE_LABEL = "Per-patient slope (points/month)"
#: Range of the ALSFRS-R total score.
SCORE_MAX = 48
#: Most panels a trace or rank plot draws (one per scalar parameter).
MAX_PANELS = 60


# ------------------------------------------------------------------------------
# shared helpers
# ------------------------------------------------------------------------------
def _fail(rule: str, message: str, column: str | None = None) -> ValidationError:
    return ValidationError([Problem(rule=rule, message=message, column=column)], context="plot")


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Any, Axes]:
    """The caller's Axes and its figure, or a new constrained-layout figure with one Axes."""
    if ax is None:
        fig = new_figure(figsize=figsize, layout="constrained")
        return fig, fig.add_subplot()
    if not isinstance(ax, Axes):
        raise _fail("invalid_axes", f"ax must be a matplotlib Axes, got {type(ax).__name__}")
    return ax.figure, ax


def _longitudinal(result: Any) -> Any:
    """The result, if it is a longitudinal model (the contract these figures read)."""
    if not isinstance(result, LongitudinalResult):
        raise _fail(
            "invalid_result",
            "expected a fitted longitudinal model (alsfrs.LmmResult, alsfrs.BayesResult, ...), "
            f"got {type(result).__name__}",
        )
    return result


def _matrices(result: Any) -> ModelMatrices:
    """The shared model matrices of a fitted longitudinal model."""
    return _longitudinal(result).matrices


def _fitted_data(result: Any, mm: ModelMatrices) -> pd.DataFrame:
    """The fitted long frame (one row per visit, in the rows of the model matrices)."""
    data = _longitudinal(result).data
    if not isinstance(data, pd.DataFrame) or len(data) != mm.n_obs:
        raise _fail(
            "no_fitted_data",
            "the result does not carry the data it was fitted to, which this figure needs",
        )
    return data


def _time_variable(result: Any, mm: ModelMatrices) -> str:
    """The model's own time variable (:attr:`LongitudinalResult.time`)."""
    return _longitudinal(result).time


def _time_label(time: str) -> str:
    return time_label(time)


def _bayes(result: Any, what: str) -> Any:
    """The InferenceData of a posterior-based fit; ValidationError for anything else."""
    idata = getattr(result, "idata", None)
    if idata is None or not hasattr(idata, "posterior"):
        raise _fail(
            "not_bayesian",
            f"{what} needs a Bayesian fit (alsfrs.fit_bayes), got {type(result).__name__}",
        )
    return idata


def _engine_name(result: Any) -> str:
    return str(getattr(result, "short_name", type(result).__name__))


def _pseudonyms(n: int) -> list[str]:
    return [f"Patient {i + 1}" for i in range(n)]


def _cycle_colors(n: int) -> list[Any]:
    """n colours: the property cycle's when it is long enough, else a qualitative map."""
    cycle = [p["color"] for p in mpl.rcParams["axes.prop_cycle"] if "color" in p]
    if n <= len(cycle):
        return cycle[:n]
    if n <= 20:  # tab20's dark shades first, then the light ones: neighbours differ in hue
        cmap = mpl.colormaps["tab20"]
        return [cmap(i) for i in [*range(0, 20, 2), *range(1, 20, 2)][:n]]
    cmap = mpl.colormaps["turbo"]
    return [cmap(x) for x in np.linspace(0.05, 0.95, n)]


def _patient_exposure(data: pd.DataFrame, mm: ModelMatrices, exposure: Any) -> np.ndarray:
    """Each patient's 0/1 exposure (patients in the order of ``mm.group_labels``)."""
    if not isinstance(exposure, str):
        raise _fail("invalid_exposure", f"exposure must be a column name, got {exposure!r}")
    if exposure not in data.columns or exposure not in mm.variables:
        raise _fail(
            "unknown_exposure",
            f"{exposure!r} is not a variable of the model "
            f"(its variables: {', '.join(v for v in mm.variables)})",
            exposure,
        )
    values = pd.to_numeric(data[exposure], errors="coerce").to_numpy(dtype=float)
    if np.isnan(values).any() or not set(np.unique(values)) <= {0.0, 1.0}:
        raise _fail("not_binary", f"the exposure {exposure!r} must be a 0/1 column", exposure)
    lo = np.full(mm.n_groups, np.inf)
    hi = np.full(mm.n_groups, -np.inf)
    np.minimum.at(lo, mm.group, values)
    np.maximum.at(hi, mm.group, values)
    if np.any(lo != hi):
        raise _fail(
            "exposure_varies",
            f"the exposure {exposure!r} changes within patients; these figures compare "
            "patients exposed before follow-up with the unexposed",
            exposure,
        )
    exposed = hi.astype(int)
    if exposed.min() == exposed.max():
        raise _fail(
            "one_group",
            f"every patient has {exposure} = {exposed[0]}; there is nothing to compare",
            exposure,
        )
    return exposed


def _first_rows(data: pd.DataFrame, mm: ModelMatrices) -> np.ndarray:
    """Row position of each patient's first visit (patients in ``mm.group_labels`` order)."""
    first = np.full(mm.n_groups, -1, dtype=np.intp)
    rows = np.arange(mm.n_obs)
    first[mm.group[::-1]] = rows[::-1]  # the last assignment wins: the first row
    return first


def _design_over_time(
    design: Callable[[pd.DataFrame], np.ndarray],
    rows: pd.DataFrame,
    time: str,
    grid: np.ndarray,
) -> np.ndarray:
    """Design rows of every ``rows`` profile at every time in ``grid``: (n_rows, n_grid, k)."""
    n, g = len(rows), len(grid)
    frame = rows.iloc[np.repeat(np.arange(n), g)].reset_index(drop=True)
    frame[time] = np.tile(grid, n)
    X = np.asarray(design(frame), dtype=float)
    return X.reshape(n, g, -1)


def _time_derivative(
    design: Callable[[pd.DataFrame], np.ndarray], data: pd.DataFrame, time: str
) -> np.ndarray:
    """d design / d time for every row (the one definition in :mod:`alsfrs.effects`)."""
    return time_derivative(design, data, time)


def _check_level(level: Any) -> float:
    if not isinstance(level, int | float) or not 0 < level < 1:
        raise _fail("invalid_level", f"level must be a probability in (0, 1), got {level!r}")
    return float(level)


def _percent(level: float) -> str:
    return f"{100 * level:g}%"


# ------------------------------------------------------------------------------
# 1. forest plot of exposure effects
# ------------------------------------------------------------------------------
def _named_results(results: Any) -> list[tuple[str, Any]]:
    if hasattr(results, "exposure_effects"):
        items = [(_engine_name(results), results)]
    elif isinstance(results, Mapping):
        items = [(str(k), v) for k, v in results.items()]
    elif isinstance(results, Sequence) and not isinstance(results, str):
        bases = [_engine_name(r) for r in results]
        counts = Counter(bases)
        numbered: Counter[str] = Counter()
        items = []
        for base, r in zip(bases, results, strict=True):
            numbered[base] += 1
            items.append((f"{base} ({numbered[base]})" if counts[base] > 1 else base, r))
    else:
        raise _fail(
            "invalid_results",
            "results must be a fitted result, a mapping name -> result or a sequence of results",
        )
    if not items:
        raise _fail("invalid_results", "no results to plot")
    for name, r in items:
        if not callable(getattr(r, "exposure_effects", None)):
            raise _fail(
                "invalid_results",
                f"{name!r} is not a fitted result (no exposure_effects()): {type(r).__name__}",
            )
    return items


def _effects_table(result: Any, exposures: list[str] | None, level: float) -> pd.DataFrame:
    return result.exposure_effects(exposures, level=level)


def forest_plot(
    results: Mapping[str, Any] | Sequence[Any] | Any,
    exposures: Sequence[str] | str | None = None,
    truth: Mapping[str, float] | None = None,
    ax: Axes | None = None,
    *,
    level: float = 0.95,
) -> Figure:
    """Exposure effects on the decline slope of one or several fits, side by side.

    One row per exposure; on each row one marker with its interval per fit,
    offset vertically and told apart by colour and marker (legend by fit
    name). A vertical line marks no difference; negative values mean faster
    decline in the exposed.

    Parameters
    ----------
    results : mapping of str to result, sequence of results, or one result
        Fitted results (:class:`alsfrs.LmmResult`, :class:`alsfrs.BayesResult`).
        A sequence is named by engine ("LMM", "Bayes"; numbered if repeated).
    exposures : str or sequence of str, optional
        Exposures to show, top to bottom. Default: every exposure any fit
        estimates (each fit's ``exposure_effects()`` default), in order of
        first appearance. A fit that does not estimate an exposure has no
        marker on its row.
    truth : mapping of str to float, optional
        True differences in decline (points/month), e.g. a simulated cohort's
        ``cohort.truth["exposure_slope_effects"]``, drawn as black diamonds.
        Exposures not shown are ignored.
    ax : matplotlib Axes, optional
        Draw into this Axes instead of a new figure.
    level : float, default 0.95
        Interval probability (confidence level for the mixed model, central
        posterior interval for the Bayesian model).

    Returns
    -------
    matplotlib.figure.Figure
        The new figure, or ``ax.figure``.

    Raises
    ------
    alsfrs.errors.ValidationError
        No results, something that is not a result, an exposure no fit
        estimates, or a bad ``level``.
    """
    level = _check_level(level)
    named = _named_results(results)
    if isinstance(exposures, str):
        exposures = [exposures]
    tables: list[pd.DataFrame | None] = []
    if exposures is None:
        tables = [_effects_table(r, None, level) for _, r in named]
        order: list[str] = []
        for t in tables:
            order.extend(e for e in t.index if e not in order)
        if not order:
            raise _fail("no_exposures", "none of the fits estimates an exposure effect")
    else:
        order = [str(e) for e in exposures]
        if not order:
            raise _fail("no_exposures", "exposures is empty")
        problems: dict[str, list[Problem]] = {e: [] for e in order}
        found: set[str] = set()
        for _, r in named:
            rows = []
            for e in order:
                try:
                    rows.append(_effects_table(r, [e], level))
                    found.add(e)
                except ValidationError as err:
                    problems[e].extend(err.problems)
            tables.append(pd.concat(rows) if rows else None)
        missing = [e for e in order if e not in found]
        if missing:
            raise ValidationError(
                [
                    Problem(
                        rule="unknown_exposure",
                        column=e,
                        message=f"no fit estimates a difference in decline for {e!r}"
                        + (f" ({problems[e][0].message})" if problems[e] else ""),
                    )
                    for e in missing
                ],
                context="forest_plot",
            )

    n_exp, n_fit = len(order), len(named)
    fig, ax = _new_axes(ax, (6.5, 1.4 + 0.45 * n_exp * (1 + 0.35 * max(n_fit - 1, 0))))
    y_of = {e: float(n_exp - 1 - i) for i, e in enumerate(order)}
    span = min(0.6, 0.18 * (n_fit - 1))
    offsets = np.linspace(span / 2, -span / 2, n_fit) if n_fit > 1 else np.zeros(1)
    colors = _cycle_colors(n_fit)
    markers = ["o", "s", "^", "v", "D", "P", "X", "<", ">"]
    for k, ((name, _), table) in enumerate(zip(named, tables, strict=True)):
        labelled = False
        if table is None:
            continue
        for e in order:
            if e not in table.index:
                continue
            row = table.loc[e]
            d = float(row["difference"])
            err = np.array([[d - float(row["ci_lower"])], [float(row["ci_upper"]) - d]])
            ax.errorbar(
                [d],
                [y_of[e] + offsets[k]],
                xerr=err,
                fmt=markers[k % len(markers)],
                color=colors[k],
                capsize=3,
                markersize=6,
                label=name if not labelled else "_nolegend_",
            )
            labelled = True
    if truth:
        shown = [e for e in order if e in truth]
        if shown:
            ax.scatter(
                [float(truth[e]) for e in shown],
                [y_of[e] for e in shown],
                marker="D",
                s=45,
                facecolor="white",
                edgecolor="black",
                linewidth=1.5,
                zorder=4,
                label="True value",
            )
    ax.axvline(0.0, color="0.4", linestyle="--", linewidth=1, zorder=0)
    ax.set_yticks([y_of[e] for e in order], order)
    ax.set_ylim(-0.6, n_exp - 0.4)
    ax.set_xlabel(DIFFERENCE_LABEL)
    ax.grid(axis="x", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    order_h = sorted(range(len(labels)), key=lambda i: labels[i] == "True value")
    ax.legend(
        [handles[i] for i in order_h],
        [labels[i] for i in order_h],
        title=f"Estimate with {_percent(level)} interval\n(negative: faster decline\nwhen exposed)",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize="small",
        title_fontsize="small",
        alignment="left",
    )
    return fig


# ------------------------------------------------------------------------------
# 2. individual trajectories
# ------------------------------------------------------------------------------
def trajectory_plot(
    result: Any,
    n_patients: int = 12,
    seed: int | None = 0,
    ax: Axes | None = None,
) -> Figure:
    """Observed ALSFRS-R of a random sample of patients with each one's fitted line.

    One panel: each patient in their own colour, visits as points and the
    model's prediction for that patient (fixed plus the patient's own random
    effects) as a line over their follow-up. Predictions use each patient's
    covariates from their first visit. Patients are labelled "Patient 1" ...
    in order of fitted score at first visit (highest first), never by
    identifier.

    Parameters
    ----------
    result : LmmResult or BayesResult
        A fitted model.
    n_patients : int, default 12
        How many patients to draw (all of them if the cohort is smaller).
    seed : int or None, default 0
        Seed of the random sample (the same seed draws the same patients).
    ax : matplotlib Axes, optional
        Draw into this Axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The new figure, or ``ax.figure``.

    Raises
    ------
    alsfrs.errors.ValidationError
        Not a fitted result, or ``n_patients`` not a positive integer.
    """
    if (
        isinstance(n_patients, bool)
        or not isinstance(n_patients, int | np.integer)
        or (n_patients < 1)
    ):
        raise _fail(
            "invalid_n_patients", f"n_patients must be a positive integer, got {n_patients!r}"
        )
    mm = _matrices(result)
    data = _fitted_data(result, mm)
    time = _time_variable(result, mm)
    n = min(int(n_patients), mm.n_groups)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(mm.n_groups, size=n, replace=False))

    t_obs = pd.to_numeric(data[time]).to_numpy(dtype=float)
    y_obs = np.asarray(mm.y, dtype=float)
    first = _first_rows(data, mm)
    curves = []
    grid_size = 60
    frames = []
    for g in chosen:
        rows = mm.group == g
        tg = np.linspace(t_obs[rows].min(), t_obs[rows].max(), grid_size)
        f = data.iloc[np.repeat(first[g], grid_size)].reset_index(drop=True)
        f[time] = tg
        frames.append(f)
        curves.append((g, rows, tg))
    pred = np.asarray(result.predict(pd.concat(frames, ignore_index=True), include_random=True))
    pred = pred.reshape(n, grid_size)
    order = np.argsort(-pred[:, 0], kind="stable")

    fig, ax = _new_axes(ax, (8.0, 5.0))
    colors = _cycle_colors(n)
    handles = []
    for k, i in enumerate(order):
        _, rows, tg = curves[i]
        ax.plot(tg, pred[i], color=colors[k], linewidth=1.8)
        ax.scatter(t_obs[rows], y_obs[rows], color=colors[k], s=18, alpha=0.85, zorder=3)
        handles.append(Line2D([], [], color=colors[k], linewidth=1.8, marker="o", markersize=4))
    ax.set_xlabel(_time_label(time))
    ax.set_ylabel(SCORE_LABEL)
    ax.set_ylim(-1, SCORE_MAX + 1)
    ax.set_yticks(np.arange(0, SCORE_MAX + 1, 12))
    ax.grid(alpha=0.3)
    ax.legend(
        handles,
        _pseudonyms(n),
        title="Fitted (line), observed (points)",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize="small",
        title_fontsize="small",
        alignment="left",
    )
    return fig


# ------------------------------------------------------------------------------
# 3. mean trajectories by exposure
# ------------------------------------------------------------------------------
def _marginal_design(
    mm: ModelMatrices, data: pd.DataFrame, patients: np.ndarray, time: str, grid: np.ndarray
) -> np.ndarray:
    """Fixed-effects design averaged over ``patients`` at each grid time: (n_grid, p)."""
    first = _first_rows(data, mm)[patients]
    profiles = data.iloc[first].reset_index(drop=True)
    total = np.zeros((len(grid), mm.n_fixed))
    chunk = max(1, 200_000 // max(len(grid), 1))
    for start in range(0, len(profiles), chunk):
        part = profiles.iloc[start : start + chunk]
        total += _design_over_time(mm.fixed_design, part, time, grid).sum(axis=0)
    return total / len(profiles)


def mean_trajectory_plot(
    result: Any,
    exposure: str,
    months: Iterable[float] | None = None,
    level: float = 0.95,
    ax: Axes | None = None,
) -> Figure:
    """Population mean ALSFRS-R over time for exposed and unexposed patients.

    For each group, the fixed-effects prediction at each time is averaged
    over that group's patients' own covariates (taken at their first visit):
    a marginal mean, ``L(t) β`` with ``L(t)`` the averaged design row. The band
    is a pointwise interval: for the mixed model the delta method on ``L(t) β``
    with the fixed-effect covariance and normal quantiles; for the Bayesian
    model the central quantiles of ``L(t) β`` over the posterior draws.

    Parameters
    ----------
    result : LmmResult or BayesResult
        A fitted model.
    exposure : str
        A 0/1, per-patient exposure column of the model.
    months : iterable of float, optional
        Times at which to draw the curves, in the model's time variable.
        Default 0 to 24 in steps of 0.5.
    level : float, default 0.95
        Probability of the band.
    ax : matplotlib Axes, optional
        Draw into this Axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The new figure, or ``ax.figure``.

    Raises
    ------
    alsfrs.errors.ValidationError
        Not a fitted result, an exposure that is not a 0/1 per-patient
        variable of the model (or with one group empty), bad times or level.
    """
    level = _check_level(level)
    mm = _matrices(result)
    data = _fitted_data(result, mm)
    time = _time_variable(result, mm)
    exposed = _patient_exposure(data, mm, exposure)
    if months is None:
        grid = np.linspace(0.0, 24.0, 49)
    else:
        try:
            grid = np.asarray(list(months), dtype=float)
        except (TypeError, ValueError):
            raise _fail("invalid_months", "months must be numbers") from None
        if grid.ndim != 1 or grid.size < 2 or not np.isfinite(grid).all():
            raise _fail("invalid_months", "months must be at least two finite numbers")
        grid = np.unique(grid)

    bayes = getattr(result, "idata", None) is not None
    a = (1.0 - level) / 2.0
    if bayes:
        draws = np.asarray(result.draws("beta"), dtype=float)  # (D, p)
        band_name = "credible interval"
    else:
        beta = result.fixed_effects["estimate"].to_numpy(dtype=float)
        V = np.asarray(result.vcov, dtype=float)
        z = stats.norm.ppf(1.0 - a)
        band_name = "confidence interval"

    fig, ax = _new_axes(ax, (7.0, 4.5))
    colors = _cycle_colors(2)
    groups = [
        (0, f"Not exposed to {exposure}"),
        (1, f"Exposed to {exposure}"),
    ]
    for (value, label), color in zip(groups, colors, strict=True):
        patients = np.flatnonzero(exposed == value)
        L = _marginal_design(mm, data, patients, time, grid)
        if bayes:
            paths = draws @ L.T  # (D, n_grid)
            mean = paths.mean(axis=0)
            lo, hi = np.quantile(paths, [a, 1.0 - a], axis=0)
        else:
            mean = L @ beta
            se = np.sqrt(np.maximum(np.einsum("gp,pq,gq->g", L, V, L), 0.0))
            lo, hi = mean - z * se, mean + z * se
        ax.plot(grid, mean, color=color, linewidth=2, label=f"{label} (n = {patients.size})")
        ax.fill_between(grid, lo, hi, color=color, alpha=0.25, linewidth=0)
    ax.set_xlabel(_time_label(time))
    ax.set_ylabel(SCORE_LABEL)
    ax.set_xlim(grid[0], grid[-1])
    ax.grid(alpha=0.3)
    ax.legend(
        title=f"Mean with {_percent(level)} {band_name}",
        loc="lower left",
        fontsize="small",
        title_fontsize="small",
        alignment="left",
    )
    return fig


# ------------------------------------------------------------------------------
# 4. distribution of per-patient slopes
# ------------------------------------------------------------------------------
def _patient_slopes(result: Any, mm: ModelMatrices, data: pd.DataFrame, time: str) -> np.ndarray:
    """Each patient's own rate of change (``result.patient_slopes()``), in ``mm`` order."""
    slopes = _longitudinal(result).patient_slopes()
    if len(slopes) != mm.n_groups:
        raise _fail("invalid_result", "per-patient effects do not match the model's patients")
    return slopes.to_numpy(dtype=float)


def slope_distribution_plot(result: Any, exposure: str, ax: Axes | None = None) -> Figure:
    """Distribution of per-patient decline slopes, exposed vs unexposed.

    A violin per group with every patient as a jittered point and the group
    mean marked (black bar, value written beside it). A patient's slope is the
    derivative of their own fitted trajectory with respect to time: the time
    column of ``result.coef`` plus the time interactions that apply to that
    patient (e.g. ``months:antidepressant`` for the exposed), averaged over
    their visits for non-linear time terms. These are shrunken estimates
    (conditional modes or posterior means), narrower than the true spread of
    slopes.

    Parameters
    ----------
    result : LmmResult or BayesResult
        A fitted model with a random slope on time.
    exposure : str
        A 0/1, per-patient exposure column of the model.
    ax : matplotlib Axes, optional
        Draw into this Axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The new figure, or ``ax.figure``.

    Raises
    ------
    alsfrs.errors.ValidationError
        Not a fitted result, or an exposure that is not a 0/1 per-patient
        variable of the model (or with one group empty).
    """
    mm = _matrices(result)
    data = _fitted_data(result, mm)
    time = _time_variable(result, mm)
    exposed = _patient_exposure(data, mm, exposure)
    slopes = _patient_slopes(result, mm, data, time)

    fig, ax = _new_axes(ax, (5.5, 4.5))
    colors = _cycle_colors(2)
    rng = np.random.default_rng(0)
    names = ["Not exposed", f"Exposed to\n{exposure}"]
    ticks = []
    mean_label = "Group mean"
    for pos, (value, color) in enumerate(zip((0, 1), colors, strict=True)):
        s = slopes[exposed == value]
        if s.size > 1 and np.ptp(s) > 0:
            parts = ax.violinplot([s], positions=[pos], widths=0.75, showextrema=False)
            for body in parts["bodies"]:
                body.set_facecolor(color)
                body.set_edgecolor(color)
                body.set_alpha(0.3)
        jitter = rng.uniform(-0.12, 0.12, size=s.size)
        ax.scatter(pos + jitter, s, s=12, color=color, alpha=0.7, linewidth=0, zorder=3)
        m = float(s.mean())
        ax.hlines(m, pos - 0.3, pos + 0.3, color="black", linewidth=2.5, zorder=4, label=mean_label)
        mean_label = "_nolegend_"
        ax.annotate(
            f"{m:.2f}".replace("-", "\u2212"), (pos + 0.32, m), va="center", fontsize="small"
        )
        ticks.append(f"{names[pos]}\n(n = {s.size})")
    ax.axhline(0.0, color="0.5", linestyle=":", linewidth=1, zorder=0)
    ax.set_xticks([0, 1], ticks)
    ax.set_xlim(-0.6, 1.75)
    unit = "month" if time.startswith("months") else time
    ax.set_ylabel(SLOPE_LABEL if unit == "month" else f"Per-patient slope (points/{unit})")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return fig


# ------------------------------------------------------------------------------
# 5-7. Bayesian diagnostics
# ------------------------------------------------------------------------------
def ppc_plot(bayes_result: Any, num_pp_samples: int = 50, ax: Axes | None = None) -> Figure:
    """Posterior predictive check: density of observed visit scores vs replicated data.

    Parameters
    ----------
    bayes_result : BayesResult
        A Bayesian fit (its ``posterior_predictive`` group holds replicated
        visit scores ``y``).
    num_pp_samples : int, default 50
        How many replicated data sets to draw (all of them if fewer are
        stored: fits keep up to 100 per chain).
    ax : matplotlib Axes, optional
        Draw into this Axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The new figure, or ``ax.figure``.

    Raises
    ------
    alsfrs.errors.ValidationError
        Not a Bayesian fit, no posterior predictive draws, or a bad
        ``num_pp_samples``.
    """
    idata = _bayes(bayes_result, "ppc_plot")
    pp = getattr(idata, "posterior_predictive", None)
    if pp is None or "y" not in pp or "y" not in getattr(idata, "observed_data", {}):
        raise _fail("no_posterior_predictive", "the fit has no posterior predictive draws of y")
    available = int(pp["y"].sizes["chain"] * pp["y"].sizes["draw"])
    if (
        isinstance(num_pp_samples, bool)
        or not isinstance(num_pp_samples, int | np.integer)
        or num_pp_samples < 1
    ):
        raise _fail(
            "invalid_num_pp_samples",
            f"num_pp_samples must be a positive integer, got {num_pp_samples!r}",
        )
    num_pp_samples = min(int(num_pp_samples), available)
    fig, ax = _new_axes(ax, (7.0, 4.5))
    with _quiet_arviz():
        azcompat.plot_ppc(
            idata, ["y"], num_pp_samples, ax=ax, random_seed=0, kind="kde", legend=True
        )
    ax.set_title("")
    ax.set_xlabel(SCORE_LABEL + " at each visit")
    ax.set_ylabel("Density")
    return fig


@contextlib.contextmanager
def _quiet_arviz() -> Iterator[None]:
    """Silence ArviZ 0.x's use of an API matplotlib 3.11 deprecates (nothing users can act on)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*alias_mapping to normalize_kwargs.*", category=DeprecationWarning
        )
        yield


def _pseudonymised_posterior(
    bayes_result: Any, idata: Any, var_names: Sequence[str]
) -> tuple[Any, list[str]]:
    """InferenceData of ``var_names`` with patient coordinates renamed "Patient k"."""
    if isinstance(var_names, str):
        var_names = [var_names]
    var_names = list(var_names)
    post = idata.posterior
    unknown = [v for v in var_names if v not in post.data_vars]
    if unknown or not var_names:
        raise ValidationError(
            [
                Problem(
                    rule="unknown_variable",
                    column=v,
                    message=f"no posterior variable {v!r} (variables: "
                    f"{', '.join(map(str, post.data_vars))})",
                )
                for v in unknown
            ]
            or [Problem(rule="unknown_variable", message="var_names is empty")],
            context="plot",
        )
    sub = post[var_names]
    labels = {str(g) for g in _matrices(bayes_result).group_labels}
    for dim in sub.dims:
        if dim in ("chain", "draw") or dim not in sub.coords:
            continue
        values = [str(v) for v in sub.coords[dim].values]
        if values and set(values) <= labels:
            sub = sub.assign_coords({dim: _pseudonyms(len(values))})
    groups = {"posterior": sub}
    stats_ = getattr(idata, "sample_stats", None)
    if stats_ is not None:
        groups["sample_stats"] = stats_
    return azcompat.assemble(**groups), var_names


def _n_scalars(idata: Any, var_names: Sequence[str]) -> int:
    post = idata.posterior
    n = int(sum(np.prod(post[v].shape[2:], dtype=int) for v in var_names))
    if n > MAX_PANELS:
        raise _fail(
            "too_many_panels",
            f"{', '.join(var_names)} have {n} scalar parameters, more than the {MAX_PANELS} "
            "panels a readable figure holds; choose fewer variables",
        )
    return n


def trace_plot(bayes_result: Any, var_names: Sequence[str] = ("beta", "sd", "sigma")) -> Figure:
    """Trace plot (density and draws per chain) of posterior variables.

    One row per scalar parameter, labelled by its lme4 term name; patient
    effects, if asked for, are labelled "Patient k".

    Parameters
    ----------
    bayes_result : BayesResult
        A Bayesian fit.
    var_names : sequence of str, default ("beta", "sd", "sigma")
        Posterior variables to show.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    alsfrs.errors.ValidationError
        Not a Bayesian fit, an unknown variable, or more than ``MAX_PANELS``
        scalar parameters.
    """
    idata = _bayes(bayes_result, "trace_plot")
    sub, names = _pseudonymised_posterior(bayes_result, idata, var_names)
    rows = _n_scalars(sub, names)
    fig = new_figure(figsize=(10.0, 0.5 + 1.7 * rows), layout="constrained")
    axes = fig.subplots(rows, 2, squeeze=False)
    with _quiet_arviz():
        azcompat.plot_trace(sub, names, axes=axes, compact=False, show=False)
    return fig


def rank_plot(bayes_result: Any, var_names: Sequence[str] = ("beta", "sd", "sigma")) -> Figure:
    """Rank plot of posterior variables: one histogram of ranks per chain.

    Uniform ranks in every chain mean the chains mix. One panel per scalar
    parameter, labelled by its lme4 term name.

    Parameters
    ----------
    bayes_result : BayesResult
        A Bayesian fit.
    var_names : sequence of str, default ("beta", "sd", "sigma")
        Posterior variables to show.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    alsfrs.errors.ValidationError
        Not a Bayesian fit, an unknown variable, or more than ``MAX_PANELS``
        scalar parameters.
    """
    idata = _bayes(bayes_result, "rank_plot")
    sub, names = _pseudonymised_posterior(bayes_result, idata, var_names)
    n = _n_scalars(sub, names)
    ncols = min(3, n)
    nrows = -(-n // ncols)
    fig = new_figure(figsize=(3.6 * ncols, 0.4 + 2.6 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for extra in axes.ravel()[n:]:
        extra.remove()
    with _quiet_arviz():
        azcompat.plot_rank(sub, names, ax=axes.ravel()[:n], show=False)
    return fig


def _prior_pdf(prior: Any, x: np.ndarray) -> np.ndarray:
    dist, p = prior.dist, tuple(float(v) for v in prior.params)
    if dist == "normal":
        return stats.norm.pdf(x, loc=p[0], scale=p[1])
    if dist == "student_t":
        return stats.t.pdf(x, df=p[0], loc=p[1], scale=p[2])
    if dist == "halfnormal":
        return stats.halfnorm.pdf(x, scale=p[0])
    if dist == "halfstudent_t":
        return np.where(x >= 0, 2.0 * stats.t.pdf(x, df=p[0], scale=p[1]), 0.0)
    if dist == "exponential":
        return stats.expon.pdf(x, scale=1.0 / p[0])
    raise _fail("unknown_prior", f"cannot draw a {dist} prior")


def _prior_quantiles(prior: Any, q: Sequence[float]) -> np.ndarray:
    dist, p = prior.dist, tuple(float(v) for v in prior.params)
    if dist == "normal":
        return stats.norm.ppf(q, loc=p[0], scale=p[1])
    if dist == "student_t":
        return stats.t.ppf(q, df=p[0], loc=p[1], scale=p[2])
    raise _fail("unknown_prior", f"cannot draw a {dist} prior")


def _term_xlabel(term: str, time: str) -> str:
    parts = term.split(":")
    if term == time:
        return "Slope (points/month)" if time.startswith("months") else f"Slope (points/{time})"
    if time in parts and len(parts) == 2:
        return (
            DIFFERENCE_LABEL
            if time.startswith("months")
            else (f"Difference in decline (points/{time})")
        )
    if term == "(Intercept)":
        return SCORE_LABEL
    return "Coefficient (points per unit)"


def prior_posterior_plot(
    bayes_result: Any,
    terms: Sequence[str] | str | None = None,
    ax: Axes | Sequence[Axes] | None = None,
) -> Figure:
    """Prior against posterior density of fixed effects, one panel per term.

    The prior (``bayes_result.priors.fixed[term]``, evaluated with
    :mod:`scipy.stats`) is a dashed line; the posterior a Gaussian kernel
    density estimate of the draws (shaded). The x-range covers the central 98%
    of the prior and all posterior draws, so a posterior much narrower than
    its prior shows as a tall peak over a flat prior: the data dominate.

    Parameters
    ----------
    bayes_result : BayesResult
        A Bayesian fit.
    terms : str or sequence of str, optional
        Fixed-effect terms (lme4 names). Default: the time × exposure
        interactions (e.g. ``months:antidepressant``), else every term except
        the intercept.
    ax : matplotlib Axes or sequence of Axes, optional
        One Axes per term to draw into instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The new figure, or the figure of the (first) given Axes.

    Raises
    ------
    alsfrs.errors.ValidationError
        Not a Bayesian fit, an unknown term, or a number of Axes different
        from the number of terms.
    """
    _bayes(bayes_result, "prior_posterior_plot")
    mm = _matrices(bayes_result)
    time = _time_variable(bayes_result, mm)
    names = list(mm.fixed_names)
    if terms is None:
        terms = [t for t in names if ":" in t and time in t.split(":")]
        if not terms:
            terms = [t for t in names if t != "(Intercept)"] or names
    elif isinstance(terms, str):
        terms = [terms]
    terms = list(terms)
    priors = getattr(getattr(bayes_result, "priors", None), "fixed", {})
    bad = [t for t in terms if t not in names or t not in priors]
    if bad or not terms:
        raise ValidationError(
            [
                Problem(
                    rule="unknown_term",
                    column=t,
                    message=f"no fixed effect {t!r} in the model (terms: {', '.join(names)})",
                )
                for t in bad
            ]
            or [Problem(rule="unknown_term", message="terms is empty")],
            context="prior_posterior_plot",
        )
    n = len(terms)
    if ax is None:
        ncols = min(3, n)
        nrows = -(-n // ncols)
        fig = new_figure(figsize=(4.2 * ncols, 0.4 + 3.2 * nrows), layout="constrained")
        grid = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for extra in grid[n:]:
            extra.remove()
        axes = list(grid[:n])
    else:
        axes = [ax] if isinstance(ax, Axes) else list(ax)
        if len(axes) != n or not all(isinstance(a, Axes) for a in axes):
            raise _fail(
                "invalid_axes", f"ax must be {n} matplotlib Axes (one per term), got {len(axes)}"
            )
        fig = axes[0].figure
    beta = np.asarray(bayes_result.draws("beta"), dtype=float)
    c_prior, c_post = _cycle_colors(2)
    for a, term in zip(axes, terms, strict=True):
        d = beta[:, names.index(term)]
        prior = priors[term]
        p_lo, p_hi = _prior_quantiles(prior, [0.01, 0.99])
        lo, hi = min(p_lo, d.min()), max(p_hi, d.max())
        pad = 0.05 * (hi - lo)
        x = np.union1d(
            np.linspace(lo - pad, hi + pad, 800), np.linspace(d.min() - pad, d.max() + pad, 400)
        )
        a.plot(
            x,
            _prior_pdf(prior, x),
            color=c_prior,
            linestyle="--",
            linewidth=1.5,
            label=f"Prior {prior}",
        )
        if np.ptp(d) > 0:
            dens = stats.gaussian_kde(d)(x)
            a.fill_between(x, dens, color=c_post, alpha=0.25, linewidth=0)
            a.plot(x, dens, color=c_post, linewidth=2, label="Posterior")
        else:  # a constant posterior (e.g. a degenerate fit): mark its value
            a.axvline(float(d[0]), color=c_post, linewidth=2, label="Posterior")
        a.axvline(0.0, color="0.5", linestyle=":", linewidth=1, zorder=0)
        a.set_title(term)
        a.set_xlabel(_term_xlabel(term, time))
        a.set_ylabel("Density")
        a.legend(fontsize="small")
    return fig
