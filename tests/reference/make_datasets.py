"""Write the simulated reference data sets used by ``lmm_reference.R``.

Run from the repository root::

    python tests/reference/make_datasets.py
    Rscript tests/reference/lmm_reference.R

The CSVs under ``tests/reference/data/`` are committed; the tests read them
(and the R fixtures) and never need R. ``sleepstudy.csv`` is exported by the R
script itself (it is lme4's real data set).

Data sets are drawn with :func:`alsfrs.simulate_cohort` with fixed seeds. If
that function is not importable, a small stand-alone generator with the same
columns is used instead (and the file name says so).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
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

#: (file stem, number of patients, seed, overrides of simulate_cohort)
DATASETS = [
    ("als_cohort_1000", 1000, 20250101, {}),
    # near-singular random slope: tiny slope SD, no systematic slope differences and a
    # lower, less variable intercept (less clipping at 48); lme4 finds a singular fit
    (
        "als_near_singular",
        400,
        20250102,
        {
            "sd_slope": 0.02,
            "bulbar_slope": 0.0,
            "exposure_slope": {"anxiolytic": 0.0, "hypnotic": 0.0, "antidepressant": 0.0},
            "sd_intercept": 3.0,
            "intercept": 34.0,
        },
    ),
]


def _simulator():
    try:
        import alsfrs

        return alsfrs.simulate_cohort
    except (ImportError, AttributeError):
        try:
            from alsfrs.simulate import simulate_cohort

            return simulate_cohort
        except ImportError:
            return None


def fallback_cohort(n_patients: int, seed: int, sd_slope: float = 0.7) -> pd.DataFrame:
    """Stand-alone generator (used only if alsfrs.simulate_cohort is unavailable).

    Random intercept ~ N(40, 5), slope ~ N(-1, ``sd_slope``), residual SD 1.7,
    about 8 visits every 3 months.
    """
    rng = np.random.default_rng(seed)
    ids = np.array([f"P{i:05d}" for i in range(1, n_patients + 1)])
    age = rng.normal(65, 11, n_patients).round(1)
    sex = rng.choice(["F", "M"], n_patients)
    site = rng.choice(["spinal", "bulbar", "other"], n_patients, p=[0.65, 0.3, 0.05])
    exp = {
        k: rng.binomial(1, p, n_patients)
        for k, p in [("anxiolytic", 0.15), ("hypnotic", 0.2), ("antidepressant", 0.18)]
    }
    b0 = rng.normal(40, 5, n_patients)
    b1 = rng.normal(-1, sd_slope, n_patients) - 0.2 * exp["antidepressant"]
    nv = rng.integers(5, 12, n_patients)
    pid = np.repeat(np.arange(n_patients), nv)
    visit = np.concatenate([np.arange(k) for k in nv])
    months = visit * 3.0 + rng.uniform(0, 1, pid.size)
    y = b0[pid] + b1[pid] * months - 0.03 * (age[pid] - 65) + rng.normal(0, 1.7, pid.size)
    frame = pd.DataFrame(
        {
            "patient_id": ids[pid],
            "months": months,
            "alsfrs_r": y,
            "age_at_dx": age[pid],
            "sex": pd.Categorical(sex[pid], categories=["F", "M"]),
            "onset_site": pd.Categorical(site[pid], categories=["spinal", "bulbar", "other"]),
            **{k: v[pid] for k, v in exp.items()},
        }
    )
    return frame


def main() -> int:
    DATA.mkdir(parents=True, exist_ok=True)
    simulate = _simulator()
    for stem, n, seed, overrides in DATASETS:
        if simulate is not None:
            frame = simulate(n, seed=seed, **overrides).to_frame()[COLUMNS]
        else:
            frame = fallback_cohort(n, seed, sd_slope=overrides.get("sd_slope", 0.7))
            stem = stem + "_fallback"
        frame = frame.copy()
        for c in ("sex", "onset_site"):
            frame[c] = frame[c].astype(str)
        path = DATA / f"{stem}.csv"
        frame.to_csv(path, index=False, float_format="%.17g")
        print(
            f"wrote {path.relative_to(HERE.parent.parent)}: {len(frame)} rows, "
            f"{frame['patient_id'].nunique()} patients"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
