"""Readers: the canonical formats, column mappings, and every kind of bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alsfrs
from alsfrs import ValidationError, read_dispensings, read_patients, read_visits
from alsfrs.instrument import ITEM_COLUMNS


def visits_frame() -> pd.DataFrame:
    rows = []
    for pid, month, loss in (("A", 0.0, 0), ("A", 3.0, 2), ("B", 0.5, 5)):
        items = {c: 4 for c in ITEM_COLUMNS}
        items["cutting_food_gastrostomy"] = np.nan
        items["speech"] -= min(loss, 4)
        items["walking"] -= max(0, loss - 4)
        rows.append({"patient_id": pid, "months_since_diagnosis": month, **items,
                     "alsfrs_r": 48 - loss})
    return pd.DataFrame(rows)


def patients_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "patient_id": ["A", "B"],
        "diagnostic_delay_months": [10.0, 6.5],
        "age_at_dx": [61.0, 70.2],
        "sex": ["M", "female"],
        "onset_site": ["spinal", "Onset: Bulbar"],
        "death_imv": [0, 1],
        "months_to_death_imv": [12.0, 8.0],
    })


def test_valid_visits_frame():
    t = read_visits(visits_frame())
    assert len(t) == 3 and t.n_input_rows == 3 and t.exclusions.empty
    assert t.meta["time"] == "months_since_diagnosis"
    assert t.data["alsfrs_r"].tolist() == [48, 46, 43]


def test_total_only_and_items_only():
    v = visits_frame()
    only_total = v[["patient_id", "months_since_diagnosis", "alsfrs_r"]]
    assert read_visits(only_total).data["alsfrs_r"].tolist() == [48, 46, 43]
    only_items = v.drop(columns="alsfrs_r")
    assert read_visits(only_items).data["alsfrs_r"].tolist() == [48, 46, 43]


def test_column_mapping_and_messages_use_user_names():
    v = visits_frame().rename(columns={"patient_id": "id", "walking": "Q8", "alsfrs_r": "total"})
    t = read_visits(v, columns={"id": "patient_id", "Q8": "walking", "total": "alsfrs_r"})
    assert len(t) == 3
    v.loc[1, "Q8"] = 7
    with pytest.raises(ValidationError) as e:
        read_visits(v, columns={"id": "patient_id", "Q8": "walking", "total": "alsfrs_r"})
    assert "column 'Q8'" in str(e.value)


def test_csv_rows_are_reported_by_line_number(write_csv):
    v = visits_frame()
    v.loc[2, "salivation"] = 9
    path = write_csv(v, "visits.csv")
    with pytest.raises(ValidationError) as e:
        read_visits(path)
    p = e.value.problems[0]
    assert (p.source, p.row, p.patient, p.column, p.rule) == (
        "visits.csv", 4, "B", "salivation", "item_range")
    assert "visits.csv, line 4, patient B, column 'salivation'" in str(e.value)


def _set(col, row, value):
    def f(v):
        v[col] = v[col].astype(object)
        v.loc[row, col] = value
        return v
    return f


BAD_VISITS = [
    ("item above 4", _set("walking", 0, 5), "item_range", "walking"),
    ("negative item", _set("speech", 1, -1), "item_range", "speech"),
    ("fractional item", _set("dyspnea", 2, 2.5), "item_not_integer", "dyspnea"),
    ("text in an item", _set("orthopnea", 0, "four"), "item_not_numeric", "orthopnea"),
    ("both forms of item 5", _set("cutting_food_gastrostomy", 0, 3), "item5_both_forms",
     "cutting_food_gastrostomy"),
    ("total disagrees with items", _set("alsfrs_r", 1, 40), "total_mismatch", "alsfrs_r"),
    ("total above 48", lambda v: v.drop(columns=list(ITEM_COLUMNS)).assign(alsfrs_r=[48, 49, 3]),
     "total_range", "alsfrs_r"),
    ("fractional total", lambda v: v.drop(columns=list(ITEM_COLUMNS)).assign(
        alsfrs_r=[48, 40.5, 3]), "total_not_integer", "alsfrs_r"),
    ("missing patient id", _set("patient_id", 1, None), "patient_id_missing", "patient_id"),
    ("missing time", _set("months_since_diagnosis", 2, None), "time_missing",
     "months_since_diagnosis"),
    ("text time", _set("months_since_diagnosis", 2, "soon"), "time_not_numeric",
     "months_since_diagnosis"),
    ("infinite time", _set("months_since_diagnosis", 0, np.inf), "time_not_finite",
     "months_since_diagnosis"),
    ("conflicting duplicate visit", lambda v: pd.concat(
        [v, v.iloc[[1]].assign(speech=1, alsfrs_r=45)], ignore_index=True),
     "conflicting_visits", "months_since_diagnosis"),
    ("no patient_id column", lambda v: v.drop(columns="patient_id"), "missing_column", None),
    ("no time column", lambda v: v.drop(columns="months_since_diagnosis"), "missing_column",
     None),
    ("no scores at all", lambda v: v[["patient_id", "months_since_diagnosis"]],
     "missing_column", None),
    ("original ALSFRS", lambda v: v.drop(columns=["dyspnea", "orthopnea",
                                                  "respiratory_insufficiency", "alsfrs_r"])
     .assign(breathing=4), "original_alsfrs", "breathing"),
]


@pytest.mark.parametrize(("label", "damage", "rule", "column"), BAD_VISITS,
                         ids=[b[0] for b in BAD_VISITS])
def test_bad_visits_named(label, damage, rule, column):
    v = damage(visits_frame())
    with pytest.raises(ValidationError) as e:
        read_visits(v)
    rules = [p.rule for p in e.value.problems]
    assert rule in rules, (label, str(e.value))
    p = e.value.problems[rules.index(rule)]
    assert p.column == column
    assert isinstance(e.value, ValueError)


def test_every_problem_is_listed_not_only_the_first():
    v = visits_frame()
    v.loc[0, "walking"] = 5
    v.loc[1, "speech"] = 9
    v.loc[2, "dyspnea"] = -2
    with pytest.raises(ValidationError) as e:
        read_visits(v)
    assert sorted(p.row for p in e.value.problems) == [0, 1, 2]
    assert e.value.to_frame().shape[0] == 3


def test_exclude_mode_keeps_the_accounting():
    v = visits_frame()
    v.loc[0, "walking"] = 5
    extra = pd.DataFrame({"patient_id": ["C", "C"], "months_since_diagnosis": [1.0, 2.0]})
    v = pd.concat([v, extra], ignore_index=True)
    v.loc[4, "speech"] = 3  # partial items, no total
    t = read_visits(v, errors="exclude")
    assert t.n_input_rows == 5 == len(t.data) + len(t.exclusions)
    assert dict(zip(t.exclusions["row"], t.exclusions["rule"], strict=True)) == {
        0: "item_range", 3: "no_score", 4: "incomplete_items"}


def test_exact_duplicate_visit_is_excluded_not_an_error():
    v = pd.concat([visits_frame(), visits_frame().iloc[[1]]], ignore_index=True)
    t = read_visits(v)
    assert len(t) == 3
    assert t.exclusions["rule"].tolist() == ["duplicate_visit"]
    assert "row 1" in t.exclusions["reason"].iloc[0]


def test_bad_source_and_missing_file(tmp_path):
    with pytest.raises(ValidationError, match="no such file"):
        read_visits(tmp_path / "nope.csv")
    with pytest.raises(ValidationError, match="not list"):
        read_visits([1, 2, 3])


def test_mapping_errors():
    with pytest.raises(ValidationError, match="does not have"):
        read_visits(visits_frame(), columns={"nope": "patient_id"})
    with pytest.raises(ValidationError, match="several columns are mapped"):
        read_visits(visits_frame(), columns={"speech": "walking", "salivation": "walking"})


def test_patients_reader_normalises_and_checks():
    t = read_patients(patients_frame())
    d = t.data.set_index("patient_id")
    assert d.loc["B", "sex"] == "F" and d.loc["B", "onset_site"] == "bulbar"
    assert list(d["onset_site"].cat.categories) == ["spinal", "bulbar", "other"]
    bad = patients_frame()
    bad.loc[0, "sex"] = "X"
    bad.loc[1, "diagnostic_delay_months"] = -3
    bad.loc[1, "age_at_dx"] = 150
    with pytest.raises(ValidationError) as e:
        read_patients(bad)
    assert {p.rule for p in e.value.problems} == {"sex_invalid", "onset_after_diagnosis",
                                                  "age_range"}


def test_patients_need_event_time():
    with pytest.raises(ValidationError, match="needs the time of the event"):
        read_patients(patients_frame().drop(columns="months_to_death_imv"))


def test_patient_duplicates():
    p = pd.concat([patients_frame(), patients_frame().iloc[[0]]], ignore_index=True)
    assert read_patients(p).exclusions["rule"].tolist() == ["duplicate_patient"]
    p.loc[2, "age_at_dx"] = 30
    with pytest.raises(ValidationError, match="several rows with different values"):
        read_patients(p)


def test_dispensings_reader():
    d = pd.DataFrame({"patient_id": ["A", "A", "B"], "months_since_diagnosis": [-20, -13, -2],
                      "atc": ["n06ab06", "N05 CF01", "N06AX11"]})
    t = read_dispensings(d)
    assert t.data["atc"].tolist() == ["N06AB06", "N05CF01", "N06AX11"]
    d.loc[1, "atc"] = "N6AB06"
    d.loc[2, "atc"] = None
    with pytest.raises(ValidationError) as e:
        read_dispensings(d)
    assert [p.rule for p in e.value.problems] == ["atc_malformed", "atc_missing"]
    assert "'N6AB06' is not a WHO ATC code" in str(e.value)


def test_validation_error_is_one_family():
    assert issubclass(alsfrs.ValidationError, ValueError)


# -- issue 8: faults found by a new user ---------------------------------------------
def _dated_visits(tables):
    v, p, _, _ = tables
    return v, p


def test_line_numbers_are_physical_after_blank_lines_and_multiline_fields(tmp_path):
    """Fault 3: the reported line is the file's own line, not pandas' count."""
    v = visits_frame().assign(note=["plain", "two\nlines", "x"])
    v.loc[2, "salivation"] = 9
    text = v.to_csv(index=False, lineterminator="\n")
    lines = text.splitlines(keepends=True)
    # a blank line after the first record, and one at the very end
    text = "".join([*lines[:2], "\n", *lines[2:], "\n"])
    path = tmp_path / "visits.csv"
    path.write_text(text)
    physical = next(i for i, ln in enumerate(text.splitlines(), start=1) if ln.startswith("B,"))
    with pytest.raises(ValidationError) as e:
        read_visits(path)
    assert [p.row for p in e.value.problems] == [physical] == [6]
    t = read_visits(path, errors="exclude")
    assert t.exclusions["row"].tolist() == [6]
    assert t.data["source_row"].tolist() == [2, 4]
    assert t.data["note"].tolist() == ["plain", "two\nlines"]


def test_semicolon_file_is_read_with_a_note(tmp_path):
    """Fault 4: a semicolon-separated file is detected (or the user is told)."""
    path = tmp_path / "visits.csv"
    visits_frame().to_csv(path, sep=";", index=False)
    t = read_visits(path)
    assert len(t) == 3 and t.data["alsfrs_r"].tolist() == [48, 46, 43]
    assert any("semicolon" in n for n in t.notes)
    assert len(read_visits(path, sep=";")) == 3
    with pytest.raises(ValidationError) as e:
        read_visits(path, sep=",")
    assert "looks semicolon-separated: pass sep=';'" in str(e.value)


def test_day_first_dates_grouped_with_a_suggestion(tables, tmp_path):
    """Fault 5: one grouped message per column and rule, all problems kept."""
    v, _ = _dated_visits(tables)
    iso = pd.to_datetime(v["visit_date"])
    v["visit_date"] = iso.dt.strftime("%d/%m/%Y")
    path = tmp_path / "visits.csv"
    v.to_csv(path, index=False)
    with pytest.raises(ValidationError) as e:
        read_visits(path)
    err = e.value
    assert len(err.problems) == len(v)  # every row still accessible
    assert {p.rule for p in err.problems} == {"date_invalid"}
    msg = str(err)
    assert f"{len(v)} rows" in msg and "lines 2, 3, 4" in msg
    assert "dayfirst=True" in msg and "--date-format %d/%m/%Y" in msg
    assert len(msg.splitlines()) < 5
    assert len(read_visits(path, dayfirst=True)) == len(v)
    t = read_visits(path, date_format="%d/%m/%Y")
    assert (t.data["visit_date"] == iso).all()


def test_grouping_keeps_single_problems_individual():
    v = visits_frame()
    v.loc[0, "walking"] = 5
    v.loc[1, "walking"] = 7
    v.loc[2, "speech"] = 9
    with pytest.raises(ValidationError) as e:
        read_visits(v)
    msg = str(e.value)
    assert "2 rows" in msg and "column 'walking'" in msg
    assert "row 2, patient B, column 'speech'" in msg


def test_aliases_of_canonical_names_are_recognised():
    """Fault 6: ALSFRS_R_total is the total, not an unused extra."""
    v = visits_frame().rename(columns={"alsfrs_r": "ALSFRS_R_total", "patient_id": "subject_id"})
    v = v.drop(columns=list(ITEM_COLUMNS))
    t = read_visits(v)
    assert t.data["alsfrs_r"].tolist() == [48, 46, 43]
    assert "ALSFRS_R_total" not in t.data.columns
    assert any("'ALSFRS_R_total'" in n and "alsfrs_r" in n for n in t.notes)
    v.loc[1, "ALSFRS_R_total"] = 50
    with pytest.raises(ValidationError) as e:
        read_visits(v)
    assert e.value.problems[0].column == "ALSFRS_R_total"
    spelled = visits_frame().rename(columns={"alsfrs_r": "ALSFRS-R", "patient_id": "Patient ID"})
    assert read_visits(spelled).data["alsfrs_r"].tolist() == [48, 46, 43]
    # an alias never changes which time column is used
    dated = visits_frame().assign(date="2020-01-01")
    t = read_visits(dated)
    assert t.meta["time"] == "months_since_diagnosis" and "date" in t.data
    assert any("'date' is not read as 'visit_date'" in n for n in t.notes)
    # the original ALSFRS total is not an alias of the ALSFRS-R total
    orig = visits_frame().drop(columns=list(ITEM_COLUMNS)).rename(
        columns={"alsfrs_r": "ALSFRS_Total"})
    with pytest.raises(ValidationError, match="original ALSFRS"):
        read_visits(orig)


def test_near_miss_column_names_warn():
    v = visits_frame().drop(columns=["speech"]).assign(speach=4)
    v = v.drop(columns=[c for c in ITEM_COLUMNS if c != "speech"], errors="ignore")
    with pytest.warns(alsfrs.InputWarning, match="did you mean 'speech'"):
        t = read_visits(v)
    assert any("speach" in n and "speech" in n for n in t.notes)


def test_blank_item_with_a_total_is_reported():
    """Fault 6: a total next to incomplete items cannot be verified."""
    v = visits_frame()
    v["walking"] = v["walking"].astype(object)
    v.loc[0, "walking"] = None  # other 11 items sum to 44, total 48: could be right
    t = read_visits(v)
    assert t.exclusions["rule"].tolist() == ["total_unverifiable"]
    assert "walking" in t.exclusions["reason"].iloc[0]
    v.loc[1, "walking"] = None
    v.loc[1, "alsfrs_r"] = 40  # the 11 scored items already sum to 42 > 40: wrong
    with pytest.raises(ValidationError) as e:
        read_visits(v)
    assert [p.rule for p in e.value.problems] == ["total_mismatch"]


def test_onset_is_optional():
    """Fault 7: no onset column, or a blank onset, is not an error."""
    p = patients_frame().drop(columns="diagnostic_delay_months")
    t = read_patients(p)
    assert t.data["diagnostic_delay_months"].isna().all()
    p = patients_frame()
    p.loc[1, "diagnostic_delay_months"] = None
    t = read_patients(p)
    assert t.exclusions.empty
    assert any("1 patient" in n and "onset" in n for n in t.notes)


def test_reader_options_on_every_reader(tmp_path):
    p = patients_frame().rename(columns={"patient_id": "pid"})
    p.to_csv(tmp_path / "p.csv", sep="|", index=False)
    t = read_patients(tmp_path / "p.csv", sep="|", columns={"pid": "patient_id"})
    assert len(t) == 2
    d = pd.DataFrame({"patient_id": ["A"], "dispensing_date": ["03.02.2019"], "atc": ["N06AB06"]})
    d.to_csv(tmp_path / "d.csv", sep=";", index=False)
    t = read_dispensings(tmp_path / "d.csv", sep=";", date_format="%d.%m.%Y")
    assert t.data["dispensing_date"].iloc[0] == pd.Timestamp("2019-02-03")


def test_non_utf8_file_is_named(tmp_path):
    path = tmp_path / "visits.csv"
    path.write_bytes("patient_id,months_since_diagnosis,alsfrs_r\nÅsa,0,40\n".encode("latin-1"))
    with pytest.raises(ValidationError, match="not UTF-8 text"):
        read_visits(path)


def test_a_preamble_before_the_header_is_named(tmp_path):
    """Fault 3: a header not on the first non-blank line is not supported, and said so."""
    path = tmp_path / "visits.csv"
    path.write_text("Registry export 2024\n" + visits_frame().to_csv(index=False))
    with pytest.raises(ValidationError) as e:
        read_visits(path)
    assert "lines before the header are not supported" in str(e.value)
    assert e.value.problems[0].row == 2  # the real header, read as a row, on line 2
