"""Data of a joint model: the longitudinal design, the survival design and the link.

A joint fit needs, per patient ``i``:

* the visits: the mixed model's matrices (:mod:`alsfrs.matrices`), centred as the
  Bayesian engine centres them (:func:`alsfrs.bayes.model.make_design`);
* the event time ``T_i``, the status ``d_i`` and the survival covariates ``w_i``
  (one row per patient);
* the patient's *true trajectory* ``m_i(t) = x_i(t)ᵀβ + z_i(t)ᵀb_i`` at any time,
  not only at visits. It is read off the longitudinal formula: the fixed and
  random design rows are evaluated at t = 0, 1, 2, 3 with the patient's
  covariates, and the trajectory is written as a polynomial in time
  ``m_i(t) = Σ_d (P_di β + Q_di b_i) t^d`` (degree 1 for ``months * (...)``,
  2 with ``I(months^2)``). Formulas whose rows are not polynomial of degree ≤ 2
  in time, or whose covariates change within a patient, are refused: the hazard
  needs m_i(t) between visits.

The baseline hazard is defined on a partition of follow-up at quantiles of the
event times (``n_pieces`` pieces): the pieces of the piecewise-constant
baseline, the knots of the log-linear spline baseline (log h0 linear between
knots, continuous), and the panels of Gauss–Legendre quadrature otherwise. The
penalised B-spline baseline (``"pspline"``) has its own partition: ``n_pieces``
equally spaced segments over [0, max follow-up] (the B-spline's knots, also the
quadrature panels), then [max follow-up, ∞) where log h0 is held constant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alsfrs.bayes.model import Design, make_design
from alsfrs.errors import Problem, ValidationError
from alsfrs.matrices import ModelMatrices, build_model_matrices
from alsfrs.timeaxis import time_variable

__all__ = ["JointDesign", "PSplineBasis", "SurvivalData", "gauss_legendre", "make_joint_design",
           "piece_knots"]

ASSOCIATIONS = ("value", "value+slope", "shared")
BASELINES = ("piecewise", "spline", "pspline", "weibull")
#: Default number of pieces (piecewise, spline) or B-spline segments (pspline).
DEFAULT_PIECES = {"piecewise": 6, "spline": 6, "pspline": 9, "weibull": 6}
#: Trajectory polynomials are identified from the design rows at these times.
_PROBE_TIMES = (0.0, 1.0, 2.0, 3.0, 0.5)


@dataclass(frozen=True, eq=False)
class SurvivalData:
    """One row per patient (in the longitudinal design's patient order).

    Attributes
    ----------
    time : ndarray (G,)
        Time of the event or of censoring, on the longitudinal time axis.
    event : ndarray (G,)
        1 for the event (death or IMV), 0 for censoring.
    W : ndarray (G, r)
        Survival covariates (no intercept: the baseline hazard has it).
    names : tuple of str
        R term names of the columns of ``W``.
    time_name, event_name : str
        The columns of ``Surv(time, event)``.
    levels : dict
        Factor levels used for ``W`` (first = reference).
    """

    time: np.ndarray
    event: np.ndarray
    W: np.ndarray
    names: tuple[str, ...]
    time_name: str = "time"
    event_name: str = "event"
    formula: str | None = None
    levels: dict[str, list] = field(default_factory=dict)
    spec: Any = None


def piece_knots(time: np.ndarray, event: np.ndarray, n_pieces: int) -> np.ndarray:
    """Boundaries 0 = τ_0 < τ_1 < … < τ_K = ∞ with inner knots at event-time quantiles."""
    ev = np.asarray(time)[np.asarray(event) > 0]
    if n_pieces < 1:
        raise ValidationError(Problem(rule="bad_option", column="n_pieces",
                                      message=f"n_pieces must be >= 1, got {n_pieces!r}"))
    inner = np.quantile(ev, np.arange(1, n_pieces) / n_pieces) if len(ev) else np.zeros(0)
    inner = np.unique(inner[inner > 0])
    return np.concatenate(([0.0], inner, [np.inf]))


def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(int(n))
    return (x + 1) / 2, w / 2


@dataclass(frozen=True, eq=False)
class PSplineBasis:
    """Cubic B-spline basis of the penalised log baseline hazard (P-spline).

    ``n_segments`` equally spaced segments of width ``h = t_max / n_segments``
    over [0, t_max] (t_max: the longest follow-up), with the knot sequence
    extended by ``degree`` knots of the same spacing on each side (Eilers & Marx
    1996), so that there are ``n_segments + degree`` coefficients θ and
    ``log h0(t) = Σ_j θ_j B_j(t)`` on [0, t_max]; beyond t_max log h0 is held at
    its value at t_max. The B-splines reproduce straight lines: θ_j = a + s (ξ_j − t_max/2)
    / t_max, with ξ_j the Greville abscissae, gives log h0(t) = a + s (t − t_max/2) / t_max
    exactly; this is the null space of the second-difference penalty.
    """

    t_max: float
    n_segments: int
    degree: int = 3

    @property
    def knots(self) -> np.ndarray:
        h = self.t_max / self.n_segments
        return h * np.arange(-self.degree, self.n_segments + self.degree + 1)

    @property
    def n_coef(self) -> int:
        return self.n_segments + self.degree

    @property
    def breaks(self) -> np.ndarray:
        """Segment boundaries 0, h, …, t_max."""
        return np.linspace(0.0, self.t_max, self.n_segments + 1)

    @property
    def greville(self) -> np.ndarray:
        """Greville abscissae ξ_j (knot averages): Σ_j ξ_j B_j(t) = t."""
        k, d = self.knots, self.degree
        return np.array([k[j + 1:j + d + 1].mean() for j in range(self.n_coef)])

    def basis(self, t: np.ndarray) -> np.ndarray:
        """B_j(min(max(t, 0), t_max)): shape t.shape + (n_coef,) (scipy's BSpline)."""
        from scipy.interpolate import BSpline

        t = np.asarray(t, dtype=float)
        x = np.clip(t.ravel(), 0.0, self.t_max)
        B = BSpline.design_matrix(x, self.knots, self.degree).toarray()
        return B.reshape(*t.shape, self.n_coef)

    def null_space(self) -> np.ndarray:
        """(n_coef, 2): coefficients of the level and of the trend over follow-up."""
        g = (self.greville - self.t_max / 2) / self.t_max
        return np.column_stack([np.ones(self.n_coef), g])

    def penalty(self, order: int = 2) -> np.ndarray:
        """DᵀD, D the ``order``-th difference matrix (n_coef − order, n_coef)."""
        D = np.diff(np.eye(self.n_coef), n=order, axis=0)
        return D.T @ D

    def penalty_root(self, order: int = 2) -> np.ndarray:
        """E (n_coef, n_coef − order) with θ = E ε ⇒ θᵀDᵀDθ = εᵀε and Eᵀ(null space) = 0:
        E = U₊ Λ₊^{-1/2} from the eigendecomposition DᵀD = U Λ Uᵀ."""
        lam, U = np.linalg.eigh(self.penalty(order))
        keep = lam > 1e-9 * lam.max()
        return U[:, keep] / np.sqrt(lam[keep])


@dataclass(frozen=True, eq=False)
class JointDesign:
    """Everything the joint model's log density needs, as arrays.

    ``P[d]`` (G, p) and ``Q[d]`` (G, q) are the coefficients of t^d of each
    patient's fixed (centred, as ``long.Xc``) and random design rows, so that
    ``m_i(t) = Σ_d t^d (P[d]_i β_c + Q[d]_i b_i)``.
    """

    long: Design
    surv: SurvivalData
    P: np.ndarray  # (deg+1, G, p)
    Q: np.ndarray  # (deg+1, G, q)
    Wc: np.ndarray
    wbar: np.ndarray
    knots: np.ndarray
    m_ref: float
    association: str
    baseline: str
    quadrature_nodes: int
    closed_form: bool
    t_scale: float
    t_end: float = np.inf
    pspline: PSplineBasis | None = None

    @property
    def n_random(self) -> int:
        return self.long.mm.n_random

    @property
    def setting_pieces(self) -> int:
        """The ``n_pieces`` that rebuilds this design (B-spline segments for "pspline")."""
        return self.pspline.n_segments if self.pspline is not None else self.n_pieces

    @property
    def spline_knots(self) -> np.ndarray:
        """Knots of the log-linear baseline ("spline"): the piece boundaries, the last
        at the end of follow-up (the last piece's line extends beyond it); for the
        P-spline, the segment boundaries 0, h, …, t_max."""
        if self.pspline is not None:
            return self.pspline.breaks
        return np.concatenate([self.knots[:-1], [self.t_end]])

    @property
    def degree(self) -> int:
        return self.P.shape[0] - 1

    @property
    def n_pieces(self) -> int:
        return len(self.knots) - 1

    @property
    def patients(self) -> list[str]:
        return [str(g) for g in self.long.mm.group_labels]

    def exposure(self) -> tuple[np.ndarray, np.ndarray]:
        """Start ``l_ik`` and length ``Δ_ik`` of each patient's time in each piece (G, K)."""
        T = self.surv.time[:, None]
        lo = np.minimum(T, self.knots[None, :-1])
        hi = np.minimum(T, self.knots[None, 1:])
        return lo, hi - lo

    def event_piece(self) -> np.ndarray:
        """Index of the piece holding each patient's end of follow-up."""
        k = np.searchsorted(self.knots, self.surv.time, side="left") - 1
        return np.clip(k, 0, self.n_pieces - 1)

    def nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """Gauss–Legendre nodes and weights covering [0, T_i], per piece: (G, K*n).
        Pieces no patient reaches (the P-spline's [t_max, ∞)) are left out."""
        x, w = gauss_legendre(self.quadrature_nodes)
        lo, d = self.exposure()
        used = d.max(axis=0) > 0
        lo, d = lo[:, used], d[:, used]
        t = lo[:, :, None] + d[:, :, None] * x[None, None, :]
        wt = d[:, :, None] * w[None, None, :]
        G = len(self.surv.time)
        return t.reshape(G, -1), wt.reshape(G, -1)


def _trajectory_polynomial(mm, frame: pd.DataFrame, time: str, rows: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients of t^d of the fixed and random design rows, per patient."""
    base = frame.iloc[rows].copy()
    Xs, Zs = [], []
    for t in _PROBE_TIMES:
        base[time] = t
        Xs.append(mm.fixed_design(base))
        Zs.append(mm.random_design(base))

    def poly(M: list[np.ndarray]) -> np.ndarray:
        c0 = M[0]
        c2 = (M[2] - 2 * M[1] + M[0]) / 2
        c1 = M[1] - M[0] - c2
        pred3 = c0 + 3 * c1 + 9 * c2
        pred5 = c0 + 0.5 * c1 + 0.25 * c2
        scale = 1 + np.abs(M[3]) + np.abs(M[4])
        if np.max(np.abs(pred3 - M[3]) / scale) > 1e-8 or np.max(
                np.abs(pred5 - M[4]) / scale) > 1e-8:
            raise ValidationError(Problem(
                rule="unsupported_trajectory", column=time,
                message=f"the longitudinal formula is not a polynomial of degree <= 2 in "
                        f"{time!r} (e.g. splines of time); the joint model needs each "
                        "patient's trajectory between visits"), context="fit_joint")
        out = np.stack([c0, c1, c2])
        if np.max(np.abs(c2)) < 1e-12:
            out = out[:2]
        return out

    P, Q = poly(Xs), poly(Zs)
    deg = max(P.shape[0], Q.shape[0])
    pad = [np.concatenate([A, np.zeros((deg - A.shape[0], *A.shape[1:]))]) for A in (P, Q)]
    return pad[0], pad[1]


def check_design_options(association: str, baseline: str, n_pieces: int | None,
                         quadrature_nodes: int) -> int:
    """One ValidationError listing every bad option; returns ``n_pieces`` (its default
    for the baseline if None)."""
    problems = []
    if association not in ASSOCIATIONS:
        problems.append(Problem(rule="bad_option", column="association",
                                message=f"association must be one of {', '.join(ASSOCIATIONS)}, "
                                        f"not {association!r}"))
    if baseline not in BASELINES:
        problems.append(Problem(rule="bad_option", column="baseline",
                                message=f"baseline must be one of {', '.join(BASELINES)}, "
                                        f"not {baseline!r}"))
    if not isinstance(quadrature_nodes, int | np.integer) or quadrature_nodes < 1:
        problems.append(Problem(rule="bad_option", column="quadrature_nodes",
                                message="quadrature_nodes must be a whole number >= 1"))
    if n_pieces is None:
        n_pieces = DEFAULT_PIECES.get(baseline, 6)
    if (not isinstance(n_pieces, int | np.integer) or isinstance(n_pieces, bool)
            or n_pieces < 1):
        problems.append(Problem(rule="bad_option", column="n_pieces",
                                message=f"n_pieces must be a whole number >= 1, got "
                                        f"{n_pieces!r}"))
    elif baseline == "pspline" and n_pieces < 2:
        problems.append(Problem(rule="bad_option", column="n_pieces",
                                message="the penalised B-spline baseline needs n_pieces >= 2 "
                                        "segments"))
    if problems:
        raise ValidationError(problems, context="fit_joint")
    return int(n_pieces)


def make_joint_design(
    longitudinal: str,
    frame: pd.DataFrame,
    surv: SurvivalData,
    *,
    time: str | None = None,
    association: str = "value",
    baseline: str = "piecewise",
    n_pieces: int | None = None,
    quadrature_nodes: int = 7,
    quadrature: bool = False,
    mm: ModelMatrices | None = None,
) -> JointDesign:
    """Build the joint design from a visits frame and per-patient survival data.

    ``surv`` rows must be in the order of the longitudinal design's patients
    (``sorted`` patient labels, as :func:`alsfrs.matrices.build_model_matrices`
    codes them); :func:`alsfrs.joint.fit.fit_joint` arranges that. ``time``: the
    time variable, chosen by :func:`alsfrs.timeaxis.time_variable` when None.
    ``mm``: the longitudinal matrices if already built from ``frame``.
    """
    n_pieces = check_design_options(association, baseline, n_pieces, quadrature_nodes)
    if mm is None:
        mm = build_model_matrices(longitudinal, frame)
    time = time_variable(mm.variables, mm.random_names, time)
    if mm.n_random > 3:
        raise ValidationError(Problem(
            rule="bad_option", message=f"at most 3 random effects per patient are supported, "
                                       f"the formula has {mm.n_random}"), context="fit_joint")
    design = make_design(mm, time)
    # one row per patient (the first visit) carries the patient's covariates
    first = np.full(mm.n_groups, -1)
    order = np.argsort(mm.group, kind="stable")
    g_sorted = mm.group[order]
    starts = np.flatnonzero(np.r_[True, g_sorted[1:] != g_sorted[:-1]])
    first[g_sorted[starts]] = order[starts]
    frame_r = frame.reset_index(drop=True)
    P, Q = _trajectory_polynomial(mm, frame_r, time, first)
    # the polynomial must reproduce every visit's rows: covariates constant within patient
    tv = frame_r[time].to_numpy(dtype=float)
    powers = tv[None, :] ** np.arange(P.shape[0])[:, None]
    Xhat = np.einsum("dn,dnp->np", powers, P[:, mm.group, :])
    Zhat = np.einsum("dn,dnq->nq", powers, Q[:, mm.group, :])
    bad = (np.abs(Xhat - mm.X).max(axis=1) > 1e-8 * (1 + np.abs(mm.X).max(axis=1))) | (
        np.abs(Zhat - mm.Z).max(axis=1) > 1e-8 * (1 + np.abs(mm.Z).max(axis=1)))
    if bad.any():
        pats = pd.unique(frame_r[mm.grouping].to_numpy()[bad])
        raise ValidationError([Problem(
            rule="time_varying_covariate", patient=p, column=mm.grouping,
            message="a covariate of the longitudinal formula changes between this patient's "
                    "visits; the joint model needs patient-level covariates (constant in time) "
                    "besides the time variable") for p in pats[:20]], context="fit_joint")
    Pc = P.copy()
    Pc[0] = P[0] - design.xbar[None, :]
    wbar = surv.W.mean(axis=0) if surv.W.shape[1] else np.zeros(0)
    Wc = surv.W - wbar
    deg = P.shape[0] - 1
    pspline = None
    if baseline == "pspline":
        pspline = PSplineBasis(t_max=float(np.max(surv.time)), n_segments=int(n_pieces))
        knots = np.concatenate([pspline.breaks, [np.inf]])
    else:
        knots = piece_knots(surv.time, surv.event, n_pieces)
    # closed-form cumulative hazard: the hazard is exp(a + c t) in each piece (linear
    # trajectories; or no trajectory in the hazard: shared random effects), or a Weibull
    # hazard times a constant (shared random effects)
    shared = association == "shared"
    closed = not quadrature and (
        (baseline in ("piecewise", "spline") and (deg == 1 or shared))
        or (baseline == "weibull" and shared))
    ev = surv.time[surv.event > 0]
    t_scale = float(np.median(ev)) if len(ev) else float(np.median(surv.time))
    return JointDesign(long=design, surv=surv, P=Pc, Q=Q, Wc=Wc, wbar=wbar, knots=knots,
                       m_ref=float(np.mean(mm.y)), association=association, baseline=baseline,
                       quadrature_nodes=int(quadrature_nodes), closed_form=closed,
                       t_scale=max(t_scale, 1e-8),
                       t_end=float(max(np.max(surv.time), knots[-2] + 1e-6)),
                       pspline=pspline)
