"""Every notebook in notebooks/ runs top to bottom without error, and every cell that
ends in a figure shows it as an image (not as ``<Figure size ...>`` text)."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ should hold the worked examples"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    # as a user runs it: no MPLBACKEND (Jupyter's inline backend), no thread variables
    # (the library limits BLAS threads itself)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    missing = [c.source for c in nb.cells if c.cell_type == "code" and ends_in_figure(c.source)
               and not any("image/png" in o.get("data", {}) for o in c.get("outputs", []))]
    assert not missing, f"figure cells without an image output: {missing}"


#: Calls whose value is a figure: alsfrs's plots, power curves, and matplotlib figures.
FIGURE_CALLS = ("_plot", "plot_", "power_curve", "figure", "curve_plot")


def ends_in_figure(source: str) -> bool:
    """Whether a cell's last statement is a call that returns a figure."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    if not body or not isinstance(body[-1], ast.Expr) or not isinstance(body[-1].value, ast.Call):
        return False
    func = body[-1].value.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return any(k in name for k in FIGURE_CALLS)


def test_figure_cells_are_recognised():
    assert ends_in_figure("plots.forest_plot(fits)")
    assert ends_in_figure("x = 1\nplots.ppc_plot(bayes)")
    assert not ends_in_figure("fig = plots.ppc_plot(bayes)")
    assert not ends_in_figure("lmm.exposure_effects()")
