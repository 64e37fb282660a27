"""Write the simulated data sets used by ``survival_reference.R``.

Run from the repository root::

    python tests/reference/make_survival_datasets.py
    Rscript tests/reference/survival_reference.R

The CSVs under ``tests/reference/survival_data/`` are committed; the tests read
them (and the frozen R fixtures in ``survival_fixtures/``) and never need R.
``lung.csv`` and ``veteran.csv`` are R's own data sets, written by the R script.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import alsfrs
from alsfrs.simulate import simulate_case_control
from alsfrs.survival.frame import split_at

HERE = Path(__file__).resolve().parent
DATA = HERE / "survival_data"
COVARIATES = ["anxiolytic", "hypnotic", "antidepressant", "age_at_dx", "sex", "onset_site"]


def main() -> None:
    DATA.mkdir(exist_ok=True)
    # prognosis cohort (right-censored; times in days / 30.4375: many ties)
    cohort = alsfrs.simulate_cohort(1000, seed=2024)
    f = cohort.survival_frame()
    out = f[["patient_id", "months", "event", *COVARIATES]]
    out.to_csv(DATA / "cohort_survival.csv", index=False)

    # time-varying treatment (riluzole started after diagnosis) in (start, stop] form
    rng = np.random.default_rng(99)
    start = np.where(rng.random(len(f)) < 0.6, np.round(rng.uniform(0, 1, len(f))
                                                        * f["months"].to_numpy(), 2), np.nan)
    tv = split_at(out.assign(riluzole_start=start), "riluzole_start", "riluzole")
    tv = tv[tv["stop"] > tv["start"]]  # an event at time 0 has no (start, stop] interval
    tv[["patient_id", "start", "stop", "event", "riluzole", "age_at_dx", "sex",
        "onset_site"]].to_csv(DATA / "cohort_timevarying.csv", index=False)

    # matched case-control sets (1:4); a second file with sets merged pairwise for
    # the first 40 sets so that some sets hold two cases (exact likelihood)
    study = simulate_case_control(500, 4, seed=31)
    cc = study.to_frame()
    cols = ["set_id", "patient_id", "case", *study.exposure_columns()]
    cc[cols].to_csv(DATA / "case_control.csv", index=False)
    multi = cc[cols].copy()
    first = multi["set_id"] <= 40
    multi.loc[first, "set_id"] = (multi.loc[first, "set_id"] + 1) // 2
    multi.to_csv(DATA / "case_control_multi.csv", index=False)

    # REM comparison: users of one REM class only
    rem_cohort = alsfrs.simulate_cohort(3000, seed=77, hazard_ratio_rem=1.3,
                                        exposure_prevalence={"antidepressant": 0.4})
    from alsfrs.survival.rem import rem_groups

    rf = rem_cohort.survival_frame()
    cls, _ = rem_groups(rf)
    keep = cls.isin(["suppressing", "non_suppressing"]).to_numpy()
    rem = rf.loc[keep, ["patient_id", "months", "event", "age_at_dx", "sex"]].copy()
    rem["rem_class"] = cls[keep].to_numpy()
    rem["non_rem_suppressing"] = (rem["rem_class"] == "non_suppressing").astype(int)
    rem["antidepressant"] = 1
    rem["antidepressant_rem_suppressing"] = 1 - rem["non_rem_suppressing"]
    rem["antidepressant_non_rem_suppressing"] = rem["non_rem_suppressing"]
    rem["antidepressant_rem_disputed"] = 0
    rem.to_csv(DATA / "rem.csv", index=False)
    print("written:", sorted(p.name for p in DATA.glob("*.csv")))


if __name__ == "__main__":
    pd.set_option("display.width", 120)
    main()
