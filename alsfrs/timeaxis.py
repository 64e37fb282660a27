"""Time units shared by every module.

Months are average Gregorian months: 365.25 / 12 = 30.4375 days. Every
conversion between days and months in alsfrs uses this one constant, so a
visit 365 days after diagnosis is at 11.99 months and one 365.25 days after at
exactly 12 months.
"""

from __future__ import annotations

DAYS_PER_YEAR = 365.25
MONTHS_PER_YEAR = 12
DAYS_PER_MONTH = DAYS_PER_YEAR / MONTHS_PER_YEAR  # 30.4375

__all__ = ["DAYS_PER_MONTH", "DAYS_PER_YEAR", "MONTHS_PER_YEAR"]
