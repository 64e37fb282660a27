"""Benchmark: alsfrs.fit_lmm against lme4::lmer (Rscript, same run) on simulated cohorts.

Fits the standard exposure model

    alsfrs_r ~ months * (anxiolytic + hypnotic + antidepressant) + age_at_dx + sex
               + onset_site + (months | patient_id)

by REML on cohorts from :func:`alsfrs.simulate_cohort` (about 7 visits per
patient) and prints one table per run:

* ``alsfrs_s``: a first ``fit_lmm`` call with the formula, from the data frame
  (formula parsing, design matrices through formulaic, fit; Satterthwaite df
  not yet computed — as ``lme4::lmer``, which does not compute them), best of
  ``--repeats`` runs;
* ``alsfrs_df_s``: the same plus reading ``fixed_effects`` (Satterthwaite df
  and p-values, as ``lmerTest::lmer`` + ``summary``);
* ``refit_s``: :class:`alsfrs.lmm.LmmFitter` refitting the formula to another
  cohort of the same size (the trial-simulation path; also what ``fit_lmm``
  does when called again with the same formula);
* ``lme4_s``: ``lme4::lmer(..., REML = TRUE)`` timed inside R (data already
  loaded, factors set; best of ``--repeats``), ``ratio = lme4_s / alsfrs_s``;
* ``crit_diff``: alsfrs' REML criterion minus lme4's (negative: alsfrs lower);
* ``max_rel_fixef``: largest relative difference in fixed effects;
* peak memory: alsfrs traced with tracemalloc (separate run), R's ``gc()``
  "max used" (Vcells + Ncells) during the fit;
* ``evals``/``iters``: profiled-deviance evaluations and Newton iterations.

When ``Rscript`` or lme4 is missing the lme4 columns are empty and the script
says so. ``--statsmodels`` adds statsmodels MixedLM (slow).

Usage::

    python benchmarks/lmm.py                      # 300, 500, 2000, 10000 patients
    python benchmarks/lmm.py --sizes 500 2000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
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

R_SCRIPT = r"""
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE)
repeats <- as.integer(args[2])
d$sex <- factor(d$sex, levels = c("F", "M"))
d$onset_site <- factor(d$onset_site, levels = c("spinal", "bulbar", "other"))
d$onset_site <- droplevels(d$onset_site)
d$patient_id <- factor(d$patient_id)
f <- alsfrs_r ~ months * (anxiolytic + hypnotic + antidepressant) + age_at_dx + sex +
  onset_site + (months | patient_id)
fit <- lmer(f, data = d, REML = TRUE)  # warm-up
times <- numeric(repeats)
for (k in seq_len(repeats)) {
  t0 <- proc.time()[["elapsed"]]
  fit <- lmer(f, data = d, REML = TRUE)
  times[k] <- proc.time()[["elapsed"]] - t0
}
invisible(gc(reset = TRUE))
g0 <- gc()
fit <- lmer(f, data = d, REML = TRUE)
g1 <- gc()
# "max used" in Mb: Ncells + Vcells (column 6 of gc()), minus what was in use before
peak <- sum(g1[, 6]) - sum(g0[, 2])
fe <- fixef(fit)
fmt <- paste0('{"time": %.6f, "reml": %.10f, "peak_mb": %.3f, "names": [%s], ',
              '"fixef": [%s], "version": "%s", "r": "%s"}\n')
cat(sprintf(fmt,
  min(times), REMLcrit(fit), peak,
  paste0('"', names(fe), '"', collapse = ","), paste(sprintf("%.12g", fe), collapse = ","),
  as.character(packageVersion("lme4")), R.version.string))
"""


def cohort(n_patients: int, seed: int) -> pd.DataFrame:
    """Analysis frame of a simulated cohort."""
    import alsfrs

    return alsfrs.simulate_cohort(n_patients, seed=seed).to_frame()[COLUMNS].copy()


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def one_off(data: pd.DataFrame):
    """fit_lmm as a first call with this formula: no design plan kept from earlier calls."""
    from alsfrs import lmm

    lmm._fitter.cache_clear()
    return lmm.fit_lmm(FORMULA, data)


def peak_memory_alsfrs(data: pd.DataFrame) -> float:
    tracemalloc.start()
    one_off(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def lme4_available() -> str | None:
    """None when lme4 runs, else the reason it does not."""
    if shutil.which("Rscript") is None:
        return "Rscript not found: lme4 not run (install R and lme4 to compare)"
    proc = subprocess.run(["Rscript", "-e", "suppressMessages(library(lme4))"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return "R has no lme4: lme4 not run"
    return None


def time_lme4(data: pd.DataFrame, repeats: int) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp:
        csv = os.path.join(tmp, "d.csv")
        data.to_csv(csv, index=False)
        script = os.path.join(tmp, "fit.R")
        with open(script, "w") as fh:
            fh.write(R_SCRIPT)
        proc = subprocess.run(["Rscript", script, csv, str(repeats)], capture_output=True,
                              text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def time_statsmodels(data: pd.DataFrame) -> float:
    import statsmodels.formula.api as smf

    frame = data.copy()
    for c in ("sex", "onset_site"):
        frame[c] = frame[c].cat.remove_unused_categories()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        smf.mixedlm(FIXED, frame, groups="patient_id", re_formula="~months").fit(
            reml=True, method="lbfgs")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 500, 2000, 10000])
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--statsmodels", action="store_true", help="also time statsmodels")
    args = parser.parse_args(argv)

    import alsfrs
    from alsfrs.lmm import LmmFitter, fit_lmm

    no_r = lme4_available()
    fit_lmm(FORMULA, cohort(200, args.seed))  # warm-up (imports, first-call overheads)

    rows = []
    for n in args.sizes:
        data = cohort(n, args.seed + n)
        other = cohort(n, args.seed + n + 1)
        t_a, fit = best_of(lambda data=data: one_off(data), args.repeats)
        t_df, _ = best_of(lambda data=data: one_off(data).fixed_effects, args.repeats)
        fitter = LmmFitter(FORMULA)
        fitter.fit(data)
        t_refit, refit = best_of(lambda f=fitter, other=other: f.fit(other), args.repeats)
        check = fit_lmm(FORMULA, other)
        assert np.allclose(refit.fixef, check.fixef, rtol=0, atol=1e-10)
        peak = peak_memory_alsfrs(data)
        row = {
            "patients": n,
            "visits": fit.nobs,
            "alsfrs_s": t_a,
            "alsfrs_df_s": t_df,
            "refit_s": t_refit,
            "lme4_s": np.nan,
            "ratio": np.nan,
            "crit_diff": np.nan,
            "max_rel_fixef": np.nan,
            "alsfrs_MiB": peak,
            "lme4_MiB": np.nan,
            "evals": fit.optimization.n_evaluations,
            "iters": fit.optimization.n_iterations,
            "converged": fit.converged,
        }
        if no_r is None:
            r = time_lme4(data, args.repeats)
            fe_r = pd.Series(r["fixef"], index=r["names"])
            fe_a = fit.fixef.reindex(fe_r.index)
            row.update(
                lme4_s=r["time"],
                ratio=r["time"] / t_a,
                crit_diff=fit.reml_criterion - r["reml"],
                max_rel_fixef=float(np.max(np.abs(fe_a - fe_r) / np.maximum(np.abs(fe_r), 1e-8))),
                lme4_MiB=r["peak_mb"] / 1.048576,
            )
            versions = f"lme4 {r['version']}, {r['r']}"
        if args.statsmodels:
            row["statsmodels_s"] = time_statsmodels(data)
        rows.append(row)
        print(f"  done: {n} patients", flush=True)
    table = pd.DataFrame(rows)
    load = os.getloadavg()
    print(f"\n{FORMULA}\nREML; best of {args.repeats}; alsfrs {alsfrs.__version__}, "
          f"numpy {np.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(no_r or versions)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(
            table.to_string(
                index=False,
                formatters={
                    "alsfrs_s": "{:.4f}".format,
                    "alsfrs_df_s": "{:.4f}".format,
                    "refit_s": "{:.4f}".format,
                    "lme4_s": "{:.3f}".format,
                    "ratio": "{:.1f}".format,
                    "crit_diff": "{:.2e}".format,
                    "max_rel_fixef": "{:.1e}".format,
                    "alsfrs_MiB": "{:.1f}".format,
                    "lme4_MiB": "{:.1f}".format,
                    "statsmodels_s": "{:.2f}".format,
                },
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
