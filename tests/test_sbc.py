"""Simulation-based calibration of the collapsed Bayesian model (alsfrs.bayes.sbc).

The full calibration (100 fits, about 10-15 minutes on 2 cores) is marked ``slow``;
the fast tests check the machinery with tiny settings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alsfrs.bayes.model import make_design
from alsfrs.bayes.sbc import (
    PARAMETERS,
    SBCResult,
    _design,
    _draw_truth,
    simulation_based_calibration,
    thin_indices,
)
from alsfrs.matrices import build_model_matrices


def test_sbc_shapes_fast():
    kept = 9
    res = simulation_based_calibration(3, n_patients=8, visits=(0, 6, 12), n_draws_kept=kept,
                                       draws=60, tune=60, seed=3, progress=False)
    assert isinstance(res, SBCResult)
    assert list(res.ranks.columns) == list(PARAMETERS)
    assert res.ranks.shape == (3, len(PARAMETERS))
    assert res.truth.shape == res.posterior_mean.shape == res.ranks.shape
    assert len(res.diagnostics) == 3
    r = res.ranks.to_numpy()
    assert np.issubdtype(r.dtype, np.integer)
    assert r.min() >= 0 and r.max() <= kept
    t = res.test(bins=5)
    assert list(t.index) == list(PARAMETERS)
    assert list(t.columns) == ["statistic", "df", "p_value", "threshold", "passed", "mean_rank"]
    assert (t["df"] == 4).all()
    assert t["p_value"].between(0, 1).all()
    assert np.allclose(t["threshold"], 0.01 / len(PARAMETERS))
    assert (res.histogram(5).sum(axis=1) == 3).all()
    assert isinstance(res.passed, bool)
    long = res.to_frame()
    assert len(long) == 3 * len(PARAMETERS)
    assert {"simulation", "parameter", "truth", "rank", "posterior_mean"} <= set(long.columns)
    assert res.truth["sd__(Intercept)"].gt(0).all() and res.truth["sigma"].gt(0).all()
    assert res.truth["cor__(Intercept).months"].between(-1, 1).all()


def test_truth_is_centred_as_the_model_centres():
    """The original-scale intercept of the truth is what Design.uncenter gives."""
    d = _design(10, (0, 3, 6, 9, 12))
    frame = d.frame.assign(y=0.0)
    design = make_design(build_model_matrices("y ~ months * exposure + (months | patient_id)",
                                              frame), "months")
    assert design.fixed_names == ["(Intercept)", "months", "exposure", "months:exposure"]
    assert np.allclose(design.xbar, d.xbar)
    truth = _draw_truth(np.random.default_rng(0), d.xbar)
    assert np.allclose(design.uncenter(truth["beta_centred"]), truth["beta"])
    # the same linear predictor on either scale
    assert np.allclose(d.X @ truth["beta"], design.Xc @ truth["beta_centred"])


def test_chisquare_flags_a_narrow_posterior():
    kept, n = 99, 400
    rng = np.random.default_rng(1)
    uniform = rng.integers(0, kept + 1, n)
    u_shaped = np.where(rng.random(n) < 0.5, rng.integers(0, 10, n), rng.integers(90, 100, n))
    idx = pd.RangeIndex(n, name="simulation")
    ranks = pd.DataFrame({"a": uniform, "b": u_shaped}, index=idx)
    zeros = pd.DataFrame(0.0, index=idx, columns=ranks.columns)
    diag = pd.DataFrame({"min_ess_bulk": np.full(n, 500.0), "divergences": 0}, index=idx)
    res = SBCResult(ranks=ranks, truth=zeros, posterior_mean=zeros, diagnostics=diag,
                    n_draws_kept=kept)
    t = res.test()
    assert bool(t.loc["a", "passed"]) and not bool(t.loc["b", "passed"])
    assert not res.passed
    assert thin_indices(1000, 99)[-1] == 999 and len(thin_indices(1000, 99)) == 99


@pytest.mark.slow
def test_sbc_collapsed_is_calibrated():
    res = simulation_based_calibration(100, seed=1, progress=False)
    table = res.test()
    assert res.passed, f"\n{table.join(res.histogram())}"
