"""Power by simulating whole trials from a pilot model.

Each simulated trial draws patients from the pilot's random intercept and
slope model (random effects, residuals, the visit schedule, missed visits,
non-informative attrition) and — with ``death="joint"`` — death or invasive
ventilation from a joint-model hazard that rises as the patient's true
ALSFRS-R falls (``h_i(t) = h0 · HR_point^(intercept − m_i(t))``, the
"current value" association), so faster decliners leave first, as in ALS.
Visits after death are not observed. Each trial is analysed by the chosen
method and the results summarised: power with its Monte Carlo interval, bias
and coverage of the effect estimate, and the share of fits with warnings.

Scale: trials are grouped in batches of ``batch_size``; each batch is one task
for ``executor`` (any :class:`concurrent.futures.Executor`, e.g. a
``ProcessPoolExecutor`` or Dask's ``Client(...).get_executor()``), and each
batch's random numbers come from its own child of
``numpy.random.SeedSequence(seed).spawn(n_batches)``, so the results do not
depend on the executor or the number of workers.

A grid of sizes and effects reuses the same simulated patients (common random
numbers): trial ``k`` draws the random effects, residuals and event-time
uniforms once for the largest size, and every grid cell uses the first ``n``
patients of each arm, so the power curve is smooth in ``n`` and effect.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, as_completed
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from alsfrs.design.formulas import _check_level, _check_positive, _months, attrition_pattern
from alsfrs.design.pilot import PilotParameters, pilot_parameters
from alsfrs.errors import Problem, ValidationError

__all__ = ["DeathModel", "simulate_power", "simulate_trial"]

LMM_FORMULA = "alsfrs_r ~ months * arm + (months | patient_id)"


@dataclass(frozen=True)
class DeathModel:
    """Death or invasive ventilation as informative dropout (a joint-model hazard).

    ``h_i(t) = baseline_hazard · hr_per_point^(intercept − m_i(t)) · treatment_hr^arm``
    with ``m_i(t)`` the patient's true ALSFRS-R (pilot intercept and slope plus
    the patient's random effects). With an exponential baseline the cumulative
    hazard has a closed form (a Gompertz in ``t``), so event times are drawn
    exactly by inversion.

    Attributes
    ----------
    proportion_dead : float or None
        Calibrate ``baseline_hazard`` so that this proportion of the control arm
        dies by the last visit (default 0.25; ``None`` to give
        ``baseline_hazard`` directly).
    baseline_hazard : float or None
        Hazard per month at the pilot's mean intercept.
    hr_per_point : float
        Hazard ratio per point of lower current ALSFRS-R (default 1.08, as in
        :class:`alsfrs.simulate.Settings`).
    treatment_hr : float
        Direct effect of treatment on the hazard, beyond slowing (default 1).
    """

    proportion_dead: float | None = 0.25
    baseline_hazard: float | None = None
    hr_per_point: float = 1.08
    treatment_hr: float = 1.0

    def validated(self) -> DeathModel:
        problems = []
        if (self.proportion_dead is None) == (self.baseline_hazard is None):
            problems.append(Problem(rule="bad_setting", column="death",
                                    message="give exactly one of proportion_dead or "
                                            "baseline_hazard"))
        if self.proportion_dead is not None and not 0 < self.proportion_dead < 1:
            problems.append(Problem(rule="bad_setting", column="proportion_dead",
                                    message="proportion_dead must be in (0, 1)"))
        if self.baseline_hazard is not None and not self.baseline_hazard > 0:
            problems.append(Problem(rule="bad_setting", column="baseline_hazard",
                                    message="baseline_hazard must be > 0"))
        for name in ("hr_per_point", "treatment_hr"):
            if not getattr(self, name) > 0:
                problems.append(Problem(rule="bad_setting", column=name,
                                        message=f"{name} must be > 0"))
        if problems:
            raise ValidationError(problems, context="death model")
        return self


def _cum_hazard_factor(u0: np.ndarray, b1: np.ndarray, alpha: float, tau: float) -> np.ndarray:
    """H_i(tau) / baseline_hazard for h_i(t) = h0 exp(-alpha (u0 + b1 t))."""
    B = -alpha * b1
    A = np.exp(-alpha * u0)
    with np.errstate(over="ignore", invalid="ignore"):
        integral = np.where(np.abs(B * tau) > 1e-10, np.expm1(B * tau) / np.where(B == 0, 1, B),
                            tau)
    return A * integral


def calibrate_baseline(pilot: PilotParameters, death: DeathModel, horizon: float) -> float:
    """The baseline hazard giving ``death.proportion_dead`` deaths by ``horizon`` in the
    control arm (2-D Gauss–Hermite quadrature over the random effects)."""
    x, w = np.polynomial.hermite_e.hermegauss(40)
    w = w / w.sum()
    D = pilot.covariance()
    L = _sqrt_cov(D)
    z = np.stack(np.meshgrid(x, x, indexing="ij"), -1).reshape(-1, 2)
    ww = np.outer(w, w).ravel()
    u = z @ L.T
    alpha = math.log(death.hr_per_point)
    slope = pilot.slope if pilot.slope is not None else 0.0
    H1 = _cum_hazard_factor(u[:, 0], slope + u[:, 1], alpha, horizon)
    target = float(death.proportion_dead)  # type: ignore[arg-type]

    def f(logh: float) -> float:
        return float(np.sum(ww * -np.expm1(-math.exp(logh) * H1))) - target

    return math.exp(optimize.brentq(f, -40, 10, xtol=1e-12))


def _sqrt_cov(D: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(D)
    return vecs * np.sqrt(np.clip(vals, 0, None))


# -- one trial ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Spec:
    pilot: PilotParameters
    months: tuple[float, ...]
    attrition: tuple[float, ...]
    missed_visit: float
    death: DeathModel | None
    baseline_hazard: float
    ratio: float
    grid: tuple[tuple[int, int, float], ...]  # (n_treatment, n_control, effect)
    analysis: Any
    alpha: float
    horizon: float
    lmm_formula: str
    effect_draws: tuple[float, ...] | None = None  # per-trial effects (assurance)


def simulate_trial(spec: _Spec, rng: np.random.Generator, n1: int, n0: int, effect: float,
                   draws: dict[str, np.ndarray] | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One simulated trial: the long visits frame and the per-patient frame.

    ``draws`` (for common random numbers across a grid) holds the standard draws of
    the largest trial; without it they are drawn from ``rng``.
    """
    if draws is None:
        draws = _draws(rng, n1, n0, len(spec.months))
    pp = spec.pilot
    t = np.asarray(spec.months)
    m = t.size
    idx = np.r_[np.arange(n1), draws["n1"] + np.arange(n0)]
    arm = np.r_[np.ones(n1, dtype=int), np.zeros(n0, dtype=int)]
    u = draws["z"][idx] @ _sqrt_cov(pp.covariance()).T
    slope = pp.slope if pp.slope is not None else 0.0
    b0 = pp.intercept + u[:, 0]
    b1 = slope + u[:, 1] + effect * arm
    y = b0[:, None] + b1[:, None] * t[None, :] + math.sqrt(pp.sig2_e) * draws["eps"][idx]
    # non-informative attrition: the last planned visit, drawn from the pattern
    last = np.searchsorted(np.cumsum(spec.attrition), draws["u_last"][idx] * (1 - 1e-12),
                           side="right")
    seen = np.arange(m)[None, :] <= last[:, None]
    seen &= (draws["u_miss"][idx] >= spec.missed_visit) | (np.arange(m)[None, :] == 0)
    n = idx.size
    if spec.death is not None:
        alpha = math.log(spec.death.hr_per_point)
        B = -alpha * b1
        A = spec.baseline_hazard * np.exp(-alpha * u[:, 0]) * spec.death.treatment_hr ** arm
        E = draws["e_death"][idx]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            arg = 1 + B * E / A
            t_death = np.where(np.abs(B) > 1e-12,
                               np.where(arg > 0, np.log(np.where(arg > 0, arg, 1)) / B, np.inf),
                               E / A)
        t_death = t_death + t[0]
        seen &= t[None, :] < t_death[:, None]
        seen[:, 0] = True  # randomised patients have their baseline visit
    else:
        t_death = np.full(n, np.inf)
    rows, cols = np.nonzero(seen)
    long = pd.DataFrame({"patient_id": rows, "months": t[cols], "arm": arm[rows],
                         "alsfrs_r": y[rows, cols]})
    last_seen = np.max(np.where(seen, np.arange(m)[None, :], -1), axis=1)
    died = t_death <= spec.horizon
    completed = last_seen == m - 1
    follow = np.where(died, t_death - t[0],
                      np.where(completed | (last == m - 1), spec.horizon - t[0],
                               t[last_seen] - t[0]))
    patients = pd.DataFrame({
        "patient_id": np.arange(n), "arm": arm, "time": follow, "event": died.astype(int),
        "change": y[np.arange(n), last_seen] - y[:, 0],
        "true_slope": b1,
    })
    return long, patients


def _draws(rng: np.random.Generator, n1: int, n0: int, m: int) -> dict[str, Any]:
    n = n1 + n0
    return {"n1": n1, "z": rng.standard_normal((n, 2)), "eps": rng.standard_normal((n, m)),
            "u_last": rng.random(n), "u_miss": rng.random((n, m)),
            "e_death": rng.exponential(1.0, n)}


def _lmm_fitter(formula: str) -> Callable[[pd.DataFrame], Any]:
    """A function fitting ``formula`` to one trial's data.

    Uses :class:`alsfrs.lmm.LmmFitter` (formula parsed once, design matrices by a
    plan, no Satterthwaite df) when the installed alsfrs has it, else
    :func:`alsfrs.fit_lmm`. One fitter per batch, so every batch takes the same
    path whatever the number of workers.
    """
    from alsfrs import lmm

    fitter_cls = getattr(lmm, "LmmFitter", None)
    if fitter_cls is not None:
        return fitter_cls(formula).fit
    return lambda data: lmm.fit_lmm(formula, data)


def _wald(fit: Any, term: str) -> tuple[float, float]:
    """Estimate and standard error of ``term`` without Satterthwaite df where possible."""
    fixef = getattr(fit, "fixef", None)
    if fixef is not None:
        est = float(fixef[term])
        return est, float(np.sqrt(fit.vcov.loc[term, term]))
    fe = fit.fixed_effects
    return float(fe.loc[term, "estimate"]), float(fe.loc[term, "std_error"])


def _analyse(spec: _Spec, long: pd.DataFrame, patients: pd.DataFrame,
             fit: Callable[[pd.DataFrame], Any] | None = None) -> dict[str, Any]:
    a = spec.analysis
    out = {"estimate": np.nan, "std_error": np.nan, "p_value": np.nan, "warning": False}
    if a == "lmm":
        fit = fit or _lmm_fitter(spec.lmm_formula)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                res = fit(long)
            est, se = _wald(res, "months:arm")
            out.update(estimate=est, std_error=se,
                       p_value=float(2 * stats.norm.sf(abs(est / se))),
                       warning=bool(caught) or bool(getattr(res, "warnings", ()))
                       or not getattr(res, "converged", True))
        except (RuntimeError, ValueError, np.linalg.LinAlgError):
            out["warning"] = True
        return out
    if a == "cafs":
        from alsfrs.design.combined import cafs

        r = cafs(patients, group="arm", horizon_months=spec.horizon - spec.months[0],
                 treatment=1)
        out["p_value"] = r.p_value
        out["estimate"] = float(r.test["win_probability"].iloc[0])
        return out
    res = a(long, patients)
    if not isinstance(res, dict) or "p_value" not in res:
        raise ValidationError(Problem(rule="bad_analysis", message="a custom analysis must "
                                      "return a dict with at least 'p_value'"))
    out.update({k: res[k] for k in out if k in res})
    return out


def _run_batch(spec: _Spec, entropy: int, spawn_key: tuple[int, ...], trials: list[int]
               ) -> list[dict[str, Any]]:
    """Simulate and analyse a batch of trials (one executor task)."""
    try:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(limits=1, user_api="blas")
    except ImportError:  # pragma: no cover
        limit = None
    try:
        rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=spawn_key))
        n1max = max(g[0] for g in spec.grid)
        n0max = max(g[1] for g in spec.grid)
        rows = []
        fit = _lmm_fitter(spec.lmm_formula) if spec.analysis == "lmm" else None
        for k in trials:
            draws = _draws(rng, n1max, n0max, len(spec.months))
            for cell, (n1, n0, eff) in enumerate(spec.grid):
                if spec.effect_draws is not None:
                    eff = spec.effect_draws[k]
                long, pats = simulate_trial(spec, rng, n1, n0, eff, draws)
                res = _analyse(spec, long, pats, fit)
                rows.append({"trial": k, "cell": cell, "n_per_arm": n1, "n_control": n0,
                             "effect": eff, **res,
                             "deaths": int(pats["event"].sum()),
                             "completers": int(((pats["time"] >= spec.horizon - spec.months[0]
                                                 - 1e-12) & (pats["event"] == 0)).sum()),
                             "visits": len(long)})
        return rows
    finally:
        if limit is not None:
            limit.unregister()


# -- the public function ---------------------------------------------------------------
def simulate_power(pilot: Any, n_per_arm: int | Sequence[int], effect: float | Sequence[float]
                   | None = None, *, pct_slowing: float | Sequence[float] | None = None,
                   months: Sequence[float] = (0, 3, 6, 9, 12), n_trials: int = 1000,
                   analysis: str | Callable[[pd.DataFrame, pd.DataFrame], dict] = "lmm",
                   death: str | DeathModel = "none",
                   attrition: float | Sequence[float] | None = None, missed_visit: float = 0.0,
                   ratio: float = 1.0, alpha: float = 0.05, seed: int | None = None,
                   executor: Executor | None = None, batch_size: int = 20,
                   progress: bool = False, time: str | None = None,
                   lmm_formula: str = LMM_FORMULA, _effect_draws: Sequence[float] | None = None
                   ) -> Any:
    """Power of a two-arm trial by simulation from a pilot model.

    Parameters
    ----------
    pilot : fitted result, PilotParameters or mapping
        As for :func:`alsfrs.design.sample_size` (the intercept is used too).
    n_per_arm : int or sequence of int
        Treated patients (controls: ``n_per_arm / ratio``, rounded). A sequence
        makes a grid (with the effects).
    effect, pct_slowing : float or sequence of float
        Difference in slope (points/month), or proportion slowing of the
        pilot's decline. A sequence makes a grid.
    months : sequence of float
        Planned visit times.
    n_trials : int, default 1000
    analysis : {"lmm", "cafs"} or callable
        ``"lmm"``: :func:`alsfrs.fit_lmm` of ``lmm_formula`` (random intercept
        and slope), Wald z test of ``months:arm``. ``"cafs"``: CAFS with the
        Finkelstein–Schoenfeld test at the last visit. A callable gets
        ``(visits, patients)`` frames and returns a dict with ``p_value``
        (and optionally ``estimate``, ``std_error``, ``warning``); with a process
        or Dask executor it must be picklable (a module-level function).
    death : "none", "joint" or DeathModel
        ``"joint"``: :class:`DeathModel` defaults (25 % of controls die by the
        last visit; HR 1.08 per point lower ALSFRS-R).
    attrition : float or sequence, optional
        Non-informative dropout as in :func:`alsfrs.design.attrition_pattern`.
    missed_visit : float, default 0
        Probability that a post-baseline visit is missed.
    ratio, alpha : float
    seed : int, optional
        Same seed, same numbers, with any executor and number of workers.
    executor : concurrent.futures.Executor, optional
        Runs batches in parallel (None: in this process).
    batch_size : int, default 20
        Trials per task.
    progress : bool, default False
        Show a tqdm progress bar over batches.

    Returns
    -------
    PowerSimulationResult
    """
    from alsfrs.design.results import PowerSimulationResult

    pp = pilot_parameters(pilot, time=time)
    t = _months(months)
    alpha = _check_level("alpha", alpha)
    ratio = _check_positive("ratio", ratio)
    problems = []
    if not isinstance(n_trials, int | np.integer) or n_trials < 1:
        problems.append(Problem(rule="bad_setting", column="n_trials",
                                message=f"n_trials must be a positive integer, got {n_trials!r}"))
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        problems.append(Problem(rule="bad_setting", column="batch_size",
                                message="batch_size must be a positive integer"))
    if not 0 <= missed_visit < 1:
        problems.append(Problem(rule="bad_setting", column="missed_visit",
                                message="missed_visit must be in [0, 1)"))
    if not (analysis in ("lmm", "cafs") or callable(analysis)):
        problems.append(Problem(rule="bad_setting", column="analysis",
                                message=f"analysis must be 'lmm', 'cafs' or a callable, "
                                        f"got {analysis!r}"))
    if (effect is None) == (pct_slowing is None):
        problems.append(Problem(rule="bad_setting", column="effect",
                                message="give exactly one of effect= or pct_slowing="))
    if problems:
        raise ValidationError(problems, context="simulate_power")
    if pct_slowing is not None:
        if pp.slope is None or pp.slope == 0:
            raise ValidationError(Problem(rule="bad_setting", column="pct_slowing",
                                          message="pct_slowing needs the pilot's slope"))
        effects = [float(q) * abs(pp.slope) for q in np.atleast_1d(pct_slowing)]
    else:
        effects = [float(e) for e in np.atleast_1d(effect)]  # type: ignore[arg-type]
    sizes = [int(n) for n in np.atleast_1d(n_per_arm)]
    if any(n < 2 for n in sizes) or any(not np.isfinite(e) for e in effects):
        raise ValidationError(Problem(rule="bad_setting", column="n_per_arm",
                                      message="n_per_arm must be >= 2 and effects finite"))
    if isinstance(death, str):
        if death not in ("none", "joint"):
            raise ValidationError(Problem(rule="bad_setting", column="death",
                                          message=f"death must be 'none', 'joint' or a "
                                                  f"DeathModel, got {death!r}"))
        dm = DeathModel() if death == "joint" else None
    else:
        dm = death
    baseline = 0.0
    if dm is not None:
        dm = dm.validated()
        baseline = (dm.baseline_hazard if dm.baseline_hazard is not None
                    else calibrate_baseline(pp, dm, float(t[-1] - t[0])))
    p = attrition_pattern(attrition, t.size)
    grid = tuple((n, max(2, round(n / ratio)), e) for e in effects for n in sizes)
    spec = _Spec(pilot=pp, months=tuple(t.tolist()), attrition=tuple(p.tolist()),
                 missed_visit=float(missed_visit), death=dm, baseline_hazard=float(baseline),
                 ratio=ratio, grid=grid, analysis=analysis, alpha=alpha, horizon=float(t[-1]),
                 lmm_formula=lmm_formula,
                 effect_draws=None if _effect_draws is None else tuple(
                     float(e) for e in _effect_draws))
    if _effect_draws is not None and (len(grid) != 1 or len(_effect_draws) != n_trials):
        raise ValidationError(Problem(rule="bad_setting", column="effect",
                                      message="per-trial effects need one size and one effect "
                                              "draw per trial"))
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**63))
    root = np.random.SeedSequence(int(seed))
    n_batches = math.ceil(n_trials / batch_size)
    children = root.spawn(n_batches)
    batches = [list(range(b * batch_size, min(n_trials, (b + 1) * batch_size)))
               for b in range(n_batches)]
    results: dict[int, list[dict[str, Any]]] = {}
    bar = _progress(n_batches, progress)
    try:
        if executor is None:
            for b, (child, trials) in enumerate(zip(children, batches, strict=True)):
                results[b] = _run_batch(spec, child.entropy, tuple(child.spawn_key), trials)
                bar.update(1)
        else:
            futures = {executor.submit(_run_batch, spec, child.entropy, tuple(child.spawn_key),
                                       trials): b
                       for b, (child, trials) in enumerate(zip(children, batches, strict=True))}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update(1)
    finally:
        bar.close()
    rows = [r for b in range(n_batches) for r in results[b]]
    trials = pd.DataFrame(rows)
    settings = {
        "months": t.tolist(), "n_trials": int(n_trials), "analysis":
            analysis if isinstance(analysis, str) else getattr(analysis, "__name__", "callable"),
        "death": "none" if dm is None else "joint", "death_model": None if dm is None
        else asdict(dm), "baseline_hazard": float(baseline), "attrition": p.tolist(),
        "missed_visit": float(missed_visit), "ratio": ratio, "alpha": alpha,
        "batch_size": int(batch_size), "lmm_formula": lmm_formula,
    }
    return PowerSimulationResult(trials=trials, pilot=pp, settings=settings, seed=int(seed))


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, show: bool) -> Any:
    if not show:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return _NoBar()
    return tqdm(total=total, desc="trial batches", unit="batch")
