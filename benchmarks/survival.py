"""Benchmark: alsfrs.fit_cox and alsfrs.fit_clogit against statsmodels, same data, same run.

Cox: ``Surv(months, event) ~ 6 covariates`` (Efron ties) on survival frames of
:func:`alsfrs.simulate_cohort`-like data (generated directly, so the benchmark
times the model, not the simulator), against ``statsmodels PHReg(ties="efron")``.
Conditional logistic: 1:5 matched sets from :func:`alsfrs.simulate_case_control`
with 9 exposure columns, against ``statsmodels ConditionalLogit``.

Printed per size: wall time of each engine (alsfrs: formula parsing, checks,
design matrix, fit, model-based SEs and the score/LR tests; the robust variance,
concordance and cox.zph are computed on demand and timed separately), their
ratio, and the largest absolute difference in coefficients (statsmodels'
ConditionalLogit stops its BFGS short of the optimum, hence differences of
about 1e-3; alsfrs's estimates equal R's clogit to 1e-6, see
tests/test_survival_reference.py). The first row is a cold start (first call in
the process: imports and caches).

Usage::

    python benchmarks/survival.py                     # 1000, 10000, 50000 patients
    python benchmarks/survival.py --sizes 1000 10000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

FORMULA = ("Surv(months, event) ~ anxiolytic + hypnotic + antidepressant + age_at_dx + sex + "
           "onset_site")


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({
        "anxiolytic": (rng.random(n) < 0.15).astype(int),
        "hypnotic": (rng.random(n) < 0.2).astype(int),
        "antidepressant": (rng.random(n) < 0.18).astype(int),
        "age_at_dx": rng.normal(67.5, 11.5, n).round(1),
        "sex": pd.Categorical(np.where(rng.random(n) < 0.53, "M", "F"), categories=["F", "M"]),
        "onset_site": pd.Categorical(np.where(rng.random(n) < 0.3, "bulbar", "spinal"),
                                     categories=["spinal", "bulbar"]),
    })
    lp = (0.42 * x["anxiolytic"] + 0.21 * x["hypnotic"] + 0.54 * x["antidepressant"]
          + 0.03 * (x["age_at_dx"] - 67.5) + 0.26 * (x["onset_site"] == "bulbar"))
    t = 80 * rng.weibull(1.3, n) * np.exp(-lp / 1.3)
    c = rng.uniform(6, 100, n)
    days = np.floor(np.minimum(t, c) * 30.4375)  # whole days: ties as in a registry
    x["months"] = np.maximum(days, 1) / 30.4375
    x["event"] = (t <= c).astype(int)
    return x


def bench_cox(n: int, seed: int) -> dict:
    import statsmodels.api as sm

    import alsfrs

    df = frame(n, seed)
    t0 = time.perf_counter()
    fit = alsfrs.fit_cox(FORMULA, df)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    _ = fit.concordance, fit.cox_zph()
    t_extra = time.perf_counter() - t0
    X = np.column_stack([df["anxiolytic"], df["hypnotic"], df["antidepressant"], df["age_at_dx"],
                         (df["sex"] == "M").astype(float), (df["onset_site"] == "bulbar")
                         .astype(float)])
    t0 = time.perf_counter()
    sm_fit = sm.PHReg(df["months"].to_numpy(), X, status=df["event"].to_numpy(),
                      ties="efron").fit()
    t_sm = time.perf_counter() - t0
    return {"model": "cox", "n": n, "alsfrs_s": t_ours, "statsmodels_s": t_sm,
            "ratio_sm/alsfrs": t_sm / t_ours, "concordance+zph_s": t_extra,
            "max_abs_coef_diff": float(np.max(np.abs(fit.coef - sm_fit.params)))}


def bench_clogit(n_cases: int, seed: int) -> dict:
    import statsmodels.api as sm
    from statsmodels.discrete.conditional_models import ConditionalLogit

    import alsfrs

    study = alsfrs.simulate_case_control(n_cases, 5, seed=seed)
    df = study.to_frame()
    t0 = time.perf_counter()
    fit = alsfrs.fit_clogit(study.truth["formula"], df)
    t_ours = time.perf_counter() - t0
    cols = list(fit.names)
    t0 = time.perf_counter()
    try:
        sm_fit = ConditionalLogit(df["case"].to_numpy(), df[cols].to_numpy(float),
                                  groups=df["set_id"].to_numpy()).fit(disp=0, maxiter=500)
        diff = float(np.max(np.abs(fit.coef - sm_fit.params)))
    except Exception as exc:  # pragma: no cover - report, do not crash
        diff = float("nan")
        print("statsmodels ConditionalLogit failed:", exc)
    t_sm = time.perf_counter() - t0
    del sm
    return {"model": "clogit", "n": len(df), "alsfrs_s": t_ours, "statsmodels_s": t_sm,
            "ratio_sm/alsfrs": t_sm / t_ours, "concordance+zph_s": np.nan,
            "max_abs_coef_diff": diff}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    args = ap.parse_args()
    rows = [dict(bench_cox(args.sizes[0], 1), model="cox (cold start)")]
    for n in args.sizes:
        rows.append(bench_cox(n, 2))
    for n in args.sizes:
        rows.append(bench_clogit(max(n // 6, 50), 3))
    out = pd.DataFrame(rows)
    with pd.option_context("display.width", 140, "display.float_format", "{:.4g}".format):
        print(out.to_string(index=False))


if __name__ == "__main__":
    main()
