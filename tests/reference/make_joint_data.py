"""Write the simulated cohort that ``joint_reference.R`` fits with JMbayes2.

Run from the repository root::

    python tests/reference/make_joint_data.py
    Rscript tests/reference/joint_reference.R

    # the 300-patient cohort of the rstanarm stan_jm reference
    python tests/reference/make_joint_data.py --n 300 --seed 20251125
    Rscript tests/reference/joint_rstanarm.R

Writes ``data/joint_visits_<n>.csv`` (one row per visit) and
``data/joint_patients_<n>.csv`` (one row per patient: time to death or invasive
ventilation, status and covariates) from :func:`alsfrs.simulate_cohort` with a
fixed seed; the tests read these files and the frozen JMbayes2 summaries and never
need R.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import alsfrs

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
N, SEED = 1000, 20251123
COVARIATES = ["age_at_dx", "sex", "onset_site", "anxiolytic", "hypnotic", "antidepressant"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=N, help="patients (default %(default)s)")
    ap.add_argument("--seed", type=int, default=SEED, help="simulator seed (default %(default)s)")
    a = ap.parse_args()
    write(a.n, a.seed)


def write(n: int, seed: int) -> None:
    """Simulate ``n`` patients with ``seed`` and write the visits, patients and truth."""
    cohort = alsfrs.simulate_cohort(n, seed=seed)
    frame = cohort.to_frame()
    visits = frame[["patient_id", "months", "alsfrs_r", *COVARIATES]]
    pats = cohort.patients.reset_index()[["patient_id", "months_to_death_imv", "death_imv",
                                          *COVARIATES]]
    DATA.mkdir(exist_ok=True)
    visits.to_csv(DATA / f"joint_visits_{n}.csv", index=False, float_format="%.17g")
    pats.to_csv(DATA / f"joint_patients_{n}.csv", index=False, float_format="%.17g")
    truth = {k: cohort.truth[k] for k in ("seed", "n_patients", "survival",
                                          "exposure_slope_effects", "fixed_effects",
                                          "random_effects", "residual_sd")}
    (DATA / f"joint_truth_{n}.json").write_text(json.dumps(truth, indent=1))
    print(f"{len(visits)} visits, {len(pats)} patients, {int(pats.death_imv.sum())} events")


if __name__ == "__main__":
    main()
