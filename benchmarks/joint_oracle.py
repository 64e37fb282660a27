"""The survival submodel fitted by maximum likelihood with the *true* trajectories.

On a simulated cohort the simulator knows each patient's true ALSFRS-R line
(``cohort.truth["patient_effects"]``). Maximising the survival likelihood of the
joint model with those lines plugged in (BFGS; closed-form cumulative hazard)
gives the "oracle" estimates of γ and α for that cohort: what the joint model
would find if the visits told the trajectories exactly. The gap between the
oracle and the truth is the cohort's own sampling variation; the gap between
the joint posterior and the oracle is what estimating the trajectories adds.

Usage::

    python benchmarks/joint_oracle.py [--seeds 1 2 3] [--patients 1000]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from scipy.optimize import minimize

import alsfrs
from alsfrs.joint.design import piece_knots
from alsfrs.joint.hazard import BaselineSpec, cumulative_hazard, log_hazard

EXPOSURES = ("anxiolytic", "hypnotic", "antidepressant")


def oracle(cohort, kind: str = "piecewise", n_pieces: int = 6) -> dict[str, float]:
    p = cohort.patients.sort_index()
    tr = pd.DataFrame(cohort.truth["patient_effects"]).set_index("patient_id").loc[p.index]
    a, s = tr["intercept"].to_numpy(), tr["slope"].to_numpy()
    T = p["months_to_death_imv"].to_numpy(float)
    d = p["death_imv"].to_numpy(float)
    W = np.column_stack([p[e].to_numpy(float) for e in EXPOSURES]
                        + [p["age_at_dx"].to_numpy(float) - p["age_at_dx"].mean(),
                           (p["onset_site"] == "bulbar").to_numpy(float)])
    knots = piece_knots(T, d, n_pieces)
    spec = BaselineSpec(kind=kind, knots=knots, t_scale=15.0, association="value",
                        closed_form=True, quadrature_nodes=7, t_end=float(T.max()))
    nb = len(knots) - 1 + (kind == "spline")
    coef = [a[None], s[None]]

    def nll(x):
        g, al, base = x[:5], x[5], x[6:][None]
        eta = (W @ g)[None] + al * (a[None] - 35.0)
        H = cumulative_hazard(spec, T[:, None], coef, eta, np.array([[al]]), None, base)[..., 0]
        lh = log_hazard(spec, T, coef, eta, np.array([[al]]), None, base)
        return -(d * lh - H).sum()

    r = minimize(nll, np.r_[np.zeros(5), -0.05, np.full(nb, -3.5)], method="BFGS")
    names = [*EXPOSURES, "age_at_dx", "onset_sitebulbar", "value(alsfrs_r)"]
    return dict(zip(names, r.x[:6], strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--patients", type=int, default=1000)
    a = ap.parse_args()
    rows = []
    for seed in a.seeds:
        c = alsfrs.simulate_cohort(a.patients, seed=seed)
        for kind, k in (("piecewise", 6), ("piecewise", 15), ("spline", 6)):
            rows.append({"seed": seed, "baseline": f"{kind} ({k})", **oracle(c, kind, k)})
    sv = c.truth["survival"]
    truth = {**{e: np.log(sv["hazard_ratios"][e]) for e in EXPOSURES},
             "age_at_dx": np.log(sv["hazard_ratio_per_year_age"]),
             "onset_sitebulbar": np.log(sv["hazard_ratio_bulbar"]),
             "value(alsfrs_r)": -np.log(sv["hazard_ratio_per_point"])}
    rows.append({"seed": "truth", "baseline": "", **truth})
    with pd.option_context("display.width", 160, "display.float_format", "{:.4f}".format):
        print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
