"""Reporting: tables, plots and the HTML report."""
