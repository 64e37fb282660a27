"""Power by simulation: agreement with the formula, reproducibility across executors,
informative dropout, CAFS and custom analyses; assurance."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from alsfrs import design
from alsfrs.design.simulate import DeathModel, _Spec, calibrate_baseline, simulate_trial
from alsfrs.errors import ValidationError

PILOT = dict(sig2_i=27.0, sig2_s=0.49, cov_si=-0.728, sig2_e=2.82, slope=-0.95,
             intercept=38.0)


def test_simulated_power_agrees_with_edland_without_death():
    n, pct = 40, 0.35
    sim = design.simulate_power(PILOT, n_per_arm=n, pct_slowing=pct, n_trials=300, seed=11,
                                death="none")
    f = design.power(PILOT, n_per_arm=n, pct_slowing=pct)
    s = sim.summary().iloc[0]
    mc = math.sqrt(f.power * (1 - f.power) / 300)
    assert abs(s["power"] - f.power) < 3 * mc
    assert s["power_ci_lower_95"] <= s["power"] <= s["power_ci_upper_95"]
    # the spread of the estimates is the formula's standard error
    assert s["empirical_sd"] == pytest.approx(f.standard_error(n), rel=0.15)
    assert abs(s["bias"]) < 3 * f.standard_error(n) / math.sqrt(300)
    assert abs(s["coverage_95"] - 0.95) < 3 * math.sqrt(0.95 * 0.05 / 300)
    assert s["formula_power_edland"] == pytest.approx(f.power)


def test_simulated_power_with_attrition_agrees_with_edland():
    """Non-informative dropout by Edland's pattern: the formula's power, within MC error."""
    p = [0.05, 0.1, 0.1, 0.15, 0.6]
    sim = design.simulate_power(PILOT, n_per_arm=45, pct_slowing=0.4, n_trials=200, seed=12,
                                attrition=p)
    f = design.power(PILOT, n_per_arm=45, pct_slowing=0.4, attrition=p)
    s = sim.summary().iloc[0]
    assert abs(s["power"] - f.power) < 3 * math.sqrt(f.power * (1 - f.power) / 200)
    assert s["empirical_sd"] == pytest.approx(f.standard_error(45), rel=0.2)


def test_same_seed_same_numbers_any_executor():
    kw = dict(n_per_arm=[20, 30], pct_slowing=0.3, n_trials=6, batch_size=2, seed=5,
              death="joint", missed_visit=0.1)
    serial = design.simulate_power(PILOT, **kw)
    with ThreadPoolExecutor(3) as ex:
        threaded = design.simulate_power(PILOT, executor=ex, **kw)
    pd.testing.assert_frame_equal(serial.trials, threaded.trials)
    other = design.simulate_power(PILOT, **{**kw, "seed": 6})
    assert not serial.trials["estimate"].equals(other.trials["estimate"])


def test_dask_local_cluster_equals_serial():
    distributed = pytest.importorskip("distributed")
    kw = dict(n_per_arm=25, pct_slowing=0.3, n_trials=8, batch_size=2, seed=21, death="joint")
    serial = design.simulate_power(PILOT, **kw)
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        dask = design.simulate_power(PILOT, executor=client.get_executor(), **kw)
    pd.testing.assert_frame_equal(serial.trials, dask.trials)


def _spec(death, n=4000):
    pp = design.pilot_parameters(PILOT)
    base = (death.baseline_hazard if death.baseline_hazard is not None
            else calibrate_baseline(pp, death, 12.0))
    return _Spec(pilot=pp, months=(0, 3, 6, 9, 12), attrition=(0, 0, 0, 0, 1), missed_visit=0,
                 death=death, baseline_hazard=base, ratio=1, grid=((n, n, 0.0),),
                 analysis="lmm", alpha=0.05, horizon=12.0, lmm_formula="")


def test_joint_death_calibrated_and_informative():
    death = DeathModel(proportion_dead=0.3, hr_per_point=1.1)
    spec = _spec(death)
    long, pats = simulate_trial(spec, np.random.default_rng(1), 4000, 4000, 0.0)
    share = pats["event"].mean()
    assert abs(share - 0.3) < 3 * math.sqrt(0.3 * 0.7 / 8000)
    # faster decliners die first
    dead = pats["event"] == 1
    assert pats.loc[dead, "true_slope"].mean() < pats.loc[~dead, "true_slope"].mean() - 0.2
    # no visit after death, baseline always seen
    assert long.groupby("patient_id").size().min() >= 1
    assert len(long) < 5 * 8000


def test_slowing_reduces_deaths_and_grid_shares_draws():
    sim = design.simulate_power(PILOT, n_per_arm=[30, 60], pct_slowing=[0.0001, 0.5],
                                n_trials=6, seed=3, death="joint", analysis="cafs")
    s = sim.summary()
    assert len(s) == 4 and s["n_per_arm"].tolist() == [30, 60, 30, 60]
    assert s["bias"].isna().all()  # CAFS has no slope estimate
    tr = sim.trials
    # common random numbers: same trial, same n, larger effect -> no more deaths
    a = tr[(tr.n_per_arm == 60) & (tr.effect < 0.01)].set_index("trial")["deaths"]
    b = tr[(tr.n_per_arm == 60) & (tr.effect > 0.4)].set_index("trial")["deaths"]
    assert (b <= a).all()
    assert sim.power_curve()._repr_png_()[:4] == b"\x89PNG"


def test_custom_analysis_and_contract():
    def ttest_change(visits, patients):
        last = patients
        res = stats.ttest_ind(last.loc[last.arm == 1, "change"], last.loc[last.arm == 0, "change"])
        return {"p_value": float(res.pvalue)}

    sim = design.simulate_power(PILOT, n_per_arm=30, effect=0.5, n_trials=5, seed=1,
                                analysis=ttest_change, attrition=0.2)
    assert sim.kind == "power_simulation"
    assert sim.settings["analysis"] == "ttest_change"
    assert "Power by simulation" in str(sim)
    assert set(sim.diagnostics().columns) == {"value", "criterion", "passed", "note"}
    back = type(sim)._from_payload(sim._to_payload())
    pd.testing.assert_frame_equal(back.summary(), sim.summary())


def test_bad_settings():
    with pytest.raises(ValidationError):
        design.simulate_power(PILOT, n_per_arm=30, n_trials=2)  # no effect
    with pytest.raises(ValidationError):
        design.simulate_power(PILOT, n_per_arm=30, effect=0.2, analysis="anova")
    with pytest.raises(ValidationError):
        design.simulate_power(PILOT, n_per_arm=30, effect=0.2, death="sometimes")
    with pytest.raises(ValidationError):
        design.simulate_power(PILOT, n_per_arm=30, effect=0.2,
                              death=DeathModel(proportion_dead=1.5))


# -- assurance ---------------------------------------------------------------------------
def test_normal_assurance_closed_form_matches_monte_carlo():
    prior = stats.norm(0.2, 0.1)
    a = design.assurance(prior, [100, 250], pilot=PILOT)
    rng = np.random.default_rng(0)
    for n, row in a.table.iterrows():
        se = row["standard_error"]
        theta = rng.normal(0.2, 0.1, 400_000)
        est = rng.normal(theta, se)
        mc = np.mean(est / se > stats.norm.ppf(0.975))
        assert row["assurance"] == pytest.approx(mc, abs=4 * math.sqrt(mc * (1 - mc) / 4e5))
        assert se == pytest.approx(design.power(PILOT, n_per_arm=n, effect=1).standard_error())
    # averaging power over draws gives the same number as the closed form
    draws = rng.normal(0.2, 0.1, 200_000)
    b = design.assurance(draws, [100, 250], pilot=PILOT)
    np.testing.assert_allclose(b.table["assurance"], a.table["assurance"], atol=0.005)
    # assurance is below the power at the prior mean when that power is high
    assert a.table["assurance"].iloc[1] < a.table["power_at_prior_mean"].iloc[1]


class _FakeBayes:
    """Only the public interface assurance reads from a BayesResult."""

    fixed_effects = pd.DataFrame(index=pd.Index(["(Intercept)", "months",
                                                 "months:antidepressant"], name="term"))

    def draws(self, name):
        assert name == "beta"
        rng = np.random.default_rng(1)
        return np.column_stack([rng.normal(38, 1, 4000), rng.normal(-1, .05, 4000),
                                rng.normal(-0.2, 0.08, 4000)])


def test_assurance_from_posterior_draws():
    a = design.assurance(_FakeBayes(), 150, pilot=PILOT, scale=-1.0)
    draws = -_FakeBayes().draws("beta")[:, 2]
    se = a.table["standard_error"].iloc[0]
    expected = np.mean(stats.norm.cdf(draws / se - stats.norm.ppf(0.975)))
    assert a.assurance == pytest.approx(expected)
    assert "months:antidepressant" in a.settings["prior"]
    assert a.kind == "assurance"


def test_assurance_by_simulation_close_to_formula():
    a = design.assurance(stats.norm(0.3, 0.05), 60, pilot=PILOT, analysis="simulation",
                         n_draws=120, seed=4)
    f = design.assurance(stats.norm(0.3, 0.05), 60, pilot=PILOT)
    assert abs(a.assurance - f.assurance) < 4 * math.sqrt(f.assurance * (1 - f.assurance) / 120)


def test_death_model_given_hazard_and_direct_treatment_effect():
    pp = design.pilot_parameters(PILOT)
    base = calibrate_baseline(pp, DeathModel(proportion_dead=0.2), 12.0)
    given = DeathModel(proportion_dead=None, baseline_hazard=base)
    spec = _spec(given)
    assert spec.baseline_hazard == pytest.approx(base)
    # a protective direct effect: fewer treated deaths with the same draws
    protect = _Spec(**{**spec.__dict__, "death": DeathModel(proportion_dead=None,
                                                            baseline_hazard=base,
                                                            treatment_hr=0.5)})
    _, p0 = simulate_trial(spec, np.random.default_rng(2), 3000, 3000, 0.0)
    _, p1 = simulate_trial(protect, np.random.default_rng(2), 3000, 3000, 0.0)
    treated0 = p0.loc[p0.arm == 1, "event"].mean()
    treated1 = p1.loc[p1.arm == 1, "event"].mean()
    assert treated1 < treated0 - 0.05
    assert p1.loc[p1.arm == 0, "event"].mean() == p0.loc[p0.arm == 0, "event"].mean()
    assert abs(p0["event"].mean() - 0.2) < 3 * math.sqrt(0.2 * 0.8 / 6000)
