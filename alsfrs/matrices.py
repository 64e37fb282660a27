"""Design matrices and per-group sufficient statistics for mixed models.

This module is shared by the likelihood engine (:mod:`alsfrs.lmm`) and the
Bayesian engine: both work from the same :class:`ModelMatrices` and, because
there is one grouping factor, from the same per-group sufficient statistics
(:class:`GroupStatistics`) — ``ZᵢᵀZᵢ``, ``ZᵢᵀXᵢ``, ``Zᵢᵀyᵢ``, ``yᵢᵀyᵢ`` and
``nᵢ`` for every group ``i``, plus ``XᵀX``, ``Xᵀy`` and ``yᵀy`` overall —
computed once, so that the cost of a likelihood evaluation does not grow with
the number of observations.

Notation
--------
``n`` observations, ``m`` groups (patients), ``p`` fixed-effects columns,
``q`` random-effects columns per group. ``X`` is ``n × p``, ``Z`` is the
``n × q`` matrix of random-effects covariates (row ``j`` belongs to group
``group[j]``; the full sparse ``n × mq`` matrix is never formed) and ``y`` is
the response.

Data handling follows R: pandas ``Categorical`` columns keep their category
order (first category = reference level) after unused categories are dropped
(like ``droplevels``); string, object and boolean columns become factors with
sorted levels. Missing values are not dropped silently: they are an error.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from alsfrs.errors import Problem, ValidationError
from alsfrs.formula import MixedFormula, parse_formula, r_column_name

__all__ = [
    "Design",
    "DesignPlan",
    "GroupStatistics",
    "ModelMatrices",
    "as_frame",
    "build_design",
    "build_model_matrices",
    "group_statistics",
]

#: Relative tolerance for declaring a fixed-effects column aliased (as R's lm).
RANK_TOLERANCE = 1e-7
#: A text column is read as a numeric column with bad cells (an error naming them), not as a
#: factor, when at least this share of its non-missing values parse as numbers.
NUMERIC_TEXT_SHARE = 0.8


def non_numeric_cells(col: pd.Series, column: str, group: pd.Series | None = None,
                      context_rows: int = 5) -> list[Problem]:
    """Problems for cells of a (meant to be) numeric column that are not numbers.

    Parameters
    ----------
    col : Series
        The column as given.
    column : str
        Its name.
    group : Series, optional
        The grouping column (patients), to name the patients.

    Returns
    -------
    list of Problem
        One problem per offending row (at most ``context_rows``, then one
        summarising the rest); empty when every non-missing cell is a number.
    """
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        return []
    parsed = pd.to_numeric(col.astype(object).where(col.notna(), np.nan), errors="coerce")
    bad = (parsed.isna() & col.notna()).to_numpy()
    if not bad.any():
        return []
    idx = np.flatnonzero(bad)
    problems = []
    for j in idx[:context_rows]:
        pat = None if group is None else group.iloc[j]
        problems.append(
            Problem(
                rule="non_numeric_value",
                message=(
                    f"{col.iloc[j]!r} in the numeric column {column!r} is not a number; "
                    "correct or remove it"
                ),
                row=col.index[j],
                patient=pat,
                column=column,
            )
        )
    if idx.size > context_rows:
        values = pd.unique(col.iloc[idx[context_rows:]].astype(str))
        shown = ", ".join(repr(v) for v in values[:5])
        problems.append(
            Problem(
                rule="non_numeric_value",
                message=(
                    f"{idx.size - context_rows} more row(s) of the numeric column {column!r} "
                    f"are not numbers (values {shown}{' ...' if len(values) > 5 else ''})"
                ),
                column=column,
            )
        )
    return problems


def _looks_numeric(col: pd.Series) -> bool:
    """A text column whose values are mostly numbers, with some that are not."""
    if isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(col.dtype):
        return False
    present = col[col.notna()]
    if present.empty:
        return False
    parsed = pd.to_numeric(present.astype(object), errors="coerce")
    share = float(parsed.notna().mean())
    return NUMERIC_TEXT_SHARE <= share < 1.0


def as_frame(data: Any) -> pd.DataFrame:
    """Return ``data`` as a DataFrame (calls ``.to_frame()`` on e.g. a Cohort).

    Parameters
    ----------
    data : pandas.DataFrame or object with ``to_frame()``

    Returns
    -------
    pandas.DataFrame
    """
    if isinstance(data, pd.DataFrame):
        return data
    to_frame = getattr(data, "to_frame", None)
    if callable(to_frame):
        frame = to_frame()
        if isinstance(frame, pd.DataFrame):
            return frame
    raise ValidationError(
        [
            Problem(
                rule="invalid_data",
                message=(
                    "data must be a pandas DataFrame or an object with a .to_frame() "
                    f"method returning one, got {type(data).__name__}"
                ),
            )
        ],
        context="the model data",
    )


@dataclass(frozen=True)
class GroupStatistics:
    """Per-group and overall sufficient statistics of a Gaussian mixed model.

    Attributes
    ----------
    ZtZ : ndarray, shape (m, q, q)
        ``ZᵢᵀZᵢ`` for each group.
    ZtX : ndarray, shape (m, q, p)
        ``ZᵢᵀXᵢ`` for each group.
    Zty : ndarray, shape (m, q)
        ``Zᵢᵀyᵢ`` for each group.
    yty : ndarray, shape (m,)
        ``yᵢᵀyᵢ`` for each group.
    n : ndarray, shape (m,)
        Number of observations per group.
    XtX : ndarray, shape (p, p)
        ``XᵀX`` over all observations.
    Xty : ndarray, shape (p,)
        ``Xᵀy`` over all observations.
    yty_total : float
        ``yᵀy`` over all observations.
    n_obs : int
        Total number of observations.
    """

    ZtZ: np.ndarray
    ZtX: np.ndarray
    Zty: np.ndarray
    yty: np.ndarray
    n: np.ndarray
    XtX: np.ndarray
    Xty: np.ndarray
    yty_total: float
    n_obs: int

    @property
    def n_groups(self) -> int:
        """Number of groups ``m``."""
        return int(self.ZtZ.shape[0])


@dataclass(frozen=True, eq=False)
class ModelMatrices:
    """Everything a mixed-model engine needs from formula + data.

    Attributes
    ----------
    formula : MixedFormula
        The parsed formula.
    y : ndarray, shape (n,)
        Response.
    X : ndarray, shape (n, p)
        Fixed-effects design matrix (treatment coding, R column order).
    Z : ndarray, shape (n, q)
        Random-effects covariates of each observation's own group.
    group : ndarray of int, shape (n,)
        Group code (0 … m-1) of each observation.
    group_labels : pandas.Index
        Group label of each code (sorted like R factor levels).
    fixed_names : tuple of str
        R names of the columns of ``X`` (``(Intercept)``, ``sexM``, ...).
    random_names : tuple of str
        R names of the columns of ``Z``.
    blocks : tuple of tuple of int
        Partition of the columns of ``Z`` into independent blocks; within a
        block the random effects are correlated (one block for ``(x | g)``,
        one block per column for ``(x || g)``).
    block_names : tuple of str
        lme4's name of each block's grouping factor in ``VarCorr``
        (``"g"``, ``"g.1"``, ...).
    levels : dict of str to list
        Factor levels used for each categorical variable (first = reference).
    variables : tuple of str
        Data columns used by the formula (response, covariates, grouping).
    """

    formula: MixedFormula
    y: np.ndarray
    X: np.ndarray
    Z: np.ndarray
    group: np.ndarray
    group_labels: pd.Index
    fixed_names: tuple[str, ...]
    random_names: tuple[str, ...]
    blocks: tuple[tuple[int, ...], ...]
    block_names: tuple[str, ...]
    levels: dict[str, list] = field(default_factory=dict)
    variables: tuple[str, ...] = ()
    _fixed_spec: Any = field(default=None, repr=False)
    _random_specs: tuple[Any, ...] = field(default=(), repr=False)

    # -- sizes -----------------------------------------------------------------
    @property
    def response(self) -> str:
        """Name of the response column."""
        return self.formula.response

    @property
    def grouping(self) -> str:
        """Name of the grouping column."""
        return self.formula.grouping

    @property
    def n_obs(self) -> int:
        """Number of observations ``n``."""
        return int(self.y.shape[0])

    @property
    def n_groups(self) -> int:
        """Number of groups ``m``."""
        return len(self.group_labels)

    @property
    def n_fixed(self) -> int:
        """Number of fixed-effects columns ``p``."""
        return int(self.X.shape[1])

    @property
    def n_random(self) -> int:
        """Number of random effects per group ``q``."""
        return int(self.Z.shape[1])

    @cached_property
    def group_sizes(self) -> np.ndarray:
        """Observations per group, shape (m,)."""
        return np.bincount(self.group, minlength=self.n_groups)

    # -- sufficient statistics --------------------------------------------------
    @cached_property
    def statistics(self) -> GroupStatistics:
        """Stacked per-group sufficient statistics (computed once, cached)."""
        return group_statistics(self.y, self.X, self.Z, self.group, self.n_groups)

    def sufficient_statistics(self) -> GroupStatistics:
        """Return the per-group sufficient statistics.

        Returns
        -------
        GroupStatistics
            ``ZᵢᵀZᵢ``, ``ZᵢᵀXᵢ``, ``Zᵢᵀyᵢ``, ``yᵢᵀyᵢ``, ``nᵢ`` stacked over
            groups, and ``XᵀX``, ``Xᵀy``, ``yᵀy`` overall.
        """
        return self.statistics

    # -- new data ---------------------------------------------------------------
    def prepare(self, data: Any, *, require_response: bool = False) -> pd.DataFrame:
        """Coerce new data to the factor coding used at fit time.

        Parameters
        ----------
        data : DataFrame or object with ``to_frame()``
            New data with the covariate columns of the formula.
        require_response : bool, default False
            Whether the response column must be present.

        Returns
        -------
        pandas.DataFrame
            Copy restricted to the formula's columns, factors coded with the
            fit-time levels.

        Raises
        ------
        alsfrs.errors.ValidationError
            Missing columns, missing values, or factor levels unseen at fit time.
        """
        frame = as_frame(data)
        needed = [
            v
            for v in self.variables
            if (require_response or v != self.response) and v != self.grouping
        ]
        problems = [
            Problem(rule="unknown_column", message=f"column {v!r} is missing", column=v)
            for v in needed
            if v not in frame.columns
        ]
        if problems:
            raise ValidationError(problems, context="new data")
        out = pd.DataFrame(index=frame.index)
        for v in needed:
            col = frame[v]
            n_missing = int(col.isna().sum())
            if n_missing:
                problems.append(
                    Problem(
                        rule="missing_values",
                        message=f"{n_missing} row(s) have a missing value",
                        column=v,
                    )
                )
                continue
            if v in self.levels:
                lv = self.levels[v]
                values = col.astype(object)
                unknown = sorted({str(x) for x in pd.unique(values) if x not in set(lv)})
                if unknown:
                    problems.append(
                        Problem(
                            rule="unknown_level",
                            message=(
                                f"level(s) {', '.join(unknown)} were not in the data the model "
                                f"was fitted to (levels: {', '.join(map(str, lv))})"
                            ),
                            column=v,
                        )
                    )
                    continue
                out[v] = pd.Categorical(values, categories=lv)
            else:
                bad = non_numeric_cells(
                    col, v, frame[self.grouping] if self.grouping in frame.columns else None
                )
                if bad:
                    problems.extend(bad)
                    continue
                out[v] = pd.to_numeric(col).astype(float)
        if problems:
            raise ValidationError(problems, context="new data")
        if self.grouping in frame.columns:
            out[self.grouping] = frame[self.grouping].to_numpy()
        return out

    def fixed_design(self, data: Any) -> np.ndarray:
        """Fixed-effects design matrix ``X`` for new data (same columns as fit)."""
        frame = self.prepare(data)
        mm = self._fixed_spec.get_model_matrix(frame, output="numpy")
        return np.asarray(mm, dtype=float).reshape(len(frame), -1)

    def random_design(self, data: Any) -> np.ndarray:
        """Random-effects covariates ``Z`` for new data (same columns as fit)."""
        frame = self.prepare(data)
        return _random_design(self._random_specs, frame)


def _random_design(specs: Sequence[Any], frame: pd.DataFrame) -> np.ndarray:
    parts = [
        np.asarray(spec.get_model_matrix(frame, output="numpy"), dtype=float).reshape(
            len(frame), -1
        )
        for spec in specs
    ]
    return np.hstack(parts) if parts else np.zeros((len(frame), 0))


def group_statistics(
    y: np.ndarray, X: np.ndarray, Z: np.ndarray, group: np.ndarray, n_groups: int
) -> GroupStatistics:
    """Compute stacked per-group sufficient statistics.

    Parameters
    ----------
    y : ndarray, shape (n,)
    X : ndarray, shape (n, p)
    Z : ndarray, shape (n, q)
    group : ndarray of int, shape (n,)
        Group codes in ``0 … n_groups-1``; every group must occur.
    n_groups : int

    Returns
    -------
    GroupStatistics
    """
    n, p = X.shape
    q = Z.shape[1]
    counts = np.bincount(group, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    W = np.empty((n, q + p + 1))
    if n and np.all(group[1:] >= group[:-1]):  # already sorted by group (the usual case)
        W[:, :q] = Z
        W[:, q : q + p] = X
        W[:, -1] = y
    else:
        order = np.argsort(group, kind="stable")
        W[:, :q] = Z[order]
        W[:, q : q + p] = X[order]
        W[:, -1] = y[order]
    Zs = W[:, :q]
    outer = Zs[:, :, None] * W[:, None, :]  # (n, q, q+p+1)
    sums = np.add.reduceat(outer, starts, axis=0) if n else outer
    ysq = np.add.reduceat(W[:, -1] ** 2, starts) if n else np.zeros(0)
    return GroupStatistics(
        ZtZ=np.ascontiguousarray(sums[:, :, :q]),
        ZtX=np.ascontiguousarray(sums[:, :, q : q + p]),
        Zty=np.ascontiguousarray(sums[:, :, -1]),
        yty=ysq,
        n=counts,
        XtX=X.T @ X,
        Xty=X.T @ y,
        yty_total=float(y @ y),
        n_obs=int(n),
    )


# ------------------------------------------------------------------------------
# building
# ------------------------------------------------------------------------------
def _is_categorical_like(col: pd.Series) -> bool:
    dtype = col.dtype
    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_bool_dtype(dtype)
    )


def _factor(col: pd.Series) -> pd.Categorical:
    """R-like factor: Categorical order kept (unused dropped), else sorted levels."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return pd.Categorical(col).remove_unused_categories()
    values = col.to_numpy(dtype=object)
    levels = sorted(pd.unique(values), key=lambda v: (str(type(v)), v))
    return pd.Categorical(values, categories=levels)


def _patients_list(labels: Sequence[Any], limit: int = 5) -> str:
    labels = list(labels)
    shown = ", ".join(str(x) for x in labels[:limit])
    more = f" and {len(labels) - limit} more" if len(labels) > limit else ""
    return shown + more


def _required_variables(formula: MixedFormula) -> list[str]:
    from formulaic import Formula

    found: list[str] = [formula.response]
    for rhs in [formula.fixed_formulaic] + [t.formulaic_expression for t in formula.random]:
        found.extend(sorted(Formula(rhs).required_variables, key=lambda v: rhs.find(v)))
    found.append(formula.grouping)
    return list(dict.fromkeys(found))


def build_model_matrices(formula: str | MixedFormula, data: Any) -> ModelMatrices:
    """Build design matrices for an lme4-style formula with one grouping factor.

    Parameters
    ----------
    formula : str or MixedFormula
        E.g. ``"alsfrs_r ~ months * anxiolytic + age_at_dx + (months | patient_id)"``.
    data : DataFrame or object with ``to_frame()``
        Long data, one row per observation.

    Returns
    -------
    ModelMatrices

    Raises
    ------
    alsfrs.errors.ValidationError
        Unknown columns, missing values, a non-numeric response, constant
        covariates, a rank-deficient fixed-effects design (naming the aliased
        columns), or more random effects than observations can identify.
    """
    from formulaic import model_matrix

    parsed = formula if isinstance(formula, MixedFormula) else parse_formula(formula)
    frame = as_frame(data)
    variables = _required_variables(parsed)
    missing_cols = [v for v in variables if v not in frame.columns]
    if missing_cols:
        raise ValidationError(
            [
                Problem(
                    rule="unknown_column",
                    message=(
                        f"the formula uses {v!r}, which is not a column of the data "
                        f"(columns: {', '.join(map(str, frame.columns[:30]))})"
                    ),
                    column=v,
                )
                for v in missing_cols
            ],
            context="the model data",
        )
    grouping = parsed.grouping
    response = parsed.response
    problems: list[Problem] = []
    if len(frame) == 0:
        raise ValidationError(
            [Problem(rule="no_data", message="the data have no rows")], context="the model data"
        )
    gcol = frame[grouping]
    for v in variables:
        na = frame[v].isna().to_numpy()
        k = int(na.sum())
        if k:
            pats = pd.unique(gcol[na].dropna()) if v != grouping else []
            where = f" (patients {_patients_list(pats)})" if len(pats) else ""
            problems.append(
                Problem(
                    rule="missing_values",
                    message=(
                        f"{k} row(s) have a missing value in {v!r}{where}; remove or impute "
                        "them before fitting"
                    ),
                    column=v,
                )
            )
    if problems:
        raise ValidationError(problems, context="the model data")

    ycol = frame[response]
    if _is_categorical_like(ycol) and _looks_numeric(ycol):
        raise ValidationError(non_numeric_cells(ycol, response, gcol), context="the model data")
    if _is_categorical_like(ycol) or not pd.api.types.is_numeric_dtype(ycol):
        raise ValidationError(
            [
                Problem(
                    rule="non_numeric_response",
                    message=f"the response {response!r} must be numeric (dtype {ycol.dtype})",
                    column=response,
                )
            ],
            context="the model data",
        )

    # a text column that is mostly numbers is a numeric column with bad cells, not a factor
    for v in variables:
        if v in (grouping, response):
            continue
        col = frame[v]
        if _is_categorical_like(col) and _looks_numeric(col):
            problems.extend(non_numeric_cells(col, v, gcol))
    if problems:
        raise ValidationError(problems, context="the model data")

    # factor coding
    work = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    levels: dict[str, list] = {}
    for v in variables:
        if v == grouping:
            continue
        col = frame[v].reset_index(drop=True)
        if v != response and _is_categorical_like(col):
            fac = _factor(col)
            levels[v] = list(fac.categories)
            work[v] = fac
        else:
            work[v] = pd.to_numeric(col).astype(float).to_numpy()

    # constant covariates (used in the fixed or random part, other than grouping)
    fixed_vars = [v for v in variables if v not in (response, grouping)]
    for v in fixed_vars:
        if v in levels:
            if len(levels[v]) < 2:
                problems.append(
                    Problem(
                        rule="constant_covariate",
                        message=(
                            f"the factor {v!r} has a single level ({levels[v][0]!r}) in the "
                            "data; it cannot be estimated — drop it from the formula"
                        ),
                        column=v,
                    )
                )
        else:
            vals = work[v].to_numpy()
            if vals.size and np.all(vals == vals[0]):
                problems.append(
                    Problem(
                        rule="constant_covariate",
                        message=(
                            f"the covariate {v!r} is constant (every row is {vals[0]:g}); it is "
                            "confounded with the intercept — drop it from the formula"
                        ),
                        column=v,
                    )
                )
    if problems:
        raise ValidationError(problems, context="the model data")

    # grouping factor
    gfac = _factor(gcol.reset_index(drop=True))
    group = np.asarray(gfac.codes, dtype=np.intp)
    group_labels = pd.Index(gfac.categories, name=grouping)

    # fixed effects
    try:
        fixed_mm = model_matrix(parsed.fixed_formulaic, work, output="numpy")
    except ValidationError:
        raise
    except Exception as exc:
        raise ValidationError(
            [Problem(rule="malformed_formula", message=f"cannot build the fixed effects: {exc}")],
            context="the model formula",
        ) from None
    fixed_spec = fixed_mm.model_spec
    X = np.asarray(fixed_mm, dtype=float).reshape(len(work), -1)
    fixed_names = tuple(r_column_name(c, parsed.variable_order) for c in fixed_spec.column_names)
    if X.shape[1] == 0:
        raise ValidationError(
            [Problem(rule="no_fixed_effects", message="the fixed-effects part has no columns")],
            context="the model formula",
        )
    _check_rank(X, fixed_names)

    # random effects
    random_specs = []
    zparts = []
    random_names: list[str] = []
    blocks: list[tuple[int, ...]] = []
    for term in parsed.random:
        try:
            mm = model_matrix(term.formulaic_expression, work, output="numpy")
        except Exception as exc:
            raise ValidationError(
                [
                    Problem(
                        rule="malformed_formula",
                        message=f"cannot build the random-effects term {term.text!r}: {exc}",
                    )
                ],
                context="the model formula",
            ) from None
        random_specs.append(mm.model_spec)
        Zt = np.asarray(mm, dtype=float).reshape(len(work), -1)
        names = [r_column_name(c, parsed.variable_order) for c in mm.model_spec.column_names]
        if Zt.shape[1] == 0:
            raise ValidationError(
                [
                    Problem(
                        rule="malformed_formula",
                        message=f"the random-effects term {term.text!r} has no columns",
                    )
                ],
                context="the model formula",
            )
        start = len(random_names)
        idx = tuple(range(start, start + len(names)))
        if term.correlated:
            blocks.append(idx)
        else:
            blocks.extend((k,) for k in idx)
        random_names.extend(names)
        zparts.append(Zt)
    dup = sorted({n for n in random_names if random_names.count(n) > 1})
    if dup:
        raise ValidationError(
            [
                Problem(
                    rule="duplicated_random_effect",
                    message=f"random effect(s) {', '.join(dup)} appear in more than one term",
                )
            ],
            context="the model formula",
        )
    Z = np.hstack(zparts)
    block_names = tuple(grouping if k == 0 else f"{grouping}.{k}" for k in range(len(blocks)))

    n, q, m = len(work), Z.shape[1], len(group_labels)
    if n <= m * q:
        sizes = np.bincount(group, minlength=m)
        if q > 1 and np.all(sizes <= 1):
            slopes = [r for r in random_names if r != "(Intercept)"]
            msg = (
                f"every {grouping} has a single observation, so the random slope(s) "
                f"{', '.join(slopes)}"
                " cannot be identified; use a random intercept only, e.g. "
                f"'(1 | {grouping})', or add follow-up visits"
            )
        else:
            msg = (
                f"the number of observations ({n}) is not larger than the number of random "
                f"effects ({m} {grouping} × {q} = {m * q}); the random-effects variances and "
                "the residual variance are not identifiable"
            )
        raise ValidationError(
            [Problem(rule="unidentifiable_random_effects", message=msg, column=grouping)],
            context="the model",
        )

    return ModelMatrices(
        formula=parsed,
        y=work[response].to_numpy(dtype=float),
        X=np.ascontiguousarray(X),
        Z=np.ascontiguousarray(Z),
        group=group,
        group_labels=group_labels,
        fixed_names=fixed_names,
        random_names=tuple(random_names),
        blocks=tuple(blocks),
        block_names=block_names,
        levels=levels,
        variables=tuple(variables),
        _fixed_spec=fixed_spec,
        _random_specs=tuple(random_specs),
    )


def _check_rank(X: np.ndarray, names: Sequence[str]) -> None:
    """Raise a ValidationError naming aliased columns of a rank-deficient X.

    Columns are checked in order, as R's ``lm`` does: a column is aliased when
    it is (numerically) a linear combination of the columns before it.
    """
    norms = np.sqrt(np.einsum("ij,ij->j", X, X))
    problems: list[Problem] = []
    zero = norms == 0
    scaled = X / np.where(zero, 1.0, norms)
    r = np.linalg.qr(scaled, mode="r")
    diag = (
        np.abs(np.diag(r))
        if r.shape[0] >= r.shape[1]
        else np.abs(np.concatenate([np.diag(r), np.zeros(r.shape[1] - r.shape[0])]))
    )
    aliased = [j for j in range(X.shape[1]) if zero[j] or diag[j] < RANK_TOLERANCE]
    if not aliased:
        return
    kept = [j for j in range(X.shape[1]) if j not in aliased]
    for j in aliased:
        if zero[j]:
            problems.append(
                Problem(
                    rule="rank_deficient",
                    message=f"the fixed-effects column {names[j]!r} is all zero",
                    column=names[j],
                )
            )
            continue
        earlier = [k for k in kept if k < j]
        coef = (
            np.linalg.lstsq(scaled[:, earlier], scaled[:, j], rcond=None)[0]
            if earlier
            else np.zeros(0)
        )
        partners = [names[k] for k, c in zip(earlier, coef, strict=True) if abs(c) > 1e-6]
        problems.append(
            Problem(
                rule="rank_deficient",
                message=(
                    f"the fixed-effects column {names[j]!r} is aliased: it is a linear "
                    f"combination of {', '.join(repr(p) for p in partners) or 'earlier columns'}"
                    "; the fixed-effects design is rank deficient — remove one of these terms"
                ),
                column=names[j],
            )
        )
    raise ValidationError(problems, context="the fixed-effects design")


def column_levels(matrices: ModelMatrices) -> Mapping[str, list]:
    """Factor levels used for each categorical variable (first = reference)."""
    return dict(matrices.levels)


# ------------------------------------------------------------------------------
# design plans: rebuilding the matrices of new data without formulaic
# ------------------------------------------------------------------------------
_LEVEL = re.compile(r"^(?P<var>[^\[\]]+)\[(?:T\.)?(?P<level>.*)\]$")


def _column_recipe(
    name: str, numeric: set[str], levels: Mapping[str, list]
) -> list[tuple] | None:
    """How formulaic made one column: a product of parts, or None if not understood.

    Parts are ``("num", var)`` or ``("level", var, position of the level)``;
    the intercept is the empty product.
    """
    if name == "Intercept":
        return []
    parts: list[tuple] = []
    for part in name.split(":"):
        if part in numeric:
            parts.append(("num", part))
            continue
        match = _LEVEL.match(part)
        if match is None or match["var"] not in levels:
            return None
        names = [str(x) for x in levels[match["var"]]]
        if names.count(match["level"]) != 1:
            return None
        parts.append(("level", match["var"], names.index(match["level"])))
    return parts


def _group_codes(gcol: pd.Series, name: str) -> tuple[np.ndarray, pd.Index]:
    """Codes and sorted labels of the grouping column (as :func:`_factor`, faster)."""
    if not isinstance(gcol.dtype, pd.CategoricalDtype):
        try:
            codes, uniques = pd.factorize(gcol, sort=True)
        except TypeError:  # mixed types: _factor's type-aware order
            pass
        else:
            labels = pd.Index(np.asarray(uniques, dtype=object), name=name)
            return np.asarray(codes, dtype=np.intp), labels
    gfac = _factor(gcol.reset_index(drop=True))
    return np.asarray(gfac.codes, dtype=np.intp), pd.Index(gfac.categories, name=name)


@dataclass(frozen=True, eq=False)
class DesignPlan:
    """Rebuilds :class:`ModelMatrices` for new data of one formula in NumPy.

    Made by :meth:`from_matrices` from a first build (and checked to reproduce
    its X and Z exactly); :meth:`build` applies it to new data of the same
    form and returns ``None`` when the data differ in a way the plan does not
    cover (other factor levels, non-numeric values, missing values, constant
    covariates...), so that the caller takes the full path and its checks.
    """

    template: ModelMatrices
    numeric: tuple[str, ...]
    factors: dict[str, list]
    x_recipes: tuple[list[tuple], ...]
    z_recipes: tuple[list[tuple], ...]

    @classmethod
    def from_matrices(cls, mm: ModelMatrices, frame: pd.DataFrame) -> DesignPlan | None:
        """A plan reproducing ``mm`` from ``frame``, or None if the formula uses more
        than numeric columns, factors and their products (e.g. ``I(x^2)``)."""
        if mm._fixed_spec is None:
            return None
        numeric = {v for v in mm.variables if v not in mm.levels and v != mm.grouping}
        x_names = list(mm._fixed_spec.column_names)
        z_names = [c for spec in mm._random_specs for c in spec.column_names]
        x_rec = [_column_recipe(c, numeric, mm.levels) for c in x_names]
        z_rec = [_column_recipe(c, numeric, mm.levels) for c in z_names]
        if any(r is None for r in x_rec + z_rec):
            return None
        plan = cls(
            template=mm,
            numeric=tuple(v for v in mm.variables if v in numeric),
            factors=dict(mm.levels),
            x_recipes=tuple(x_rec),  # type: ignore[arg-type]
            z_recipes=tuple(z_rec),  # type: ignore[arg-type]
        )
        try:
            again = plan.build(frame)
        except ValidationError:
            return None
        if again is None or not (
            np.array_equal(again.X, mm.X)
            and np.array_equal(again.Z, mm.Z)
            and np.array_equal(again.y, mm.y)
            and np.array_equal(again.group, mm.group)
        ):
            return None
        # keep the names and formulaic specs, not the first data's arrays
        empty = np.zeros(0)
        stripped = dataclasses.replace(mm, y=empty, X=np.zeros((0, mm.n_fixed)),
                                       Z=np.zeros((0, mm.n_random)),
                                       group=np.zeros(0, dtype=np.intp))
        return dataclasses.replace(plan, template=stripped)

    @staticmethod
    def _columns(recipes: Sequence[list[tuple]], num: dict[str, np.ndarray],
                 codes: dict[str, np.ndarray], n: int) -> np.ndarray:
        out = np.empty((n, len(recipes)))
        for j, recipe in enumerate(recipes):
            col = np.ones(n)
            for part in recipe:
                if part[0] == "num":
                    col = col * num[part[1]]
                else:
                    col = col * (codes[part[1]] == part[2])
            out[:, j] = col
        return out

    def build(self, frame: pd.DataFrame) -> ModelMatrices | None:
        """Model matrices of ``frame`` by the plan, or None to take the full path.

        Raises
        ------
        alsfrs.errors.ValidationError
            A rank-deficient fixed-effects design (as the full path).
        """
        mm = self.template
        cols = frame.columns
        if any(v not in cols for v in mm.variables) or len(frame) == 0:
            return None
        n = len(frame)
        num: dict[str, np.ndarray] = {}
        for v in self.numeric:
            col = frame[v]
            if not pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(
                col.dtype
            ):
                return None
            values = col.to_numpy(dtype=float)
            if not np.isfinite(values).all():
                return None
            if v != mm.response and values.size and np.all(values == values[0]):
                return None
            num[v] = values
        codes: dict[str, np.ndarray] = {}
        for v, lv in self.factors.items():
            col = frame[v]
            if not _is_categorical_like(col) or col.isna().any():
                return None
            fac = _factor(col)
            if list(fac.categories) != lv:
                return None
            codes[v] = np.asarray(fac.codes)
        gcol = frame[mm.grouping]
        if gcol.isna().any():
            return None
        group, group_labels = _group_codes(gcol, mm.grouping)
        X = self._columns(self.x_recipes, num, codes, n)
        Z = self._columns(self.z_recipes, num, codes, n)
        if n <= len(group_labels) * Z.shape[1]:
            return None
        _check_rank(X, mm.fixed_names)
        return ModelMatrices(
            formula=mm.formula,
            y=num[mm.response],
            X=X,
            Z=Z,
            group=group,
            group_labels=group_labels,
            fixed_names=mm.fixed_names,
            random_names=mm.random_names,
            blocks=mm.blocks,
            block_names=mm.block_names,
            levels=dict(mm.levels),
            variables=mm.variables,
            _fixed_spec=mm._fixed_spec,
            _random_specs=mm._random_specs,
        )


@dataclass(frozen=True, eq=False)
class Design:
    """A fixed-effects design built from a right-hand side, with R's column names.

    Used by engines that have no random effects (Cox, conditional logistic):
    the same factor coding (:func:`_factor`) and naming (:func:`r_column_name`)
    as :func:`build_model_matrices`.

    Attributes
    ----------
    X : ndarray, shape (n, p)
        Design matrix (without the intercept column when ``intercept=False``).
    names : tuple of str
        R names of the columns (``sexM``, ``onset_sitebulbar``, ``age_at_dx``).
    levels : dict of str to list
        Factor levels of each categorical variable (first = reference).
    variables : tuple of str
        Data columns the right-hand side uses.
    terms : tuple of (str, tuple of int)
        R's label of each model term (``"onset_site"``, ``"months:sex"``) and the
        columns of ``X`` that belong to it (a factor with three levels is one
        term with two columns).
    """

    X: np.ndarray
    names: tuple[str, ...]
    levels: dict[str, list]
    variables: tuple[str, ...]
    terms: tuple[tuple[str, tuple[int, ...]], ...] = ()
    _spec: Any = field(default=None, repr=False)
    _intercept: bool = True

    def design(self, data: Any) -> np.ndarray:
        """The design matrix for new data, coded with the fit-time factor levels."""
        frame = as_frame(data)
        missing = [v for v in self.variables if v not in frame.columns]
        if missing:
            raise ValidationError([Problem(rule="unknown_column", column=v,
                                           message=f"column {v!r} is missing")
                                   for v in missing], context="new data")
        work = pd.DataFrame(index=pd.RangeIndex(len(frame)))
        problems = []
        for v in self.variables:
            col = frame[v].reset_index(drop=True)
            if col.isna().any():
                problems.append(Problem(rule="missing_values", column=v,
                                        message=f"{int(col.isna().sum())} row(s) have a "
                                        "missing value"))
                continue
            if v in self.levels:
                lv = self.levels[v]
                unknown = sorted({str(x) for x in pd.unique(col.astype(object))} -
                                 {str(x) for x in lv})
                if unknown:
                    problems.append(Problem(rule="unknown_level", column=v,
                                            message=f"level(s) {', '.join(unknown)} were not "
                                            "in the data the model was fitted to"))
                    continue
                work[v] = pd.Categorical(col.astype(object), categories=lv)
            else:
                bad = non_numeric_cells(col, v)
                if bad:
                    problems.extend(bad)
                    continue
                work[v] = pd.to_numeric(col).astype(float).to_numpy()
        if problems:
            raise ValidationError(problems, context="new data")
        if self._spec is None:
            X = np.ones((len(work), 1))
        else:
            X = np.asarray(self._spec.get_model_matrix(work, output="numpy"), dtype=float)
            X = X.reshape(len(work), -1)
        return X if self._intercept else X[:, 1:]


def build_design(
    rhs: str,
    data: Any,
    *,
    variable_order: Sequence[str] = (),
    intercept: bool = True,
    check_rank: bool = True,
) -> Design:
    """Build a fixed-effects design matrix from a right-hand side in lme4/R syntax.

    Parameters
    ----------
    rhs : str
        E.g. ``"anxiolytic + age_at_dx + sex + onset_site"`` (``"1"`` for none).
    data : DataFrame or object with ``to_frame()``
        Rows to build the design for; the caller has checked missing values.
    variable_order : sequence of str, optional
        Variables in formula order (orders interaction names as R does).
    intercept : bool, default True
        ``False`` drops the intercept column *after* treatment coding, as R's
        ``coxph`` and ``clogit`` do (so a factor keeps its reference level).
    check_rank : bool, default True
        Raise a ValidationError naming aliased columns of a rank-deficient design.

    Returns
    -------
    Design
    """
    from formulaic import model_matrix

    from alsfrs.formula import to_formulaic

    frame = as_frame(data)
    rhs_f = to_formulaic(rhs)
    from formulaic import Formula

    try:
        required = sorted(Formula(rhs_f).required_variables, key=lambda v: rhs_f.find(v))
    except Exception as exc:
        raise ValidationError(
            [Problem(rule="malformed_formula", message=f"cannot read {rhs!r}: {exc}")],
            context="the model formula") from None
    missing = [v for v in required if v not in frame.columns]
    if missing:
        raise ValidationError(
            [Problem(rule="unknown_column", column=v,
                     message=f"the formula uses {v!r}, which is not a column of the data")
             for v in missing], context="the model data")
    numeric_text = [p for v in required if _is_categorical_like(frame[v])
                    and _looks_numeric(frame[v]) for p in non_numeric_cells(frame[v], v)]
    if numeric_text:
        raise ValidationError(numeric_text, context="the model data")
    work = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    levels: dict[str, list] = {}
    for v in required:
        col = frame[v].reset_index(drop=True)
        if _is_categorical_like(col):
            fac = _factor(col)
            levels[v] = list(fac.categories)
            work[v] = fac
        else:
            work[v] = pd.to_numeric(col).astype(float).to_numpy()
    if rhs_f.strip() in ("1", "") or not required:
        X = np.ones((len(work), 1))
        names: tuple[str, ...] = ("(Intercept)",)
        terms = (("(Intercept)", (0,)),)
        spec = None
    else:
        try:
            mm = model_matrix(rhs_f, work, output="numpy")
        except Exception as exc:
            raise ValidationError(
                [Problem(rule="malformed_formula", message=f"cannot build {rhs!r}: {exc}")],
                context="the model formula") from None
        spec = mm.model_spec
        X = np.asarray(mm, dtype=float).reshape(len(work), -1)
        names = tuple(r_column_name(c, tuple(variable_order)) for c in spec.column_names)
        terms = tuple((r_column_name(str(t), tuple(variable_order)), tuple(ix))
                      for t, ix in spec.term_indices.items())
    if not intercept:
        if names and names[0] == "(Intercept)":
            X, names = X[:, 1:], names[1:]
            terms = tuple((t, tuple(i - 1 for i in ix)) for t, ix in terms
                          if t not in ("(Intercept)", "1"))
    if check_rank and X.shape[1]:
        _check_rank(X, names)
    return Design(X=np.ascontiguousarray(X), names=names, levels=levels,
                  variables=tuple(required), terms=terms, _spec=spec, _intercept=intercept)
