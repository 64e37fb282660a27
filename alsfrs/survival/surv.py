"""R's survival formulas: ``Surv(...) ~ terms + strata(x) + cluster(id)``.

This is the one place where a survival formula is read. The left-hand side is
``Surv(time, event)`` (right-censored) or ``Surv(start, stop, event)`` (the
counting-process form ``(start, stop]``, for time-varying covariates and left
truncation); the right-hand side is an ordinary R/lme4 fixed-effects part,
built into a design matrix by :func:`alsfrs.matrices.build_design` so terms get
R's names (``sexM``, ``onset_sitebulbar``), plus two special terms:

``strata(x)`` / ``strata(x, y)``
    A separate baseline hazard per level (per combination of levels); for
    conditional logistic regression, the matched set.
``cluster(id)``
    Rows sharing ``id`` are correlated; standard errors become the robust
    (sandwich) ones, as R's ``coxph(..., cluster = id)``.

Examples
--------
>>> f = parse_surv_formula("Surv(months, event) ~ antidepressant + sex + strata(onset_site)")
>>> f.time, f.event, f.rhs, f.strata
('months', 'event', 'antidepressant + sex', ('onset_site',))
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from alsfrs.errors import Problem, ValidationError
from alsfrs.formula import _check_syntax, _split_top, _variables_in_order

__all__ = ["SurvFormula", "parse_surv_formula"]

_IDENT = re.compile(r"^`?[A-Za-z_.][A-Za-z0-9_.]*`?$")
_CALL = re.compile(r"^\s*([A-Za-z_.][A-Za-z0-9_.]*)\s*\((.*)\)\s*$", re.S)


@dataclass(frozen=True)
class SurvFormula:
    """A parsed survival formula.

    Attributes
    ----------
    text : str
        The formula as given (whitespace normalised).
    time : str
        Column of the event/censoring time (the ``stop`` time in counting-process form).
    event : str
        Column of the event indicator (1 = event, 0 = censored).
    start : str or None
        Column of the entry time for ``Surv(start, stop, event)``; ``None`` otherwise.
    rhs : str
        The covariate part in R syntax without ``strata()``/``cluster()`` (``"1"`` when none).
    strata : tuple of str
        Columns named in ``strata(...)`` (empty when none).
    cluster : str or None
        The column named in ``cluster(...)``.
    variable_order : tuple of str
        Variables in order of first appearance (orders interaction names as R does).
    """

    text: str
    time: str
    event: str
    start: str | None = None
    rhs: str = "1"
    strata: tuple[str, ...] = ()
    cluster: str | None = None
    variable_order: tuple[str, ...] = field(default=())

    @property
    def counting_process(self) -> bool:
        """Whether the outcome is ``Surv(start, stop, event)``."""
        return self.start is not None

    @property
    def has_covariates(self) -> bool:
        """Whether the right-hand side has terms besides strata and cluster."""
        return self.rhs.strip() not in ("1", "")

    @property
    def outcome_columns(self) -> tuple[str, ...]:
        """The columns of ``Surv(...)``, in order."""
        return tuple(c for c in (self.start, self.time, self.event) if c is not None)

    def __str__(self) -> str:
        return self.text


def _bad(formula: str, message: str, rule: str = "malformed_formula") -> ValidationError:
    return ValidationError([Problem(rule=rule, message=f"{message} (formula: {formula!r})")],
                           context="the survival formula")


def _column(arg: str) -> str:
    arg = arg.strip()
    return arg[1:-1] if arg.startswith("`") and arg.endswith("`") else arg


def _args(formula: str, call: str, inner: str) -> list[str]:
    args = [a.strip() for a in _split_top(inner, ",")]
    for a in args:
        if not _IDENT.match(a):
            raise _bad(formula, f"{call}() takes column names, got {a!r} (derive the column "
                       "in the data first)")
    return [_column(a) for a in args]


def parse_surv_formula(formula: str, *, allow_cluster: bool = True) -> SurvFormula:
    """Parse ``Surv(time, event) ~ ...`` or ``Surv(start, stop, event) ~ ...``.

    Parameters
    ----------
    formula : str
        The formula in R's notation, e.g.
        ``"Surv(months, event) ~ antidepressant + age_at_dx + sex + strata(onset_site)"``.
    allow_cluster : bool, default True
        Whether ``cluster()`` is accepted.

    Returns
    -------
    SurvFormula

    Raises
    ------
    alsfrs.errors.ValidationError
        ``malformed_formula`` for text that cannot be read (no ``Surv()`` on
        the left, wrong number of its arguments, expressions instead of column
        names, ``strata()`` inside an interaction, several ``cluster()`` terms).
    """
    if not isinstance(formula, str) or not formula.strip():
        raise _bad(str(formula), "the formula must be a non-empty string")
    text = " ".join(formula.split())
    depth = 0
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if depth < 0:
            break
    if depth != 0:
        raise _bad(formula, "unbalanced parentheses")
    sides = _split_top(text, "~")
    if len(sides) != 2:
        raise _bad(formula, "expected exactly one '~' between Surv(...) and the terms")
    lhs, rhs = sides[0].strip(), sides[1].strip()
    m = _CALL.match(lhs)
    if not m or m.group(1) != "Surv":
        raise _bad(formula, "the left-hand side must be Surv(time, event) or "
                   "Surv(start, stop, event)")
    out_args = _args(formula, "Surv", m.group(2))
    if len(out_args) not in (2, 3):
        raise _bad(formula, f"Surv() takes 2 (time, event) or 3 (start, stop, event) columns, "
                   f"got {len(out_args)}")
    start = out_args[0] if len(out_args) == 3 else None
    time, event = out_args[-2], out_args[-1]
    if not rhs:
        raise _bad(formula, "no terms after '~' (write '~ 1' for none)")

    keep: list[str] = []
    strata: list[str] = []
    cluster: str | None = None
    for chunk in _split_top(rhs, "+"):
        piece = chunk.strip()
        if not piece:
            raise _bad(formula, "a '+' with nothing on one side")
        cm = _CALL.match(piece)
        if cm and cm.group(1) in ("strata", "cluster") and _balanced_call(piece):
            args = _args(formula, cm.group(1), cm.group(2))
            if cm.group(1) == "strata":
                strata.extend(a for a in args if a not in strata)
            else:
                if not allow_cluster:
                    raise _bad(formula, "cluster() is not used by this model")
                if cluster is not None or len(args) != 1:
                    raise _bad(formula, "one cluster() term with one column is allowed")
                cluster = args[0]
            continue
        if re.search(r"\b(strata|cluster)\s*\(", piece):
            raise _bad(formula, f"strata() and cluster() must be separate terms, not part of "
                       f"{piece!r}")
        keep.append(piece)
    covariates = " + ".join(keep) if keep else "1"
    if keep:
        _check_syntax(formula, covariates, "covariates")
    order = _variables_in_order(" + ".join(keep)) if keep else ()
    return SurvFormula(text=text, time=time, event=event, start=start, rhs=covariates,
                       strata=tuple(strata), cluster=cluster, variable_order=order)


def _balanced_call(piece: str) -> bool:
    """``strata(x)`` is one call (not ``strata(x):y`` or ``strata(x) * y``)."""
    piece = piece.strip()
    i = piece.index("(")
    depth = 0
    for k in range(i, len(piece)):
        depth += (piece[k] == "(") - (piece[k] == ")")
        if depth == 0:
            return k == len(piece) - 1
    return False
