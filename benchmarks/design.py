"""Benchmark: power by simulation, 1,000 trials of 2 × 150 patients with 5 visits.

``alsfrs.design.simulate_power`` simulates each trial from a PRO-ACT-like pilot
(random intercept and slope, visits at 0, 3, 6, 9, 12 months, no deaths) and
fits ``alsfrs_r ~ months * arm + (months | patient_id)`` with
:func:`alsfrs.fit_lmm` (REML; the Wald test of ``months:arm``). It runs with a
``ProcessPoolExecutor`` of ``--workers`` processes (batches of 20 trials per
task; the numbers are those of the serial run for the same seed).

The competitor is the usual hand-written loop: simulate a trial, fit
statsmodels ``MixedLM.from_formula(...).fit(reml=True, method="lbfgs")``, test
the interaction, one trial at a time. It is timed on ``--sm-trials`` trials
(default 20) and **extrapolated** linearly to 1,000 trials (one process);
the table says so. The CPU time per trial (one process) is printed too, with the
wall time it implies on idle cores — an estimate for a shared machine. Cold start
(imports, process-pool start, the first trial) is reported separately.

Usage::

    python benchmarks/design.py                 # 1000 trials, 2 workers
    python benchmarks/design.py --trials 200 --workers 1
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

PILOT = dict(sig2_i=5.2**2, sig2_s=0.7**2, cov_si=-0.2 * 5.2 * 0.7, sig2_e=1.68**2,
             slope=-0.95, intercept=38.0)


def statsmodels_loop(n_trials: int, n_per_arm: int, effect: float, seed: int) -> tuple[float,
                                                                                       float]:
    """Seconds and power of a per-trial statsmodels MixedLM loop."""
    import statsmodels.formula.api as smf
    from scipy import stats

    from alsfrs.design.pilot import pilot_parameters
    from alsfrs.design.simulate import _Spec, simulate_trial

    pp = pilot_parameters(PILOT)
    spec = _Spec(pilot=pp, months=(0, 3, 6, 9, 12), attrition=(0, 0, 0, 0, 1), missed_visit=0,
                 death=None, baseline_hazard=0, ratio=1, grid=((n_per_arm, n_per_arm, effect),),
                 analysis="lmm", alpha=0.05, horizon=12.0, lmm_formula="")
    rng = np.random.default_rng(seed)
    rejected = 0
    t0 = time.perf_counter()
    for _ in range(n_trials):
        long, _p = simulate_trial(spec, rng, n_per_arm, n_per_arm, effect)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = smf.mixedlm("alsfrs_r ~ months * arm", long, groups=long["patient_id"],
                              re_formula="~months").fit(reml=True, method="lbfgs")
        z = fit.params["months:arm"] / fit.bse["months:arm"]
        rejected += 2 * stats.norm.sf(abs(z)) < 0.05
    return time.perf_counter() - t0, rejected / n_trials


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--n-per-arm", type=int, default=150)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sm-trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--cpu-trials", type=int, default=50,
                    help="trials for the CPU-time measurement (default 50)")
    args = ap.parse_args()

    t_import = time.perf_counter()
    from concurrent.futures import ProcessPoolExecutor

    from alsfrs import design
    t_import = time.perf_counter() - t_import
    effect = 0.25 * 0.95
    formula = design.power(PILOT, n_per_arm=args.n_per_arm, effect=effect).power

    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as ex:
        # cold start: pool start-up, imports in the workers and the first batch
        design.simulate_power(PILOT, n_per_arm=args.n_per_arm, effect=effect, n_trials=args.workers,
                              batch_size=1, seed=1, executor=ex)
        cold = time.perf_counter() - t0
        t1 = time.perf_counter()
        sim = design.simulate_power(PILOT, n_per_arm=args.n_per_arm, effect=effect,
                                    n_trials=args.trials, seed=args.seed, executor=ex)
        warm = time.perf_counter() - t1
    s = sim.summary().iloc[0]
    # CPU time per trial in this process (less sensitive to other jobs than wall time)
    c0 = time.process_time()
    design.simulate_power(PILOT, n_per_arm=args.n_per_arm, effect=effect,
                          n_trials=args.cpu_trials, seed=3)
    cpu_per_trial = (time.process_time() - c0) / args.cpu_trials
    sm_secs, sm_power = statsmodels_loop(args.sm_trials, args.n_per_arm, effect, args.seed)
    sm_extrapolated = sm_secs / args.sm_trials * args.trials
    rows = [
        {"engine": f"alsfrs simulate_power ({args.workers} processes)",
         "trials_timed": args.trials, "seconds": warm,
         "seconds_per_1000_trials": warm / args.trials * 1000,
         "power": s["power"], "note": "measured"},
        {"engine": "statsmodels MixedLM loop (1 process)", "trials_timed": args.sm_trials,
         "seconds": sm_secs, "seconds_per_1000_trials": sm_extrapolated / args.trials * 1000,
         "power": sm_power, "note": f"timed on {args.sm_trials} trials, extrapolated linearly"},
    ]
    table = pd.DataFrame(rows).set_index("engine")
    with pd.option_context("display.width", 160, "display.max_colwidth", 60):
        print(f"Power by simulation: {args.trials} trials of 2 x {args.n_per_arm} patients, "
              f"visits 0/3/6/9/12 months, 25% slowing (Edland formula power {formula:.3f})")
        print(table.round(3).to_string())
        print(f"\nratio (statsmodels per trial / alsfrs per trial, wall): "
              f"{sm_extrapolated / warm:.1f}x   (alsfrs uses {args.workers} processes, "
              f"statsmodels 1; per process: {sm_extrapolated / (warm * args.workers):.1f}x)")
        print(f"simulated power {s['power']:.3f} (95% MC {s['power_ci_lower_95']:.3f}-"
              f"{s['power_ci_upper_95']:.3f}), bias {s['bias']:.4f}, coverage "
              f"{s['coverage_95']:.3f}, fits with warnings {s['share_warnings']:.3f}")
        print(f"CPU time per trial (one process, {args.cpu_trials} trials): "
              f"{cpu_per_trial * 1000:.1f} ms -> "
              f"{cpu_per_trial * args.trials / args.workers:.1f} s "
              f"for {args.trials} trials on {args.workers} idle cores (estimate, not measured)")
        print(f"cold start: import alsfrs.design {t_import:.2f} s; pool start + worker imports "
              f"+ first batch {cold:.2f} s (not in the timed run)")


if __name__ == "__main__":
    main()
