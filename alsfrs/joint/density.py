"""The joint model's log posterior density and its gradient, in NumPy.

The same density as the PyMC model of :func:`alsfrs.joint.model.build_joint_model`,
on the same unconstrained scale, with nothing for PyTensor to compile (compiling
that model's gradient to C took about 80 s of a 120 s first fit on 1,000 patients,
``docs/joint.md``). It covers every design with one or two random effects per
patient: any association, any baseline (piecewise, spline, P-spline, Weibull),
closed-form cumulative hazards and Gauss–Legendre quadrature, fixed trajectories
of degree ≤ 2. :func:`supports` says whether a design is one of them; the others
(three random effects: random quadratic time) are sampled through the PyMC model.

The parameter vector θ is, in this order:

* the longitudinal block of :class:`alsfrs.bayes.density.CollapsedDensity`
  (β of the centred design, each random-effects block's covariance as PyMC's
  ``LKJCholeskyCov`` transform or a log SD, log σ), whose value is the collapsed
  (marginal) longitudinal likelihood plus those priors;
* γ (survival covariates), then α (``"value"``: one; ``"value+slope"``: α and the
  slope's α; ``"shared"``: one per random effect);
* the baseline's parameters (:class:`_Baseline`): log h0 per piece or at each knot,
  the P-spline's level, trend, log precision and penalised coefficients, or the
  Weibull log rate and log shape;
* z (patients × random effects, row by row), standard normal a priori.

The survival term is evaluated at b_i(β, L, σ, z_i) = Λ R_i⁻ᵀ(R_i⁻¹u_i + σ z_i)
(:mod:`alsfrs.joint.model`); its gradient is carried back through that map by
hand, elementwise over patients (reverse mode, each step commented with the
forward formula it inverts). The tests compare values and gradients with PyMC's
compiled log density of the reference model at random points.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize

from alsfrs.bayes.density import CollapsedDensity, VectorPrior, negated
from alsfrs.joint.design import JointDesign
from alsfrs.joint.priors import JointPriors, shared_name

__all__ = ["JointDensity", "LaplaceCoordinates", "joint_laplace", "supports"]


def supports(jd: JointDesign) -> bool:
    """True if :class:`JointDensity` implements this design (see the module docstring)."""
    return jd.n_random <= 2


def _phi(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """φ(x) = expm1(x)/x and φ'(x) = (x eˣ − eˣ + 1)/x², series near 0."""
    small = np.abs(x) < 1e-4
    xs = np.where(small, 1.0, x)
    ex = np.exp(xs)
    f = np.where(small, 1 + x / 2 + x * x / 6, np.expm1(xs) / xs)
    fd = np.where(small, 0.5 + x / 3 + x * x / 8, (xs * ex - ex + 1) / (xs * xs))
    return f, fd


class _Baseline:
    """The baseline hazard's unconstrained parameters v, their priors, and log h0 at
    fixed times (quadrature nodes, event times) with its pullback.

    ``"piecewise"``: v = log h0 per piece; ``"spline"``: v = log h0 at the knots,
    linear between them; ``"pspline"``: v = (level, trend, log τ, ε) with
    θ = level·N₀ + trend·N₁ + E ε/√τ (PyMC's ``tau_bs`` on the log scale) and
    log h0(t) = B(t)ᵀθ; ``"weibull"``: v = (log rate, log shape),
    log h0(t) = log rate + log shape − log t_s + (shape − 1) log(t/t_s).
    """

    def __init__(self, jd: JointDesign, priors: JointPriors) -> None:
        self.kind = jd.baseline
        self.jd = jd
        if self.kind == "piecewise":
            self.size = jd.n_pieces
            self.prior = VectorPrior([priors.baseline] * self.size)
        elif self.kind == "spline":
            self.size = len(jd.spline_knots)
            self.prior = VectorPrior([priors.baseline] * self.size)
        elif self.kind == "pspline":
            ps = jd.pspline
            self.N = ps.null_space()
            self.E = ps.penalty_root(2)
            self.size = 3 + self.E.shape[1]
            self.level_prior = VectorPrior([priors.baseline])
            self.trend_prior = VectorPrior([priors.pspline_trend])
            a, rate = priors.pspline_precision.params
            self.tau_a, self.tau_b = float(a), float(rate)
            self.tau_const = a * math.log(rate) - math.lgamma(a)
            self.eps_const = -0.5 * self.E.shape[1] * math.log(2 * math.pi)
        else:
            self.size = 2
            self.prior = VectorPrior([priors.baseline, priors.log_shape])
            self.log_ts = math.log(jd.t_scale)

    def log_prior(self, v: np.ndarray) -> tuple[float, np.ndarray]:
        """Summed log prior (Jacobians included) and its gradient in v."""
        if self.kind != "pspline":
            return self.prior(v)
        g = np.empty(self.size)
        lp1, g1 = self.level_prior(v[:1])
        lp2, g2 = self.trend_prior(v[1:2])
        rho = v[2]  # log τ: Gamma(a, b) density of τ = e^ρ times the Jacobian e^ρ
        tau = math.exp(rho)
        lp3 = self.tau_const + self.tau_a * rho - self.tau_b * tau
        eps = v[3:]
        g[0], g[1], g[2] = g1[0], g2[0], self.tau_a - self.tau_b * tau
        g[3:] = -eps
        return lp1 + lp2 + lp3 + self.eps_const - 0.5 * float(eps @ eps), g

    # -- log h0 at fixed times ---------------------------------------------------
    def prepare(self, times: np.ndarray) -> dict:
        """What :meth:`values` needs for these fixed times (any shape)."""
        t = np.asarray(times, dtype=float)
        jd = self.jd
        # the piece of each time as JointDesign.event_piece (a time on a knot: the piece
        # before it); quadrature nodes are inside their pieces
        k = np.clip(np.searchsorted(jd.knots, t, side="left") - 1, 0, jd.n_pieces - 1)
        if self.kind == "piecewise":
            return {"shape": t.shape, "piece": k.ravel()}
        if self.kind == "spline":
            tau = jd.spline_knots
            w = (t.ravel() - tau[k.ravel()]) / np.diff(tau)[k.ravel()]
            return {"shape": t.shape, "piece": k.ravel(), "w": w}
        if self.kind == "pspline":
            uniq, inv = np.unique(t.ravel(), return_inverse=True)
            return {"shape": t.shape, "B": np.ascontiguousarray(jd.pspline.basis(uniq)),
                    "inv": inv.ravel(), "n": len(uniq)}
        return {"shape": t.shape,
                "log_t": np.log(np.maximum(t.ravel(), 1e-12)) - self.log_ts}

    def values(self, v: np.ndarray, at: dict) -> np.ndarray:
        if self.kind == "piecewise":
            out = v[at["piece"]]
        elif self.kind == "spline":
            k, w = at["piece"], at["w"]
            out = (1 - w) * v[k] + w * v[k + 1]
        elif self.kind == "pspline":
            out = (at["B"] @ self.coefficients(v))[at["inv"]]
        else:
            out = v[0] + v[1] - self.log_ts + (math.exp(v[1]) - 1) * at["log_t"]
        return out.reshape(at["shape"])

    def pullback(self, v: np.ndarray, at: dict, g: np.ndarray) -> np.ndarray:
        """Gradient in v of Σ g · log h0 at the prepared times."""
        g = np.asarray(g, dtype=float).ravel()
        if self.kind == "piecewise":
            return np.bincount(at["piece"], weights=g, minlength=self.size)
        if self.kind == "spline":
            k, w = at["piece"], at["w"]
            return (np.bincount(k, weights=(1 - w) * g, minlength=self.size)
                    + np.bincount(k + 1, weights=w * g, minlength=self.size))
        if self.kind == "pspline":
            g_theta = at["B"].T @ np.bincount(at["inv"], weights=g, minlength=at["n"])
            return self.coefficients_pullback(v, g_theta)
        ls = math.exp(v[1])
        return np.array([g.sum(), g.sum() + ls * float(g @ at["log_t"])])

    def start(self, log_rate: float) -> np.ndarray:
        """A starting v: the crude event rate, flat (shape 1; P-spline at its prior
        mean precision)."""
        if self.kind in ("piecewise", "spline"):
            return np.full(self.size, log_rate)
        if self.kind == "weibull":
            return np.array([log_rate + self.log_ts, 0.0])
        v = np.zeros(self.size)
        v[0] = log_rate
        v[2] = math.log(self.tau_a / self.tau_b)
        return v

    def posterior(self, v: np.ndarray) -> tuple[dict[str, tuple], dict[str, list]]:
        """Draws (D, size) of v as the PyMC model's baseline variables: ``{name: (dims,
        array)}`` and their coordinates."""
        if self.kind in ("piecewise", "spline"):
            dim = "knot" if self.kind == "spline" else "piece"
            return {"log_h0": ((dim,), v)}, {dim: list(range(v.shape[1]))}
        if self.kind == "weibull":
            return {"log_rate": ((), v[:, 0]), "log_shape": ((), v[:, 1])}, {}
        theta = self.coefficients(v)
        ps = self.jd.pspline
        at_breaks = theta @ ps.basis(ps.breaks).T
        return ({"log_h0_level": ((), v[:, 0]), "log_h0_trend": ((), v[:, 1]),
                 "tau_bs": ((), np.exp(v[:, 2])), "bs_z": (("bs_pen",), v[:, 3:]),
                 "bs_coef": (("bs_basis",), theta), "log_h0": (("knot",), at_breaks)},
                {"bs_pen": list(range(v.shape[1] - 3)), "bs_basis": list(range(ps.n_coef)),
                 "knot": list(range(len(ps.breaks)))})

    def coefficients(self, v: np.ndarray) -> np.ndarray:
        """θ of the P-spline, level·N₀ + trend·N₁ + E ε/√τ, for one v or draws (D, size)."""
        return (v[..., :1] * self.N[:, 0] + v[..., 1:2] * self.N[:, 1]
                + (v[..., 3:] @ self.E.T) * np.exp(-0.5 * v[..., 2:3]))

    def coefficients_pullback(self, v: np.ndarray, g_theta: np.ndarray) -> np.ndarray:
        s = math.exp(-0.5 * v[2])
        Eg = self.E.T @ g_theta
        out = np.empty(self.size)
        out[0] = self.N[:, 0] @ g_theta
        out[1] = self.N[:, 1] @ g_theta
        out[2] = -0.5 * s * float(v[3:] @ Eg)
        out[3:] = s * Eg
        return out


class JointDensity:
    """Log posterior of the joint model on the unconstrained scale.

    Parameters
    ----------
    jd : JointDesign
        Must satisfy :func:`supports`.
    priors : JointPriors

    Attributes
    ----------
    size : int
        Length of θ.
    n_global : int
        Length of θ before z (the parameters shared by all patients).
    """

    def __init__(self, jd: JointDesign, priors: JointPriors) -> None:
        if not supports(jd):  # pragma: no cover - fit_joint checks first
            raise ValueError("this joint design needs the PyMC model")
        self.jd = jd
        self.long = CollapsedDensity(jd.long, priors.long)
        mm = jd.long.mm
        st = jd.long.stats
        self.q = q = mm.n_random
        G = len(jd.surv.time)
        self.G = G
        self.shared = jd.association == "shared"
        self.with_slope = jd.association == "value+slope"
        self.spline = jd.baseline == "spline"
        pos = self.long.size
        r = jd.Wc.shape[1]
        self.sl_gamma = slice(pos, pos + r)
        pos += r
        n_alpha = q if self.shared else (2 if self.with_slope else 1)
        self.sl_alpha = slice(pos, pos + n_alpha)
        pos += n_alpha
        self.baseline = _Baseline(jd, priors)
        n_base = self.baseline.size
        self.sl_base = slice(pos, pos + n_base)
        pos += n_base
        self.n_global = pos
        self.sl_z = slice(pos, pos + G * q)
        self.size = pos + G * q
        # the survival block's priors are normal (resolve_joint_priors allows no other)
        self._gamma_prior = (VectorPrior([priors.gamma[n] for n in jd.surv.names])
                             if r else None)
        if self.shared:
            apri = [priors.shared[shared_name(mm.response, n)] for n in mm.random_names]
        else:
            apri = [priors.alpha] + ([priors.alpha_slope] if self.with_slope else [])
        self._alpha_prior = VectorPrior(apri)
        self._z_const = -0.5 * G * q * math.log(2 * math.pi)
        # per-patient statistics, contiguous
        self.g = {(a, b): np.ascontiguousarray(st.ZtZ[:, a, b]) for a in range(q)
                  for b in range(q)}
        self.Zty = [np.ascontiguousarray(st.Zty[:, k]) for k in range(q)]
        # one stacked matrix: Z_i'X_i β (one block per random effect), then P_d β
        self.deg = deg = jd.degree
        self.stack = np.ascontiguousarray(np.vstack([st.ZtX[:, k, :] for k in range(q)]
                                                    + [jd.P[d] for d in range(deg + 1)]))
        self.Q = [[np.ascontiguousarray(jd.Q[d][:, k]) for k in range(q)]
                  for d in range(deg + 1)]
        self.Qused = [[bool(np.any(self.Q[d][k] != 0)) for k in range(q)]
                      for d in range(deg + 1)]
        self.Wc = np.ascontiguousarray(jd.Wc)
        T = jd.surv.time
        self.d = jd.surv.event.astype(float)
        self.ev = np.flatnonzero(self.d > 0)
        self.Tev = T[self.ev]
        self.piece_ev = jd.event_piece()[self.ev]
        lo, dl = jd.exposure()
        self.lo, self.dl = np.ascontiguousarray(lo), np.ascontiguousarray(dl)
        if self.spline:
            tau = jd.spline_knots
            self.dtau = np.diff(tau)
            self.lo_off = self.lo - tau[None, :-1]  # time since the piece's knot
            self.ev_off = self.Tev - tau[self.piece_ev]
        self.ev_at = self.baseline.prepare(self.Tev)
        if jd.closed_form and jd.baseline == "weibull":
            self.log_T_scaled = np.log(T / jd.t_scale)
        elif not jd.closed_form:
            tn, wn = jd.nodes()
            self.wn = np.ascontiguousarray(wn)
            self.q_at = self.baseline.prepare(tn)
            self.tpow = [np.ones_like(tn)] + [tn**k for k in range(1, deg + 1)]
            self.Tpow = [np.ones_like(self.Tev)] + [self.Tev**k for k in range(1, deg + 1)]

    # -- parameters ------------------------------------------------------------
    def unpack_draws(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Constrained parameters of draws (D, size): ``beta_c`` (D, p), ``L`` (D, q, q),
        ``sigma`` (D,), ``gamma`` (D, r), ``alpha`` (D, n_alpha), ``base`` (D, n_base),
        ``z`` (D, G, q)."""
        theta = np.asarray(theta, dtype=float)
        beta_c, L, sigma = self.long.unpack_draws(theta[:, :self.long.size])
        return {"beta_c": beta_c, "L": L, "sigma": sigma, "gamma": theta[:, self.sl_gamma],
                "alpha": theta[:, self.sl_alpha], "base": theta[:, self.sl_base],
                "z": theta[:, self.sl_z].reshape(len(theta), self.G, self.q)}

    # -- density ---------------------------------------------------------------
    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log posterior density (up to PyMC's constant) and its gradient in θ."""
        theta = np.asarray(theta, dtype=float)
        lp_long, grad = self.long(theta[:self.long.size])
        grad = np.concatenate([grad, np.zeros(self.size - self.long.size)])
        beta, L, sigma = self.long.unpack(theta[:self.long.size])
        gamma = theta[self.sl_gamma]
        alpha = theta[self.sl_alpha]
        base = theta[self.sl_base]
        z = theta[self.sl_z].reshape(self.G, self.q)
        q = self.q
        # -- forward: random effects b_i(β, L, σ, z_i) ---------------------------
        prod = self.stack @ beta
        G = self.G
        c = [self.Zty[k] - prod[k * G:(k + 1) * G] for k in range(q)]
        pb = [prod[(q + d) * G:(q + d + 1) * G] for d in range(self.deg + 1)]
        lam = L / sigma
        if q == 1:
            l00 = lam[0, 0]
            g00 = self.g[0, 0]
            A00 = 1.0 + g00 * l00 * l00
            r00 = np.sqrt(A00)
            u0 = l00 * c[0]
            v0 = u0 / r00
            y0 = v0 + sigma * z[:, 0]
            x0 = y0 / r00
            b = [l00 * x0]
        else:
            l00, l10, l11 = lam[0, 0], lam[1, 0], lam[1, 1]
            g00, g01, g11 = self.g[0, 0], self.g[0, 1], self.g[1, 1]
            M00 = g00 * l00 + g01 * l10
            M10 = g01 * l00 + g11 * l10
            A00 = 1.0 + l00 * M00 + l10 * M10
            A10 = l11 * M10
            A11 = 1.0 + g11 * l11 * l11
            r00 = np.sqrt(A00)
            r10 = A10 / r00
            r11 = np.sqrt(A11 - r10 * r10)
            u0 = l00 * c[0] + l10 * c[1]
            u1 = l11 * c[1]
            v0 = u0 / r00
            v1 = (u1 - r10 * v0) / r11
            y0 = v0 + sigma * z[:, 0]
            y1 = v1 + sigma * z[:, 1]
            x1 = y1 / r11
            x0 = (y0 - r10 * x1) / r00
            b = [l00 * x0, l10 * x0 + l11 * x1]
        # -- survival log-likelihood and its gradient in (b, β, γ, α, base) ------
        ll_s, g_b, g_pb, g_gamma, g_alpha, g_base = self._survival(b, pb, gamma, alpha, base)
        lp = lp_long + ll_s
        # -- priors of the survival block and of z --------------------------------
        if self._gamma_prior is not None:
            v, dv = self._gamma_prior(gamma)
            lp += v
            g_gamma = g_gamma + dv
        v, dv = self._alpha_prior(alpha)
        lp += v
        g_alpha = g_alpha + dv
        v, dv = self.baseline.log_prior(base)
        lp += v
        g_base = g_base + dv
        lp += self._z_const - 0.5 * float(np.sum(z * z))
        # -- reverse through b = Λ R⁻ᵀ(R⁻¹u + σz) --------------------------------
        g_lam = np.zeros((q, q))
        g_sigma = 0.0
        if q == 1:
            # b = l00 x0
            gx0 = l00 * g_b[0]
            g_lam[0, 0] += float(g_b[0] @ x0)
            # x0 = y0 / r00
            gy0 = gx0 / r00
            gr00 = -gx0 * x0 / r00
            # y0 = v0 + σ z0
            g_sigma += float(gy0 @ z[:, 0])
            gz = (sigma * gy0)[:, None]
            # v0 = u0 / r00
            gu0 = gy0 / r00
            gr00 = gr00 - gy0 * v0 / r00
            # r00 = √A00, A00 = 1 + g00 l00²
            gA00 = gr00 / (2 * r00)
            g_lam[0, 0] += float(gA00 @ (2 * g00 * l00))
            # u0 = l00 c0
            gc = [gu0 * l00]
            g_lam[0, 0] += float(gu0 @ c[0])
        else:
            # b0 = l00 x0; b1 = l10 x0 + l11 x1
            gx0 = l00 * g_b[0] + l10 * g_b[1]
            gx1 = l11 * g_b[1]
            g_lam[0, 0] += float(g_b[0] @ x0)
            g_lam[1, 0] += float(g_b[1] @ x0)
            g_lam[1, 1] += float(g_b[1] @ x1)
            # x0 = (y0 − r10 x1) / r00
            gy0 = gx0 / r00
            gr10 = -gx0 * x1 / r00
            gx1 = gx1 - gx0 * r10 / r00
            gr00 = -gx0 * x0 / r00
            # x1 = y1 / r11
            gy1 = gx1 / r11
            gr11 = -gx1 * x1 / r11
            # y = v + σ z
            g_sigma += float(gy0 @ z[:, 0] + gy1 @ z[:, 1])
            gz = sigma * np.column_stack([gy0, gy1])
            # v1 = (u1 − r10 v0) / r11
            gu1 = gy1 / r11
            gr10 = gr10 - gy1 * v0 / r11
            gv0 = gy0 - gy1 * r10 / r11
            gr11 = gr11 - gy1 * v1 / r11
            # v0 = u0 / r00
            gu0 = gv0 / r00
            gr00 = gr00 - gv0 * v0 / r00
            # r11 = √(A11 − r10²)
            gA11 = gr11 / (2 * r11)
            gr10 = gr10 - gr11 * r10 / r11
            # r10 = A10 / r00
            gA10 = gr10 / r00
            gr00 = gr00 - gr10 * r10 / r00
            # r00 = √A00
            gA00 = gr00 / (2 * r00)
            # A00 = 1 + g00 l00² + 2 g01 l00 l10 + g11 l10²; A10 = l11 (g01 l00 + g11 l10);
            # A11 = 1 + g11 l11²
            g_lam[0, 0] += float(gA00 @ (2 * M00) + gA10 @ (l11 * g01))
            g_lam[1, 0] += float(gA00 @ (2 * M10) + gA10 @ (l11 * g11))
            g_lam[1, 1] += float(gA10 @ M10 + gA11 @ (2 * g11 * l11))
            # u0 = l00 c0 + l10 c1; u1 = l11 c1
            gc = [gu0 * l00, gu0 * l10 + gu1 * l11]
            g_lam[0, 0] += float(gu0 @ c[0])
            g_lam[1, 0] += float(gu0 @ c[1])
            g_lam[1, 1] += float(gu1 @ c[1])
        # c_k = Z'y − Z'X β; coefficients P_d β: one product with the stacked matrix
        g_prod = np.concatenate([-gc[k] for k in range(q)] + list(g_pb))
        g_beta = self.stack.T @ g_prod
        # Λ = L / σ
        g_L = g_lam / sigma
        g_sigma -= float(np.sum(g_lam * lam)) / sigma
        grad[:self.long.size] += self.long.pullback(theta[:self.long.size], g_beta, g_L,
                                                    g_sigma)
        grad[self.sl_gamma] = g_gamma
        grad[self.sl_alpha] = g_alpha
        grad[self.sl_base] = g_base
        grad[self.sl_z] = (gz - z).ravel()
        return float(lp), grad

    def _survival(self, b, pb, gamma, alpha, v):
        """Σ_i [d_i log h_i(T_i) − H_i] and its gradient in b, in the trajectory's
        fixed-effect parts P_d β (one per power of time), in γ, α and the baseline's v."""
        q, G = self.q, self.G
        if self.shared:
            eta = sum(alpha[k] * b[k] for k in range(q))
            coef = None
        else:
            coef = [pb[dd] + sum(self.Q[dd][k] * b[k] for k in range(q) if self.Qused[dd][k])
                    for dd in range(self.deg + 1)]
            eta = alpha[0] * (coef[0] - self.jd.m_ref)
        if self.Wc.shape[1]:
            eta = eta + self.Wc @ gamma
        if self.jd.closed_form and self.baseline.kind == "weibull":
            ll, g_eta, g_base = self._weibull_shared(eta, v)
            g_c = None
        elif self.jd.closed_form:
            ll, g_eta, g_c, g_alpha_t, g_base = self._closed_form(eta, coef, alpha, v)
        else:
            ll, g_eta, g_c, g_alpha_t, g_base = self._quadrature(eta, coef, alpha, v)
        g_gamma = self.Wc.T @ g_eta if self.Wc.shape[1] else np.zeros(0)
        if self.shared:
            g_alpha = np.array([float(b[k] @ g_eta) for k in range(q)])
            g_b = [alpha[k] * g_eta for k in range(q)]
            return ll, g_b, [np.zeros(G)] * (self.deg + 1), g_gamma, g_alpha, g_base
        # η = α (c₀ − m̄) + γᵀw: the rest of α's gradient came with g_c's trajectory terms
        g_c[0] = alpha[0] * g_eta
        g_alpha = g_alpha_t
        g_alpha[0] += float((coef[0] - self.jd.m_ref) @ g_eta)
        g_b = [sum(self.Q[dd][k] * g_c[dd] for dd in range(self.deg + 1) if self.Qused[dd][k])
               for k in range(q)]
        g_b = [gb if isinstance(gb, np.ndarray) else np.zeros(G) for gb in g_b]
        return ll, g_b, g_c, g_gamma, g_alpha, g_base

    def _closed_form(self, eta, coef, alpha, base):
        """Piecewise or spline baseline, linear trajectory (or none: shared):
        H_i = Σ_k exp(b0_ik + η_i + c_i l_ik) Δ_ik φ(t_ik Δ_ik), c = α × slope,
        t = c (+ the spline's slope in the piece)."""
        ev = self.ev
        cs = None
        if coef is not None:
            cs = alpha[0] * coef[1]  # the hazard's log-linear slope from the trajectory
            if self.with_slope:
                eta = eta + alpha[1] * coef[1]
        if self.spline:
            s = np.diff(base) / self.dtau
            b0 = base[None, :-1] + s[None, :] * self.lo_off  # log h0 at the pieces' starts
            lh0_ev = base[self.piece_ev] + s[self.piece_ev] * self.ev_off
        else:
            b0 = base[None, :]
            lh0_ev = base[self.piece_ev]
        log_h_ev = lh0_ev + eta[ev]
        if cs is not None:
            log_h_ev = log_h_ev + cs[ev] * self.Tev
        lo, dl = self.lo, self.dl
        if cs is None:
            expo = b0 + eta[:, None]
            tot = None if not self.spline else np.broadcast_to(s[None, :], lo.shape)
        else:
            expo = b0 + eta[:, None] + cs[:, None] * lo
            tot = cs[:, None] + (s[None, :] if self.spline else 0.0)
        F = np.exp(expo) * dl
        if tot is None:
            E, Fd = F, None
        else:
            ph, dph = _phi(tot * dl)
            E = F * ph
            Fd = F * dl * dph  # ∂E/∂t
        H = E.sum(axis=1)
        ll = float(np.sum(log_h_ev)) - float(np.sum(H))
        g_eta = self.d - H
        if self.spline:
            g_base = np.zeros(len(base))
            np.add.at(g_base, self.piece_ev, 1.0)
            g_s = np.zeros(len(s))
            np.add.at(g_s, self.piece_ev, self.ev_off)
            g_base[:-1] -= E.sum(axis=0)
            g_s -= (E * self.lo_off).sum(axis=0) + Fd.sum(axis=0)
            g_base[1:] += g_s / self.dtau
            g_base[:-1] -= g_s / self.dtau
        else:
            g_base = np.bincount(self.piece_ev, minlength=len(base)) - E.sum(axis=0)
        if cs is None:
            return ll, g_eta, None, None, g_base
        g_cs = -(E * lo).sum(axis=1) - Fd.sum(axis=1)
        g_cs[ev] += self.Tev
        g_c = [None, alpha[0] * g_cs]
        g_alpha = [float(coef[1] @ g_cs)]
        if self.with_slope:
            g_c[1] = g_c[1] + alpha[1] * g_eta
            g_alpha.append(float(coef[1] @ g_eta))
        return ll, g_eta, g_c, np.array(g_alpha), g_base

    def _weibull_shared(self, eta, v):
        """Weibull baseline, shared random effects: H_i = exp(η_i + log rate + k log(T_i/t_s))."""
        k = math.exp(v[1])
        lh_ev = self.baseline.values(v, self.ev_at)
        log_T = self.log_T_scaled
        H = np.exp(eta + v[0] + k * log_T)
        ll = float(np.sum(lh_ev + eta[self.ev])) - float(np.sum(H))
        g_base = self.baseline.pullback(v, self.ev_at, np.ones(len(self.ev)))
        g_base[0] -= H.sum()
        g_base[1] -= k * float(H @ log_T)
        return ll, self.d - H, g_base

    def _quadrature(self, eta, coef, alpha, v):
        """Gauss–Legendre nodes t_in, weights w_in per piece (:meth:`JointDesign.nodes`):
        H_i = Σ_n w_in exp(log h0(t_in) + η_i + α Σ_{k≥1} c_ik t_inᵏ [+ α_s m_i'(t_in)])."""
        ev, deg = self.ev, self.deg
        lh_q = self.baseline.values(v, self.q_at)
        lh_ev = self.baseline.values(v, self.ev_at)
        expo = lh_q + eta[:, None]
        log_h_ev = lh_ev + eta[ev]
        if coef is not None:
            a = alpha[0]
            for k in range(1, deg + 1):
                expo = expo + (a * coef[k])[:, None] * self.tpow[k]
                log_h_ev = log_h_ev + a * coef[k][ev] * self.Tpow[k]
                if self.with_slope:
                    expo = expo + (alpha[1] * k * coef[k])[:, None] * self.tpow[k - 1]
                    log_h_ev = log_h_ev + alpha[1] * k * coef[k][ev] * self.Tpow[k - 1]
        E = self.wn * np.exp(expo)
        H = E.sum(axis=1)
        ll = float(np.sum(log_h_ev)) - float(np.sum(H))
        g_eta = self.d - H
        g_base = (self.baseline.pullback(v, self.q_at, -E)
                  + self.baseline.pullback(v, self.ev_at, np.ones(len(ev))))
        if coef is None:
            return ll, g_eta, None, None, g_base
        # R_k,i = d_i T_iᵏ − Σ_n E_in t_inᵏ: ∂ll/∂(coefficient of tᵏ in log h_i)
        R = [g_eta]
        for k in range(1, deg + 1):
            r = -(E * self.tpow[k]).sum(axis=1)
            r[ev] += self.Tpow[k]
            R.append(r)
        g_c = [None] + [alpha[0] * R[k] for k in range(1, deg + 1)]
        g_alpha = [sum(float(coef[k] @ R[k]) for k in range(1, deg + 1))]
        if self.with_slope:
            for k in range(1, deg + 1):
                g_c[k] = g_c[k] + alpha[1] * k * R[k - 1]
            g_alpha.append(sum(k * float(coef[k] @ R[k - 1]) for k in range(1, deg + 1)))
        return ll, g_eta, g_c, np.array(g_alpha), g_base

    def neg(self):
        """``-log p`` and its gradient (for optimisers); non-finite values become +∞."""
        return negated(self)


def _start(density: JointDensity, log_rate: float) -> np.ndarray:
    """The longitudinal block at its own (collapsed) posterior mode, no association
    and no covariate effect, the baseline at the crude event rate, z = 0."""
    from alsfrs.bayes.density import laplace_start

    mode_long, _cov, _rec = laplace_start(density.long)
    x = np.zeros(density.size)
    x[:density.long.size] = mode_long
    x[density.sl_base] = density.baseline.start(log_rate)
    return x


def joint_laplace(density: JointDensity, log_rate: float, *, step: float = 1e-5
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
    """Posterior mode and the Laplace approximation's structure, cheaply.

    The Hessian of the log density is block structured: each patient's z_i
    meets only the global parameters and itself. It is taken by finite
    differences of the gradient: one pair of evaluations per global parameter
    and one pair per random effect (moving every patient's z_ik at once).

    Returns
    -------
    mode : ndarray (size,)
    cov_global : ndarray (n_global, n_global)
        Covariance of the global parameters, z integrated out: the inverse of
        the Schur complement H_gg − H_gz H_zz⁻¹ H_zg of the negative Hessian.
    cross : ndarray (G, q, n_global)
        H_zz⁻¹ H_zg per patient: z_i's conditional mean moves by −cross_i (g − mode_g).
    zcov_chol : ndarray (G, q, q)
        Cholesky factors of z_i's conditional covariance H_zz,i⁻¹.
    record : dict
        Optimiser record (iterations, evaluations, success, message).
    """
    f = density.neg()
    x0 = _start(density, log_rate)
    res = optimize.minimize(f, x0, jac=True, method="L-BFGS-B",
                            options={"maxiter": 5000, "gtol": 1e-6, "ftol": 1e-14,
                                     "maxcor": 30})
    mode = res.x
    ng, G, q = density.n_global, density.G, density.q
    grad = lambda x: f(x)[1]  # noqa: E731 - the negative log density's gradient
    Hcols = np.empty((density.size, ng))
    for j in range(ng):
        h = step * max(1.0, abs(mode[j]))
        e = np.zeros(density.size)
        e[j] = h
        Hcols[:, j] = (grad(mode + e) - grad(mode - e)) / (2 * h)
    Hgg = 0.5 * (Hcols[:ng] + Hcols[:ng].T)
    Hzg = Hcols[ng:].reshape(G, q, ng)
    Hzz = np.empty((G, q, q))
    for k in range(q):
        e = np.zeros((G, q))
        e[:, k] = step
        ep = np.concatenate([np.zeros(ng), e.ravel()])
        dz = ((grad(mode + ep) - grad(mode - ep)) / (2 * step))[ng:].reshape(G, q)
        Hzz[:, :, k] = dz
    Hzz = 0.5 * (Hzz + np.swapaxes(Hzz, 1, 2))
    # z's conditional precision is 1 + (likelihood curvature) ≥ 1 in exact arithmetic;
    # floor its eigenvalues at 1/2 against finite-difference noise
    w, V = np.linalg.eigh(Hzz)
    w = np.maximum(w, 0.5)
    Hzz = (V * w[:, None, :]) @ np.swapaxes(V, 1, 2)
    cross = np.linalg.solve(Hzz, Hzg)  # (G, q, ng)
    schur = Hgg - np.einsum("gqa,gqb->ab", Hzg, cross)
    schur = 0.5 * (schur + schur.T)
    w, V = np.linalg.eigh(schur)
    floor = max(float(w.max()), 1.0) * 1e-8 if np.isfinite(w).all() else 1.0
    cov = (V / np.maximum(w, floor)) @ V.T if np.isfinite(w).all() else np.eye(ng)
    cov = 0.5 * (cov + cov.T)
    zcov_chol = np.linalg.cholesky(np.linalg.inv(Hzz))
    record = {"iterations": int(res.nit), "evaluations": int(res.nfev),
              "success": bool(res.success), "message": str(res.message)}
    return mode, cov, cross, zcov_chol, record


class LaplaceCoordinates:
    """The joint density in the Laplace approximation's standardised coordinates.

    With the mode (m_g, m_z), the global parameters' covariance Σ_g = C Cᵀ and each
    patient's conditional z_i | g ~ N(m_zi − K_i' (g − m_g), S_i Sᵢᵀ) from
    :func:`joint_laplace`, the sampled vector x = (φ, ε) maps affinely to θ:

        g = m_g + C φ,   z_i = m_zi − K_i C φ + S_i ε_i.

    Under the Laplace approximation x is standard normal: NUTS with a unit
    (diagonal, adapted) mass matrix in x is NUTS with the Laplace covariance as a
    dense mass matrix in θ, at the cost of a few vector products per evaluation
    (no dense matrix of the size of θ is formed). The Jacobian is constant.
    """

    def __init__(self, density: JointDensity, mode: np.ndarray, cov_global: np.ndarray,
                 cross: np.ndarray, zcov_chol: np.ndarray) -> None:
        self.density = density
        self.size = density.size
        self.ng = density.n_global
        self.m = np.asarray(mode, dtype=float)
        self.C = np.linalg.cholesky(cov_global)
        self.K = np.einsum("gqa,ab->gqb", cross, self.C)  # (G, q, ng)
        self.S = zcov_chol
        # the same as one matrix (rows: z in θ's order) for matrix-vector products
        self._K2 = np.ascontiguousarray(self.K.reshape(-1, self.ng))
        self._mz = self.m[self.ng:]

    def to_theta(self, x: np.ndarray) -> np.ndarray:
        """θ of one vector or of draws (..., size)."""
        x = np.asarray(x, dtype=float)
        ng, d = self.ng, self.density
        phi = x[..., :ng]
        eps = x[..., ng:].reshape(*x.shape[:-1], d.G, d.q)
        theta = np.empty_like(x)
        theta[..., :ng] = self.m[:ng] + phi @ self.C.T
        z = (self.m[ng:].reshape(d.G, d.q) - np.einsum("gqa,...a->...gq", self.K, phi)
             + np.einsum("gqr,...gr->...gq", self.S, eps))
        theta[..., ng:] = z.reshape(*x.shape[:-1], -1)
        return theta

    def from_theta(self, theta: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_theta` (one vector)."""
        theta = np.asarray(theta, dtype=float)
        ng, d = self.ng, self.density
        phi = np.linalg.solve(self.C, theta[:ng] - self.m[:ng])
        r = (theta[ng:] - self.m[ng:]).reshape(d.G, d.q) + self.K @ phi
        eps = np.linalg.solve(self.S, r[..., None])[..., 0]
        return np.concatenate([phi, eps.ravel()])

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        ng, d = self.ng, self.density
        phi = x[:ng]
        eps = x[ng:].reshape(d.G, d.q)
        theta = np.empty(self.size)
        theta[:ng] = self.m[:ng] + self.C @ phi
        theta[ng:] = self._mz - self._K2 @ phi + np.einsum("gqr,gr->gq", self.S, eps).ravel()
        lp, g = d(theta)
        gz = g[ng:]
        out = np.empty(self.size)
        out[:ng] = self.C.T @ g[:ng] - self._K2.T @ gz
        out[ng:] = np.einsum("gqr,gq->gr", self.S, gz.reshape(d.G, d.q)).ravel()
        return lp, out
