"""Simulation-based calibration of the collapsed Bayesian slope model.

Draws parameters from fixed priors, simulates a small cohort from the model,
fits ``fit_bayes(..., parameterization="collapsed")`` and ranks each true value
among 99 thinned posterior draws (:mod:`alsfrs.bayes.sbc`). Prints, per
parameter, the rank histogram (10 bins), the chi-square test of uniformity with
a Bonferroni-corrected threshold, an overall PASS/FAIL line, sampler
diagnostics and the wall time.

Usage::

    python benchmarks/sbc.py [--simulations 200] [--patients 40] [--seed 0]
                             [--draws 1000] [--tune 500]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pandas as pd

from alsfrs.bayes.sbc import FORMULA, PRIORS, simulation_based_calibration


def _prior(value: float | tuple) -> str:
    if isinstance(value, float | int):
        return f"{value:g}"
    return f"{value[0]}({', '.join(f'{x:g}' for x in value[1:])})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--simulations", type=int, default=200)
    ap.add_argument("--patients", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--draws", type=int, default=1000, help="posterior draws per fit")
    ap.add_argument("--tune", type=int, default=500, help="tuning steps per fit")
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--out", default=None, help="write the long table of ranks (CSV)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    res = simulation_based_calibration(args.simulations, n_patients=args.patients,
                                       draws=args.draws, tune=args.tune, seed=args.seed)
    wall = time.perf_counter() - t0
    if args.out:
        res.to_frame().to_csv(args.out, index=False)

    s = res.settings
    print(f"\nSimulation-based calibration: {FORMULA}")
    print(f"{res.n_simulations} simulations, {args.patients} patients x visits at "
          f"{', '.join(f'{v:g}' for v in s['visits'])} months; 1 chain x {args.draws} draws "
          f"+ {args.tune} tuning, ranks among {res.n_draws_kept} thinned draws; seed {args.seed}")
    print("priors: " + "; ".join(f"{k} {_prior(v)}" for k, v in PRIORS.items()))
    table = res.test(bins=args.bins).join(res.histogram(args.bins))
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(f"\nrank histograms ({args.bins} bins, low ranks first) and chi-square tests "
              "of uniformity:\n")
        print(table.to_string(float_format=lambda x: f"{x:.4g}"))
    d = res.diagnostics
    print(f"\nsampler: min bulk ESS over parameters median {d['min_ess_bulk'].median():.0f}, "
          f"minimum {d['min_ess_bulk'].min():.0f}; {res.low_ess} of {res.n_simulations} "
          f"simulations below {res.n_draws_kept}; divergences in "
          f"{int((d['divergences'] > 0).sum())} simulations ({int(d['divergences'].sum())} total)")
    print(f"per fit: median {d['seconds'].median():.1f} s")
    failed = [p for p, ok in table["passed"].items() if not ok]
    verdict = "PASS" if not failed else f"FAIL ({', '.join(failed)})"
    print(f"\nSBC {verdict}: {res.n_simulations} simulations, Bonferroni threshold "
          f"p >= {table['threshold'].iloc[0]:.4g}")
    print(f"wall time {wall:.1f} s ({wall / 60:.1f} min)")


if __name__ == "__main__":
    main()
