"""Renderers per result type: how each kind of result appears in the report.

The HTML report knows nothing of engines. For every result it asks the
registry for that type's renderer, which returns plain building blocks — key
findings in words, and sections of paragraphs, tables and figures — and the
report lays them out. A new model adds a renderer here (in its own module,
decorated with :func:`register_renderer`), never a branch in the report.

A renderer is any object with two methods::

    key_findings(name, result, ctx) -> list[str]
    sections(name, result, ctx) -> list[Section]

``ctx`` is a :class:`ReportContext` (the cohort's truth, whether identifiers may
be shown, the interval level).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

__all__ = [
    "PARTS",
    "FigureBlock",
    "Paragraph",
    "Renderer",
    "ReportContext",
    "Section",
    "TableBlock",
    "register_renderer",
    "renderer_for",
]


@dataclass
class Paragraph:
    """A paragraph of plain text (escaped when rendered)."""

    text: str


@dataclass
class TableBlock:
    """A table: raw numbers, rounded for display. ``details=True`` folds it
    behind a ``<details>`` element (the full numeric table behind a compact one)."""

    frame: pd.DataFrame
    caption: str = ""
    details: bool = False
    digits: int = 3
    index: bool = True


@dataclass
class FigureBlock:
    """A figure, or a callable returning one (called when the report is built;
    a failure is shown in the report as a failed figure, with its reason)."""

    figure: Any
    caption: str = ""


Block = Paragraph | TableBlock | FigureBlock


#: The parts of the report, in reading order. A section names the part it belongs to.
PARTS = ("effects", "models", "diagnostics", "figures")


@dataclass
class Section:
    """A titled part of the report; ``part`` is one of :data:`PARTS`."""

    title: str
    blocks: list[Block] = field(default_factory=list)
    part: str = "models"


@dataclass
class ReportContext:
    """What renderers may use besides the result itself."""

    truth: dict[str, Any] | None = None
    show_ids: bool = False
    level: float = 0.95
    cohort: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class Renderer(Protocol):
    """What the report needs from each result type."""

    def key_findings(self, name: str, result: Any, ctx: ReportContext) -> list[str]: ...

    def sections(self, name: str, result: Any, ctx: ReportContext) -> list[Section]: ...


_RENDERERS: dict[type, Renderer] = {}


def register_renderer(result_type: type) -> Callable[[type], type]:
    """Class decorator: register a renderer class for ``result_type`` (and subclasses)."""

    def deco(cls: type) -> type:
        _RENDERERS[result_type] = cls()
        return cls

    return deco


def renderer_for(result: Any) -> Renderer:
    """The renderer registered for the result's type (nearest in its class hierarchy)."""
    _load_builtin_renderers()
    for klass in type(result).__mro__:
        if klass in _RENDERERS:
            return _RENDERERS[klass]
    raise TypeError(f"no report renderer is registered for {type(result).__name__}; "
                    "register one with alsfrs.report.registry.register_renderer")


#: Renderer modules shipped with alsfrs, imported when the first report is built
#: (one line per result family; a user's own renderer registers itself on import).
_BUILTIN = ("alsfrs.report.longitudinal", "alsfrs.report.survival", "alsfrs.report.design",
            "alsfrs.report.joint")
_loaded = False


def _load_builtin_renderers() -> None:
    global _loaded
    if _loaded:
        return
    import importlib

    for mod in _BUILTIN:
        importlib.import_module(mod)
    _loaded = True
