"""The one contract every fitted result satisfies, and the registry of result types.

Every model alsfrs fits — mixed model, Bayesian slope model, Cox, Kaplan–Meier,
conditional logistic, joint model, trial design — returns a subclass of
:class:`Result`. The report, the plots, trial design and persistence use only
what is declared here, so a new result type adds a class (and a renderer in
:mod:`alsfrs.report.registry`), never a branch elsewhere.

What a result provides (lifelines' split between raw numbers and display):

``summary()``
    A DataFrame of raw numbers, one row per parameter or term; interval
    columns say their type and level (``ci_lower_95``, ``hdi_lower_95``).
``diagnostics()``
    A DataFrame indexed by ``check`` with ``value``, ``criterion`` (the rule
    in words), ``passed`` (bool) and ``note``: honest for every engine.
``model_spec``
    A :class:`ModelRecord`: formula, engine, settings, seed, versions.
``print_summary()`` / ``_repr_html_()`` / ``str()``
    One renderer (:func:`render_text`, :func:`render_html`) of the result's
    :class:`Display`, so the text and the HTML never disagree. Display rounds;
    ``summary()`` keeps raw values.
``save(path)``
    One zip of JSON, Parquet and netCDF, no pickle (:mod:`alsfrs.persist`);
    each type says what it stores through :meth:`Result._to_payload` and how
    it is rebuilt through :meth:`Result._from_payload`.
``exposure_effects(...)``
    Where meaningful (longitudinal models): the difference in decline per
    exposure. :func:`has_exposure_effects` tells whether a result has it.
"""

from __future__ import annotations

import abc
import functools
import html
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import IO, Any, ClassVar

import numpy as np
import pandas as pd

__all__ = [
    "DIAGNOSTIC_COLUMNS",
    "Display",
    "DisplayTable",
    "ModelRecord",
    "Payload",
    "Result",
    "diagnostics_frame",
    "has_exposure_effects",
    "render_html",
    "render_text",
    "result_type",
    "result_types",
    "versions",
]

#: Columns of every ``diagnostics()`` frame (index: ``check``).
DIAGNOSTIC_COLUMNS = ("value", "criterion", "passed", "note")

_PACKAGES = ("alsfrs", "numpy", "pandas", "scipy", "statsmodels", "formulaic", "pymc",
             "pytensor", "arviz", "matplotlib")


def versions(packages: Sequence[str] = _PACKAGES) -> dict[str, str]:
    """Versions of Python and of the packages a result depends on (installed ones only)."""
    return dict(_versions(tuple(packages)))


@functools.lru_cache(maxsize=8)
def _versions(packages: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    # looked up once per process: reading package metadata costs ~50 ms, which
    # dominated fits in loops (trial simulations fit thousands of models)
    out = [("python", platform.python_version())]
    for name in packages:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(out)


@dataclass(frozen=True)
class ModelRecord:
    """What was fitted and how: enough to refit it.

    Attributes
    ----------
    formula : str or dict
        The model formula (a dict of named formulas for multi-part models).
    engine : str
        The engine that fitted it (``"lmm"``, ``"pymc"``, ``"cox"``, ...).
    settings : dict
        Every option that changes the numbers (REML, ties, chains, draws, ...).
    seed : int or None
        The random seed, where the method is random.
    versions : dict
        Python and package versions at fit time.
    """

    formula: str | dict[str, str] | None
    engine: str
    settings: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    versions: dict[str, str] = field(default_factory=versions)

    def to_frame(self) -> pd.DataFrame:
        """One row per item, values as text (for reports)."""
        rows: list[tuple[str, str]] = []
        if isinstance(self.formula, Mapping):
            rows += [(f"formula ({k})", str(v)) for k, v in self.formula.items()]
        elif self.formula is not None:
            rows.append(("formula", str(self.formula)))
        rows.append(("engine", self.engine))
        rows += [(str(k), _plain(v)) for k, v in self.settings.items()]
        rows.append(("seed", "–" if self.seed is None else str(self.seed)))
        return pd.DataFrame(rows, columns=["item", "value"]).set_index("item")


def _scalar(v: Any) -> Any:
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        return float(v)
    return v


def _plain(v: Any) -> str:
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, float | np.floating):
        return f"{v:g}"
    if isinstance(v, list | tuple):
        return ", ".join(_plain(x) for x in v)
    return str(v)


def diagnostics_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """Build a ``diagnostics()`` frame from ``(check, value, criterion, passed[, note])`` rows.

    ``value`` is an object column so that counts stay integers and measures floats.
    """
    full = [(*r, "") if len(r) == 4 else tuple(r) for r in rows]
    index = pd.Index([r[0] for r in full], name="check", dtype=object)
    return pd.DataFrame({
        "value": pd.Series([_scalar(r[1]) for r in full], index=index, dtype=object),
        "criterion": pd.Series([str(r[2]) for r in full], index=index, dtype=object),
        "passed": pd.Series([bool(r[3]) for r in full], index=index, dtype=bool),
        "note": pd.Series([str(r[4]) for r in full], index=index, dtype=object),
    })


# -- display: one description, two renderers --------------------------------------------
@dataclass
class DisplayTable:
    """A table to show: raw numbers, rounded only when rendered.

    ``digits`` applies to float columns; ``integer_columns`` print without
    decimals; bool columns print as yes/no.
    """

    title: str
    frame: pd.DataFrame
    digits: int = 3
    index: bool = True


@dataclass
class Display:
    """What ``print_summary()`` and ``_repr_html_()`` show, rendered once for both."""

    title: str
    header: list[tuple[str, str]] = field(default_factory=list)
    tables: list[DisplayTable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def format_frame(frame: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Strings for display: floats rounded to ``digits``, whole-number columns as
    integers, flags as yes/no, missing as ``–``. The input is not changed."""
    out = pd.DataFrame(index=frame.index)
    for c in frame.columns:
        col = frame[c]
        if col.dtype == bool:
            out[c] = np.where(col.to_numpy(), "yes", "no")
        elif col.dtype.kind in "iu":
            out[c] = [f"{v:,d}" for v in col.to_numpy()]
        elif col.dtype.kind == "f":
            out[c] = [_float(v, digits) for v in col.to_numpy()]
        else:
            out[c] = ["–" if _missing(v) else _float(float(v), digits)
                      if isinstance(v, float | np.floating) and not isinstance(v, bool)
                      else _plain(v) for v in col.tolist()]
    return out


def _missing(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _float(v: float, digits: int) -> str:
    """A float for display: whole numbers (counts) as integers, very small or very large
    magnitudes in scientific notation, the rest with ``digits`` decimals."""
    if np.isnan(v):
        return "–"
    if not np.isfinite(v):
        return "inf" if v > 0 else "-inf"
    if v == round(v) and abs(v) < 1e15:
        return f"{int(v):,d}"
    if abs(v) < 10 ** (-digits - 2) or abs(v) >= 1e7:
        return f"{v:.{max(digits - 1, 1)}e}"
    return f"{v:,.{digits}f}"


def render_text(d: Display, width: int = 120) -> str:
    """Plain-text rendering of a :class:`Display`."""
    lines = [d.title, "=" * min(len(d.title), width)]
    if d.header:
        w = max(len(k) for k, _ in d.header)
        lines += [f"{k.ljust(w)}  {v}" for k, v in d.header]
    for t in d.tables:
        shown = format_frame(t.frame, t.digits)
        lines += ["", t.title, "-" * min(len(t.title), width)]
        with pd.option_context("display.width", width, "display.max_columns", None,
                               "display.max_rows", 500, "display.max_colwidth", 60):
            lines.append(shown.to_string(index=t.index))
    if d.notes:
        lines.append("")
        lines += [f"Note: {n}" for n in d.notes]
    return "\n".join(lines)


def render_html(d: Display) -> str:
    """HTML rendering of a :class:`Display`; every string is escaped."""
    parts = [f"<div class='alsfrs-result'><p><strong>{html.escape(d.title)}</strong></p>"]
    if d.header:
        parts.append("<table><tbody>" + "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>" for k, v in d.header)
            + "</tbody></table>")
    for t in d.tables:
        parts.append(f"<p><em>{html.escape(t.title)}</em></p>")
        parts.append(format_frame(t.frame, t.digits).to_html(escape=True, index=t.index,
                                                             border=0))
    for n in d.notes:
        parts.append(f"<p>Note: {html.escape(n)}</p>")
    parts.append("</div>")
    return "".join(parts)


# -- persistence payload ------------------------------------------------------------------
@dataclass
class Payload:
    """What a result stores: JSON-able ``fields`` (numbers are written exactly;
    numpy arrays and DataFrames allowed), named ``tables`` (Parquet) and an
    optional ArviZ ``idata`` (netCDF). Nothing executable."""

    fields: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    idata: Any = None


_REGISTRY: dict[str, type[Result]] = {}


class Result(abc.ABC):
    """Base class of every fitted result (see the module docstring for the contract).

    Subclasses set the class attribute ``kind`` (a unique key) and implement
    :meth:`summary`, :meth:`diagnostics`, :attr:`model_spec`, :meth:`_display`,
    :meth:`_to_payload` and :meth:`_from_payload`. Defining the subclass
    registers it, so :func:`alsfrs.load_result` can rebuild it by its ``kind``.
    """

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        kind = cls.__dict__.get("kind", "")
        if kind:
            other = _REGISTRY.get(kind)
            if other is not None and (other.__module__, other.__qualname__) != (
                    cls.__module__, cls.__qualname__):
                raise TypeError(f"result kind {kind!r} is already taken by {other.__qualname__}")
            _REGISTRY[kind] = cls

    # -- what every result provides ---------------------------------------------------
    @abc.abstractmethod
    def summary(self) -> pd.DataFrame:
        """Raw numbers, one row per parameter or term."""

    @abc.abstractmethod
    def diagnostics(self) -> pd.DataFrame:
        """Checks with ``value``, ``criterion``, ``passed`` and ``note`` (index ``check``)."""

    @property
    @abc.abstractmethod
    def model_spec(self) -> ModelRecord:
        """Formula, engine, settings, seed and versions."""

    @abc.abstractmethod
    def _display(self) -> Display:
        """What to show (rendered by :func:`render_text` and :func:`render_html`)."""

    @abc.abstractmethod
    def _to_payload(self, **options: Any) -> Payload:
        """Everything needed to rebuild the result, without pickle."""

    @classmethod
    @abc.abstractmethod
    def _from_payload(cls, payload: Payload) -> Result:
        """Rebuild a result from what :meth:`_to_payload` stored."""

    # -- provided ---------------------------------------------------------------------------
    def print_summary(self, file: IO[str] | None = None) -> None:
        """Print the formatted summary (rounded; :meth:`summary` keeps raw numbers)."""
        print(render_text(self._display()), file=file or sys.stdout)

    def __str__(self) -> str:
        return render_text(self._display())

    def _repr_html_(self) -> str:
        return render_html(self._display())

    def save(self, path: Any, **options: Any) -> Any:
        """Save to one file (JSON + Parquet + netCDF in a zip; no pickle).

        Load it back with :func:`alsfrs.load_result`; every number round-trips exactly.
        ``options`` go to the type's :meth:`_to_payload` (e.g. ``full=True`` for a
        Bayesian fit's recomputable draws). Returns the path written.
        """
        from alsfrs.persist import save_result

        return save_result(self, path, **options)

    def diagnostic_messages(self) -> list[str]:
        """Plain statements of every failed check (empty when all pass)."""
        d = self.diagnostics()
        out = []
        for check, row in d.iterrows():
            if not bool(row["passed"]):
                note = f" ({row['note']})" if row["note"] else ""
                value = row["value"]
                shown = f"{value:.4g}" if isinstance(value, float) else _plain(value)
                out.append(f"{check} is {shown}, which fails the criterion "
                           f"{row['criterion']}{note}")
        return out


def has_exposure_effects(result: Any) -> bool:
    """Whether a result reports differences in decline per exposure."""
    return callable(getattr(result, "exposure_effects", None))


def result_type(kind: str) -> type[Result]:
    """The registered result class for ``kind`` (as stored in a saved file)."""
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise KeyError(kind) from None


def result_types() -> dict[str, type[Result]]:
    """Every registered result class by kind."""
    return dict(_REGISTRY)
