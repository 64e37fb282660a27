"""Write the simulated cohort that ``joint_reference.R`` fits with JMbayes2.

Run from the repository root::

    python tests/reference/make_joint_data.py
    Rscript tests/reference/joint_reference.R

Writes ``data/joint_visits_1000.csv`` (one row per visit) and
``data/joint_patients_1000.csv`` (one row per patient: time to death or invasive
ventilation, status and covariates) from :func:`alsfrs.simulate_cohort` with a
fixed seed; the tests read these files and the frozen JMbayes2 summaries and never
need R.
"""

from __future__ import annotations

import json
from pathlib import Path

import alsfrs

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
N, SEED = 1000, 20251123
COVARIATES = ["age_at_dx", "sex", "onset_site", "anxiolytic", "hypnotic", "antidepressant"]


def main() -> None:
    cohort = alsfrs.simulate_cohort(N, seed=SEED)
    frame = cohort.to_frame()
    visits = frame[["patient_id", "months", "alsfrs_r", *COVARIATES]]
    pats = cohort.patients.reset_index()[["patient_id", "months_to_death_imv", "death_imv",
                                          *COVARIATES]]
    DATA.mkdir(exist_ok=True)
    visits.to_csv(DATA / f"joint_visits_{N}.csv", index=False, float_format="%.17g")
    pats.to_csv(DATA / f"joint_patients_{N}.csv", index=False, float_format="%.17g")
    truth = {k: cohort.truth[k] for k in ("seed", "n_patients", "survival",
                                          "exposure_slope_effects", "fixed_effects",
                                          "random_effects", "residual_sd")}
    (DATA / f"joint_truth_{N}.json").write_text(json.dumps(truth, indent=1))
    print(f"{len(visits)} visits, {len(pats)} patients, {int(pats.death_imv.sum())} events")


if __name__ == "__main__":
    main()
