"""Conditional logistic regression: exactness, bad input, contract, recovery of known ORs."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

import alsfrs
from alsfrs.errors import ValidationError
from alsfrs.survival.clogit import _Clogit


def _brute_force_loglik(X, case, sets, beta):
    """Exact conditional log-likelihood by enumerating every subset (small sets only)."""
    ll = 0.0
    for s in np.unique(sets):
        rows = np.flatnonzero(sets == s)
        d = int(case[rows].sum())
        eta = X[rows] @ beta
        num = eta[case[rows]].sum()
        den = sum(np.exp(eta[list(c)].sum()) for c in itertools.combinations(range(len(rows)), d))
        ll += num - np.log(den)
    return ll


def test_exact_likelihood_matches_enumeration():
    rng = np.random.default_rng(1)
    sets = np.repeat(np.arange(12), 6)
    case = np.zeros(len(sets), dtype=bool)
    for s in range(12):  # 1, 2 or 3 cases per set
        case[s * 6: s * 6 + 1 + s % 3] = True
    X = rng.normal(size=(len(sets), 2))
    eng = _Clogit(X, case, sets, 12)
    beta = np.array([0.4, -0.7])
    ll, u, info = eng.evaluate(beta)
    Xc = X - X.mean(axis=0)
    assert ll == pytest.approx(_brute_force_loglik(Xc, case, sets, beta), rel=1e-12)
    # score and information against finite differences of the log-likelihood
    h = 1e-6
    num_u = [(eng.evaluate(beta + h * e)[0] - eng.evaluate(beta - h * e)[0]) / (2 * h)
             for e in np.eye(2)]
    np.testing.assert_allclose(u, num_u, rtol=1e-6)
    num_i = np.array([(eng.evaluate(beta + h * e)[1] - eng.evaluate(beta - h * e)[1]) / (2 * h)
                      for e in np.eye(2)])
    np.testing.assert_allclose(info, -num_i, rtol=1e-5)


def test_large_sets_do_not_overflow():
    rng = np.random.default_rng(2)
    sets = np.repeat(np.arange(20), 300)  # 1:299 sets, large covariate values
    case = np.zeros(len(sets), dtype=int)
    case[::300] = 1
    df = pd.DataFrame({"set_id": sets, "case": case, "x": rng.normal(50, 30, len(sets))})
    fit = alsfrs.fit_clogit("case ~ x + strata(set_id)", df)
    assert np.isfinite(fit.loglik) and np.isfinite(fit.summary()["se"]).all()


@pytest.fixture(scope="module")
def study():
    return alsfrs.simulate_case_control(400, 4, seed=5)


def test_set_without_case_and_other_bad_input(study):
    f = study.to_frame()
    bad = f[~((f["set_id"] == 3) & (f["case"] == 1))]
    with pytest.raises(ValidationError, match="set_without_case"):
        alsfrs.fit_clogit("case ~ hypnotic_0_1y + strata(set_id)", bad)
    with pytest.raises(ValidationError, match="no_strata"):
        alsfrs.fit_clogit("case ~ hypnotic_0_1y", f)
    with pytest.raises(ValidationError, match="event_not_binary"):
        alsfrs.fit_clogit("case ~ hypnotic_0_1y + strata(set_id)", f.assign(case=f["case"] * 2))
    # age is matched exactly: constant within every set
    with pytest.raises(ValidationError, match="constant_within_strata"):
        alsfrs.fit_clogit("case ~ hypnotic_0_1y + age_at_index + strata(set_id)", f)
    with pytest.raises(ValidationError, match="malformed_formula"):
        alsfrs.fit_clogit("Surv(t, case) ~ x + strata(set_id)", f)


def test_contract_round_trip_and_by_window(study, tmp_path):
    fit = alsfrs.fit_clogit(study.truth["formula"], study)
    bw = fit.by_window()
    assert bw.index.names == ["drug_class", "window"] and len(bw) == 9
    assert set(bw.index.get_level_values("window")) == {"0_1y", "1_5y", "5y_plus"}
    back = alsfrs.load_result(fit.save(tmp_path / "c.alsfrs"))
    pd.testing.assert_frame_equal(back.summary(), fit.summary(), check_exact=True)
    assert back.loglik == fit.loglik
    assert "Odds ratios" in str(fit)
    assert fit.diagnostics()["passed"].dtype == bool


def test_recovers_the_published_odds_ratios():
    # realistic size: 1,000 cases (the Swedish study had 1,057) with 5 controls each
    study = alsfrs.simulate_case_control(1000, 5, seed=2025)
    fit = alsfrs.fit_clogit(study.truth["formula"], study)
    s = fit.summary()
    truth = pd.Series(study.truth["odds_ratios"])
    inside = (s["ci_lower_95"] <= truth[s.index]) & (truth[s.index] <= s["ci_upper_95"])
    assert inside.sum() >= 8, s.assign(truth=truth)  # 9 intervals at 95%: allow one miss
    # the strong hypnotic 0-1 y signal is found
    assert s.loc["hypnotic_0_1y", "ci_lower_95"] > 3
