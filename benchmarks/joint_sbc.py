"""Simulation-based calibration (Talts et al. 2018) of the joint model on small cohorts.

Each simulation draws the parameters from the priors given to the fit, simulates
visits and death/IMV from the joint model itself (one binary exposure ``x`` in
both submodels, constant baseline hazard, visits every 3 months until the event
or administrative censoring at 36 months), fits :func:`alsfrs.fit_joint` with
those priors and records the rank of each true parameter among the (thinned)
posterior draws. Calibrated inference gives uniform ranks; the script prints a
chi-square test per parameter over 5 bins.

Not calibrated here: the intercept and the baseline. The fit's intercept prior
applies to the intercept at mean covariates and mean time, which depends on the
simulated visits, so it cannot match the generating prior; it is made wide
(Normal(30, 20)) so that it does not pull the slope. (A first run, 20
simulations, used Normal(36, 2) there — the generating prior of the intercept at
time 0 — and the ``months`` ranks piled up in the lowest bin, p = 0.002: the
mismatched prior lifted the level at mean time and flattened the slope.)

Usage::

    python benchmarks/joint_sbc.py [--sims 100] [--patients 120] [--draws 100]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pandas as pd
from scipy import stats

import alsfrs

LONG = "y ~ months * x + (months | pid)"
SURV = "Surv(time, status) ~ x"
PRIORS = {
    "longitudinal": {"(Intercept)": ("normal", 30.0, 20.0), "months": ("normal", -1.0, 0.2),
                     "x": ("normal", 0.0, 1.0), "months:x": ("normal", 0.0, 0.2),
                     "sd__(Intercept)": ("halfnormal", 5.0), "sd__months": ("halfnormal", 0.8),
                     "sigma": ("halfnormal", 2.0), "lkj_eta": 2.0},
    "survival": {"x": ("normal", 0.0, 0.5), "value(y)": ("normal", -0.08, 0.03),
                 "baseline": ("normal", -3.3, 0.3)},
}
PARAMS = ["months", "months:x", "sd__months", "sigma", "gamma_x", "alpha"]


def simulate(rng: np.random.Generator, n: int):
    """Parameters from the priors and a cohort from the joint model."""
    L = PRIORS["longitudinal"]
    b0 = rng.normal(36.0, 2.0)  # ALSFRS-R at time 0 (not ranked; see the module docstring)
    bt = rng.normal(*L["months"][1:])
    bx = rng.normal(*L["x"][1:])
    btx = rng.normal(*L["months:x"][1:])
    sd0 = abs(rng.normal(0, L["sd__(Intercept)"][1]))
    sd1 = abs(rng.normal(0, L["sd__months"][1]))
    r = 2 * rng.beta(2.0, 2.0) - 1
    sigma = abs(rng.normal(0, L["sigma"][1]))
    gx = rng.normal(*PRIORS["survival"]["x"][1:])
    alpha = rng.normal(*PRIORS["survival"]["value(y)"][1:])
    lam = rng.normal(*PRIORS["survival"]["baseline"][1:])
    x = (rng.random(n) < 0.4).astype(float)
    cov = np.array([[sd0**2, r * sd0 * sd1], [r * sd0 * sd1, sd1**2]])
    b = rng.multivariate_normal([0, 0], cov, size=n)
    a_i = b0 + bx * x + b[:, 0]
    s_i = bt + btx * x + b[:, 1]
    return dict(b0=b0, months=bt, x=bx, **{"months:x": btx}, sd__months=sd1, sigma=sigma,
                gamma_x=gx, alpha=alpha, lam=lam), x, a_i, s_i


def cohort(rng, n: int):
    """One simulated cohort. The hazard is exp(lam + gamma x + alpha (m(t) - 30)); the fit
    centres m at the mean visit score instead, which shifts only the baseline (not ranked)."""
    truth, x, a_i, s_i = simulate(rng, n)
    grid = np.linspace(0, 36, 3601)
    haz = np.exp(truth["lam"] + truth["gamma_x"] * x[:, None]
                 + truth["alpha"] * (a_i[:, None] + s_i[:, None] * grid[None] - 30.0))
    H = np.concatenate([np.zeros((n, 1)),
                        np.cumsum((haz[:, 1:] + haz[:, :-1]) / 2 * np.diff(grid), axis=1)],
                       axis=1)
    idx = (H < rng.exponential(1.0, n)[:, None]).sum(axis=1)
    died = idx <= len(grid) - 1
    T = np.maximum(np.where(died, grid[np.clip(idx, 0, len(grid) - 1)], 36.0), 0.05)
    rows = []
    for i in range(n):
        vt = np.arange(0.0, T[i], 3.0)
        rows.append(pd.DataFrame({"pid": f"p{i:04d}", "months": vt, "x": x[i],
                                  "y": a_i[i] + s_i[i] * vt
                                  + truth["sigma"] * rng.standard_normal(len(vt))}))
    visits = pd.concat(rows, ignore_index=True)
    pats = pd.DataFrame({"pid": [f"p{i:04d}" for i in range(n)], "time": T,
                         "status": died.astype(int), "x": x})
    return truth, visits, pats


def run_sbc(n_sims: int = 100, n_patients: int = 120, draws: int = 100, seed: int = 1,
            bins: int = 5, progress: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ranks = {p: [] for p in PARAMS}
    for s in range(n_sims):
        truth, visits, pats = cohort(rng, n_patients)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = alsfrs.fit_joint(LONG, SURV, visits, patients=pats, baseline="piecewise",
                                   n_pieces=1, priors=PRIORS, draws=draws, tune=200, chains=2,
                                   seed=seed * 1000 + s, progressbar=False, cores=1)
        beta = fit.draws("beta")
        names = list(fit.design.long.mm.fixed_names)
        post = {"months": beta[:, names.index("months")],
                "months:x": beta[:, names.index("months:x")],
                "sd__months": fit.draws("sd")[:, 1], "sigma": fit.draws("sigma"),
                "gamma_x": fit.draws("gamma")[:, 0], "alpha": fit.draws("alpha")}
        for p in PARAMS:
            d = post[p][::2]  # thin: fewer, less autocorrelated draws
            ranks[p].append(int((d < truth[p]).sum()))
        if progress:  # one line per simulation on stderr, so a cut-short run still shows its ranks
            print(f"sim {s + 1}/{n_sims} ranks of {len(post['alpha'][::2])}: "
                  + " ".join(f"{p}={ranks[p][-1]}" for p in PARAMS), file=sys.stderr, flush=True)
    L = len(post["alpha"][::2]) + 1
    rows = []
    for p in PARAMS:
        r = np.asarray(ranks[p])
        counts = np.bincount(np.minimum(r * bins // L, bins - 1), minlength=bins)
        chi2, pval = stats.chisquare(counts)
        rows.append({"parameter": p, "sims": len(r), "bin_counts": counts.tolist(),
                     "chi2": chi2, "p_value": pval, "mean_rank_fraction": r.mean() / (L - 1)})
    return pd.DataFrame(rows).set_index("parameter")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=100)
    ap.add_argument("--patients", type=int, default=120)
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    t0 = time.perf_counter()
    res = run_sbc(a.sims, a.patients, a.draws, a.seed, progress=True)
    with pd.option_context("display.width", 160):
        print(res.to_string())
    print(f"\n{a.sims} simulations of {a.patients} patients in {time.perf_counter() - t0:.0f} s;"
          f" uniform ranks (p > {0.01 / len(res):.4f}, Bonferroni) for "
          f"{int((res['p_value'] > 0.01 / len(res)).sum())}/{len(res)} parameters")


if __name__ == "__main__":
    main()
