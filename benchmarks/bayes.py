"""Benchmark: collapsed vs non-centred Bayesian slope model (PyMC NUTS).

Prints one table: for cohorts of 300, 1,000 and 5,000 simulated patients and each
parameterisation, wall time (compilation included), sampling time, minimum bulk
ESS over the fixed effects and variance parameters, min-ESS per second of
sampling, divergences and maximum R-hat; then the ratio collapsed/non-centred of
min-ESS per second, and the comparison with brms/Stan measured on the same model
at 300 patients (4.3 min-ESS/s; issue #4).

Usage::

    python benchmarks/bayes.py [--sizes 300 1000 5000] [--draws 1000] [--tune 1000]
                               [--chains 2] [--skip-noncentered-above N]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pandas as pd

import alsfrs
from alsfrs.bayes import SamplingWarning, fit_bayes

FORMULA = ("alsfrs_r ~ months * (anxiolytic + hypnotic + antidepressant) "
           "+ (months | patient_id)")
BRMS_MIN_ESS_PER_S_300 = 4.3  # brms/Stan, 300 patients, 2 chains x 1000+1000 (issue #4)


def run(n: int, parameterization: str, draws: int, tune: int, chains: int) -> dict:
    cohort = alsfrs.simulate_cohort(n, seed=2024 + n)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        fit = fit_bayes(FORMULA, cohort, chains=chains, draws=draws, tune=tune, seed=1,
                        parameterization=parameterization, progressbar=False)
    wall = time.perf_counter() - t0
    s = fit.summary()
    d = fit.diagnostics()
    sampling = fit.timing["sampling_seconds"]
    min_ess = float(s["ess_bulk"].min())
    return {
        "patients": n,
        "visits": fit.nobs,
        "parameterization": parameterization,
        "wall_s": wall,
        "sampling_s": sampling,
        "min_bulk_ess": min_ess,
        "worst_parameter": s["ess_bulk"].idxmin(),
        "min_ess_per_s": min_ess / sampling,
        "divergences": int(d.loc["divergent transitions", "value"]),
        "max_rhat": float(s["r_hat"].max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[300, 1000, 5000])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--skip-noncentered-above", type=int, default=None,
                    help="skip the (slow) non-centred model above this many patients")
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        for par in ("collapsed", "noncentered"):
            if par == "noncentered" and args.skip_noncentered_above and \
                    n > args.skip_noncentered_above:
                continue
            rows.append(run(n, par, args.draws, args.tune, args.chains))
            print(f"  done: {n} patients, {par}", flush=True)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 160, "display.max_columns", 20,
                           "display.float_format", "{:,.3f}".format):
        print(f"\n{FORMULA}\n{args.chains} chains x {args.draws} draws + {args.tune} tuning\n")
        print(table.to_string(index=False))
        piv = table.pivot(index="patients", columns="parameterization", values="min_ess_per_s")
        if "noncentered" in piv:
            piv["ratio_collapsed_over_noncentered"] = piv["collapsed"] / piv["noncentered"]
        if 300 in piv.index:
            piv["ratio_collapsed_over_brms"] = piv["collapsed"] / BRMS_MIN_ESS_PER_S_300
            piv.loc[piv.index != 300, "ratio_collapsed_over_brms"] = float("nan")
        print("\nmin-ESS per second of sampling:")
        print(piv.to_string())


if __name__ == "__main__":
    main()
