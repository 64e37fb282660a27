"""PyMC builders for the hierarchical slope model: collapsed and non-centred.

Both build the same Gaussian model

    y_i = X_i β + Z_i b_i + ε_i,   b_i ~ N(0, Σ),   ε_i ~ N(0, σ² I),

from the shared model matrices (:mod:`alsfrs.matrices`).

``"noncentered"`` (what brms does) samples b_i = L z_i with z_i ~ N(0, I) as
latent variables. ``"collapsed"`` integrates the b_i out analytically: with
Λ = L / σ, u_i = Λᵀ Z_iᵀ r_i and A_i = I + Λᵀ Z_iᵀ Z_i Λ (q × q),

    log p(y_i | β, Σ, σ) = -½ [ n_i log 2πσ² + log|A_i| + (r_iᵀ r_i - u_iᵀ A_i⁻¹ u_i) / σ² ],

computed from the per-patient sufficient statistics Z_iᵀZ_i, Z_iᵀX_i, Z_iᵀy_i
(the same as the mixed-model engine's) and, because every patient shares σ,
only the overall XᵀX, Xᵀy, yᵀy for Σ r_iᵀ r_i. NUTS explores only β, Σ and σ
and the cost of a gradient does not grow with visits. The form stays stable as
Σ → 0 (A_i → I).

The likelihood and its gradient are the shared kernel
:func:`alsfrs.gaussian.marginal_loglik_grad` (NumPy, closed-form q × q algebra
batched over patients), entered into the PyMC graph as one PyTensor Op
(:class:`CollapsedLoglik`) whose outputs are the value and the gradient: the
compiled graph is left with the priors only, so the first fit on a fresh
machine compiles a few seconds instead of about a minute
(``docs/benchmarks.md``). ``kernel="graph"`` builds the former all-PyTensor
graph (kept for the compile-time comparison and as a cross-check).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from alsfrs.bayes.priors import Prior, PriorSet
from alsfrs.errors import Problem, ValidationError
from alsfrs.gaussian import MarginalKernel
from alsfrs.matrices import GroupStatistics, ModelMatrices, group_statistics

__all__ = [
    "CollapsedLoglik",
    "DensityOp",
    "Design",
    "build_density_model",
    "build_model",
    "make_design",
]

KERNELS = ("op", "graph")


class CollapsedLoglik(Op):
    """PyTensor Op: ``log p(y | β, L, σ)`` with the random effects integrated out.

    Inputs ``beta_c`` (p,), ``L`` (q, q) lower triangular, ``sigma`` (scalar);
    outputs the log-likelihood and its gradient in each input (NumPy,
    :class:`alsfrs.gaussian.MarginalKernel`). The gradient of the first
    output is read from the others, so one call per NUTS step gives both.
    """

    def __init__(self, stats: GroupStatistics) -> None:
        self.stats = stats
        self.kernel = MarginalKernel(stats)

    def make_node(self, beta, L, sigma) -> Apply:
        beta = pt.as_tensor_variable(beta).astype("float64")
        L = pt.as_tensor_variable(L).astype("float64")
        sigma = pt.as_tensor_variable(sigma).astype("float64")
        outputs = [pt.dscalar(), pt.dvector(), pt.dmatrix(), pt.dscalar()]
        return Apply(self, [beta, L, sigma], outputs)

    def perform(self, node, inputs, output_storage) -> None:
        beta, L, sigma = inputs
        ll, g_beta, g_L, g_sigma = self.kernel(beta, L, float(sigma))
        output_storage[0][0] = np.asarray(ll, dtype=np.float64)
        output_storage[1][0] = g_beta
        output_storage[2][0] = g_L
        output_storage[3][0] = np.asarray(g_sigma, dtype=np.float64)

    def connection_pattern(self, node):
        return [[True, False, False, False]] * 3

    def L_op(self, inputs, outputs, output_grads):
        g = output_grads[0]
        return [g * outputs[1], g * outputs[2], g * outputs[3]]

    def __eq__(self, other) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __str__(self) -> str:
        return "CollapsedLoglik"

class DensityOp(Op):
    """PyTensor Op: a NumPy log density of one unconstrained vector and its gradient.

    Wraps :class:`alsfrs.bayes.density.CollapsedDensity` (any callable returning
    ``(logp, grad)``); the graph PyMC compiles around it is this one node, run by
    PyTensor's Python linker: nothing to compile.
    """

    def __init__(self, density) -> None:
        self.density = density

    def make_node(self, theta) -> Apply:
        theta = pt.as_tensor_variable(theta).astype("float64")
        return Apply(self, [theta], [pt.dscalar(), pt.dvector()])

    def perform(self, node, inputs, output_storage) -> None:
        lp, grad = self.density(inputs[0])
        output_storage[0][0] = np.asarray(lp, dtype=np.float64)
        output_storage[1][0] = grad

    def connection_pattern(self, node):
        return [[True, False]]

    def L_op(self, inputs, outputs, output_grads):
        return [output_grads[0] * outputs[1]]

    def __eq__(self, other) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __str__(self) -> str:
        return "CollapsedDensity"


def build_density_model(density) -> pm.Model:
    """The model NUTS samples for the collapsed fit: one flat vector θ (the
    unconstrained parameters of :class:`alsfrs.bayes.density.CollapsedDensity`)
    and its log posterior as one potential."""
    with pm.Model() as model:
        theta = pm.Flat("theta", shape=density.size)
        pm.Potential("log_posterior", DensityOp(density)(theta)[0])
    return model


PARAMETERIZATIONS = ("collapsed", "noncentered")
FAMILIES = ("gaussian", "student_t")


@dataclass(frozen=True, eq=False)
class Design:
    """Model matrices with the fixed-effects columns centred for sampling."""

    mm: ModelMatrices
    Xc: np.ndarray
    xbar: np.ndarray
    has_intercept: bool
    stats: GroupStatistics
    time: str

    @property
    def fixed_names(self) -> list[str]:
        return list(self.mm.fixed_names)

    @property
    def random_names(self) -> list[str]:
        return list(self.mm.random_names)

    def center(self, beta: np.ndarray) -> np.ndarray:
        """Coefficients for the centred design from original-scale ones (last axis = terms)."""
        beta_c = np.array(beta, dtype=float, copy=True)
        if self.has_intercept:
            beta_c[..., 0] = beta[..., 0] + beta[..., 1:] @ self.xbar[1:]
        return beta_c

    def uncenter(self, beta_c: np.ndarray) -> np.ndarray:
        """Coefficients on the original scale from centred ones (last axis = terms)."""
        beta = np.array(beta_c, dtype=float, copy=True)
        if self.has_intercept:
            beta[..., 0] = beta_c[..., 0] - beta_c[..., 1:] @ self.xbar[1:]
        return beta


def make_design(mm: ModelMatrices, time: str) -> Design:
    """Centre the non-intercept columns of X and compute the sufficient statistics."""
    has_int = bool(mm.fixed_names) and mm.fixed_names[0] == "(Intercept)"
    xbar = mm.X.mean(axis=0)
    if has_int:
        xbar[0] = 0.0
        Xc = mm.X - xbar
    else:
        xbar[:] = 0.0
        Xc = mm.X.copy()
    stats = group_statistics(mm.y, Xc, mm.Z, mm.group, mm.n_groups)
    return Design(mm=mm, Xc=Xc, xbar=xbar, has_intercept=has_int, stats=stats, time=time)


def _register(name: str, priors: list[Prior], dims: str | None = None):
    """A vector RV with per-element priors of one family."""
    dist = priors[0].dist
    params = np.array([p.params for p in priors], dtype=float).T
    kw = {"dims": dims} if dims else {"shape": len(priors)}
    # shared, not literal: the intercept prior depends on the data, and a literal would
    # force a new compilation for every data set
    p = [pytensor.shared(np.ascontiguousarray(row)) for row in params]
    if dist == "normal":
        return pm.Normal(name, mu=p[0], sigma=p[1], **kw)
    if dist == "student_t":
        return pm.StudentT(name, nu=p[0], mu=p[1], sigma=p[2], **kw)
    raise AssertionError(dist)  # pragma: no cover


def _scale_dist(priors: list[Prior]):
    dist = priors[0].dist
    params = np.array([p.params for p in priors], dtype=float).T
    n = len(priors)
    if dist == "halfnormal":
        return pm.HalfNormal.dist(sigma=params[0], shape=n)
    if dist == "halfstudent_t":
        return pm.HalfStudentT.dist(nu=params[0], sigma=params[1], shape=n)
    return pm.Exponential.dist(lam=params[0], shape=n)


def _scalar_rv(name: str, prior: Prior):
    p = prior.params
    if prior.dist == "halfnormal":
        return pm.HalfNormal(name, sigma=p[0])
    if prior.dist == "halfstudent_t":
        return pm.HalfStudentT(name, nu=p[0], sigma=p[1])
    if prior.dist == "exponential":
        return pm.Exponential(name, lam=p[0])
    if prior.dist == "gamma":
        return pm.Gamma(name, alpha=p[0], beta=p[1])
    raise AssertionError(prior.dist)  # pragma: no cover


def _fixed_effects(design: Design, priors: PriorSet):
    names = design.fixed_names
    families: dict[str, list[int]] = {}
    for j, n in enumerate(names):
        families.setdefault(priors.fixed[n].dist, []).append(j)
    pieces = []
    for fam, idx in families.items():
        rv_name = "b" if fam == "normal" else f"b_{fam}"
        coord = f"term_{fam}"
        pm.Model.get_context().add_coord(coord, [names[j] for j in idx])
        pieces.append((idx, _register(rv_name, [priors.fixed[names[j]] for j in idx], coord)))
    if len(pieces) == 1:  # one prior family (the usual case): the vector is beta itself
        return pieces[0][1]
    # several families: put the pieces back in term order (a constant permutation)
    order = np.argsort(np.concatenate([idx for idx, _ in pieces]))
    return pt.concatenate([rv for _, rv in pieces])[order]


def _covariance_factor(design: Design, priors: PriorSet):
    """Lower-triangular L with Σ = L Lᵀ, block-diagonal as the formula says."""
    mm = design.mm
    q = mm.n_random
    L = pt.zeros((q, q))
    # blocks are contiguous column ranges: basic slices keep the graph in compiled ops
    for k, block in enumerate(mm.blocks):
        idx = np.array(block)
        names = [mm.random_names[j] for j in block]
        bpri = [priors.sd[n] for n in names]
        if len(block) == 1:
            sd = _scalar_rv(f"sd_block{k}", bpri[0])
            if q == 1:
                return pt.reshape(sd, (1, 1))
            L = pt.set_subtensor(L[idx[0], idx[0]], sd)
        else:
            Lb, _corr, _sd = pm.LKJCholeskyCov(
                f"chol_block{k}", eta=priors.lkj_eta, n=len(block), sd_dist=_scale_dist(bpri),
                compute_corr=True, store_in_trace=False)
            if len(block) == q:
                return Lb
            lo, hi = int(idx[0]), int(idx[-1]) + 1
            if list(block) != list(range(lo, hi)):  # pragma: no cover - formula gives ranges
                raise AssertionError("random-effect blocks must be contiguous")
            L = pt.set_subtensor(L[lo:hi, lo:hi], Lb)
    return L


def _solve_quad(A, u, q: int):
    """log|A_i| and u_iᵀ A_i⁻¹ u_i for stacked symmetric 3 × 3 A_i (cofactors)."""
    del q
    a, b, c = A[:, 0, 0], A[:, 0, 1], A[:, 0, 2]
    e, f, i = A[:, 1, 1], A[:, 1, 2], A[:, 2, 2]
    c00 = e * i - f * f
    c01 = c * f - b * i
    c02 = b * f - c * e
    c11 = a * i - c * c
    c12 = b * c - a * f
    c22 = a * e - b * b
    det = a * c00 + b * c01 + c * c02
    u0, u1, u2 = u[:, 0], u[:, 1], u[:, 2]
    quad = (c00 * u0**2 + c11 * u1**2 + c22 * u2**2
            + 2 * (c01 * u0 * u1 + c02 * u0 * u2 + c12 * u1 * u2)) / det
    return pt.log(det), quad


def collapsed_loglik(design: Design, beta_c, L, sigma, kernel: str = "op"):
    """Marginal log-likelihood summed over patients (random effects integrated out).

    ``kernel="op"`` (default) applies :class:`CollapsedLoglik`; ``"graph"`` writes
    the same algebra as a PyTensor graph (compiled to C; slow to compile).

    For one or two random effects per patient every quantity is written out
    elementwise over patients (the common intercept-and-slope case, and the
    fastest graph); for three, batched tensor products and cofactors are used.
    """
    st = design.stats
    if kernel == "op":
        return CollapsedLoglik(st)(beta_c, L, sigma)[0]
    q = design.mm.n_random
    # data enter as shared variables, not literals, so that the compiled C code is
    # reused for every data set of the model's form (no recompilation per cohort)
    shared = pytensor.shared
    n_obs = shared(np.float64(st.n_obs), name="n_obs")
    Lam = L / sigma
    rss = (shared(np.float64(st.yty_total), name="yty") - 2 * pt.dot(beta_c, shared(st.Xty))
           + pt.dot(beta_c, pt.dot(shared(st.XtX), beta_c)))
    # c_i = Z_i'y_i - Z_i'X_i beta, one vector over patients per random effect
    c = [shared(np.ascontiguousarray(st.Zty[:, k])) -
         pt.dot(shared(np.ascontiguousarray(st.ZtX[:, k, :])), beta_c) for k in range(q)]
    ztz = [[shared(np.ascontiguousarray(st.ZtZ[:, i, j])) for j in range(q)] for i in range(q)]
    if q == 1:
        lam = Lam[0, 0]
        a = 1 + lam**2 * ztz[0][0]
        u = lam * c[0]
        logdet, quad = pt.log(a), u**2 / a
    elif q == 2:
        l00, l10, l11 = Lam[0, 0], Lam[1, 0], Lam[1, 1]
        s00, s01, s11 = ztz[0][0], ztz[0][1], ztz[1][1]
        m00, m01 = s00 * l00 + s01 * l10, s01 * l11  # S_i Λ
        m10, m11 = s01 * l00 + s11 * l10, s11 * l11
        a00 = 1 + l00 * m00 + l10 * m10  # A_i = I + Λ' S_i Λ
        a01 = l00 * m01 + l10 * m11
        a11 = 1 + l11 * m11
        u0, u1 = l00 * c[0] + l10 * c[1], l11 * c[1]  # u_i = Λ' c_i
        det = a00 * a11 - a01**2
        logdet = pt.log(det)
        quad = (a11 * u0**2 - 2 * a01 * u0 * u1 + a00 * u1**2) / det
    else:
        cc = pt.stack(c, axis=1)
        u = pt.dot(cc, Lam)
        SL = pt.tensordot(shared(st.ZtZ), Lam, axes=[[2], [0]])
        A = pt.tensordot(SL, Lam, axes=[[1], [0]]).dimshuffle(0, 2, 1) + pt.eye(q)
        logdet, quad = _solve_quad(A, u, q)
    return -0.5 * (n_obs * np.log(2 * np.pi) + 2 * n_obs * pt.log(sigma) + pt.sum(logdet)
                   + (rss - pt.sum(quad)) / sigma**2)


def build_model(design: Design, priors: PriorSet, *, family: str = "gaussian",
                parameterization: str = "collapsed", kernel: str = "op") -> pm.Model:
    """The PyMC model for a design; see the module docstring."""
    problems = []
    if family not in FAMILIES:
        problems.append(Problem(rule="bad_option", column="family",
                                message=f"family must be one of {', '.join(FAMILIES)}, "
                                        f"not {family!r}"))
    if parameterization not in PARAMETERIZATIONS:
        problems.append(Problem(rule="bad_option", column="parameterization",
                                message="parameterization must be one of "
                                        f"{', '.join(PARAMETERIZATIONS)}, "
                                        f"not {parameterization!r}"))
    if family == "student_t" and parameterization == "collapsed":
        problems.append(Problem(
            rule="bad_option", column="parameterization",
            message="the Student-t family has no closed-form marginal likelihood: use "
                    "parameterization='noncentered' with family='student_t'"))
    q = design.mm.n_random
    if kernel not in KERNELS:
        problems.append(Problem(rule="bad_option", column="kernel",
                                message=f"kernel must be one of {', '.join(KERNELS)}"))
    if parameterization == "collapsed" and kernel == "graph" and q > 3:
        problems.append(Problem(rule="bad_option", column="parameterization",
                                message=f"the collapsed form supports up to 3 random effects per "
                                        f"patient, the formula has {q}"))
    if problems:
        raise ValidationError(problems, context="fit_bayes")
    mm = design.mm
    coords = {"term": design.fixed_names, "re_term": design.random_names,
              "re_term_": design.random_names, "patient": [str(g) for g in mm.group_labels]}
    with pm.Model(coords=coords) as model:
        beta_c = _fixed_effects(design, priors)
        beta = beta_c
        if design.has_intercept:
            beta = pt.set_subtensor(beta_c[0], beta_c[0] - pt.dot(beta_c[1:], design.xbar[1:]))
        pm.Deterministic("beta", beta, dims="term")
        L = _covariance_factor(design, priors)
        pm.Deterministic("chol", L, dims=("re_term", "re_term_"))
        cov = pt.dot(L, L.T)
        sd = pt.sqrt(pt.diag(cov))
        pm.Deterministic("sd", sd, dims="re_term")
        pm.Deterministic("corr", cov / pt.outer(sd, sd), dims=("re_term", "re_term_"))
        sigma = _scalar_rv("sigma", priors.sigma)
        if parameterization == "collapsed":
            pm.Potential("marginal_loglik", collapsed_loglik(design, beta_c, L, sigma, kernel))
        else:
            z = pm.Normal("z", 0.0, 1.0, dims=("patient", "re_term"))
            b = pt.dot(z, L.T)
            mu = pt.dot(design.Xc, beta_c) + pt.sum(mm.Z * b[mm.group], axis=1)
            if family == "gaussian":
                pm.Normal("y", mu=mu, sigma=sigma, observed=mm.y)
            else:
                nu = _scalar_rv("nu", priors.nu)
                pm.StudentT("y", nu=nu, mu=mu, sigma=sigma, observed=mm.y)
    return model
