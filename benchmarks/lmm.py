"""Benchmark: alsfrs.fit_lmm against statsmodels MixedLM on simulated cohorts.

Fits the standard exposure model

    alsfrs_r ~ months * (anxiolytic + hypnotic + antidepressant) + age_at_dx + sex
               + onset_site + (months | patient_id)

by REML with both engines on cohorts from :func:`alsfrs.simulate_cohort`
(about 7-8 visits per patient) and prints a table: wall time of each engine
(alsfrs: formula parsing + design matrices + fit, including Satterthwaite df;
statsmodels: ``MixedLM.from_formula(...).fit(method="lbfgs")``), their ratio,
the largest absolute difference in fixed-effect estimates, the random-slope SD
from each, ``loglik_gain`` = alsfrs's REML log-likelihood minus statsmodels'
(both use the same constants; positive means statsmodels stopped short of the
optimum), and the peak memory traced during the alsfrs fit (tracemalloc, a
separate run so tracing does not distort the timing).

Usage::

    python benchmarks/lmm.py                      # 500, 2000, 10000 patients
    python benchmarks/lmm.py --sizes 500 2000
    python benchmarks/lmm.py --statsmodels-max 2000   # skip statsmodels above 2000
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
import warnings

import numpy as np
import pandas as pd

FORMULA = (
    "alsfrs_r ~ months * (anxiolytic + hypnotic + antidepressant) + age_at_dx + sex + "
    "onset_site + (months | patient_id)"
)
FIXED = (
    "alsfrs_r ~ months * (anxiolytic + hypnotic + antidepressant) + age_at_dx + sex + onset_site"
)
COLUMNS = [
    "patient_id",
    "months",
    "alsfrs_r",
    "age_at_dx",
    "sex",
    "onset_site",
    "anxiolytic",
    "hypnotic",
    "antidepressant",
]


def cohort(n_patients: int, seed: int) -> pd.DataFrame:
    """Analysis frame of a simulated cohort."""
    import alsfrs

    return alsfrs.simulate_cohort(n_patients, seed=seed).to_frame()[COLUMNS].copy()


def time_alsfrs(data: pd.DataFrame) -> tuple[float, object]:
    from alsfrs.lmm import fit_lmm

    t0 = time.perf_counter()
    fit = fit_lmm(FORMULA, data)
    return time.perf_counter() - t0, fit


def peak_memory_alsfrs(data: pd.DataFrame) -> float:
    from alsfrs.lmm import fit_lmm

    tracemalloc.start()
    fit_lmm(FORMULA, data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def time_statsmodels(data: pd.DataFrame) -> tuple[float, object]:
    import statsmodels.formula.api as smf

    frame = data.copy()
    for c in ("sex", "onset_site"):  # patsy keeps unused categories: drop them, as R does
        frame[c] = frame[c].cat.remove_unused_categories()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = smf.mixedlm(FIXED, frame, groups="patient_id", re_formula="~months")
        result = model.fit(reml=True, method="lbfgs")
    return time.perf_counter() - t0, result


def r_name(name: str) -> str:
    """patsy → R names, enough for this formula (``sex[T.M]`` → ``sexM``)."""
    if name == "Intercept":
        return "(Intercept)"
    out = []
    for part in name.split(":"):
        if "[T." in part:
            var, level = part.split("[T.")
            part = var + level.rstrip("]")
        out.append(part)
    order = {v: k for k, v in enumerate(COLUMNS)}
    out.sort(key=lambda p: min((order[v] for v in order if p.startswith(v)), default=99))
    return ":".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 10000])
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument(
        "--statsmodels-max",
        type=int,
        default=None,
        help="skip statsmodels for cohorts with more patients than this",
    )
    args = parser.parse_args(argv)

    # warm-up (imports, first-call overheads) on a small cohort
    time_alsfrs(cohort(200, args.seed))

    rows = []
    for n in args.sizes:
        data = cohort(n, args.seed + n)
        t_a, fit = time_alsfrs(data)
        peak = peak_memory_alsfrs(data)
        sd_a = float(np.sqrt(fit.variance_components["vcov"].iloc[1]))
        if args.statsmodels_max is None or n <= args.statsmodels_max:
            t_s, sm = time_statsmodels(data)
            fe_s = pd.Series(sm.fe_params.to_numpy(), index=[r_name(c) for c in sm.fe_params.index])
            fe_a = fit.fixed_effects["estimate"]
            diff = float(np.max(np.abs(fe_a - fe_s.reindex(fe_a.index))))
            sd_s = float(np.sqrt(sm.cov_re.iloc[1, 1]))
            dll = fit.loglik - float(sm.llf)  # same REML log-likelihood constants
        else:
            t_s, diff, sd_s, dll = float("nan"), float("nan"), float("nan"), float("nan")
        rows.append(
            {
                "patients": n,
                "visits": fit.nobs,
                "alsfrs_s": t_a,
                "statsmodels_s": t_s,
                "ratio": t_s / t_a,
                "max_abs_diff_fixef": diff,
                "slope_sd_alsfrs": sd_a,
                "slope_sd_statsmodels": sd_s,
                "loglik_gain": dll,
                "alsfrs_peak_MiB": peak,
                "evaluations": fit.optimization.n_evaluations,
            }
        )
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(
            table.to_string(
                index=False,
                formatters={
                    "alsfrs_s": "{:.3f}".format,
                    "statsmodels_s": "{:.2f}".format,
                    "ratio": "{:.1f}".format,
                    "max_abs_diff_fixef": "{:.1e}".format,
                    "slope_sd_alsfrs": "{:.4f}".format,
                    "slope_sd_statsmodels": "{:.4f}".format,
                    "loglik_gain": "{:.2g}".format,
                    "alsfrs_peak_MiB": "{:.1f}".format,
                },
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
