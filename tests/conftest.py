"""Shared fixtures: small simulated tables in the canonical formats."""

from __future__ import annotations

import os

# one BLAS thread per process: the suite runs on 2 cores
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

from alsfrs.simulate import simulate_tables

DATA = os.path.join(os.path.dirname(__file__), "data")


@pytest.fixture(scope="session")
def small_tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """60 simulated patients: visits, patients, dispensings (DataFrames) and truth."""
    return simulate_tables(60, seed=11)


@pytest.fixture
def tables(small_tables):
    """Fresh copies that a test may damage."""
    v, p, d, t = small_tables
    return v.copy(), p.copy(), d.copy(), t


@pytest.fixture
def write_csv(tmp_path):
    def _write(frame: pd.DataFrame, name: str) -> str:
        path = tmp_path / name
        frame.to_csv(path, index=False)
        return str(path)

    return _write
