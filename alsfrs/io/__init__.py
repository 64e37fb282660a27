"""Readers: the alsfrs long format, patient tables, dispensings and PRO-ACT tables.

Readers check each table on its own and know nothing of models nor of the
:class:`~alsfrs.Cohort`; :func:`alsfrs.read_proact` (which returns a Cohort) is
built on :func:`read_proact_tables`.
"""

from alsfrs.io._table import ALIASES, EXCLUSION_COLUMNS, Table, read_columns
from alsfrs.io.dispensings import read_dispensings
from alsfrs.io.patients import read_patients
from alsfrs.io.proact import ProactTables, read_proact_tables
from alsfrs.io.visits import read_visits

__all__ = [
    "ALIASES",
    "EXCLUSION_COLUMNS",
    "ProactTables",
    "Table",
    "read_columns",
    "read_dispensings",
    "read_patients",
    "read_proact_tables",
    "read_visits",
]
