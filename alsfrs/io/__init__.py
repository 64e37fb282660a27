"""Readers: the alsfrs long format, patient tables, dispensings and PRO-ACT."""

from alsfrs.io._table import EXCLUSION_COLUMNS, Table
from alsfrs.io.dispensings import read_dispensings
from alsfrs.io.patients import read_patients
from alsfrs.io.proact import read_proact
from alsfrs.io.visits import read_visits

__all__ = [
    "EXCLUSION_COLUMNS",
    "Table",
    "read_dispensings",
    "read_patients",
    "read_proact",
    "read_visits",
]
