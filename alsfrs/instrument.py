"""The ALSFRS-R instrument: items, domains, ranges, scoring and staging.

Cedarbaum et al., J Neurol Sci 1999;169:13-21: 12 items scored 4 (normal) to
0 (worst), total 0-48, in four domains of three items each (see
``shared/domain.md`` section 1). Item 5 has two forms, 5a (cutting food and
handling utensils, without gastrostomy) and 5b (with gastrostomy): exactly one
is scored at a visit.

The original ALSFRS (ACTS 1996; 10 items, 0-40, one "breathing" item instead of
R1-R3) is a different scale and is refused by the readers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "DOMAINS",
    "ITEMS",
    "ITEM_COLUMNS",
    "ITEM_NAMES",
    "MAX_ITEM",
    "MAX_TOTAL",
    "Item",
    "domain_scores",
    "kings_stage",
    "mitos_stage",
    "total_score",
]

MAX_ITEM = 4
MAX_TOTAL = 48


@dataclass(frozen=True)
class Item:
    """One ALSFRS-R item."""

    number: str
    name: str
    label: str
    domain: str


#: The 12 items in questionnaire order. Item 5 is represented by its analysis
#: column ``cutting`` (whichever form was scored); the two input forms are
#: ``cutting_food`` (5a) and ``cutting_food_gastrostomy`` (5b).
ITEMS: tuple[Item, ...] = (
    Item("1", "speech", "Speech", "bulbar"),
    Item("2", "salivation", "Salivation", "bulbar"),
    Item("3", "swallowing", "Swallowing", "bulbar"),
    Item("4", "handwriting", "Handwriting", "fine_motor"),
    Item("5", "cutting", "Cutting food and handling utensils", "fine_motor"),
    Item("6", "dressing_hygiene", "Dressing and hygiene", "fine_motor"),
    Item("7", "turning_in_bed", "Turning in bed and adjusting bed clothes", "gross_motor"),
    Item("8", "walking", "Walking", "gross_motor"),
    Item("9", "climbing_stairs", "Climbing stairs", "gross_motor"),
    Item("10", "dyspnea", "Dyspnea (R1)", "respiratory"),
    Item("11", "orthopnea", "Orthopnea (R2)", "respiratory"),
    Item("12", "respiratory_insufficiency", "Respiratory insufficiency (R3)", "respiratory"),
)

#: Analysis names of the 12 items, in order.
ITEM_NAMES: tuple[str, ...] = tuple(i.name for i in ITEMS)

#: Input forms of item 5.
ITEM5A = "cutting_food"
ITEM5B = "cutting_food_gastrostomy"

#: The 13 canonical input columns (12 items, item 5 in its two forms).
ITEM_COLUMNS: tuple[str, ...] = (
    "speech",
    "salivation",
    "swallowing",
    "handwriting",
    ITEM5A,
    ITEM5B,
    "dressing_hygiene",
    "turning_in_bed",
    "walking",
    "climbing_stairs",
    "dyspnea",
    "orthopnea",
    "respiratory_insufficiency",
)

#: Domains and their items (analysis names), each 0-12.
DOMAINS: dict[str, tuple[str, ...]] = {
    d: tuple(i.name for i in ITEMS if i.domain == d)
    for d in ("bulbar", "fine_motor", "gross_motor", "respiratory")
}

#: Column names that betray the original ALSFRS (10 items, 0-40).
ORIGINAL_ALSFRS_MARKERS = ("breathing", "respiratory", "q10_respiratory", "alsfrs_total")


def merge_item5(items: pd.DataFrame) -> pd.DataFrame:
    """Replace the two input forms of item 5 by ``cutting`` and ``gastrostomy``.

    Expects at most one of the two forms to be scored per row (the readers
    check this). ``gastrostomy`` is True where form 5b was scored.
    """
    out = items.copy()
    a = out.pop(ITEM5A) if ITEM5A in out else pd.Series(np.nan, index=out.index)
    b = out.pop(ITEM5B) if ITEM5B in out else pd.Series(np.nan, index=out.index)
    cutting = a.where(a.notna(), b)
    pos = list(out.columns).index("handwriting") + 1 if "handwriting" in out else len(out.columns)
    out.insert(pos, "cutting", cutting)
    out["gastrostomy"] = b.notna() & a.isna()
    return out


def total_score(items: pd.DataFrame) -> pd.Series:
    """ALSFRS-R total (0-48) from the 12 analysis item columns."""
    return items.loc[:, list(ITEM_NAMES)].sum(axis=1, min_count=len(ITEM_NAMES))


def domain_scores(items: pd.DataFrame) -> pd.DataFrame:
    """The four domain subscores (each 0-12) from the 12 analysis item columns."""
    return pd.DataFrame(
        {d: items.loc[:, list(cols)].sum(axis=1, min_count=3) for d, cols in DOMAINS.items()},
        index=items.index,
    )


def kings_stage(items: pd.DataFrame) -> pd.Series:
    """King's clinical stage estimated from ALSFRS-R items.

    Balendra et al., ALS Frontotemporal Degener 2014;15:279-284: the number of
    CNS regions involved (bulbar: any of items 1-3 below 4; upper limb: item 4
    or 5 below 4; lower limb: item 8 below 4), stage 4A with gastrostomy
    (item 5b scored), 4B with respiratory failure (item 10 at 0 or item 12
    below 4). Returned as strings ``"1" "2" "3" "4A" "4B"``; ``"0"`` where no
    region is involved.
    """
    bulbar = (items[["speech", "salivation", "swallowing"]] < 4).any(axis=1)
    upper = (items[["handwriting", "cutting"]] < 4).any(axis=1)
    lower = items["walking"] < 4
    n = bulbar.astype(int) + upper.astype(int) + lower.astype(int)
    stage = n.astype(str)
    gastro = items["gastrostomy"].astype(bool) if "gastrostomy" in items else False
    stage = stage.where(~gastro, "4A")
    resp = (items["dyspnea"] == 0) | (items["respiratory_insufficiency"] < 4)
    return stage.where(~resp, "4B")


def mitos_stage(items: pd.DataFrame) -> pd.Series:
    """MiToS stage (0-4): the number of functional domains lost.

    Chiò et al., JNNP 2015;86:38-44: walking/self-care (item 8 or item 6 at 1
    or below), swallowing (item 3 at 1 or below), communication (items 1 and 4
    at 1 or below), breathing (item 10 at 1 or below, or item 12 at 2 or
    below). Stage 5 (death) is not derivable from a visit.
    """
    move = (items["walking"] <= 1) | (items["dressing_hygiene"] <= 1)
    swallow = items["swallowing"] <= 1
    comm = (items["speech"] <= 1) & (items["handwriting"] <= 1)
    breath = (items["dyspnea"] <= 1) | (items["respiratory_insufficiency"] <= 2)
    return move.astype(int) + swallow.astype(int) + comm.astype(int) + breath.astype(int)
