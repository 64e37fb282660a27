"""Figures that display themselves in Jupyter.

Every plot in alsfrs returns a :class:`NotebookFigure`: an ordinary matplotlib
:class:`~matplotlib.figure.Figure` (restyle it, ``savefig`` it, add axes) that
also knows how to show itself as a PNG when it is the value of a notebook cell,
with or without ``%matplotlib inline`` and without pyplot. It is not registered
with pyplot, so it never appears twice and never leaks memory in a loop.
"""

from __future__ import annotations

import io
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["NotebookFigure", "new_figure", "png_bytes"]


class NotebookFigure(Figure):
    """A matplotlib Figure with a PNG representation for IPython's display system."""

    def _repr_png_(self) -> bytes:
        return png_bytes(self, dpi=100)

    def __repr__(self) -> str:  # the text/plain fallback stays the familiar one
        return Figure.__repr__(self)


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """Render a figure to PNG bytes (tight bounding box)."""
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def new_figure(figsize: tuple[float, float] = (6.5, 4.0), **kw: Any) -> NotebookFigure:
    """A new figure with an Agg canvas, independent of pyplot's state."""
    fig = NotebookFigure(figsize=figsize, **kw)
    FigureCanvasAgg(fig)
    return fig
