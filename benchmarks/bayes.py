"""Benchmark: the first Bayesian fit on a fresh machine, compile alternatives, BLAS threads.

Every measurement runs in its own Python process, so that "cold" means what a new
user meets: empty PyTensor compile caches (``PYTENSOR_FLAGS=base_compiledir=<fresh
temporary directory>``, which holds both the C modules and the numba cache) and no
thread variables unless stated.

1. **Compile alternatives** (cold, 1,000 patients): time of a first short sampling
   call of 1 chain × (10 + 10) iterations — essentially compilation and set-up —
   and the warm time of one log-density-and-gradient evaluation, for the
   collapsed model as fit_bayes samples it now (the whole log posterior in NumPy,
   :mod:`alsfrs.bayes.density`: nothing to compile) and as the PyMC graph of
   ``build_model`` with the likelihood either as an all-PyTensor graph or as the
   NumPy-kernel Op, with PyTensor's C backend or ``mode="NUMBA"``; nutpie when
   installed.
2. **First fit** (``fit_bayes``, collapsed, 1,000 patients, 2 chains × 1,000 +
   1,000): cold and warm compile cache, without thread variables (as in Jupyter),
   with ``OPENBLAS_NUM_THREADS=OMP_NUM_THREADS=MKL_NUM_THREADS=1``, and with the
   library's own BLAS limit switched off (what the variables were needed for);
   the previous engine (PyMC graph of the priors + likelihood Op, jitter start,
   identity mass matrix) cold for comparison. Columns: wall time of ``fit_bayes``
   (``fit_s``), of its sampling (PyMC's count), of its start (mode, Laplace
   covariance, model set-up, compilation: ``start_s``), of the work after sampling
   (per-patient effects, log-likelihood, predictive draws, result:
   ``after_s``), of the whole process (imports included); minimum bulk ESS,
   maximum R-hat, divergences, mean leapfrog steps per draw.
3. With ``--sizes``: min-ESS per second for cohorts of those sizes (collapsed; add
   ``--noncentered`` for the non-centred model, slow), as in earlier versions.

Usage::

    python benchmarks/bayes.py                    # sections 1 and 2
    python benchmarks/bayes.py --skip-compile     # section 2 only
    python benchmarks/bayes.py --sizes 300 1000 5000 [--noncentered]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import pandas as pd

FORMULA = ("alsfrs_r ~ months * (anxiolytic + hypnotic + antidepressant) "
           "+ (months | patient_id)")
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
BRMS_MIN_ESS_PER_S_300 = 4.3  # brms/Stan, 300 patients, 2 chains x 1000+1000 (issue #4)


# ------------------------------------------------------------------------------
# workers (run in a fresh process)
# ------------------------------------------------------------------------------
def worker_compile(spec: dict) -> dict:
    import warnings

    import numpy as np
    import pymc as pm

    import alsfrs
    from alsfrs.bayes.fit import _prepare
    from alsfrs.bayes.model import build_model

    cohort = alsfrs.simulate_cohort(spec["patients"], seed=2024 + spec["patients"])
    _, design, pri = _prepare(FORMULA, cohort, None, None)
    if spec["kernel"] == "density":
        return _compile_density(design, pri)
    model = build_model(design, pri, kernel=spec["kernel"])
    kwargs: dict = dict(draws=10, tune=10, chains=1, cores=1, random_seed=1,
                        progressbar=False, compute_convergence_checks=False)
    if spec["backend"] == "nutpie":
        kwargs["nuts_sampler"] = "nutpie"
    else:
        kwargs["init"] = "jitter+adapt_full"
        if spec["backend"] == "numba":
            kwargs["compile_kwargs"] = {"mode": "NUMBA"}
    t0 = time.perf_counter()
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm.sample(**kwargs)
    first = time.perf_counter() - t0
    mode = "NUMBA" if spec["backend"] == "numba" else None
    fn = model.logp_dlogp_function(ravel_inputs=True, **({"mode": mode} if mode else {}))
    fn.set_extra_values({})
    x = np.concatenate([np.ravel(v) for v in model.initial_point().values()])
    return {"first_sample_call_s": first, "logp_dlogp_us": _microseconds_per_call(fn, x)}


def _microseconds_per_call(fn, x, n: int = 2000) -> float:
    """Warm time of one log-density-and-gradient evaluation (after one untimed call)."""
    fn(x)
    t0 = time.perf_counter()
    for _ in range(n):
        fn(x)
    return (time.perf_counter() - t0) / n * 1e6


def _compile_density(design, pri) -> dict:
    """Section 1 for the NumPy log posterior (what fit_bayes samples)."""
    import warnings

    import numpy as np

    from alsfrs.bayes.density import CollapsedDensity
    from alsfrs.bayes.fit import _sample_density

    kwargs = dict(draws=10, tune=10, chains=1, cores=1, random_seed=1, progressbar=False,
                  compute_convergence_checks=False, target_accept=0.9, nuts_sampler="pymc")
    t0 = time.perf_counter()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        _sample_density(design, pri, kwargs, 1)
    first = time.perf_counter() - t0
    density = CollapsedDensity(design, pri)
    x = density.pack(design.center(np.linalg.lstsq(design.mm.X, design.mm.y, rcond=None)[0]),
                     np.eye(design.mm.n_random), 2.0)
    return {"first_sample_call_s": first, "logp_dlogp_us": _microseconds_per_call(density, x)}


def _previous_engine(design, pri, kwargs, seed):
    """The engine before the NumPy log posterior: PyMC's graph of the priors and
    transforms (compiled to C at -O0) around the likelihood Op, jitter start and
    identity initial mass matrix (``init="jitter+adapt_full"``)."""
    import pymc as pm

    from alsfrs.bayes.fit import _deterministics
    from alsfrs.bayes.model import build_model

    model = build_model(design, pri)
    kw = dict(kwargs, init="jitter+adapt_full", var_names=[rv.name for rv in model.free_RVs])
    with model:
        idata = pm.sample(**kw)
    idata.posterior = _deterministics(idata.posterior, model)
    return idata, None


def worker_fit(spec: dict) -> dict:
    import contextlib
    import warnings

    import alsfrs
    import alsfrs.bayes.fit as fit_module
    from alsfrs.bayes import SamplingWarning, fit_bayes

    if not spec.get("library_limit", True):
        fit_module.sampling_threads = lambda limit=1: contextlib.nullcontext()
    if spec.get("engine") == "previous":
        fit_module._sample_density = _previous_engine
    cohort = alsfrs.simulate_cohort(spec["patients"], seed=2024 + spec["patients"])
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        fit = fit_bayes(FORMULA, cohort, chains=spec["chains"], draws=spec["draws"],
                        tune=spec["tune"], seed=1, progressbar=False,
                        parameterization=spec.get("parameterization", "collapsed"))
    wall = time.perf_counter() - t0
    s = fit.summary()
    d = fit.diagnostics()
    if "check" in d.columns:
        d = d.set_index("check")
    rows = [k for k in d.index if "divergen" in str(k)]
    div = d.loc[rows[0], "value"] if rows else None
    return {
        "visits": fit.nobs,
        "fit_s": wall,
        "sampling_s": fit.timing["sampling_seconds"],
        "start_s": fit.timing["compile_seconds"],
        "after_s": wall - fit.timing["total_seconds"],
        "steps_per_draw": float(fit.idata.sample_stats["n_steps"].mean()),
        "min_bulk_ess": float(s["ess_bulk"].min()),
        "max_rhat": float(s["r_hat"].max()),
        "divergences": None if div is None else int(div),
    }


def run_worker(kind: str, spec: dict, compiledir: str, thread_vars: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    if thread_vars:
        env.update({k: "1" for k in THREAD_VARIABLES})
    # base_compiledir, not only compiledir: PyTensor's numba cache lives in
    # <base_compiledir>/numba, so a fresh base directory empties both caches
    env["PYTENSOR_FLAGS"] = f"base_compiledir={compiledir}"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in [root, env.get("PYTHONPATH", "")] if p)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", kind,
                           json.dumps(spec)], env=env, capture_output=True, text=True)
    process = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = process
    return out


# ------------------------------------------------------------------------------
# sections
# ------------------------------------------------------------------------------
def compile_table(patients: int, only: list[str] | None = None) -> pd.DataFrame:
    import importlib.util

    variants = [("density", "none"), ("graph", "c"), ("op", "c"), ("graph", "numba"),
                ("op", "numba")]
    if only:
        variants = [v for v in variants if f"{v[0]}/{v[1]}" in only]
    if importlib.util.find_spec("nutpie") is not None:
        variants += [("graph", "nutpie"), ("op", "nutpie")]
    rows = []
    for kernel, backend in variants:
        with tempfile.TemporaryDirectory() as cdir:
            try:
                r = run_worker("compile", {"patients": patients, "kernel": kernel,
                                           "backend": backend}, cdir, thread_vars=True)
            except RuntimeError as exc:
                r = {"error": str(exc).strip().splitlines()[-1][:80]}
        rows.append({"likelihood": kernel, "backend": backend, **r})
        print(f"  done: compile {kernel}/{backend}", flush=True)
    if importlib.util.find_spec("nutpie") is None:
        print("  nutpie is not installed: not measured (pip install 'alsfrs[nutpie]')")
    return pd.DataFrame(rows)


def first_fit_table(patients: int, draws: int, tune: int, chains: int,
                    with_graph: bool) -> pd.DataFrame:
    spec = {"patients": patients, "draws": draws, "tune": tune, "chains": chains}
    rows = []
    with tempfile.TemporaryDirectory() as cdir:
        cases = [
            ("cold cache, no thread variables", {}, False),
            ("warm cache, no thread variables", {}, False),
            ("warm cache, thread variables = 1", {}, True),
            ("warm cache, no variables, library limit off", {"library_limit": False}, False),
        ]
        for label, extra, tv in cases:
            r = run_worker("fit", {**spec, **extra}, cdir, thread_vars=tv)
            rows.append({"run": label, **r})
            print(f"  done: {label}", flush=True)
    if with_graph:
        with tempfile.TemporaryDirectory() as cdir:
            r = run_worker("fit", {**spec, "engine": "previous"}, cdir, thread_vars=False)
            rows.append({"run": "previous engine (graph priors + Op), cold", **r})
            print("  done: previous engine", flush=True)
    return pd.DataFrame(rows)


def sizes_table(sizes: list[int], draws: int, tune: int, chains: int,
                noncentered: bool) -> pd.DataFrame:
    rows = []
    with tempfile.TemporaryDirectory() as cdir:
        for n in sizes:
            for par in ("collapsed", "noncentered") if noncentered else ("collapsed",):
                r = run_worker("fit", {"patients": n, "draws": draws, "tune": tune,
                                       "chains": chains, "parameterization": par}, cdir,
                               thread_vars=False)
                rows.append({"patients": n, "parameterization": par, **r,
                             "min_ess_per_s": r["min_bulk_ess"] / r["sampling_s"]})
                print(f"  done: {n} patients, {par}", flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--skip-compile", action="store_true")
    ap.add_argument("--skip-first-fit", action="store_true")
    ap.add_argument("--compile-variants", nargs="+", default=None, metavar="LIKELIHOOD/BACKEND",
                    help="only these compile alternatives, e.g. density/none op/c")
    ap.add_argument("--no-graph", action="store_true", help="skip the previous engine's cold fit")
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument("--noncentered", action="store_true")
    args = ap.parse_args()
    if args.worker:
        kind, spec = args.worker
        fn = {"compile": worker_compile, "fit": worker_fit}[kind]
        print(json.dumps(fn(json.loads(spec))))
        return

    import numpy as np
    import pymc
    import pytensor

    load = os.getloadavg()
    print(f"{FORMULA}\n{args.patients} patients; Python {platform.python_version()}, "
          f"PyMC {pymc.__version__}, PyTensor {pytensor.__version__}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs; load average at start {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}")
    fmt = {"display.width": 200, "display.max_columns": 20,
           "display.float_format": "{:,.3f}".format}
    if not args.skip_compile:
        table = compile_table(args.patients, args.compile_variants)
        with pd.option_context(*[x for kv in fmt.items() for x in kv]):
            print("\nCompile alternatives (cold cache; 1 chain x (10 + 10) iterations):")
            print(table.to_string(index=False))
    if not args.skip_first_fit:
        table = first_fit_table(args.patients, args.draws, args.tune, args.chains,
                                not args.no_graph)
        with pd.option_context(*[x for kv in fmt.items() for x in kv]):
            print(f"\nFirst fit_bayes (collapsed), {args.chains} chains x {args.draws} draws + "
                  f"{args.tune} tuning:")
            print(table.to_string(index=False))
    if args.sizes:
        table = sizes_table(args.sizes, args.draws, args.tune, args.chains, args.noncentered)
        with pd.option_context(*[x for kv in fmt.items() for x in kv]):
            print("\nmin-ESS per second of sampling:")
            print(table.to_string(index=False))
            if 300 in set(table["patients"]):
                r = table[(table["patients"] == 300)
                          & (table["parameterization"] == "collapsed")]["min_ess_per_s"]
                print(f"collapsed / brms at 300 patients: {float(r.iloc[0]) / 4.3:.0f}x")
    load = os.getloadavg()
    print(f"load average at end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
