"""fit_bayes, prior_predictive and compare."""

from __future__ import annotations

import contextlib
import importlib.util
import time as _time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from alsfrs import azcompat
from alsfrs.bayes.model import FAMILIES, PARAMETERIZATIONS, Design, build_model, make_design
from alsfrs.bayes.posterior import (
    effects_and_loglik,
    marginal_loglik,
    pointwise_student_loglik,
    predictive,
)
from alsfrs.bayes.priors import resolve_priors
from alsfrs.bayes.result import BayesResult
from alsfrs.bayes.result import flat_draws as _flat
from alsfrs.bayes.sampling import deterministics, parameters_dataset, sample_density
from alsfrs.errors import Problem, ValidationError
from alsfrs.matrices import as_frame, build_model_matrices
from alsfrs.threads import sampling_threads
from alsfrs.timeaxis import time_variable

__all__ = ["SamplingWarning", "compare", "fit_bayes", "prior_predictive"]

#: Posterior predictive draws kept per chain (enough for checks, small on disk).
PPC_DRAWS_PER_CHAIN = 100


class SamplingWarning(UserWarning):
    """R-hat above 1.01, bulk ESS below 400, or divergent transitions."""


def _time_variable(mm, time: str | None) -> str:
    """The model's time variable: the one chooser of :mod:`alsfrs.timeaxis`."""
    return time_variable(mm.variables, mm.random_names, time)


def _prepare(formula: str, data: Any, priors, time: str | None):
    frame = as_frame(data)
    mm = build_model_matrices(formula, frame)
    t = _time_variable(mm, time)
    design = make_design(mm, t)
    pri = resolve_priors(priors, mm.fixed_names, mm.random_names, mm.blocks, mm.y, t)
    return frame, design, pri


def _check_options(family, parameterization, draws, tune, chains, sampler) -> None:
    problems = []
    if family not in FAMILIES:
        problems.append(Problem(rule="bad_option", column="family",
                                message=f"family must be one of {', '.join(FAMILIES)}"))
    if parameterization not in PARAMETERIZATIONS:
        problems.append(Problem(rule="bad_option", column="parameterization",
                                message="parameterization must be one of "
                                        + ", ".join(PARAMETERIZATIONS)))
    for name, v, lo in (("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1)):
        if not isinstance(v, int | np.integer) or v < lo:
            problems.append(Problem(rule="bad_option", column=name,
                                    message=f"{name} must be a whole number >= {lo}, got {v!r}"))
    if sampler not in ("pymc", "nutpie"):
        problems.append(Problem(rule="bad_option", column="sampler",
                                message=f"sampler must be 'pymc' or 'nutpie', not {sampler!r}"))
    elif sampler == "nutpie" and importlib.util.find_spec("nutpie") is None:
        problems.append(Problem(rule="missing_extra", column="sampler",
                                message="sampler='nutpie' needs the optional extra: "
                                        "pip install 'alsfrs[nutpie]'"))
    if problems:
        raise ValidationError(problems, context="fit_bayes")


def fit_bayes(
    formula: str,
    data: Any,
    *,
    priors: Mapping[str, Any] | None = None,
    family: str = "gaussian",
    parameterization: str = "collapsed",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int | None = None,
    sampler: str = "pymc",
    target_accept: float = 0.9,
    cores: int | None = None,
    progressbar: bool = True,
    time: str | None = None,
) -> BayesResult:
    """Bayesian hierarchical model of per-patient decline, sampled with NUTS.

    Parameters
    ----------
    formula
        lme4 syntax, as for :func:`alsfrs.fit_lmm` (same term names), e.g.
        ``"alsfrs_r ~ months * antidepressant + (months | patient_id)"``.
    data
        A Cohort or a long DataFrame.
    priors
        Overrides of the documented defaults (:mod:`alsfrs.bayes.priors`).
    family
        ``"gaussian"`` or ``"student_t"`` (robust to outlying visits; needs
        ``parameterization="noncentered"``).
    parameterization
        ``"collapsed"`` (random effects integrated out; default) or
        ``"noncentered"`` (random effects sampled, as brms does).
    draws, tune, chains
        Posterior draws and tuning steps per chain, number of chains.
    seed
        Seed for sampling and for the per-patient draws; the same seed gives
        the same numbers. ``None`` draws one (recorded on the result).
    sampler
        ``"pymc"`` (PyMC's NUTS) or ``"nutpie"`` (optional extra).
    target_accept
        NUTS target acceptance rate.
    cores
        Chains run in parallel (default: min(chains, CPUs)). alsfrs keeps BLAS
        at one thread in every chain (no environment variable needed).
    progressbar
        Show sampling progress.
    time
        The time variable (default: the random slope's variable, else ``months``).

    Returns
    -------
    BayesResult

    Warns
    -----
    SamplingWarning
        R-hat > 1.01, bulk ESS < 400 or divergent transitions.
    """
    import os

    import pymc as pm

    _check_options(family, parameterization, draws, tune, chains, sampler)
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31))
    frame, design, pri = _prepare(formula, data, priors, time)
    model = build_model(design, pri, family=family, parameterization=parameterization)
    cores = min(chains, os.cpu_count() or 1) if cores is None else cores
    t0 = _time.perf_counter()
    with warnings.catch_warnings(), sampling_threads(1), _quick_compile(), \
            np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        # Early in warm-up, before the step size and mass matrix are adapted, NUTS
        # proposes points far out (e.g. a log-SD of 700) whose log-density overflows;
        # the sampler rejects them (a warm-up divergence, not reported). NumPy's notes
        # about that arithmetic ("invalid value encountered in dot") are not the user's
        # concern: floating-point notes are off for the sampler's own evaluations only
        # (this process and the chains forked from it), nothing else is filtered.
        # BLAS at one thread while sampling, in this process and in every chain: PyMC's
        # chains on Linux are forked from here and inherit the limit (PyMC applies no
        # limit to forked chains; spawned/forkserver chains get PyMC's own blas_cores
        # limit, one thread each, and the environment variables); libraries loaded while
        # compiling read the variables; nutpie's chains are threads of this process. The
        # matrices are tiny: more threads only oversubscribe the cores.
        warnings.filterwarnings("ignore", message=".*[Tt]he effective sample size.*")
        warnings.filterwarnings("ignore", message=".*[Rr]hat.*")
        warnings.filterwarnings("ignore", message=".*divergen.*")
        # the dense mass-matrix adaptation works as documented; PyMC's notice that it
        # is "experimental" is the one warning silenced here
        warnings.filterwarnings("ignore", message="QuadPotentialFullAdapt is an experimental",
                                category=UserWarning)
        kwargs: dict[str, Any] = dict(draws=draws, tune=tune, chains=chains, cores=cores,
                                      random_seed=seed, progressbar=progressbar,
                                      compute_convergence_checks=False,
                                      nuts_sampler=sampler, target_accept=target_accept)
        start = None
        if sampler == "pymc" and parameterization == "collapsed":
            idata, start = _sample_density(design, pri, kwargs, seed)
        else:
            if sampler == "pymc":
                # record only the sampled variables; the deterministics (beta, chol, sd,
                # corr) are computed afterwards, vectorised, without compiling C for them
                kwargs["var_names"] = [rv.name for rv in model.free_RVs]
            with model:
                idata = pm.sample(**kwargs)
            if sampler == "pymc":
                idata.posterior = deterministics(idata.posterior, model)
    total = _time.perf_counter() - t0
    # PyMC records the sampling time; external samplers (nutpie) do not, and then the
    # total (compilation included) is reported as sampling time
    sampling = float(idata.sample_stats.attrs.get("sampling_time", total))
    idata = _augment(idata, design, family, parameterization, seed)
    timing = {"total_seconds": total, "sampling_seconds": sampling,
              "compile_seconds": total - sampling if np.isfinite(sampling) else np.nan}
    if start is not None:
        timing["start"] = start
    result = BayesResult(formula=design.mm.formula.text, family=family,
                         parameterization=parameterization, sampler=sampler, seed=seed,
                         idata=idata, design=design, priors=pri, model=model, timing=timing,
                         settings={"draws": draws, "tune": tune, "chains": chains,
                                   "target_accept": target_accept}, _data=frame)
    for msg in result.diagnostic_messages():
        warnings.warn(msg, SamplingWarning, stacklevel=2)
    return result


def _sample_density(design: Design, priors, kwargs: dict[str, Any], seed: int):
    """NUTS on the collapsed model's NumPy log density (:mod:`alsfrs.bayes.density`).

    Warm-up starts from the posterior mode with the mass matrix set to the
    Laplace covariance there (dense, then adapted as usual): without it most of
    the warm-up's gradient evaluations went into finding the posterior's location
    and scales (about 40 leapfrog steps per warm-up iteration against 7 after).
    Each chain starts at its own draw from that Laplace approximation. Nothing is
    compiled: the sampled graph is one NumPy Op run by PyTensor's Python linker.

    Returns the InferenceData (posterior ``beta``, ``chol``, ``sd``, ``corr``,
    ``sigma`` with the usual coordinates; the sampler's statistics) and a record
    of the start (optimiser iterations, evaluations, success).
    """
    from pymc.step_methods.hmc.quadpotential import QuadPotentialFullAdapt

    from alsfrs.bayes.density import CollapsedDensity, laplace_start

    density = CollapsedDensity(design, priors)
    mode, cov, record = laplace_start(density)
    chains = kwargs["chains"]
    rng = np.random.default_rng([seed, 20251123])
    factor = np.linalg.cholesky(cov)
    starts = []
    for _ in range(chains):
        x = mode + factor @ rng.standard_normal(mode.size)
        lp, g = density(x)
        starts.append(x if np.isfinite(lp) and np.all(np.isfinite(g)) else mode.copy())
    potential = QuadPotentialFullAdapt(density.size, mode, cov, initial_weight=10)
    idata = sample_density(density, starts, potential, kwargs)
    theta = idata.posterior["theta"].to_numpy()
    C, Dn = theta.shape[:2]
    beta_c, L, sigma = density.unpack_draws(theta.reshape(C * Dn, -1))
    idata.posterior = parameters_dataset(design, design.uncenter(beta_c), L, sigma,
                                         idata.posterior)
    return idata, record


@contextlib.contextmanager
def _quick_compile() -> Iterator[None]:
    """Compile the model's C code without optimisation (``-O0``, appended to PyTensor's
    ``gcc__cxxflags``, so these modules are cached apart from optimised ones).

    The heavy work (the collapsed likelihood) is NumPy inside an Op; what PyTensor
    compiles is the priors' small scalar graph, for which gcc's optimisation costs
    most of the first fit's wait and gains nothing measurable (docs/benchmarks.md).
    """
    import pytensor

    flags = f"{pytensor.config.gcc__cxxflags} -O0".strip()
    try:
        ctx = pytensor.config.change_flags(gcc__cxxflags=flags)
    except Exception:  # pragma: no cover - a PyTensor whose flag is read-only
        ctx = contextlib.nullcontext()
    with ctx:
        yield


def _augment(idata, design: Design, family: str, parameterization: str, seed: int):
    """Replace sampler internals by the quantities users read; add per-patient effects,
    log-likelihood, posterior predictive and observed data."""
    mm = design.mm
    post = idata.posterior
    C, Dn = post.sizes["chain"], post.sizes["draw"]
    beta, chol, sigma = _flat(post["beta"]), _flat(post["chol"]), _flat(post["sigma"])
    nu = _flat(post["nu"]) if "nu" in post else None
    rng = np.random.default_rng([seed, 20250611])
    patient_ll = None
    if parameterization == "collapsed":
        effects, patient_ll = effects_and_loglik(design, beta, chol, sigma, rng,
                                                 loglik=family == "gaussian")
    else:
        z = _flat(post["z"])
        effects = np.einsum("dgq,dkq->dgk", z, chol)
    patients = [str(g) for g in mm.group_labels]
    keep = [v for v in ("beta", "sd", "corr", "chol", "sigma", "nu") if v in post]
    new_post = post[keep].assign(patient_effects=(
        ("chain", "draw", "patient", "re_term"), effects.reshape(C, Dn, *effects.shape[1:])))
    new_post = new_post.assign_coords(patient=patients)
    new_post.attrs = dict(post.attrs)
    idata.posterior = new_post

    if family == "gaussian":
        if patient_ll is None:
            patient_ll = marginal_loglik(design, beta, chol, sigma)
        ll = patient_ll.reshape(C, Dn, -1)
        log_lik = xr.Dataset({"y_by_patient": (("chain", "draw", "patient"), ll)},
                             coords={"chain": new_post.chain, "draw": new_post.draw,
                                     "patient": patients})
        unit = "y_by_patient"
    else:
        ll = pointwise_student_loglik(design, beta, effects, sigma, nu).reshape(C, Dn, -1)
        log_lik = xr.Dataset({"y": (("chain", "draw", "visit"), ll)},
                             coords={"chain": new_post.chain, "draw": new_post.draw,
                                     "visit": np.arange(mm.n_obs)})
        unit = "y"
    step = max(1, Dn // PPC_DRAWS_PER_CHAIN)
    sel = np.arange(0, Dn, step)
    idx = (np.arange(C)[:, None] * Dn + sel[None, :]).ravel()
    rep = predictive(design, beta[idx], effects[idx], sigma[idx], rng,
                     None if nu is None else nu[idx]).reshape(C, len(sel), -1)
    visit = np.arange(mm.n_obs)
    ppc = xr.Dataset({"y": (("chain", "draw", "visit"), rep)},
                     coords={"chain": new_post.chain, "draw": sel, "visit": visit})
    observed = xr.Dataset({"y": (("visit",), mm.y)}, coords={"visit": visit})
    constant = xr.Dataset({"patient_index": (("visit",), mm.group)}, coords={"visit": visit})
    idata = azcompat.assemble(
        posterior=new_post, sample_stats=idata.sample_stats, log_likelihood=log_lik,
        posterior_predictive=ppc, observed_data=observed, constant_data=constant,
        attrs={"loo_unit": unit})
    return idata


def prior_predictive(
    formula: str,
    data: Any,
    *,
    priors: Mapping[str, Any] | None = None,
    draws: int = 500,
    seed: int | None = None,
    time: str | None = None,
) -> pd.DataFrame:
    """Draw ALSFRS-R trajectories from the prior, on the data's design.

    Returns
    -------
    pandas.DataFrame
        One row per (draw, visit): ``draw``, ``patient_id``, the time variable
        and ``alsfrs_r`` simulated from the prior (unbounded, so a prior that
        puts mass far outside 0-48 shows it). ``.attrs["parameters"]`` holds the
        prior draws of the fixed effects, SDs and sigma.
    """
    import pymc as pm

    frame, design, pri = _prepare(formula, data, priors, time)
    model = build_model(design, pri, family="gaussian", parameterization="collapsed")
    seed = int(np.random.SeedSequence().entropy % (2**31)) if seed is None else seed
    with model, warnings.catch_warnings(), _quick_compile():
        # only parameters are drawn here; the data are generated below in NumPy
        warnings.filterwarnings("ignore", message=".*Potentials.*")
        # a few scalar draws: run in Python rather than compile C (seconds cold)
        prior = pm.sample_prior_predictive(draws=draws, random_seed=seed,
                                           var_names=["beta", "chol", "sigma"],
                                           compile_kwargs={"mode": "FAST_COMPILE"})
    beta = _flat(prior.prior["beta"])
    chol = _flat(prior.prior["chol"])
    sigma = _flat(prior.prior["sigma"])
    rng = np.random.default_rng([seed, 7])
    G, q = design.mm.n_groups, design.mm.n_random
    effects = np.einsum("dkq,dgq->dgk", chol, rng.standard_normal((draws, G, q)))
    y = predictive(design, beta, effects, sigma, rng)
    mm = design.mm
    out = pd.DataFrame({
        "draw": np.repeat(np.arange(draws), mm.n_obs),
        "patient_id": np.tile(np.asarray(frame[mm.grouping]), draws),
        design.time: np.tile(pd.to_numeric(frame[design.time]).to_numpy(), draws),
        "alsfrs_r": y.ravel(),
    })
    out.attrs["parameters"] = {"beta": pd.DataFrame(beta, columns=mm.fixed_names),
                               "sd": pd.DataFrame(np.sqrt(np.einsum("dkq,dkq->dk", chol, chol)),
                                                  columns=mm.random_names),
                               "sigma": sigma}
    return out


def compare(results: Sequence[BayesResult] | Mapping[str, BayesResult]) -> pd.DataFrame:
    """Compare Bayesian fits by PSIS-LOO (leave one patient out for Gaussian fits).

    Fits must share the data and the LOO unit (patients for Gaussian fits,
    visits for Student-t fits: the log-likelihood variables ``y_by_patient`` and ``y``).
    """
    if not isinstance(results, Mapping):
        results = {f"{i}: {r.parameterization} {r.formula}": r for i, r in enumerate(results)}
    if len(results) < 2:
        raise ValidationError(Problem(rule="bad_option", message="compare needs two or more fits"))
    units = {r.loo_unit for r in results.values()}
    nobs = {r.nobs for r in results.values()}
    problems = []
    if len(units) > 1:
        problems.append(Problem(rule="incomparable", message="the fits use different LOO units "
                                f"({', '.join(sorted(units))}): compare Gaussian with Gaussian, "
                                "Student-t with Student-t"))
    if len(nobs) > 1:
        problems.append(Problem(rule="incomparable",
                                message="the fits are on different data (numbers of visits "
                                        f"{sorted(nobs)})"))
    if problems:
        raise ValidationError(problems, context="compare")
    unit = units.pop()
    return azcompat.compare({k: r.idata for k, r in results.items()}, var_name=unit)


#: Public name of the step that turns sampled draws into what users read (per-patient
#: effects, log-likelihood, posterior predictive); loading a saved fit reruns it.
augment_posterior = _augment
