"""Simulation-based calibration (SBC) of the collapsed Bayesian slope model.

SBC (Talts et al. 2018, arXiv:1804.06788) checks a sampler *and* a likelihood
together: draw the parameters θ̃ from the prior, simulate data ỹ from the model
given θ̃, fit the model to ỹ and record the rank of θ̃ among L posterior draws.
If the model code computes the right posterior and the sampler explores it,
every rank is uniform on {0, …, L}; a biased likelihood, a wrong transformation
or a sampler that misses part of the posterior shows as a non-uniform histogram
(∪-shaped: posterior too narrow; ∩-shaped: too wide; sloped: biased).

The design is fixed and small: ``n_patients`` patients, each seen at the
``visits`` months, a 0/1 ``exposure`` in every other patient (half of them),
and the formula ``y ~ months * exposure + (months | patient_id)``; data are
simulated from exactly the model :func:`alsfrs.fit_bayes` assumes, unbounded
(no clipping to 0-48, which would change the likelihood).

Priors (fixed, passed explicitly for every parameter so that nothing depends on
the simulated data; ALSFRS-R points and months):

=====================  ====================  ==========================================
parameter              prior                 note
=====================  ====================  ==========================================
``(Intercept)``        Normal(38, 4)         on the *centred* intercept: the mean
                                             outcome at the average covariates
                                             (months = mean visit month, exposure and
                                             months:exposure at their means), as the
                                             model places it (:class:`Design`)
``months``             Normal(-1, 0.5)       decline, points/month
``exposure``           Normal(0, 2)
``months:exposure``    Normal(0, 0.3)        change of decline with exposure
``sd__(Intercept)``    HalfNormal(5)
``sd__months``         HalfNormal(0.75)
``lkj_eta``            2                     correlation = 2 Beta(2, 2) - 1
``sigma``              HalfNormal(2.5)
=====================  ====================  ==========================================

The truth is drawn in NumPy from these distributions, independently of PyMC:
the centred intercept from its prior, the other coefficients from theirs, and the
original-scale intercept as ``β₀ = β₀ᶜ - Σ_{j≥1} β_j x̄_j`` (``Design.uncenter``),
with x̄ the column means of this fixed design. Ranks are taken on the
original-scale coefficients that :meth:`BayesResult.draws` returns. The SDs are
drawn independently of the correlation, as ``pm.LKJCholeskyCov`` with an
``sd_dist`` specifies.

Thinning: every fit runs one chain of ``draws`` draws after ``tune`` tuning
steps; the ``n_draws_kept`` = L draws kept are evenly spaced, every
``k = draws // L``-th draw over the last ``k·L`` draws. Draws ``k`` apart are
roughly independent when ``k`` is at least the integrated autocorrelation time
``draws / ESS``, i.e. when the bulk ESS of the whole chain is at least L; the
minimum bulk ESS over the parameters is recorded for every simulation
(``SBCResult.diagnostics``) and the simulations below L are counted. Residual
autocorrelation makes the rank histogram ∪-shaped, so a low ESS is a reason to
lengthen ``draws``, never to discount a failed test.
"""

from __future__ import annotations

import logging
import sys
import time as _time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["FORMULA", "PARAMETERS", "PRIORS", "SBCResult", "sbc_design",
           "simulation_based_calibration", "thin_indices"]

#: The model fitted in every simulation.
FORMULA = "y ~ months * exposure + (months | patient_id)"

#: The priors (``fit_bayes`` syntax); the truth is drawn from exactly these.
PRIORS: dict[str, Any] = {
    "(Intercept)": ("normal", 38.0, 4.0),
    "months": ("normal", -1.0, 0.5),
    "exposure": ("normal", 0.0, 2.0),
    "months:exposure": ("normal", 0.0, 0.3),
    "sd__(Intercept)": ("halfnormal", 5.0),
    "sd__months": ("halfnormal", 0.75),
    "lkj_eta": 2.0,
    "sigma": ("halfnormal", 2.5),
}

_FIXED = ("(Intercept)", "months", "exposure", "months:exposure")
_RANDOM = ("(Intercept)", "months")
_CORR = "cor__(Intercept).months"
#: Ranked parameters, in column order.
PARAMETERS = (*_FIXED, *(f"sd__{n}" for n in _RANDOM), _CORR, "sigma")


@dataclass(frozen=True)
class _Design:
    frame: pd.DataFrame  # patient_id, months, exposure (y added per simulation)
    X: np.ndarray  # (n, 4) columns as _FIXED
    Z: np.ndarray  # (n, 2) columns as _RANDOM
    group: np.ndarray  # (n,) patient index
    xbar: np.ndarray  # column means of X, 0 for the intercept


def sbc_design(n_patients: int = 40, visits: Sequence[float] = (0, 3, 6, 9, 12)) -> pd.DataFrame:
    """The fixed design of the SBC: one row per visit, without the outcome.

    Parameters
    ----------
    n_patients
        Number of patients (at least 4).
    visits
        Visit months, the same for every patient.

    Returns
    -------
    pandas.DataFrame
        ``patient_id`` (``"p000"``, …), ``months`` and ``exposure`` (1 for every
        other patient, so half of them, rounded down).
    """
    if int(n_patients) < 4:
        raise ValueError(f"n_patients must be at least 4, got {n_patients!r}")
    v = np.asarray(visits, dtype=float)
    if v.ndim != 1 or len(v) < 2 or len(np.unique(v)) != len(v):
        raise ValueError(f"visits must be at least two distinct months, got {visits!r}")
    n = int(n_patients)
    pid = np.repeat(np.arange(n), len(v))
    return pd.DataFrame({
        "patient_id": [f"p{i:03d}" for i in pid],
        "months": np.tile(v, n),
        "exposure": (pid % 2).astype(float),
    })


def _design(n_patients: int, visits: Sequence[float]) -> _Design:
    frame = sbc_design(n_patients, visits)
    m = frame["months"].to_numpy()
    e = frame["exposure"].to_numpy()
    X = np.column_stack([np.ones_like(m), m, e, m * e])
    Z = np.column_stack([np.ones_like(m), m])
    xbar = X.mean(axis=0)
    xbar[0] = 0.0
    group = np.repeat(np.arange(int(n_patients)), len(visits))
    return _Design(frame=frame, X=X, Z=Z, group=group, xbar=xbar)


def _draw_truth(rng: np.random.Generator, xbar: np.ndarray) -> dict[str, Any]:
    """Parameters drawn from :data:`PRIORS` (see the module docstring)."""
    beta_c = np.array([rng.normal(PRIORS[n][1], PRIORS[n][2]) for n in _FIXED])
    beta = beta_c.copy()
    beta[0] = beta_c[0] - beta_c[1:] @ xbar[1:]  # as Design.uncenter
    sd = np.array([abs(rng.normal(0.0, PRIORS[f"sd__{n}"][1])) for n in _RANDOM])
    eta = float(PRIORS["lkj_eta"])
    corr = 2.0 * rng.beta(eta, eta) - 1.0
    sigma = abs(rng.normal(0.0, PRIORS["sigma"][1]))
    return {"beta": beta, "beta_centred": beta_c, "sd": sd, "corr": corr, "sigma": sigma}


def _simulate_y(rng: np.random.Generator, d: _Design, truth: dict[str, Any]) -> np.ndarray:
    sd, r = truth["sd"], truth["corr"]
    chol = np.array([[sd[0], 0.0], [sd[1] * r, sd[1] * np.sqrt(1.0 - r * r)]])
    n_groups = int(d.group.max()) + 1
    b = rng.standard_normal((n_groups, 2)) @ chol.T  # rows ~ N(0, Σ)
    mu = d.X @ truth["beta"] + np.sum(d.Z * b[d.group], axis=1)
    return mu + truth["sigma"] * rng.standard_normal(len(mu))


def _truth_vector(truth: dict[str, Any]) -> np.ndarray:
    return np.concatenate([truth["beta"], truth["sd"], [truth["corr"], truth["sigma"]]])


def _posterior_matrix(result: Any) -> np.ndarray:
    """Draws × PARAMETERS from a fit, by name (not by position)."""
    beta = result.draws("beta")
    fixed = list(result.design.fixed_names)
    random = list(result.design.random_names)
    sd = result.draws("sd")
    corr = result.draws("corr")
    ia, ib = random.index(_RANDOM[0]), random.index(_RANDOM[1])
    cols = [beta[:, fixed.index(n)] for n in _FIXED]
    cols += [sd[:, random.index(n)] for n in _RANDOM]
    cols += [corr[:, ia, ib], result.draws("sigma")]
    return np.column_stack(cols)


def thin_indices(n_draws: int, n_kept: int) -> np.ndarray:
    """Every ``k = n_draws // n_kept``-th draw over the last ``k·n_kept`` draws."""
    if n_kept < 1 or n_draws < n_kept:
        raise ValueError(f"cannot keep {n_kept} draws out of {n_draws}")
    k = n_draws // n_kept
    return n_draws - k * n_kept + k - 1 + k * np.arange(n_kept)


def _rank_bins(n_ranks: int, bins: int) -> np.ndarray:
    """Bin of each possible rank 0..n_ranks-1 (bins as equal as the integers allow)."""
    return (np.arange(n_ranks) * bins) // n_ranks


@dataclass(eq=False)
class SBCResult:
    """Ranks of the true parameters among posterior draws, one row per simulation.

    Attributes
    ----------
    ranks : pandas.DataFrame
        Index ``simulation``; one integer column per parameter (:data:`PARAMETERS`),
        each the number of kept posterior draws below the truth, in
        ``0..n_draws_kept``.
    truth : pandas.DataFrame
        The parameters drawn from the prior (same shape as ``ranks``; the intercept
        on the original scale, as ranked).
    posterior_mean : pandas.DataFrame
        Posterior means over the whole chain (same shape).
    diagnostics : pandas.DataFrame
        Per simulation: ``min_ess_bulk`` (whole chain, over the parameters),
        ``worst_parameter``, ``divergences``, ``seconds`` and ``seed``.
    n_draws_kept : int
        L, the number of posterior draws each truth is ranked among.
    settings : dict
        The arguments of the run.
    """

    ranks: pd.DataFrame
    truth: pd.DataFrame
    posterior_mean: pd.DataFrame
    diagnostics: pd.DataFrame
    n_draws_kept: int
    settings: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float = float("nan")

    @property
    def n_simulations(self) -> int:
        return len(self.ranks)

    @property
    def parameters(self) -> list[str]:
        return list(self.ranks.columns)

    @property
    def low_ess(self) -> int:
        """Simulations whose minimum bulk ESS is below ``n_draws_kept``."""
        return int((self.diagnostics["min_ess_bulk"] < self.n_draws_kept).sum())

    def histogram(self, bins: int = 10) -> pd.DataFrame:
        """Rank counts: one row per parameter, one column per bin (low ranks first).

        Rank r in 0..L goes to bin ``floor(r · bins / (L + 1))``.
        """
        n_ranks = self.n_draws_kept + 1
        if not 1 <= bins <= n_ranks:
            raise ValueError(f"bins must be between 1 and {n_ranks}, got {bins!r}")
        which = _rank_bins(n_ranks, bins)
        counts = {p: np.bincount(which[self.ranks[p].to_numpy()], minlength=bins)
                  for p in self.parameters}
        return pd.DataFrame.from_dict(counts, orient="index",
                                      columns=[f"bin{j}" for j in range(bins)]).rename_axis(
                                          "parameter")

    def test(self, bins: int = 10, alpha: float = 0.01) -> pd.DataFrame:
        """Chi-square test of uniformity of each parameter's rank histogram.

        Parameters
        ----------
        bins
            Histogram bins over the L + 1 possible ranks; expected counts are
            proportional to the number of ranks in each bin.
        alpha
            Family-wise level; each parameter is tested at ``alpha / n_parameters``
            (Bonferroni).

        Returns
        -------
        pandas.DataFrame
            Index ``parameter``; columns ``statistic``, ``df``, ``p_value``,
            ``threshold``, ``passed``, and ``mean_rank`` (scaled to 0-1; 0.5
            expected) for reading the direction of a failure.
        """
        n_ranks = self.n_draws_kept + 1
        counts = self.histogram(bins)
        width = np.bincount(_rank_bins(n_ranks, bins), minlength=bins)
        expected = self.n_simulations * width / n_ranks
        threshold = alpha / len(self.parameters)
        rows = []
        for p in self.parameters:
            res = stats.chisquare(counts.loc[p].to_numpy(), expected)
            pval = float(res.pvalue)
            rows.append({"parameter": p, "statistic": float(res.statistic), "df": bins - 1,
                         "p_value": pval, "threshold": threshold, "passed": pval >= threshold,
                         "mean_rank": float(self.ranks[p].mean() / self.n_draws_kept)})
        return pd.DataFrame(rows).set_index("parameter")

    @property
    def passed(self) -> bool:
        """All parameters pass :meth:`test` (10 bins, family-wise level 0.01)."""
        return bool(self.test()["passed"].all())

    def to_frame(self) -> pd.DataFrame:
        """Long form: one row per (simulation, parameter).

        Columns ``simulation``, ``parameter``, ``truth``, ``rank``,
        ``posterior_mean``, and the simulation's ``min_ess_bulk`` and ``divergences``.
        """
        def _long(df: pd.DataFrame, name: str) -> pd.Series:
            return df.rename_axis(columns="parameter").stack().rename(name)

        out = pd.concat([_long(self.truth, "truth"), _long(self.ranks, "rank"),
                         _long(self.posterior_mean, "posterior_mean")], axis=1).reset_index()
        diag = self.diagnostics[["min_ess_bulk", "divergences"]]
        return out.merge(diag, left_on="simulation", right_index=True, how="left")


def simulation_based_calibration(
    n_simulations: int = 100,
    n_patients: int = 40,
    visits: Sequence[float] = (0, 3, 6, 9, 12),
    n_draws_kept: int = 99,
    chains: int = 1,
    draws: int = 1000,
    tune: int = 500,
    seed: int = 0,
    progress: bool | None = None,
) -> SBCResult:
    """Simulation-based calibration of ``fit_bayes(..., parameterization="collapsed")``.

    Parameters
    ----------
    n_simulations
        Number of (prior draw, data set, fit) replications.
    n_patients, visits
        The fixed design (:func:`sbc_design`).
    n_draws_kept
        L: posterior draws each truth is ranked among (ranks 0..L). With the
        default 99 there are 100 possible ranks, 10 per bin of :meth:`SBCResult.test`.
    chains
        Chains per fit (run one after another); the draws kept are thinned within
        each chain and pooled, ``n_draws_kept`` in total (it must divide evenly).
    draws, tune
        Draws and tuning steps per chain. Thinning keeps every
        ``draws·chains // n_draws_kept``-th draw (see the module docstring).
    seed
        Seeds everything: the same seed gives the same ranks.
    progress
        Show a tqdm bar; ``None``: when standard error is a terminal.

    Returns
    -------
    SBCResult
    """
    from tqdm import tqdm

    from alsfrs.bayes.fit import SamplingWarning, fit_bayes

    if int(n_simulations) < 1:
        raise ValueError(f"n_simulations must be at least 1, got {n_simulations!r}")
    if n_draws_kept % chains:
        raise ValueError(f"n_draws_kept ({n_draws_kept}) must be a multiple of chains ({chains})")
    per_chain = n_draws_kept // chains
    keep = thin_indices(draws, per_chain)  # validates draws >= per_chain
    d = _design(n_patients, visits)
    if progress is None:
        progress = sys.stderr.isatty()
    children = np.random.SeedSequence(seed).spawn(int(n_simulations))
    ranks, truths, means, diag = [], [], [], []
    # PyMC logs four lines per fit; ArviZ (through its own, unregistered logger) that
    # one chain is too few for R-hat
    loggers = [logging.getLogger("pymc")]
    if isinstance(getattr(az, "_log", None), logging.Logger):
        loggers.append(az._log)
    old_levels = [lg.level for lg in loggers]
    t_start = _time.perf_counter()
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        for child in tqdm(children, disable=not progress, desc="SBC", unit="fit"):
            rng = np.random.default_rng(child)
            fit_seed = int(rng.integers(2**31 - 1))
            truth = _draw_truth(rng, d.xbar)
            frame = d.frame.assign(y=_simulate_y(rng, d, truth))
            t0 = _time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SamplingWarning)
                warnings.filterwarnings("ignore", category=UserWarning, module=r"pymc.*")
                warnings.filterwarnings("ignore", category=RuntimeWarning)
                fit = fit_bayes(FORMULA, frame, priors=PRIORS, parameterization="collapsed",
                                draws=draws, tune=tune, chains=chains, cores=1, seed=fit_seed,
                                progressbar=False)
            seconds = _time.perf_counter() - t0
            post = _posterior_matrix(fit).reshape(chains, draws, len(PARAMETERS))
            kept = post[:, keep, :].reshape(-1, len(PARAMETERS))
            tv = _truth_vector(truth)
            ranks.append((kept < tv).sum(axis=0))
            truths.append(tv)
            means.append(post.reshape(-1, len(PARAMETERS)).mean(axis=0))
            ess = np.array([float(az.ess(post[:, :, j], method="bulk"))
                            for j in range(len(PARAMETERS))])
            div = fit.idata.sample_stats.get("diverging")
            diag.append({"min_ess_bulk": float(ess.min()),
                         "worst_parameter": PARAMETERS[int(np.argmin(ess))],
                         "divergences": 0 if div is None else int(np.asarray(div).sum()),
                         "seconds": seconds, "seed": fit_seed})
    finally:
        for lg, level in zip(loggers, old_levels, strict=True):
            lg.setLevel(level)
    wall = _time.perf_counter() - t_start
    index = pd.RangeIndex(len(ranks), name="simulation")
    cols = list(PARAMETERS)
    return SBCResult(
        ranks=pd.DataFrame(np.array(ranks, dtype=int), index=index, columns=cols),
        truth=pd.DataFrame(np.array(truths), index=index, columns=cols),
        posterior_mean=pd.DataFrame(np.array(means), index=index, columns=cols),
        diagnostics=pd.DataFrame(diag, index=index),
        n_draws_kept=int(n_draws_kept),
        settings={"n_simulations": int(n_simulations), "n_patients": int(n_patients),
                  "visits": tuple(float(v) for v in visits), "n_draws_kept": int(n_draws_kept),
                  "chains": int(chains), "draws": int(draws), "tune": int(tune),
                  "seed": seed, "formula": FORMULA, "priors": dict(PRIORS)},
        wall_seconds=wall,
    )
