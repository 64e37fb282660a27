"""CAFS scoring (Berry et al. 2013): hand-computed example, pair-by-pair checks, test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import alsfrs
from alsfrs.design.combined import cafs, cafs_frame
from alsfrs.errors import ValidationError


def _brute(df: pd.DataFrame, horizon: float, censored: str = "gehan") -> dict:
    """Every pair, one at a time, by the documented rules."""
    rows = list(df.itertuples())
    out = {}
    for a in rows:
        s = 0
        for b in rows:
            if a.Index == b.Index:
                continue
            s += _pair(a, b, horizon, censored)
        out[a.Index] = s
    return out


def _pair(a, b, H, rule) -> int:
    def status(p):
        if p.event == 1 and p.time <= H:
            return "died"
        if p.time < H and p.event == 0:
            return "cens"
        return "alive"

    sa, sb = status(a), status(b)
    if sa == "died" and sb == "died":
        return int(np.sign(a.time - b.time))
    if sa == "died":
        if sb == "alive" or (sb == "cens" and (rule == "alive" or b.time >= a.time)):
            return -1
        return 0
    if sb == "died":
        return -_pair(b, a, H, rule)
    if rule == "zero" and "cens" in (sa, sb):
        return 0
    return int(np.sign(a.change - b.change))


HAND = pd.DataFrame({
    "patient_id": ["A", "B", "C", "D", "E"],
    "arm": [1, 1, 0, 0, 1],
    "time": [4.0, 12.0, 8.0, 12.0, 6.0],
    "event": [1, 0, 1, 0, 0],
    "change": [np.nan, -5.0, np.nan, -8.0, -2.0],
})


def test_hand_computed_example():
    # A died at 4, C died at 8; B and D alive at 12 (changes -5, -8);
    # E censored alive at 6 (last change -2).
    # A: loses to C (later death), B, D, E (E censored at 6 >= 4)      -> -4
    # C: beats A; loses to B, D; vs E: E censored at 6 < 8: undecidable -> -1
    # B: beats A, C; beats D (-5 > -8); loses to E (-2 > -5)            -> +2
    # D: beats A, C; loses to B and E                                   ->  0
    # E: beats A (censored after A died), 0 vs C, beats B and D         -> +3
    r = cafs(HAND, horizon_months=12)
    expected = {"A": -4, "B": 2, "C": -1, "D": 0, "E": 3}
    assert r.scores["score"].to_dict() == expected
    assert r.scores["rank"].to_dict() == {"A": 1.0, "B": 4.0, "C": 2.0, "D": 3.0, "E": 5.0}
    # treated A, B, E vs control C, D: A loses 2, B wins 2, E wins 1 (0 vs C)
    t = r.test.iloc[0]
    assert (t["wins_treatment"], t["wins_control"], t["ties"]) == (3, 2, 1)
    # Finkelstein-Schoenfeld by hand: T = -4 + 2 + 3 = 1, V = 3*2/(5*4) * (16+4+1+0+9)
    assert t["score_sum_treatment"] == 1
    assert t["variance"] == pytest.approx(0.3 * 30)
    assert t["statistic"] == pytest.approx(1 / np.sqrt(9))
    assert t["p_value"] == pytest.approx(2 * stats.norm.sf(1 / 3))
    assert t["mean_rank_treatment"] == pytest.approx(10 / 3)
    # rule "alive": E wins against C too
    assert cafs(HAND, horizon_months=12, censored="alive").scores.loc["E", "score"] == 4


@pytest.mark.parametrize("rule", ["gehan", "alive", "zero"])
def test_matches_pair_by_pair_and_group_sums(rule):
    rng = np.random.default_rng(3)
    n = 120
    df = pd.DataFrame({
        "patient_id": [f"P{i}" for i in range(n)],
        "arm": rng.integers(0, 2, n),
        "time": np.round(rng.uniform(0, 16, n), 0),  # whole months: many tied times
        "event": rng.integers(0, 2, n),
        "change": np.round(rng.normal(-8, 4, n)),  # whole points: many tied changes
    }).set_index("patient_id")
    r = cafs(df, horizon_months=12, censored=rule)
    brute = _brute(df, 12, rule)
    assert r.scores["score"].to_dict() == brute
    assert r.scores["score"].sum() == 0
    # a group's score sum = its wins minus its losses against the other group, pair by pair
    rows = list(df.itertuples())
    wl = sum(_pair(a, b, 12, rule) for a in rows if a.arm == 1 for b in rows if b.arm == 0)
    assert r.scores.loc[df["arm"] == 1, "score"].sum() == wl
    t = r.test.iloc[0]
    assert t["wins_treatment"] - t["wins_control"] == wl


def test_ties_tolerance():
    df = HAND.copy()
    df.loc[3, "change"] = -5.4  # D within 0.5 of B
    r0 = cafs(df, horizon_months=12)
    r1 = cafs(df, horizon_months=12, change_tie=0.5)
    assert r0.scores.loc["B", "score"] == 2 and r1.scores.loc["B", "score"] == 1


def test_rank_ancova_and_contract(tmp_path):
    rng = np.random.default_rng(5)
    n = 200
    df = pd.DataFrame({"patient_id": range(n), "arm": np.repeat([0, 1], n // 2),
                       "time": rng.uniform(3, 15, n), "event": rng.integers(0, 2, n),
                       "change": rng.normal(-8, 4, n), "age": rng.normal(65, 10, n)})
    df.loc[df.arm == 1, "change"] += 3
    r = cafs(df, test="rank_ancova", covariates=["age"])
    assert r.kind == "cafs"
    assert r.test["test"].iloc[0] == "rank_ancova"
    assert r.p_value < 0.05 and r.test["rank_difference"].iloc[0] > 0
    assert "CAFS" in str(r)
    d = r.diagnostics()
    assert bool(d.loc["score_sum", "passed"])
    back = type(r)._from_payload(r._to_payload())
    pd.testing.assert_frame_equal(back.scores, r.scores)


def test_bad_input_lists_problems():
    df = HAND.copy()
    df.loc[1, "change"] = np.nan  # alive without a change
    df.loc[0, "event"] = 2
    with pytest.raises(ValidationError) as e:
        cafs(df)
    assert len(e.value.problems) == 2
    with pytest.raises(ValidationError):
        cafs(HAND.assign(arm=[0, 1, 2, 0, 1]))


def test_frame_from_cohort():
    cohort = alsfrs.simulate_cohort(200, seed=4)
    frame = cafs_frame(cohort, group="antidepressant", horizon_months=12)
    assert frame.index.is_unique and len(frame) == cohort.patients.shape[0]
    assert (frame["last_visit"] <= 12).all()
    r = cafs(frame, group="antidepressant", horizon_months=12)
    assert len(r.scores) == len(frame)
    assert np.isfinite(r.p_value)
