"""fit_joint: the Bayesian joint model of ALSFRS-R and death or invasive ventilation."""

from __future__ import annotations

import os
import time as _time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from alsfrs.errors import Problem, ValidationError
from alsfrs.joint.design import SurvivalData, make_joint_design
from alsfrs.joint.priors import resolve_joint_priors
from alsfrs.matrices import as_frame
from alsfrs.threads import sampling_threads

__all__ = ["fit_joint"]

def _parse_survival(formula: str):
    """The survival formula (:func:`alsfrs.survival.surv.parse_surv_formula`), checked for
    what the joint model supports: ``Surv(time, event) ~ covariates``."""
    from alsfrs.survival.surv import parse_surv_formula

    f = parse_surv_formula(formula, allow_cluster=True)
    problems = []
    if f.counting_process:
        problems.append(Problem(rule="unsupported_formula", message=(
            "the joint model takes Surv(time, event); Surv(start, stop, event) (left "
            "truncation, time-varying covariates) is not supported")))
    if f.strata or f.cluster:
        problems.append(Problem(rule="unsupported_formula", message=(
            "strata() and cluster() are not supported by the joint model")))
    if problems:
        raise ValidationError(problems, context="the survival formula")
    return f


def _survival_matrix(f, frame: pd.DataFrame):
    """Survival covariates (R term names, treatment coding, no intercept) as a
    :class:`alsfrs.matrices.Design` (its ``design(newdata)`` codes new patients)."""
    from alsfrs.matrices import build_design

    if not f.has_covariates:
        return None
    return build_design(f.rhs, frame, variable_order=f.variable_order, intercept=False)


def _patient_frame(data: Any, patients: Any, grouping: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(visits frame, one-row-per-patient frame indexed by the grouping column)."""
    visits = as_frame(data)
    if patients is None:
        pats = getattr(data, "patients", None)
        if isinstance(pats, pd.DataFrame):
            patients = pats
            if "death_imv" in pats.columns:  # a Cohort: also Surv(months, event) of its
                from alsfrs.survival.frame import survival_frame  # survival frame

                sf = survival_frame(data).set_index("patient_id")[["months", "event"]]
                extra = sf.reindex(pats.index)
                patients = pats.drop(columns=[c for c in ("months", "event")
                                              if c in pats.columns]).join(extra)
    if patients is None:  # patient-level columns from the visits frame (first row)
        pf = visits.groupby(grouping, sort=True).first()
    else:
        pf = as_frame(patients)
        if grouping in pf.columns:
            pf = pf.set_index(grouping)
        elif pf.index.name != grouping:
            raise ValidationError(Problem(
                rule="unknown_column", column=grouping,
                message=f"the patient table has no {grouping!r} column or index"),
                context="fit_joint")
    if pf.index.duplicated().any():
        dup = pf.index[pf.index.duplicated()].unique()
        raise ValidationError([Problem(rule="duplicate_patient", patient=p, column=grouping,
                                       message="more than one row for this patient in the "
                                               "patient table") for p in dup[:20]],
                              context="fit_joint")
    return visits, pf


def _survival_data(formula: str, visits: pd.DataFrame, pf: pd.DataFrame, labels: pd.Index,
                   time: str, grouping: str) -> SurvivalData:
    f = _parse_survival(formula)
    tname, ename = f.time, f.event
    problems: list[Problem] = []
    for c in (tname, ename):
        if c not in pf.columns:
            problems.append(Problem(rule="unknown_column", column=c,
                                    message=f"the survival formula uses {c!r}, which is not a "
                                            "column of the patient table"))
    if problems:
        raise ValidationError(problems, context="the survival data")
    # patients: every survival patient needs visits, every visiting patient survival data
    vis_p = pd.Index(labels)
    no_visits = pf.index.difference(vis_p.astype(pf.index.dtype) if len(vis_p) else vis_p)
    for p in no_visits[:50]:
        ev = pf.loc[p, ename]
        kind = "an event (death or IMV)" if pd.notna(ev) and ev == 1 else "survival data"
        problems.append(Problem(rule="no_visits", patient=p, column=grouping,
                                message=f"patient with {kind} but without any ALSFRS-R visit; "
                                        "the joint model needs at least one visit per patient"))
    missing = vis_p.difference(pf.index)
    for p in missing[:50]:
        problems.append(Problem(rule="no_survival_data", patient=p, column=grouping,
                                message="patient with visits but no row in the patient table"))
    if problems:
        raise ValidationError(problems, context="the survival data")
    pf = pf.loc[vis_p]
    T = pd.to_numeric(pf[tname], errors="coerce").to_numpy(dtype=float)
    d = pd.to_numeric(pf[ename], errors="coerce").to_numpy(dtype=float)
    for i in np.flatnonzero(~np.isfinite(T) | (T <= 0)):
        problems.append(Problem(rule="bad_event_time", patient=pf.index[i], column=tname,
                                message=f"event/censoring time must be a positive number, got "
                                        f"{pf[tname].iloc[i]!r}"))
    for i in np.flatnonzero(~np.isin(d, (0.0, 1.0))):
        problems.append(Problem(rule="bad_status", patient=pf.index[i], column=ename,
                                message=f"event status must be 0 or 1, got {pf[ename].iloc[i]!r}"))
    covs = _survival_variables(f)
    for v in covs:
        if v not in pf.columns:
            problems.append(Problem(rule="unknown_column", column=v,
                                    message=f"the survival formula uses {v!r}, which is not a "
                                            "column of the patient table"))
            continue
        na = pf[v].isna().to_numpy()
        for p in pf.index[na][:50]:
            problems.append(Problem(rule="missing_values", patient=p, column=v,
                                    message=f"survival covariate {v!r} is missing"))
    # visits after the event or censoring time
    vt = pd.to_numeric(visits[time], errors="coerce").to_numpy(dtype=float)
    end = pd.Series(T, index=pf.index).reindex(visits[grouping]).to_numpy()
    late = np.flatnonzero(vt > end + 1e-9)
    for j in late[:50]:
        problems.append(Problem(rule="visit_after_event", row=visits.index[j],
                                patient=visits[grouping].iloc[j], column=time,
                                message=f"visit at {vt[j]:.2f} after the end of follow-up "
                                        f"({end[j]:.2f}: event or censoring)"))
    if problems:
        raise ValidationError(problems, context="the survival data")
    design = _survival_matrix(f, pf.reset_index(drop=True))
    if design is None:
        W, names, levels = np.zeros((len(pf), 0)), (), {}
    else:
        W, names, levels = design.X, tuple(design.names), dict(design.levels)
    return SurvivalData(time=T, event=d, W=W, names=names, time_name=tname, event_name=ename,
                        formula=formula, levels=levels, spec=design)


def _survival_variables(f) -> list[str]:
    """Covariate columns of a parsed survival formula."""
    if not f.has_covariates:
        return []
    from formulaic import Formula

    from alsfrs.formula import to_formulaic

    try:
        return sorted(Formula(to_formulaic(f.rhs)).required_variables)
    except Exception as exc:
        raise ValidationError(Problem(rule="malformed_formula", message=str(exc)),
                              context="the survival formula") from None


def _check_options(draws, tune, chains, seed) -> None:
    problems = []
    for name, v, lo in (("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1)):
        if not isinstance(v, int | np.integer) or v < lo:
            problems.append(Problem(rule="bad_option", column=name,
                                    message=f"{name} must be a whole number >= {lo}, got {v!r}"))
    if seed is not None and not isinstance(seed, int | np.integer):
        problems.append(Problem(rule="bad_option", column="seed",
                                message=f"seed must be a whole number, got {seed!r}"))
    if problems:
        raise ValidationError(problems, context="fit_joint")


def prepare_joint(longitudinal: str, survival: str, data: Any, *, patients: Any = None,
                  association: str = "value", baseline: str = "piecewise",
                  n_pieces: int | None = None, quadrature: bool = False,
                  quadrature_nodes: int = 7, time: str | None = None):
    """Validate the data and build the joint design (no sampling).

    The time variable is chosen as for every longitudinal model, by
    :func:`alsfrs.timeaxis.time_variable` (``time``, else the random slope's variable,
    else a known time axis in the formula).
    """
    from alsfrs.formula import parse_formula
    from alsfrs.joint.design import check_design_options
    from alsfrs.matrices import _factor, build_model_matrices
    from alsfrs.timeaxis import time_variable

    n_pieces = check_design_options(association, baseline, n_pieces, quadrature_nodes)
    parsed = parse_formula(longitudinal)
    grouping = parsed.grouping
    visits, pf = _patient_frame(data, patients, grouping)
    if grouping not in visits.columns:
        raise ValidationError(Problem(rule="unknown_column", column=grouping,
                                      message=f"the visits have no {grouping!r} column"),
                              context="fit_joint")
    mm = build_model_matrices(parsed, visits)
    time = time_variable(mm.variables, mm.random_names, time)
    labels = pd.Index(_factor(visits[grouping].reset_index(drop=True)).categories)
    surv = _survival_data(survival, visits, pf, labels, time, grouping)
    jd = make_joint_design(longitudinal, visits, surv, time=time, association=association,
                           baseline=baseline, n_pieces=n_pieces,
                           quadrature_nodes=quadrature_nodes, quadrature=quadrature, mm=mm)
    return visits, pf.loc[labels], jd


def fit_joint(
    longitudinal: str,
    survival: str,
    data: Any,
    *,
    patients: Any = None,
    association: str = "value",
    baseline: str = "piecewise",
    n_pieces: int | None = None,
    quadrature: bool = False,
    quadrature_nodes: int = 7,
    priors: Mapping[str, Any] | None = None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    seed: int | None = None,
    target_accept: float = 0.8,
    cores: int | None = None,
    progressbar: bool = True,
    time: str | None = None,
):
    """Bayesian joint model of ALSFRS-R decline and death or invasive ventilation.

    Parameters
    ----------
    longitudinal
        lme4 formula of the visits, e.g. ``"alsfrs_r ~ months * (anxiolytic + hypnotic +
        antidepressant) + age_at_dx + sex + onset_site + (months | patient_id)"``
        (correlated random intercept and slope; ``I(months^2)`` for a quadratic).
    survival
        ``"Surv(months_to_death_imv, death_imv) ~ anxiolytic + hypnotic + antidepressant +
        age_at_dx + sex + onset_site"``: time to death or IMV (or censoring) on the time
        axis of the visits, status 1/0 and the covariates (one row per patient).
    data
        A :class:`~alsfrs.Cohort` (visits and patients), or a visits DataFrame with
        ``patients=`` (one row per patient, indexed or keyed by the grouping column).
    association
        ``"value"``: hazard depends on the current true ALSFRS-R, α per point;
        ``"value+slope"``: and on its current slope; ``"shared"``: on the patient's
        random effects instead, ``h_i(t) = h0(t) exp(γᵀw_i + αᵀb_i)`` (rows
        ``ranef(alsfrs_r):(Intercept)``, ``ranef(alsfrs_r):months`` of the HR table).
    baseline
        ``"piecewise"`` (constant in ``n_pieces`` pieces with knots at event-time
        quantiles, default 6), ``"spline"`` (log h0 linear between the same knots:
        continuous; closed-form cumulative hazard too), ``"pspline"`` (JMbayes2's
        default: log h0 a cubic B-spline on ``n_pieces`` equally spaced segments over
        follow-up, default 9, with a second-difference penalty whose precision has a
        Gamma(5, 0.5) prior; see :mod:`alsfrs.joint.priors`) or ``"weibull"``.
    n_pieces
        Pieces of the piecewise/spline baseline or segments of the P-spline (defaults
        6 and 9).
    quadrature, quadrature_nodes
        Use Gauss–Legendre quadrature (``quadrature_nodes`` per piece) even where
        the cumulative hazard has a closed form (linear trajectories or shared random
        effects with a piecewise or spline baseline; shared random effects with a
        Weibull baseline); quadrature is always used otherwise (P-spline baseline,
        quadratic trajectories with the value associations).
    priors
        ``{"longitudinal": {...}, "survival": {...}}`` overrides of the documented
        defaults (:mod:`alsfrs.joint.priors`).
    draws, tune, chains, seed, target_accept, cores, progressbar
        NUTS settings; the same seed gives the same draws.
    time
        The time variable (default: the random slope's, usually ``months``; chosen by
        :func:`alsfrs.timeaxis.time_variable` as for every longitudinal model).

    Returns
    -------
    JointResult

    Warns
    -----
    alsfrs.bayes.SamplingWarning
        R-hat > 1.01, bulk ESS < 400 or divergent transitions.
    """
    from alsfrs.bayes.fit import SamplingWarning
    from alsfrs.joint.density import supports
    from alsfrs.joint.result import JointResult, augment

    _check_options(draws, tune, chains, seed)
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31))
    visits, pf, jd = prepare_joint(longitudinal, survival, data, patients=patients,
                                   association=association, baseline=baseline,
                                   n_pieces=n_pieces, quadrature=quadrature,
                                   quadrature_nodes=quadrature_nodes, time=time)
    mm = jd.long.mm
    ev, ptime = jd.surv.event.sum(), jd.surv.time.sum()
    log_rate = float(np.log(max(ev, 0.5) / ptime))
    pri = resolve_joint_priors(priors, fixed_names=mm.fixed_names, random_names=mm.random_names,
                               blocks=mm.blocks, y=mm.y, time=jd.long.time,
                               surv_names=jd.surv.names, response=mm.response, log_rate=log_rate)
    t0 = _time.perf_counter()
    cores = min(chains, os.cpu_count() or 1) if cores is None else cores
    kwargs: dict[str, Any] = dict(draws=draws, tune=tune, chains=chains, cores=cores,
                                  random_seed=seed, progressbar=progressbar,
                                  compute_convergence_checks=False, target_accept=target_accept)
    start = None
    engine = "numpy" if supports(jd) else "pymc"
    # one BLAS thread here and in the forked chains (alsfrs.threads, as fit_bayes)
    with warnings.catch_warnings(), sampling_threads(1):
        warnings.filterwarnings("ignore", message=".*[Tt]he effective sample size.*")
        warnings.filterwarnings("ignore", message=".*[Rr]hat.*")
        warnings.filterwarnings("ignore", message=".*divergen.*")
        warnings.filterwarnings("ignore", message=".*invalid value encountered.*")
        if engine == "numpy":
            idata, start = _sample_numpy(jd, pri, kwargs, seed, log_rate)
        else:
            idata = _sample_pymc(jd, pri, kwargs)
    total = _time.perf_counter() - t0
    sampling = float(idata.sample_stats.attrs.get("sampling_time", total))
    idata = augment(idata, jd, seed)
    timing: dict[str, Any] = {"total_seconds": total, "sampling_seconds": sampling,
                              "compile_seconds": total - sampling}
    if start is not None:
        timing["start"] = start
    settings = {"association": association, "baseline": baseline, "n_pieces": jd.setting_pieces,
                "closed_form": jd.closed_form, "engine": engine,
                "quadrature_nodes": jd.quadrature_nodes,
                "draws": draws, "tune": tune, "chains": chains, "target_accept": target_accept,
                "time": jd.long.time}
    result = JointResult(longitudinal=mm.formula.text, survival=survival, seed=seed,
                         idata=idata, design=jd, priors=pri,
                         timing=timing,
                         settings=settings, visits=visits, patients=pf)
    for msg in result.diagnostic_messages():
        warnings.warn(msg, SamplingWarning, stacklevel=2)
    return result


def _sample_pymc(jd, pri, kwargs: dict[str, Any]):
    """NUTS on the PyMC model (:mod:`alsfrs.joint.model`): the designs the NumPy density
    does not cover (three random effects per patient). Its log density and gradient are
    compiled to C (a minute or more on a fresh machine)."""
    import pymc as pm

    from alsfrs.bayes.sampling import deterministics
    from alsfrs.joint.model import build_joint_model

    model = build_joint_model(jd, pri)
    with model:
        # record the sampled variables only; the deterministics (beta, chol, sd, corr, the
        # baseline's values) are computed afterwards, vectorised over draws, by PyTensor's
        # Python linker: no C module to compile for the trace (about 7-10 s cold)
        idata = pm.sample(**kwargs, var_names=[rv.name for rv in model.free_RVs])
    idata.posterior = deterministics(idata.posterior, model)
    return idata


def _sample_numpy(jd, pri, kwargs: dict[str, Any], seed: int, log_rate: float):
    """NUTS on the NumPy log density (:mod:`alsfrs.joint.density`), nothing compiled.

    Sampling starts from the Laplace approximation at the posterior mode: NUTS moves
    in its standardised coordinates (:class:`~alsfrs.joint.density.LaplaceCoordinates`:
    the Laplace covariance as a dense mass matrix, kept fixed; the step size is
    adapted), and each chain starts at its own draw from it. Returns the InferenceData
    (the PyMC model's variables and coordinates) and a record of the start.
    """
    import xarray as xr
    from pymc.step_methods.hmc.quadpotential import QuadPotentialDiag

    from alsfrs.bayes.sampling import parameters_dataset, sample_density
    from alsfrs.joint.density import JointDensity, LaplaceCoordinates, joint_laplace

    density = JointDensity(jd, pri)
    t0 = _time.perf_counter()
    mode, cov, cross, zchol, record = joint_laplace(density, log_rate)
    record["seconds"] = _time.perf_counter() - t0
    lap = LaplaceCoordinates(density, mode, cov, cross, zchol)
    rng = np.random.default_rng([seed, 20251124])
    starts = []
    for _ in range(kwargs["chains"]):
        x = rng.standard_normal(lap.size)
        lp, g = lap(x)
        starts.append(x if np.isfinite(lp) and np.all(np.isfinite(g)) else lap.from_theta(mode))
    # the mass matrix is the Laplace covariance (unit in these coordinates), kept fixed;
    # NUTS adapts its step size. Adapting a diagonal over about 2,000 coordinates on top
    # added estimation noise: over three sampling seeds on 1,000 patients (2 x 1,000
    # draws) the minimum tail ESS was 766-916 with adaptation, 947-1,084 without
    potential = QuadPotentialDiag(np.ones(lap.size))
    idata = sample_density(lap, starts, potential, kwargs)
    x = idata.posterior["theta"].to_numpy()
    C, Dn = x.shape[:2]
    par = density.unpack_draws(lap.to_theta(x.reshape(C * Dn, -1)))
    post = parameters_dataset(jd.long, jd.long.uncenter(par["beta_c"]), par["L"],
                              par["sigma"], idata.posterior)

    def shaped(a):
        return a.reshape(C, Dn, *a.shape[1:])

    extra: dict[str, Any] = {"z": (("chain", "draw", "patient", "re_term"), shaped(par["z"]))}
    coords: dict[str, Any] = {"patient": jd.patients}
    if jd.surv.names:
        extra["gamma"] = (("chain", "draw", "surv_term"), shaped(par["gamma"]))
        coords["surv_term"] = list(jd.surv.names)
    alpha = par["alpha"]
    if jd.association == "shared":
        extra["alpha_shared"] = (("chain", "draw", "re_term"), shaped(alpha))
    else:
        extra["alpha"] = (("chain", "draw"), shaped(alpha[:, 0]))
        if jd.association == "value+slope":
            extra["alpha_slope"] = (("chain", "draw"), shaped(alpha[:, 1]))
    base_vars, base_coords = density.baseline.posterior(par["base"])
    for name, (dims, arr) in base_vars.items():
        extra[name] = (("chain", "draw", *dims), shaped(arr))
    coords.update(base_coords)
    idata.posterior = post.assign(xr.Dataset(
        extra, coords={"chain": post.chain, "draw": post.draw,
                       "re_term": list(jd.long.mm.random_names), **coords}))
    return idata, record
