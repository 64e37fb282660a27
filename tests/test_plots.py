"""The figures of the reporting layer (alsfrs.report.plots)."""

from __future__ import annotations

import dataclasses
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.text import Text
from scipy import stats

import alsfrs
from alsfrs import azcompat
from alsfrs.bayes import SamplingWarning
from alsfrs.report import plots

FORMULA = "alsfrs_r ~ months * (anxiolytic + antidepressant) + (months | patient_id)"
EXPOSURES = ["anxiolytic", "antidepressant"]


# ------------------------------------------------------------------------------
# fits, built once
# ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cohort():
    return alsfrs.simulate_cohort(120, seed=3)


@pytest.fixture(scope="module")
def lmm(cohort):
    return alsfrs.fit_lmm(FORMULA, cohort)


@pytest.fixture(scope="module")
def bayes(cohort):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return alsfrs.fit_bayes(
            FORMULA, cohort, chains=2, draws=150, tune=150, seed=1, progressbar=False, cores=1
        )


@pytest.fixture(params=["lmm", "bayes"])
def fit(request):
    return request.getfixturevalue(request.param)


def texts(fig: Figure) -> list[str]:
    """Every string drawn on the figure (tick labels included)."""
    fig.draw_without_rendering()
    return [t.get_text() for t in fig.findobj(Text)]


def assert_no_patient_ids(fig: Figure) -> None:
    shown = texts(fig)
    assert not [s for s in shown if "P0" in s], shown


def own_axes():
    fig = Figure()
    return fig, fig.add_subplot()


# ------------------------------------------------------------------------------
# forest plot
# ------------------------------------------------------------------------------
def test_forest_plot_one_errorbar_per_fit_and_exposure(lmm, bayes, cohort):
    truth = cohort.truth["exposure_slope_effects"]
    fig = plots.forest_plot({"REML": lmm, "Bayes": bayes}, truth=truth)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 2 * 2
    # markers sit at the estimates
    xs = sorted(float(c.lines[0].get_xdata()[0]) for c in bars)
    expected = sorted(
        [*lmm.exposure_effects()["difference"], *bayes.exposure_effects()["difference"]]
    )
    np.testing.assert_allclose(xs, expected)
    # truth: one marker per exposure shown (hypnotic is not in the model)
    truth_pts = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(truth_pts) == 1 and len(truth_pts[0].get_offsets()) == 2
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["REML", "Bayes", "True value"]
    assert [t.get_text() for t in ax.get_yticklabels()] == EXPOSURES
    assert ax.get_xlabel() == "Difference in decline (points/month)"
    assert any(np.allclose(line.get_xdata(), 0) for line in ax.lines)  # the no-effect line
    assert_no_patient_ids(fig)


def test_forest_plot_sequence_named_by_engine_into_given_axes(lmm, bayes):
    _, ax = own_axes()
    out = plots.forest_plot([lmm, bayes, lmm], exposures="antidepressant", ax=ax)
    assert out is ax.figure
    assert len(ax.containers) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["LMM (1)", "Bayes", "LMM (2)"]


def test_forest_plot_bad_arguments(lmm):
    with pytest.raises(alsfrs.ValidationError) as err:
        plots.forest_plot({"fit": lmm}, exposures=["hypnotic"])
    assert err.value.problems[0].rule == "unknown_exposure"
    for bad in ([], {"x": 3}, 3):
        with pytest.raises(alsfrs.ValidationError):
            plots.forest_plot(bad)
    with pytest.raises(alsfrs.ValidationError):
        plots.forest_plot(lmm, level=95)


# ------------------------------------------------------------------------------
# individual trajectories
# ------------------------------------------------------------------------------
def test_trajectory_plot_lines_pseudonyms_and_seed(fit):
    fig = plots.trajectory_plot(fit, n_patients=5, seed=2)
    ax = fig.axes[0]
    assert len(ax.lines) == 5
    assert len(ax.collections) == 5  # observed visits, one scatter per patient
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [f"Patient {i}" for i in range(1, 6)]
    assert ax.get_ylabel() == "ALSFRS-R (points)"
    assert ax.get_xlabel() == "Months since diagnosis"
    assert_no_patient_ids(fig)
    # fitted lines go through the model's own predictions at the observed visits
    fitted = fit.predict()
    months = fit._data["months"].to_numpy()
    visits = {(t, y): i for i, (t, y) in enumerate(zip(months, fit._data["alsfrs_r"], strict=True))}
    for line, scatter in zip(ax.lines, ax.collections, strict=True):
        rows = [visits[(t, y)] for t, y in np.asarray(scatter.get_offsets())]
        np.testing.assert_allclose(
            np.interp(months[rows], line.get_xdata(), line.get_ydata()), fitted[rows], atol=1e-6
        )
    # the seed decides the sample
    same = plots.trajectory_plot(fit, n_patients=5, seed=2).axes[0]
    other = plots.trajectory_plot(fit, n_patients=5, seed=3).axes[0]
    first = [tuple(line.get_ydata()[:2]) for line in ax.lines]
    assert first == [tuple(line.get_ydata()[:2]) for line in same.lines]
    assert first != [tuple(line.get_ydata()[:2]) for line in other.lines]


def test_trajectory_plot_into_axes_and_bad_arguments(lmm):
    fig, ax = own_axes()
    assert plots.trajectory_plot(lmm, ax=ax) is fig
    assert len(ax.lines) == 12
    assert len(plots.trajectory_plot(lmm, n_patients=10_000).axes[0].lines) == lmm.ngroups
    for bad in (0, -1, 2.5, True):
        with pytest.raises(alsfrs.ValidationError):
            plots.trajectory_plot(lmm, n_patients=bad)
    with pytest.raises(alsfrs.ValidationError):
        plots.trajectory_plot(object())


# ------------------------------------------------------------------------------
# mean trajectories
# ------------------------------------------------------------------------------
def test_mean_trajectory_plot_is_the_marginal_mean(fit):
    fig = plots.mean_trajectory_plot(fit, "antidepressant", months=[0, 6, 12])
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and len(ax.collections) == 2  # a mean and a band per group
    assert ax.get_ylabel() == "ALSFRS-R (points)"
    assert ax.get_xlabel() == "Months since diagnosis"
    data = fit._data
    first = data.groupby("patient_id", sort=True).head(1)
    for line, band, value in zip(ax.lines, ax.collections, (0, 1), strict=True):
        grp = first[first["antidepressant"] == value]
        manual = [
            fit.predict(grp.assign(months=float(t)), include_random=False).mean()
            for t in (0, 6, 12)
        ]
        # L(t)·β is linear in β, so the posterior mean curve is the prediction at its mean
        np.testing.assert_allclose(line.get_ydata(), manual, rtol=1e-9)
        lo, hi = band.get_paths()[0].vertices[:, 1].min(), band.get_paths()[0].vertices[:, 1].max()
        assert lo < min(line.get_ydata()) and hi > max(line.get_ydata())
        assert f"(n = {len(grp)})" in line.get_label()
    assert_no_patient_ids(fig)


def test_mean_trajectory_plot_lmm_band_is_delta_method(lmm):
    fig = plots.mean_trajectory_plot(lmm, "anxiolytic", months=[0, 24], level=0.9)
    ax = fig.axes[0]
    first = lmm._data.groupby("patient_id", sort=True).head(1)
    grp = first[first["anxiolytic"] == 1]
    L = lmm.matrices.fixed_design(grp.assign(months=24.0)).mean(axis=0)
    se = float(np.sqrt(L @ lmm.vcov.to_numpy() @ L))
    verts = ax.collections[1].get_paths()[0].vertices
    top = verts[np.isclose(verts[:, 0], 24), 1].max()
    mean24 = ax.lines[1].get_ydata()[-1]
    assert top == pytest.approx(mean24 + stats.norm.ppf(0.95) * se)
    assert "90% confidence interval" in ax.get_legend().get_title().get_text()


def test_mean_trajectory_plot_into_axes_and_bad_arguments(bayes, lmm):
    fig, ax = own_axes()
    assert plots.mean_trajectory_plot(bayes, "anxiolytic", ax=ax) is fig
    assert "credible interval" in ax.get_legend().get_title().get_text()
    np.testing.assert_allclose(ax.lines[0].get_xdata()[[0, -1]], [0, 24])
    with pytest.raises(alsfrs.ValidationError) as err:
        plots.mean_trajectory_plot(lmm, "hypnotic")
    assert err.value.problems[0].rule == "unknown_exposure"
    with pytest.raises(alsfrs.ValidationError):
        plots.mean_trajectory_plot(lmm, "months")  # not 0/1
    with pytest.raises(alsfrs.ValidationError):
        plots.mean_trajectory_plot(lmm, "anxiolytic", level=1.5)
    with pytest.raises(alsfrs.ValidationError):
        plots.mean_trajectory_plot(lmm, "anxiolytic", months=[3])


# ------------------------------------------------------------------------------
# per-patient slopes
# ------------------------------------------------------------------------------
def test_slope_distribution_plot_group_means(fit):
    fig = plots.slope_distribution_plot(fit, "antidepressant")
    ax = fig.axes[0]
    coef = fit.coef
    pat = fit._data.groupby("patient_id", sort=True)[EXPOSURES].first().loc[coef.index]
    own_slope = (
        coef["months"]
        + coef["months:anxiolytic"] * pat["anxiolytic"]
        + coef["months:antidepressant"] * pat["antidepressant"]
    )
    means = [
        seg[0][1]
        for c in ax.collections
        if isinstance(c, LineCollection)
        for seg in c.get_segments()
    ]
    expected = [own_slope[pat["antidepressant"] == v].mean() for v in (0, 1)]
    np.testing.assert_allclose(means, expected, atol=1e-6)
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert sum(len(c.get_offsets()) for c in points) == fit.ngroups
    assert ax.get_ylabel() == "Per-patient slope (points/month)"
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks[0].startswith("Not exposed") and "antidepressant" in ticks[1]
    assert_no_patient_ids(fig)


def test_slope_distribution_plot_into_axes_and_bad_exposure(lmm):
    fig, ax = own_axes()
    assert plots.slope_distribution_plot(lmm, "anxiolytic", ax=ax) is fig
    with pytest.raises(alsfrs.ValidationError):
        plots.slope_distribution_plot(lmm, "no_such_drug")


# ------------------------------------------------------------------------------
# Bayesian diagnostics
# ------------------------------------------------------------------------------
def test_ppc_plot(bayes, lmm):
    fig = plots.ppc_plot(bayes, num_pp_samples=20)
    ax = fig.axes[0]
    assert isinstance(fig, Figure)
    assert len(ax.lines) >= 20 + 1  # replicated densities and the observed one
    assert ax.get_xlabel().startswith("ALSFRS-R (points)")
    assert_no_patient_ids(fig)
    fig2, ax2 = own_axes()
    assert plots.ppc_plot(bayes, num_pp_samples=5, ax=ax2) is fig2
    # more than stored: all stored replicates are drawn
    assert len(plots.ppc_plot(bayes, num_pp_samples=10**6).axes[0].lines) >= 300
    with pytest.raises(alsfrs.ValidationError) as err:
        plots.ppc_plot(lmm)
    assert err.value.problems[0].rule == "not_bayesian"
    for bad in (0, -3, 2.5):
        with pytest.raises(alsfrs.ValidationError):
            plots.ppc_plot(bayes, num_pp_samples=bad)


def test_trace_and_rank_plots(bayes, lmm):
    n_scalars = len(bayes.fixed_effects) + 2 + 1  # beta, sd, sigma
    trace = plots.trace_plot(bayes)
    assert isinstance(trace, Figure) and len(trace.axes) == 2 * n_scalars
    rank = plots.rank_plot(bayes, var_names=("beta", "sigma"))
    assert isinstance(rank, Figure)
    assert len(rank.axes) == len(bayes.fixed_effects) + 1
    titles = " ".join(a.get_title() for a in rank.axes)
    assert "months:antidepressant" in titles
    for fn in (plots.trace_plot, plots.rank_plot):
        with pytest.raises(alsfrs.ValidationError):
            fn(lmm)
        with pytest.raises(alsfrs.ValidationError):
            fn(bayes, var_names=["nope"])
    with pytest.raises(alsfrs.ValidationError):
        plots.trace_plot(bayes, var_names=["patient_effects"])  # 240 panels: refused


def test_trace_plot_pseudonymises_patient_effects(bayes):
    post = bayes.idata.posterior.isel(patient=slice(0, 3))
    small = dataclasses.replace(bayes, idata=azcompat.assemble(posterior=post))
    fig = plots.trace_plot(small, var_names=["patient_effects"])
    assert len(fig.axes) == 2 * 3 * 2
    shown = " ".join(texts(fig))
    assert "Patient 1" in shown and "P0" not in shown


def test_prior_posterior_plot(bayes, lmm):
    fig = plots.prior_posterior_plot(bayes)
    assert [a.get_title() for a in fig.axes] == ["months:anxiolytic", "months:antidepressant"]
    for ax in fig.axes:
        prior, post = ax.lines[0], ax.lines[1]
        assert max(prior.get_ydata()) == pytest.approx(stats.norm.pdf(0), rel=1e-3)  # N(0, 1)
        x, y = post.get_xdata(), post.get_ydata()
        assert np.trapezoid(y, x) == pytest.approx(1, abs=0.02)
        assert ax.get_xlabel() == "Difference in decline (points/month)"
    fig2 = Figure()
    axes = fig2.subplots(1, 2)
    assert plots.prior_posterior_plot(bayes, ["months", "anxiolytic"], ax=axes) is fig2
    assert axes[0].get_title() == "months"
    with pytest.raises(alsfrs.ValidationError):
        plots.prior_posterior_plot(bayes, ["months", "anxiolytic"], ax=axes[0])
    with pytest.raises(alsfrs.ValidationError) as err:
        plots.prior_posterior_plot(bayes, "months:hypnotic")
    assert err.value.problems[0].rule == "unknown_term"
    with pytest.raises(alsfrs.ValidationError):
        plots.prior_posterior_plot(lmm)


# ------------------------------------------------------------------------------
# house rules
# ------------------------------------------------------------------------------
def test_figures_stay_out_of_pyplot_and_render(lmm, bayes, tmp_path):
    plt.close("all")
    figs = {
        "forest": plots.forest_plot({"LMM": lmm, "Bayes": bayes}),
        "trajectory": plots.trajectory_plot(lmm),
        "mean": plots.mean_trajectory_plot(bayes, "antidepressant"),
        "slopes": plots.slope_distribution_plot(bayes, "antidepressant"),
        "ppc": plots.ppc_plot(bayes, num_pp_samples=10),
        "trace": plots.trace_plot(bayes, var_names=["sigma"]),
        "rank": plots.rank_plot(bayes, var_names=["sd"]),
        "prior": plots.prior_posterior_plot(bayes),
    }
    assert plt.get_fignums() == []
    for name, fig in figs.items():
        path = tmp_path / f"{name}.png"
        fig.savefig(path, dpi=40)
        assert path.stat().st_size > 1000
