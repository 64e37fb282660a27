import numpy as np
import pandas as pd

from alsfrs.instrument import (
    DOMAINS,
    ITEM_COLUMNS,
    ITEM_NAMES,
    ITEMS,
    domain_scores,
    kings_stage,
    merge_item5,
    mitos_stage,
    total_score,
)


def test_twelve_items_four_domains_of_three():
    assert len(ITEMS) == 12
    assert [i.number for i in ITEMS] == [str(k) for k in range(1, 13)]
    assert list(DOMAINS) == ["bulbar", "fine_motor", "gross_motor", "respiratory"]
    assert all(len(v) == 3 for v in DOMAINS.values())
    assert DOMAINS["bulbar"] == ("speech", "salivation", "swallowing")
    assert DOMAINS["respiratory"] == ("dyspnea", "orthopnea", "respiratory_insufficiency")
    assert len(ITEM_COLUMNS) == 13  # item 5 in two forms


def _row(**over):
    base = {c: 4.0 for c in ITEM_COLUMNS}
    base["cutting_food_gastrostomy"] = np.nan
    base.update(over)
    return pd.DataFrame([base])


def test_merge_item5_either_form():
    a = merge_item5(_row(cutting_food=2.0))
    assert a["cutting"].iloc[0] == 2 and not a["gastrostomy"].iloc[0]
    b = merge_item5(_row(cutting_food=np.nan, cutting_food_gastrostomy=1.0))
    assert b["cutting"].iloc[0] == 1 and b["gastrostomy"].iloc[0]
    assert list(a.columns[:6]) == list(ITEM_NAMES[:6])


def test_total_and_domains_from_items():
    items = merge_item5(_row(speech=1.0, walking=0.0, dyspnea=3.0))
    assert total_score(items).iloc[0] == 48 - 3 - 4 - 1
    d = domain_scores(items).iloc[0]
    assert d.to_dict() == {"bulbar": 9, "fine_motor": 12, "gross_motor": 8, "respiratory": 11}


def test_staging():
    healthy = merge_item5(_row())
    assert kings_stage(healthy).iloc[0] == "0" and mitos_stage(healthy).iloc[0] == 0
    three = merge_item5(_row(speech=3.0, handwriting=3.0, walking=3.0))
    assert kings_stage(three).iloc[0] == "3"
    peg = merge_item5(_row(cutting_food=np.nan, cutting_food_gastrostomy=2.0, swallowing=1.0))
    assert kings_stage(peg).iloc[0] == "4A"
    resp = merge_item5(_row(respiratory_insufficiency=3.0))
    assert kings_stage(resp).iloc[0] == "4B"
    lost = merge_item5(_row(walking=1.0, swallowing=1.0, speech=1.0, handwriting=0.0,
                            dyspnea=1.0))
    assert mitos_stage(lost).iloc[0] == 4
