"""The joint longitudinal–survival model in PyMC.

Longitudinal submodel (the mixed model of :mod:`alsfrs.bayes`)::

    y_ij = x_ijᵀβ + z_ijᵀb_i + ε_ij,   b_i ~ N(0, Σ = L Lᵀ),   ε_ij ~ N(0, σ²)

Survival submodel (death or invasive ventilation)::

    h_i(t) = h0(t) exp(γᵀw_i + α (m_i(t) − m̄) [+ α_s m_i'(t)]),   m_i(t) = x_i(t)ᵀβ + z_i(t)ᵀb_i

or, with shared random effects (``association="shared"``), h_i(t) = h0(t) exp(γᵀw_i + αᵀb_i).
The penalised B-spline baseline (``"pspline"``) is described in :mod:`alsfrs.joint.priors`.

Reparameterisation
------------------
With Λ = L/σ, A_i = I + ΛᵀZ_iᵀZ_iΛ = R_iR_iᵀ and u_i = ΛᵀZ_iᵀ(y_i − X_iβ), the
Gaussian conditional of b_i given the visits is N(Λ A_i⁻¹u_i, σ²ΛA_i⁻¹Λᵀ). The
random effects are sampled as

    b_i = Λ R_i⁻ᵀ (R_i⁻¹u_i + σ z_i),   z_i ~ N(0, I),

for which p(y_i | b_i) p(b_i) |∂b_i/∂z_i| = p(y_i) N(z_i; 0, I): the log density is
the *collapsed* (marginal) longitudinal likelihood, a standard normal on z, and
the survival likelihood at b_i(θ, z_i). Where the visits dominate what is known
of b_i, the z_i are close to independent standard normals whatever β, Σ and σ
are, so NUTS moves the global parameters as in the collapsed slope model. The
per-patient algebra (q ≤ 3) is written out elementwise over patients.

Cumulative hazard
-----------------
For linear trajectories and a piecewise-constant baseline (knots at event-time
quantiles), or a log-linear spline baseline (log h0 linear between the same
knots), the hazard in a piece is exp(a + c t) and

    ∫_l^{l+Δ} e^{a + c t} dt = e^{a + c l} Δ φ(cΔ),   φ(x) = expm1(x)/x  (φ(0) = 1),

computed stably (series for |x| < 1e-4). With shared random effects the hazard
varies in time only through h0, H_i = exp(γᵀw_i + αᵀb_i) H0(T_i), in closed form for
the piecewise, spline and Weibull baselines. Otherwise (P-spline baseline, Weibull
or quadratic trajectories with the value associations, or ``quadrature=True``)
Gauss–Legendre quadrature with ``quadrature_nodes`` nodes in each piece of the
same partition (the P-spline's segments).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

from alsfrs.bayes.priors import Prior
from alsfrs.joint.design import JointDesign, gauss_legendre
from alsfrs.joint.priors import JointPriors, shared_name

__all__ = ["build_joint_model", "phi"]


def _shared(a, name: str | None = None):
    return pytensor.shared(np.ascontiguousarray(np.asarray(a, dtype=float)), name=name)


def phi(x):
    """expm1(x)/x with φ(0) = 1, stable and differentiable near 0 (PyTensor)."""
    small = pt.lt(pt.abs(x), 1e-4)
    xs = pt.switch(small, 1.0, x)
    return pt.switch(small, 1.0 + x / 2 + x**2 / 6, pt.expm1(xs) / xs)


def _normal_vector(name: str, priors: list[Prior], dims: str):
    mu = np.array([p.params[-2] for p in priors])
    sd = np.array([p.params[-1] for p in priors])
    if all(p.dist == "normal" for p in priors):
        return pm.Normal(name, mu=_shared(mu), sigma=_shared(sd), dims=dims)
    nu = np.array([p.params[0] if p.dist == "student_t" else 1e6 for p in priors])
    return pm.StudentT(name, nu=_shared(nu), mu=_shared(mu), sigma=_shared(sd), dims=dims)


def _scale_rv(name: str, prior: Prior, shape=None):
    p = prior.params
    kw = {} if shape is None else {"shape": shape}
    if prior.dist == "halfnormal":
        return pm.HalfNormal(name, sigma=p[0], **kw)
    if prior.dist == "halfstudent_t":
        return pm.HalfStudentT(name, nu=p[0], sigma=p[1], **kw)
    return pm.Exponential(name, lam=p[0], **kw)


def _scale_dist(priors: list[Prior]):
    params = np.array([p.params for p in priors], dtype=float).T
    n = len(priors)
    if priors[0].dist == "halfnormal":
        return pm.HalfNormal.dist(sigma=params[0], shape=n)
    if priors[0].dist == "halfstudent_t":
        return pm.HalfStudentT.dist(nu=params[0], sigma=params[1], shape=n)
    return pm.Exponential.dist(lam=params[0], shape=n)


def _cholesky_factor(jd: JointDesign, priors: JointPriors):
    """Lower-triangular L (Σ = L Lᵀ), block diagonal as the formula says."""
    mm = jd.long.mm
    q = mm.n_random
    L = pt.zeros((q, q))
    for k, block in enumerate(mm.blocks):
        names = [mm.random_names[j] for j in block]
        bpri = [priors.long.sd[n] for n in names]
        lo, hi = block[0], block[-1] + 1
        if len(block) == 1:
            L = pt.set_subtensor(L[lo, lo], _scale_rv(f"sd_block{k}", bpri[0]))
        else:
            Lb, _c, _s = pm.LKJCholeskyCov(f"chol_block{k}", eta=priors.long.lkj_eta,
                                          n=len(block), sd_dist=_scale_dist(bpri),
                                          compute_corr=True, store_in_trace=False)
            if len(block) == q:
                return Lb
            L = pt.set_subtensor(L[lo:hi, lo:hi], Lb)
    return L


def design_products(jd: JointDesign, beta_c):
    """Z_i'X_i β (one vector per random effect) and P_d β (one per power of time), from
    one matrix-vector product (one BLAS call and one in the gradient)."""
    st = jd.long.stats
    q = jd.long.mm.n_random
    G = st.ZtX.shape[0]
    blocks = [st.ZtX[:, k, :] for k in range(q)] + [jd.P[d] for d in range(jd.degree + 1)]
    prod = pt.dot(_shared(np.vstack(blocks)), beta_c)
    parts = [prod[j * G:(j + 1) * G] for j in range(len(blocks))]
    return parts[:q], parts[q:]


def latent_effects(jd: JointDesign, beta_c, L, sigma, z, ztxb=None):
    """Collapsed longitudinal log-likelihood and b_i(θ, z_i) (PyTensor).

    Returns (loglik, [b_0, …, b_{q-1}]) with each b_k a (G,) vector. ``ztxb``: the
    products Z_i'X_i β from :func:`design_products` (computed here if not given).
    """
    st = jd.long.stats
    q = jd.long.mm.n_random
    if ztxb is None:
        ztxb = design_products(jd, beta_c)[0]
    lam = L / sigma
    Lm = [[lam[i, j] if j <= i else None for j in range(q)] for i in range(q)]
    # c_k = Z_i'y_i - Z_i'X_i beta_c, per patient
    c = [_shared(st.Zty[:, k]) - ztxb[k] for k in range(q)]
    S = [[_shared(st.ZtZ[:, i, j]) for j in range(q)] for i in range(q)]
    # u = Λ'c ; M = S Λ ; A = I + Λ' S Λ   (Λ lower triangular)
    u = [sum(Lm[k][i] * c[k] for k in range(i, q)) for i in range(q)]
    M = [[sum(S[i][k] * Lm[k][j] for k in range(j, q)) for j in range(q)] for i in range(q)]
    A = [[None] * q for _ in range(q)]
    for i in range(q):
        for j in range(i + 1):
            A[i][j] = sum(Lm[k][i] * M[k][j] for k in range(i, q)) + (1.0 if i == j else 0.0)
    R = [[None] * q for _ in range(q)]
    for j in range(q):
        s = A[j][j] - sum(R[j][k] ** 2 for k in range(j))
        R[j][j] = pt.sqrt(s)
        for i in range(j + 1, q):
            R[i][j] = (A[i][j] - sum(R[i][k] * R[j][k] for k in range(j))) / R[j][j]
    v = [None] * q
    for i in range(q):  # R v = u
        v[i] = (u[i] - sum(R[i][k] * v[k] for k in range(i))) / R[i][i]
    logdet = 2 * sum(pt.log(R[i][i]) for i in range(q))
    quad = sum(vi**2 for vi in v)
    rss = (float(st.yty_total) - 2 * pt.dot(beta_c, _shared(st.Xty))
           + pt.dot(beta_c, pt.dot(_shared(st.XtX), beta_c)))
    n = float(st.n_obs)
    loglik = -0.5 * (n * np.log(2 * np.pi) + 2 * n * pt.log(sigma) + pt.sum(logdet)
                     + (rss - pt.sum(quad)) / sigma**2)
    # x = R^-T (v + sigma z);  b = Λ x
    y = [v[i] + sigma * z[:, i] for i in range(q)]
    x = [None] * q
    for i in reversed(range(q)):
        x[i] = (y[i] - sum(R[k][i] * x[k] for k in range(i + 1, q))) / R[i][i]
    b = [sum(Lm[k][j] * x[j] for j in range(k + 1)) for k in range(q)]
    return loglik, b


def trajectory(jd: JointDesign, beta_c, b, pb=None):
    """Coefficients of t^d of every patient's true trajectory: list of (G,) tensors.
    ``pb``: the products P_d β from :func:`design_products`."""
    if pb is None:
        pb = design_products(jd, beta_c)[1]
    out = []
    for d in range(jd.degree + 1):
        cd = pb[d]
        for k in range(len(b)):
            if np.any(jd.Q[d][:, k] != 0):
                cd = cd + _shared(jd.Q[d][:, k]) * b[k]
        out.append(cd)
    return out


def pspline_log_h0(jd: JointDesign, theta, t: np.ndarray):
    """log h0 at fixed times ``t`` (any shape) for B-spline coefficients ``theta``: the
    basis is evaluated once per distinct time (nodes of whole pieces are shared by all
    patients who pass them), then gathered."""
    uniq, inv = np.unique(np.asarray(t, dtype=float), return_inverse=True)
    lh = pt.dot(_shared(jd.pspline.basis(uniq)), theta)
    # a 1-d gather (its gradient is a fast 1-d scatter-add), then the shape of t
    idx = pytensor.shared(inv.ravel().astype("int64"))
    return lh[idx].reshape(np.shape(t))


def survival_loglik(jd: JointDesign, coef, gamma, alpha, alpha_s, base, b=None,
                    alpha_re=None):
    """Per-patient survival log-likelihood (G,) given trajectory coefficients (PyTensor).

    ``base`` is the vector of log baseline hazards per piece (piecewise), at the knots
    (spline), the B-spline coefficients (pspline) or (log rate, log shape) (Weibull).
    ``association="shared"``: ``b`` (list of (G,) random effects) and ``alpha_re`` (one
    log HR per random effect) replace the trajectory in the hazard.
    """
    T = jd.surv.time
    d = jd.surv.event
    shared = jd.association == "shared"
    if shared:
        eta = sum(alpha_re[k] * b[k] for k in range(len(b)))
    else:
        eta = alpha * (coef[0] - jd.m_ref)
    if jd.Wc.shape[1]:
        eta = eta + pt.dot(_shared(jd.Wc), gamma)

    def m_part(cs, t):  # Σ_{k>=1} c_k t^k for coefficient vectors cs matching t's rows
        out = 0
        for k in range(1, jd.degree + 1):
            out = out + cs[k] * t**k
        return out

    def dm_at(cs, t):
        out = 0
        for k in range(1, jd.degree + 1):
            out = out + k * cs[k] * t ** (k - 1)
        return out

    def traj(cs, t):  # the time-varying part of log h besides log h0
        if shared:
            return 0.0
        out = alpha * m_part(cs, t)
        if jd.association == "value+slope":
            out = out + alpha_s * dm_at(cs, t)
        return out

    tau = jd.spline_knots
    if jd.baseline == "spline":
        s_k = (base[1:] - base[:-1]) / np.diff(tau)  # slope of log h0 in each piece

    def log_h0(t, piece):
        if jd.baseline == "piecewise":
            return base[piece]
        if jd.baseline == "spline":
            return base[piece] + s_k[piece] * (t - tau[piece])
        if jd.baseline == "pspline":
            return pspline_log_h0(jd, base, t)
        log_rate, log_shape = base[0], base[1]
        shape = pt.exp(log_shape)
        ts = jd.t_scale
        return log_rate + log_shape + (shape - 1) * np.log(np.maximum(t, 1e-12) / ts) - np.log(ts)

    piece_T = jd.event_piece()
    ev = np.flatnonzero(d > 0)
    Tev = T[ev]
    cev = None if shared else [c[ev] for c in coef]
    log_h_event = log_h0(Tev, piece_T[ev]) + eta[ev] + traj(cev, Tev)
    if jd.closed_form and shared:  # H = exp(eta) H0(T): the hazard's only time dependence is h0
        if jd.baseline == "weibull":
            log_H0 = base[0] + pt.exp(base[1]) * np.log(T / jd.t_scale)
            H = pt.exp(eta + log_H0)
        else:
            lo, dl = jd.exposure()
            if jd.baseline == "spline":
                b0 = base[None, :-1] + s_k[None, :] * (lo - tau[None, :-1])
                H0 = pt.sum(pt.exp(b0) * dl * phi(s_k[None, :] * dl), axis=1)
            else:
                H0 = pt.dot(_shared(dl), pt.exp(base))
            H = pt.exp(eta) * H0
    elif jd.closed_form:
        lo, dl = jd.exposure()
        slope = alpha * coef[1]
        if jd.association == "value+slope":
            eta = eta + alpha_s * coef[1]
        cs = slope[:, None]
        if jd.baseline == "spline":
            b0 = base[None, :-1] + s_k[None, :] * (lo - tau[None, :-1])
            total = cs + s_k[None, :]
        else:
            b0 = base[None, :]
            total = cs
        H = pt.sum(pt.exp(b0 + eta[:, None] + cs * lo) * dl * phi(total * dl), axis=1)
    else:
        if not shared:
            tn, wn = jd.nodes()
            n = jd.quadrature_nodes
            used = np.flatnonzero(jd.exposure()[1].max(axis=0) > 0)
            piece = np.repeat(used, n)
            if jd.baseline == "spline":
                lh = log_h0(tn, piece[None, :])
            elif jd.baseline == "piecewise":
                lh = log_h0(tn, piece)[None, :]
            else:
                lh = log_h0(tn, piece)
        if shared:
            H = pt.exp(eta) * baseline_cumulative_quadrature(jd, log_h0)
        else:
            cg = [c[:, None] for c in coef]
            log_h = lh + eta[:, None] + traj(cg, tn)
            H = pt.sum(_shared(wn) * pt.exp(log_h), axis=1)
    ll = -H
    return pt.inc_subtensor(ll[ev], log_h_event)


def baseline_cumulative_quadrature(jd: JointDesign, log_h0):
    """H0(T_i) by Gauss–Legendre (``quadrature_nodes`` per piece), for a hazard whose only
    time dependence is h0 (shared random effects): the integral over each whole piece is
    the same for every patient who passes it, so it is computed once per piece; only each
    patient's last, partial piece has nodes of its own."""
    x, w = gauss_legendre(jd.quadrature_nodes)
    kn = jd.knots
    lo, dl = jd.exposure()
    length = np.diff(kn)
    full = dl >= length[None, :]  # (G, K); the last piece is infinite, never whole
    whole = np.flatnonzero(full.any(axis=0))
    H0 = 0.0
    if len(whole):
        tk = kn[whole, None] + length[whole, None] * x[None, :]  # (k, n)
        wk = length[whole, None] * w[None, :]
        lh = log_h0(tk, np.repeat(whole, len(x)).reshape(tk.shape))
        F = pt.sum(_shared(wk) * pt.exp(lh), axis=1)  # one integral per whole piece
        H0 = pt.dot(_shared(full[:, whole].astype(float)), F)
    part = (dl > 0) & ~full
    has = part.any(axis=1)
    p = np.where(has, np.argmax(part, axis=1), 0)
    G = len(p)
    t0, d0 = lo[np.arange(G), p], np.where(has, dl[np.arange(G), p], 0.0)
    tp = t0[:, None] + d0[:, None] * x[None, :]
    wp = d0[:, None] * w[None, :]
    lhp = log_h0(tp, np.repeat(p[:, None], len(x), axis=1))
    return H0 + pt.sum(_shared(wp) * pt.exp(lhp), axis=1)


def pspline_coefficients(jd: JointDesign, priors: JointPriors):
    """θ = a·1 + s·g + E ε / √τ (:mod:`alsfrs.joint.priors`), non-centred; also stores
    log h0 at the segment boundaries (``log_h0``) and θ (``bs_coef``)."""
    ps = jd.pspline
    N = ps.null_space()
    E = ps.penalty_root(2)
    level = pm.Normal("log_h0_level", *priors.baseline.params)
    trend = pm.Normal("log_h0_trend", *priors.pspline_trend.params)
    tau = pm.Gamma("tau_bs", alpha=priors.pspline_precision.params[0],
                   beta=priors.pspline_precision.params[1])
    eps = pm.Normal("bs_z", 0.0, 1.0, dims="bs_pen")
    theta = (level * _shared(N[:, 0]) + trend * _shared(N[:, 1])
             + pt.dot(_shared(E), eps) / pt.sqrt(tau))
    pm.Deterministic("bs_coef", theta, dims="bs_basis")
    pm.Deterministic("log_h0", pt.dot(_shared(ps.basis(ps.breaks)), theta), dims="knot")
    return theta


def build_joint_model(jd: JointDesign, priors: JointPriors) -> pm.Model:
    """The PyMC model (module docstring)."""
    mm = jd.long.mm
    coords = {"term": list(mm.fixed_names), "re_term": list(mm.random_names),
              "re_term_": list(mm.random_names), "patient": jd.patients,
              "surv_term": list(jd.surv.names), "piece": list(range(jd.n_pieces)),
              "knot": list(range(len(jd.spline_knots)))}
    if jd.pspline is not None:
        coords["bs_basis"] = list(range(jd.pspline.n_coef))
        coords["bs_pen"] = list(range(jd.pspline.n_coef - 2))
    with pm.Model(coords=coords) as model:
        beta_c = _normal_vector("beta_c", [priors.long.fixed[n] for n in mm.fixed_names], "term")
        beta = beta_c
        if jd.long.has_intercept:
            beta = pt.set_subtensor(beta_c[0], beta_c[0] - pt.dot(beta_c[1:],
                                                                  jd.long.xbar[1:]))
        pm.Deterministic("beta", beta, dims="term")
        L = _cholesky_factor(jd, priors)
        cov = pt.dot(L, L.T)
        sd = pt.sqrt(pt.diag(cov))
        pm.Deterministic("chol", L, dims=("re_term", "re_term_"))
        pm.Deterministic("sd", sd, dims="re_term")
        pm.Deterministic("corr", cov / pt.outer(sd, sd), dims=("re_term", "re_term_"))
        sigma = _scale_rv("sigma", priors.long.sigma)
        if jd.surv.names:
            gamma = _normal_vector("gamma", [priors.gamma[n] for n in jd.surv.names],
                                   "surv_term")
        else:
            gamma = None
        alpha = alpha_s = alpha_re = None
        if jd.association == "shared":
            alpha_re = _normal_vector(
                "alpha_shared", [priors.shared[shared_name(mm.response, n)]
                                 for n in mm.random_names], "re_term")
        else:
            alpha = pm.Normal("alpha", *priors.alpha.params)
        if jd.association == "value+slope":
            alpha_s = pm.Normal("alpha_slope", *priors.alpha_slope.params)
        if jd.baseline == "piecewise":
            base = pm.Normal("log_h0", *priors.baseline.params, dims="piece")
        elif jd.baseline == "spline":
            base = pm.Normal("log_h0", *priors.baseline.params, dims="knot")
        elif jd.baseline == "pspline":
            base = pspline_coefficients(jd, priors)
        else:
            log_rate = pm.Normal("log_rate", *priors.baseline.params)
            log_shape = pm.Normal("log_shape", *priors.log_shape.params)
            base = pt.stack([log_rate, log_shape])
        z = pm.Normal("z", 0.0, 1.0, dims=("patient", "re_term"))
        ztxb, pb = design_products(jd, beta_c)
        ll_long, b = latent_effects(jd, beta_c, L, sigma, z, ztxb)
        coef = None if jd.association == "shared" else trajectory(jd, beta_c, b, pb)
        ll_surv = survival_loglik(jd, coef, gamma, alpha, alpha_s, base, b, alpha_re)
        pm.Potential("longitudinal_loglik", ll_long)
        pm.Potential("survival_loglik", pt.sum(ll_surv))
    return model
