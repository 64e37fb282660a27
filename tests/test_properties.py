"""Property-based: malformed input either loads or raises ValidationError, nothing else."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alsfrs import Cohort, ValidationError, read_dispensings, read_patients, read_visits
from alsfrs.instrument import ITEM_COLUMNS

ANY_VALUE = st.one_of(
    st.none(),
    st.integers(-10, 60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.sampled_from(["", " ", "NA", "4", "2.0", "2019-01-01", "P1", "nan", "1e400",
                     "0001-01-01", "2019-02-30", "-1"]),
    st.booleans(),
)
VISIT_COLS = ["patient_id", "months_since_diagnosis", "visit_date", *ITEM_COLUMNS, "alsfrs_r",
              "breathing", "extra"]
PATIENT_COLS = ["patient_id", "diagnostic_delay_months", "onset_date", "diagnosis_date",
                "age_at_dx", "sex", "onset_site", "death_imv", "months_to_death_imv"]


@st.composite
def frames(draw, columns):
    cols = draw(st.lists(st.sampled_from(columns), unique=True, max_size=len(columns)))
    n = draw(st.integers(0, 5))
    data = {c: [draw(ANY_VALUE) for _ in range(n)] for c in cols}
    return pd.DataFrame(data, columns=cols)


@st.composite
def damaged_valid_visits(draw):
    rows = []
    for k in range(draw(st.integers(1, 4))):
        items = dict.fromkeys(ITEM_COLUMNS, 4)
        items["cutting_food_gastrostomy"] = np.nan
        rows.append({"patient_id": draw(st.sampled_from(["A", "B"])),
                     "months_since_diagnosis": float(k), **items, "alsfrs_r": 48})
    frame = pd.DataFrame(rows).astype(object)
    for _ in range(draw(st.integers(0, 4))):
        r = draw(st.integers(0, len(frame) - 1))
        c = draw(st.sampled_from(list(frame.columns)))
        frame.loc[r, c] = draw(ANY_VALUE)
    return frame


SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(frames(VISIT_COLS), st.sampled_from(["raise", "exclude"]))
def test_visits_load_or_raise_validation_error(frame, errors):
    try:
        t = read_visits(frame, errors=errors)
    except ValidationError as e:
        assert e.problems and all(p.rule and p.message for p in e.problems)
        return
    assert len(t.data) + len(t.exclusions) == len(frame)
    assert not t.data["alsfrs_r"].isna().any()


@SETTINGS
@given(damaged_valid_visits(), st.sampled_from(["raise", "exclude"]))
def test_damaged_visits_through_cohort(frame, errors):
    patients = pd.DataFrame({"patient_id": ["A", "B"], "diagnostic_delay_months": [5.0, 8.0]})
    try:
        c = Cohort(frame, patients, errors=errors)
    except ValidationError as e:
        assert e.problems
        return
    acct = c.row_accounting()
    assert (acct["read"] == acct["used"] + acct["excluded"]).all()
    assert not c.to_frame()[["months", "alsfrs_r"]].isna().any().any()


@SETTINGS
@given(frames(PATIENT_COLS))
def test_patients_load_or_raise_validation_error(frame):
    try:
        read_patients(frame)
    except ValidationError as e:
        assert e.problems


@SETTINGS
@given(frames(["patient_id", "months_since_diagnosis", "dispensing_date", "atc", "ddd"]))
def test_dispensings_load_or_raise_validation_error(frame):
    try:
        read_dispensings(frame)
    except ValidationError as e:
        assert e.problems


@st.composite
def csv_with_blank_lines(draw):
    n = draw(st.integers(1, 6))
    bad = draw(st.integers(0, n - 1))
    rows = [f"P{k},{k}.0,{60 if k == bad else 40},"
            + draw(st.sampled_from(['x', '"multi\nline"', '"a,b"', ""])) for k in range(n)]
    out, line, bad_line = ["patient_id,months_since_diagnosis,alsfrs_r,note"], 1, None
    for k, r in enumerate(rows):
        for _ in range(draw(st.integers(0, 2))):
            out.append("")
            line += 1
        line += 1
        if k == bad:
            bad_line = line
        line += r.count("\n")
        out.append(r)
    return "\n".join(out) + "\n", bad_line


@SETTINGS
@given(csv_with_blank_lines())
def test_reported_line_is_the_physical_line(tmp_path_factory, case):
    text, bad_line = case
    path = tmp_path_factory.mktemp("csv") / "v.csv"
    path.write_text(text)
    t = read_visits(path, errors="exclude")
    assert t.n_input_rows == text.count("P")
    lines = text.split("\n")
    for row, pid in zip(t.data["source_row"], t.data["patient_id"], strict=True):
        assert lines[row - 1].startswith(pid + ",")
    assert t.exclusions["row"].tolist() == [bad_line]
