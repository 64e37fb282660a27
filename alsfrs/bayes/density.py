"""The collapsed model's log posterior density and its gradient, in NumPy.

The same density as the PyMC model of :func:`alsfrs.bayes.model.build_model`
(collapsed, Gaussian), on the same unconstrained scale PyMC samples on, with
nothing for PyTensor to compile:

* fixed effects ``b`` (the coefficients of the centred design) as they are;
* each correlated block of random effects as PyMC's ``LKJCholeskyCov``: the
  packed lower Cholesky factor of its covariance, row by row, with the
  diagonal on the log scale (PyMC's ``CholeskyCovPacked`` transform), the SD
  priors applied to the rows' norms and the LKJ(η) prior to the correlation
  factor, Jacobians included;
* each uncorrelated random effect's SD and the residual σ on the log scale.

The likelihood is :class:`alsfrs.gaussian.MarginalKernel` (random effects
integrated out); the priors and the transforms add a few dozen flops. The
tests compare value differences and gradients with PyMC's compiled log
density of the reference model at random points.

Why: compiling PyMC's graph of the priors and transforms to C took most of
the first fit's time on a fresh machine (about 17 s of a 40 s first fit,
``docs/benchmarks.md``); this density needs no compilation at all, and its
gradient is what the sampler calls tens of thousands of times.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize
from scipy.special import gammaln

from alsfrs.bayes.priors import Prior, PriorSet
from alsfrs.gaussian import MarginalKernel

__all__ = ["CollapsedDensity", "VectorPrior", "laplace_start", "negated"]


class VectorPrior:
    """Priors of one family over a vector of parameters, evaluated in one pass.

    ``__call__(x)`` returns the summed log density (PyMC's, constants included)
    and its derivative in each element.
    """

    def __init__(self, priors: list[Prior]) -> None:
        dists = {p.dist for p in priors}
        if len(dists) != 1:  # pragma: no cover - callers group by family
            raise ValueError("one family per vector prior")
        self.dist = dists.pop()
        P = np.array([p.params for p in priors], dtype=float).T
        d = self.dist
        if d == "normal":
            self.mu, s = P
            self.inv_var = 1.0 / s**2
            self.const = float(np.sum(-0.5 * math.log(2 * math.pi) - np.log(s)))
        elif d == "student_t":
            self.nu, self.mu, s = P
            self.nus2 = self.nu * s**2
            self.const = float(np.sum(gammaln((self.nu + 1) / 2) - gammaln(self.nu / 2)
                                      - 0.5 * np.log(self.nu * math.pi) - np.log(s)))
        elif d == "halfnormal":
            (s,) = P
            self.mu = np.zeros_like(s)
            self.inv_var = 1.0 / s**2
            self.const = float(np.sum(0.5 * math.log(2 / math.pi) - np.log(s)))
        elif d == "halfstudent_t":
            self.nu, s = P
            self.mu = np.zeros_like(s)
            self.nus2 = self.nu * s**2
            self.const = float(np.sum(math.log(2) + gammaln((self.nu + 1) / 2)
                                      - gammaln(self.nu / 2) - 0.5 * np.log(self.nu * math.pi)
                                      - np.log(s)))
        elif d == "exponential":
            (self.lam,) = P
            self.const = float(np.sum(np.log(self.lam)))
        else:  # pragma: no cover - resolve_priors allows no other family here
            raise ValueError(f"no NumPy density for the prior family {d!r}")

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        d = self.dist
        if d in ("normal", "halfnormal"):
            r = x - self.mu
            g = -r * self.inv_var
            return self.const + 0.5 * float(r @ g), g
        if d in ("student_t", "halfstudent_t"):
            r = x - self.mu
            r2 = r * r
            lp = self.const - float(((self.nu + 1) / 2) @ np.log1p(r2 / self.nus2))
            return lp, -(self.nu + 1) * r / (self.nus2 + r2)
        return self.const - float(self.lam @ x), -self.lam


@dataclass
class _Block:
    """One random-effects block: its rows/columns of L and its slice of θ."""

    cols: tuple[int, ...]
    start: int
    prior: VectorPrior
    correlated: bool
    # packed index (row i, column j ≤ i) -> position in the block's slice
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    colidx: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    diag: np.ndarray = field(default_factory=lambda: np.zeros(0, int))

    @property
    def size(self) -> int:
        m = len(self.cols)
        return m * (m + 1) // 2 if self.correlated else 1


class CollapsedDensity:
    """Log posterior of the collapsed Gaussian model on the unconstrained scale.

    Parameters
    ----------
    design : alsfrs.bayes.model.Design
    priors : PriorSet

    Attributes
    ----------
    size : int
        Length of the unconstrained vector θ.
    """

    def __init__(self, design, priors: PriorSet) -> None:
        mm = design.mm
        self.design = design
        self.kernel = MarginalKernel(design.stats)
        self.p = len(mm.fixed_names)
        self.q = mm.n_random
        self.fixed_priors = [priors.fixed[n] for n in mm.fixed_names]
        self.eta = float(priors.lkj_eta)
        self.blocks: list[_Block] = []
        pos = self.p
        for block in mm.blocks:
            bpri = [priors.sd[mm.random_names[j]] for j in block]
            b = _Block(cols=tuple(block), start=pos, prior=VectorPrior(bpri),
                       correlated=len(block) > 1)
            if b.correlated:
                m = len(block)
                rows, cols = np.tril_indices(m)
                order = np.lexsort((cols, rows))  # row by row, as PyMC packs
                b.rows, b.colidx = rows[order], cols[order]
                b.diag = np.cumsum(np.arange(1, m + 1)) - 1
            self.blocks.append(b)
            pos += b.size
        self.size = pos + 1
        # the fixed-effect priors grouped by family, each group evaluated in one pass
        families: dict[str, list[int]] = {}
        for j, pr in enumerate(self.fixed_priors):
            families.setdefault(pr.dist, []).append(j)
        self._fixed_groups = [(VectorPrior([self.fixed_priors[j] for j in idx]), np.array(idx))
                              for idx in families.values()]
        self._sigma_prior = VectorPrior([priors.sigma])

    # -- parameters ------------------------------------------------------------
    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """``(beta_c, L, sigma)`` from one unconstrained vector."""
        beta, L, sigma = self.unpack_draws(np.asarray(theta, dtype=float)[None])
        return beta[0], L[0], float(sigma[0])

    def unpack_draws(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``beta_c`` (D, p), ``L`` (D, q, q) and ``sigma`` (D,) from draws (D, size)."""
        theta = np.asarray(theta, dtype=float)
        D = theta.shape[0]
        L = np.zeros((D, self.q, self.q))
        for b in self.blocks:
            v = theta[:, b.start:b.start + b.size]
            if b.correlated:
                vals = v.copy()
                vals[:, b.diag] = np.exp(v[:, b.diag])
                c = np.asarray(b.cols)
                L[:, c[b.rows], c[b.colidx]] = vals
            else:
                L[:, b.cols[0], b.cols[0]] = np.exp(v[:, 0])
        return theta[:, :self.p].copy(), L, np.exp(theta[:, -1])

    def pack(self, beta_c: np.ndarray, L: np.ndarray, sigma: float) -> np.ndarray:
        """The unconstrained vector of ``(beta_c, L, sigma)`` (inverse of :meth:`unpack`)."""
        theta = np.empty(self.size)
        theta[:self.p] = beta_c
        for b in self.blocks:
            if b.correlated:
                c = np.asarray(b.cols)
                vals = L[c[b.rows], c[b.colidx]].astype(float)
                vals[b.diag] = np.log(vals[b.diag])
                theta[b.start:b.start + b.size] = vals
            else:
                theta[b.start] = math.log(L[b.cols[0], b.cols[0]])
        theta[-1] = math.log(sigma)
        return theta

    # -- density ---------------------------------------------------------------
    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log posterior density (up to PyMC's constant) and its gradient in θ."""
        theta = np.asarray(theta, dtype=float)
        beta, L, sigma = self.unpack(theta)
        ll, g_beta, g_L, g_sigma = self.kernel(beta, L, sigma)
        grad = np.empty(self.size)
        lp = ll
        grad[:self.p] = g_beta
        for pr, idx in self._fixed_groups:
            v, d = pr(beta[idx])
            lp += v
            grad[idx] += d
        for b in self.blocks:
            if b.correlated:
                v, g = self._lkj(b, theta[b.start:b.start + b.size], L, g_L)
            else:
                j = b.cols[0]
                sd = L[j, j]
                v, d = b.prior(np.array([sd]))
                v += theta[b.start]  # Jacobian of sd = exp(θ)
                g = np.array([(g_L[j, j] + d[0]) * sd + 1.0])
            lp += v
            grad[b.start:b.start + b.size] = g
        v, d = self._sigma_prior(np.array([sigma]))
        lp += v + theta[-1]
        grad[-1] = (g_sigma + d[0]) * sigma + 1.0
        return float(lp), grad

    def _lkj(self, b: _Block, v: np.ndarray, L: np.ndarray, g_L: np.ndarray
             ) -> tuple[float, np.ndarray]:
        """PyMC's LKJCholeskyCov log density on the packed transform, with its gradient
        (the likelihood's gradient in the block's elements of L added)."""
        m = len(b.cols)
        c = np.asarray(b.cols)
        vals = L[c[b.rows], c[b.colidx]]
        sd = np.sqrt(np.bincount(b.rows, weights=vals * vals, minlength=m))
        diag = vals[b.diag]
        i = np.arange(m)
        a = 2 * self.eta - 3 + m - i + 1.0  # LKJ exponent + the Jacobian's log corr_diag
        lp = float(np.sum(a * (np.log(diag) - np.log(sd)) - i * np.log(sd)))
        lp_sd, dsd = b.prior(sd)
        lp += lp_sd + float(np.sum(v[b.diag]))  # + Jacobian of the log-diagonal
        coef = (-a - i) / sd + dsd  # ∂/∂sd_i of the row's terms
        g = coef[b.rows] * vals / sd[b.rows]
        g[b.diag] += a / diag
        g += g_L[c[b.rows], c[b.colidx]]
        g[b.diag] = g[b.diag] * diag + 1.0
        return lp, g

    def pullback(self, theta: np.ndarray, g_beta: np.ndarray, g_L: np.ndarray,
                 g_sigma: float) -> np.ndarray:
        """Gradient in θ of a further term whose gradient in ``(beta_c, L, sigma)`` is
        given (the chain rule through the transforms; no prior, no Jacobian): how the
        joint model adds its survival term (:mod:`alsfrs.joint.density`)."""
        theta = np.asarray(theta, dtype=float)
        out = np.empty(self.size)
        out[:self.p] = g_beta
        for b in self.blocks:
            v = theta[b.start:b.start + b.size]
            if b.correlated:
                c = np.asarray(b.cols)
                g = g_L[c[b.rows], c[b.colidx]].astype(float)
                g[b.diag] *= np.exp(v[b.diag])
            else:
                g = np.array([g_L[b.cols[0], b.cols[0]] * math.exp(v[0])])
            out[b.start:b.start + b.size] = g
        out[-1] = g_sigma * math.exp(theta[-1])
        return out

    def neg(self) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
        """``-log p`` and its gradient (for optimisers)."""
        return negated(self)


def negated(density: Callable[[np.ndarray], tuple[float, np.ndarray]]
            ) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """``theta -> (-log p, -gradient)`` of a log density, for minimisers; a point where
    the density or its gradient is not finite gives ``(+inf, 0)``."""
    def f(theta):
        with np.errstate(all="ignore"):
            lp, g = density(theta)
        if not np.isfinite(lp) or not np.all(np.isfinite(g)):
            return np.inf, np.zeros_like(theta)
        return -lp, -g
    return f


def _crude_start(density: CollapsedDensity) -> np.ndarray:
    """Least-squares β, unit SDs, no correlation, σ from the residuals."""
    st = density.design.stats
    beta = np.linalg.lstsq(st.XtX, st.Xty, rcond=None)[0]
    rss = st.yty_total - 2 * beta @ st.Xty + beta @ st.XtX @ beta
    sigma = math.sqrt(max(rss / max(st.n_obs, 1), 1e-6)) / 2
    return density.pack(beta, np.eye(density.q), sigma)


def laplace_start(density: CollapsedDensity, *, step: float = 1e-5
                  ) -> tuple[np.ndarray, np.ndarray, dict]:
    """The posterior mode on the unconstrained scale and the inverse Hessian there.

    Used to start NUTS at the mode with its mass matrix set to the Laplace
    covariance (then adapted as usual): warm-up starts where the posterior is and
    with the right scales, instead of spending most of its gradient evaluations
    finding them.

    Returns
    -------
    mode : ndarray
    cov : ndarray
        Symmetric positive definite (eigenvalues floored if the Hessian is not).
    record : dict
        Optimiser record: iterations, evaluations, success, message.
    """
    f = density.neg()
    x0 = _crude_start(density)
    res = optimize.minimize(f, x0, jac=True, method="L-BFGS-B",
                            options={"maxiter": 2000, "gtol": 1e-6, "ftol": 1e-14,
                                     "maxcor": 20})
    mode = res.x
    k = mode.size
    H = np.empty((k, k))
    for j in range(k):
        h = step * max(1.0, abs(mode[j]))
        e = np.zeros(k)
        e[j] = h
        H[:, j] = (f(mode + e)[1] - f(mode - e)[1]) / (2 * h)
    H = 0.5 * (H + H.T)
    w, V = np.linalg.eigh(H)
    ok = np.isfinite(w).all() and w.size > 0
    if not ok:
        cov = np.eye(k)
    else:
        floor = max(w.max(), 1.0) * 1e-8
        cov = (V / np.maximum(w, floor)) @ V.T
        cov = 0.5 * (cov + cov.T)
    record = {"iterations": int(res.nit), "evaluations": int(res.nfev),
              "success": bool(res.success), "message": str(res.message)}
    return mode, cov, record
