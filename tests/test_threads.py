"""BLAS threads are limited by the library inside every MCMC chain.

The check runs in a fresh interpreter whose BLAS starts with two threads
(``OPENBLAS_NUM_THREADS=2``, as a user's Jupyter kernel on a multi-core machine),
samples the collapsed model (``fit_bayes``) or the joint model (``fit_joint``) with
two chains in two processes, and records, from inside the log-density Op in each
chain's process, how many threads each BLAS
library has there. Without the library's limit the forked chains inherit two
threads each (PyMC sets no limit on forked chains).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, os, sys, warnings
    import numpy as np
    import threadpoolctl

    import alsfrs
    import alsfrs.bayes.model as model_module
    from alsfrs.bayes import SamplingWarning, fit_bayes

    out_dir = sys.argv[1]
    parent_threads = {i["filepath"]: i["num_threads"] for i in threadpoolctl.threadpool_info()
                      if i["user_api"] == "blas"}
    original = model_module.DensityOp.perform
    seen = set()

    def recording_perform(self, node, inputs, output_storage):
        pid = os.getpid()
        if pid not in seen:
            seen.add(pid)
            info = {i["filepath"]: i["num_threads"] for i in threadpoolctl.threadpool_info()
                    if i["user_api"] == "blas"}
            with open(os.path.join(out_dir, f"{pid}.json"), "w") as fh:
                json.dump(info, fh)
        return original(self, node, inputs, output_storage)

    model_module.DensityOp.perform = recording_perform
    cohort = alsfrs.simulate_cohort(40, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        if sys.argv[2] == "fit_bayes":
            fit_bayes("alsfrs_r ~ months + (months | patient_id)", cohort, chains=2, cores=2,
                      draws=20, tune=20, seed=1, progressbar=False)
        else:
            alsfrs.fit_joint("alsfrs_r ~ months * antidepressant + (months | patient_id)",
                             "Surv(months_to_death_imv, death_imv) ~ antidepressant", cohort,
                             chains=2, cores=2, draws=20, tune=20, seed=1, progressbar=False)
    after = {i["filepath"]: i["num_threads"] for i in threadpoolctl.threadpool_info()
             if i["user_api"] == "blas"}
    print(json.dumps({"parent": os.getpid(), "before": parent_threads, "after": after}))
    """
)


@pytest.mark.parametrize("fit", ["fit_bayes", "fit_joint"])
def test_every_chain_runs_with_one_blas_thread(tmp_path: Path, fit: str) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    env["OPENBLAS_NUM_THREADS"] = "2"
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    script = tmp_path / "chains.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path), fit], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    if max(summary["before"].values(), default=1) < 2:
        pytest.skip("BLAS would not start with two threads here; nothing to limit")
    chains = {int(p.stem): json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    chains.pop(summary["parent"], None)
    assert len(chains) == 2, chains  # two chain processes ran the likelihood
    for pid, libraries in chains.items():
        assert libraries, f"no BLAS library seen in chain process {pid}"
        assert set(libraries.values()) == {1}, (pid, libraries)
    # the limit is lifted again after sampling for the libraries the user had loaded
    # (a library first loaded while compiling keeps the one thread it started with)
    assert {k: summary["after"][k] for k in summary["before"]} == summary["before"]
