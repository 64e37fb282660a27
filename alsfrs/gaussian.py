"""The Gaussian marginal likelihood of a one-grouping-factor mixed model.

One kernel, two engines: the profiled REML/ML deviance of :mod:`alsfrs.lmm` and
the collapsed likelihood of :mod:`alsfrs.bayes` are the same per-patient algebra
on the same sufficient statistics (:class:`alsfrs.matrices.GroupStatistics`).

Model and notation
------------------
For patient ``i`` with ``nᵢ`` visits,

    yᵢ = Xᵢβ + Zᵢbᵢ + εᵢ,   bᵢ ~ N(0, σ² D),   εᵢ ~ N(0, σ² I),   D = ΛΛᵀ,

``Λ`` (q × q, lower triangular) is the *relative* covariance factor (lme4's
``θ`` are its free elements). With ``Gᵢ = ZᵢᵀZᵢ``:

* ``Aᵢ = I + ΛᵀGᵢΛ`` and ``|Vᵢ| = σ^{2nᵢ} |Aᵢ|`` (``Vᵢ = σ²(I + ZᵢDZᵢᵀ)``);
* ``Kᵢ = ΛAᵢ⁻¹Λᵀ`` so that ``Wᵢ = (I + ZᵢDZᵢᵀ)⁻¹ = I − ZᵢKᵢZᵢᵀ`` (Woodbury);
* for residuals ``eᵢ = yᵢ − Xᵢβ`` with ``cᵢ = Zᵢᵀeᵢ``:
  ``eᵢᵀWᵢeᵢ = eᵢᵀeᵢ − cᵢᵀKᵢcᵢ``;
* derivatives with respect to ``D`` use ``Mᵢ = ZᵢᵀWᵢZᵢ = Gᵢ − GᵢKᵢGᵢ``,
  ``sᵢ = ZᵢᵀWᵢeᵢ = cᵢ − GᵢKᵢcᵢ`` and ``Hᵢ = ZᵢᵀWᵢXᵢ``:
  ``∂ log|Aᵢ| = tr(Mᵢ dD)``, ``∂ eᵢᵀWᵢeᵢ = −sᵢᵀ dD sᵢ``,
  ``∂ XᵀWX = −Σ Hᵢᵀ dD Hᵢ``, ``∂Mᵢ = −Mᵢ dD Mᵢ``.

Everything works from Λ (never D⁻¹), so a singular D (a variance at zero,
a correlation at ±1) is handled. Per-patient q × q algebra is written in
closed form for q ≤ 2 and batched (NumPy stacked matrices) otherwise; the
cost of an evaluation is ``O(m q³ + m q² p + p³)`` whatever the number of
visits.

Two entry points:

* :class:`ProfiledGaussian` — the LMM's profiled deviance in ``θ`` with its
  analytic gradient and Hessian (β and σ² profiled out), and lmerTest's
  deviance in ``(θ, σ)`` with its analytic gradient and Hessian (for the
  Satterthwaite degrees of freedom);
* :func:`marginal_loglik_grad` — the collapsed log-likelihood
  ``log p(y | β, L, σ)`` (``Σ_b = LLᵀ``, so ``Λ = L/σ``) and its gradient in
  ``(β, L, σ)``, used by the Bayesian model's PyTensor Op.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from alsfrs.matrices import GroupStatistics

__all__ = [
    "LOG_2PI",
    "MarginalKernel",
    "ProfiledGaussian",
    "block_structure",
    "factor",
    "marginal_loglik_grad",
    "relative_precision_2x2",
]

LOG_2PI = math.log(2.0 * math.pi)


# ------------------------------------------------------------------------------
# per-patient factorisation
# ------------------------------------------------------------------------------
def relative_precision_2x2(g00, g01, g11, l00, l01, l10, l11):
    """The free entries ``(a00, a01, a11)`` of ``A = I + ΛᵀGΛ`` for 2 × 2 ``G``
    (symmetric) and ``Λ``, written out elementwise.

    Every argument may be an array (patients, or draws × patients, broadcast):
    the mixed model, the collapsed likelihood and the posterior's per-patient
    pass all use this one piece of algebra.
    """
    # S = G Λ
    s00 = g00 * l00 + g01 * l10
    s01 = g00 * l01 + g01 * l11
    s10 = g01 * l00 + g11 * l10
    s11 = g01 * l01 + g11 * l11
    # A = I + Λᵀ S
    return (1.0 + l00 * s00 + l10 * s10, l00 * s01 + l10 * s11, 1.0 + l01 * s01 + l11 * s11)


def factor(G: np.ndarray, Lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``Kᵢ = ΛAᵢ⁻¹Λᵀ`` and ``log|Aᵢ|`` for every patient.

    Parameters
    ----------
    G : ndarray, shape (m, q, q)
        ``ZᵢᵀZᵢ``.
    Lam : ndarray, shape (q, q)
        Relative covariance factor Λ.

    Returns
    -------
    K : ndarray, shape (m, q, q)
    logdet : ndarray, shape (m,)
        ``log|I + ΛᵀGᵢΛ|`` (``-inf``/``nan`` never occur: Aᵢ ⪰ I).
    """
    q = Lam.shape[0]
    if q == 1:
        lam = Lam[0, 0]
        a = 1.0 + lam * lam * G[:, 0, 0]
        return (lam * lam / a)[:, None, None], np.log(a)
    if q == 2:
        l00, l10, l11 = Lam[0, 0], Lam[1, 0], Lam[1, 1]
        l01 = Lam[0, 1]
        a00, a01, a11 = relative_precision_2x2(G[:, 0, 0], G[:, 0, 1], G[:, 1, 1],
                                               l00, l01, l10, l11)
        det = a00 * a11 - a01 * a01
        i00, i01, i11 = a11 / det, -a01 / det, a00 / det
        # K = Λ A⁻¹ Λᵀ
        t00 = l00 * i00 + l01 * i01
        t01 = l00 * i01 + l01 * i11
        t10 = l10 * i00 + l11 * i01
        t11 = l10 * i01 + l11 * i11
        K = np.empty_like(G)
        K[:, 0, 0] = t00 * l00 + t01 * l01
        K[:, 0, 1] = K[:, 1, 0] = t00 * l10 + t01 * l11
        K[:, 1, 1] = t10 * l10 + t11 * l11
        return K, np.log(det)
    A = Lam.T @ G @ Lam
    A[:, range(q), range(q)] += 1.0
    C = np.linalg.cholesky(A)
    logdet = 2.0 * np.log(np.diagonal(C, axis1=1, axis2=2)).sum(axis=1)
    Ainv = np.linalg.inv(A)
    K = Lam @ Ainv @ Lam.T
    return 0.5 * (K + np.swapaxes(K, 1, 2)), logdet


def _matvec(A: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Stacked ``Aᵢ vᵢ`` for (m, q, q) and (m, q)."""
    q = v.shape[1]
    if q == 1:
        return A[:, :, 0] * v
    if q == 2:
        out = np.empty_like(v)
        out[:, 0] = A[:, 0, 0] * v[:, 0] + A[:, 0, 1] * v[:, 1]
        out[:, 1] = A[:, 1, 0] * v[:, 0] + A[:, 1, 1] * v[:, 1]
        return out
    return (A @ v[:, :, None])[:, :, 0]


def block_structure(blocks: tuple[tuple[int, ...], ...]) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of Λ's free elements (lme4's θ order: each block's lower
    triangle, column by column)."""
    rows, cols = [], []
    for block in blocks:
        k = len(block)
        for c in range(k):
            for r in range(c, k):
                rows.append(block[r])
                cols.append(block[c])
    return np.array(rows, dtype=np.intp), np.array(cols, dtype=np.intp)


# ------------------------------------------------------------------------------
# the LMM: profiled deviance with gradient and Hessian
# ------------------------------------------------------------------------------
@dataclass
class Evaluation:
    """The profiled deviance and its pieces at one θ (see :class:`ProfiledGaussian`).

    ``ok`` is False where the deviance is not defined (XᵀWX not positive
    definite, or a zero penalised residual sum of squares); the objective is
    then ``inf``.
    """

    theta: np.ndarray
    Lam: np.ndarray
    K: np.ndarray
    ldL2: float
    ok: bool
    objective: float = math.inf
    deviance_ml: float = math.inf
    XtWX: np.ndarray | None = None
    P: np.ndarray | None = None  # (XᵀWX)⁻¹
    beta: np.ndarray | None = None
    r2: float = math.nan
    ldRX2: float = math.nan
    # derivative pieces (filled on request)
    M: np.ndarray | None = None  # (m, q, q)
    s: np.ndarray | None = None  # (m, q)
    H: np.ndarray | None = None  # (m, q, p)
    Gamma_parts: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


class ProfiledGaussian:
    """Profiled REML/ML deviance of a one-grouping-factor LMM as a function of θ.

    Parameters
    ----------
    stats : GroupStatistics
        Per-patient sufficient statistics.
    blocks : tuple of tuple of int
        Partition of the random effects into correlated blocks.
    reml : bool
        REML criterion (default in lme4) or ML deviance.

    Notes
    -----
    With ``ν = n − p`` (REML) or ``n`` (ML), ``r² = min_β Σ eᵢᵀWᵢeᵢ`` and
    ``ldL2 = Σ log|Aᵢ|``, ``ldRX2 = log|XᵀWX|``:

        REML: f(θ) = ldL2 + ldRX2 + ν (1 + log(2π r²/ν))
        ML:   f(θ) = ldL2 + n (1 + log(2π r²/n)).

    The D-gradient is ``Γ = Σ Mᵢ − (ν/r²) Σ sᵢsᵢᵀ − [REML] Σ HᵢPHᵢᵀ`` and the
    θ-gradient ``∂f/∂θ_k = tr(Γ E_k)`` with ``E_k = ∂D/∂θ_k``. The Hessian is
    ``f_DD[E_k, E_l] + tr(Γ F_kl)`` (``F_kl = ∂²D/∂θ_k∂θ_l``) with

        ldL2:  −Σ tr(Mᵢ E_k Mᵢ E_l)
        r²:    2 Σ sᵢᵀE_kMᵢE_l sᵢ − 2 u_kᵀ P u_l,    u_k = Σ HᵢᵀE_k sᵢ
        ldRX2: −tr(P B_k P B_l) + 2 Σ tr(E_k Mᵢ E_l HᵢPHᵢᵀ),   B_k = Σ HᵢᵀE_kHᵢ

    (β̂ moves with θ: ``∂β̂ = −P u``). See ``tests/test_gaussian.py`` for
    the checks against finite differences and the dense likelihood.
    """

    def __init__(self, stats: GroupStatistics, blocks: tuple[tuple[int, ...], ...],
                 reml: bool) -> None:
        self.reml = bool(reml)
        self.G = stats.ZtZ
        self.ZtX = stats.ZtX
        self.Zty = stats.Zty
        self.XtX = stats.XtX
        self.Xty = stats.Xty
        self.yty = float(stats.yty_total)
        self.n = int(stats.n_obs)
        self.m, self.q, self.p = self.ZtX.shape
        self.rows, self.cols = block_structure(blocks)
        self.is_diag = self.rows == self.cols
        self.lower = np.where(self.is_diag, 0.0, -np.inf)
        self.n_evaluations = 0
        self._ZtX_flat = self.ZtX.reshape(-1, self.p)

    @property
    def n_theta(self) -> int:
        """Number of free elements of Λ."""
        return int(self.rows.size)

    @property
    def nu(self) -> int:
        """Residual degrees of freedom used by the criterion (n − p or n)."""
        return self.n - self.p if self.reml else self.n

    def start(self) -> np.ndarray:
        """lme4's default start: Λ = I."""
        return self.is_diag.astype(float)

    def moment_start(self) -> np.ndarray:
        """A data-based start: θ from method-of-moments estimates of D and σ².

        Per-patient least-squares coefficients ``b̂ᵢ = Gᵢ⁻¹Zᵢᵀeᵢ`` of the OLS
        residuals (patients whose ``Gᵢ`` is well conditioned) have covariance
        ``σ²D + σ² E[Gᵢ⁻¹]``; σ² comes from the within-patient residuals. The
        estimate is projected to positive semi-definite (eigenvalues floored at a
        small share of the largest), restricted to the formula's blocks, and
        factored. Falls back to :meth:`start` when too few patients qualify, and
        for more than two random effects per patient (badly scaled columns such
        as ``I(months^2)`` make the per-patient fits unreliable).
        """
        q = self.q
        if q > 2:
            return self.start()
        G = self.G
        try:
            beta = np.linalg.solve(self.XtX, self.Xty)
        except np.linalg.LinAlgError:
            return self.start()
        c = self.Zty - self.ZtX @ beta
        ee = self.yty - 2.0 * float(beta @ self.Xty) + float(beta @ self.XtX @ beta)
        scale = np.einsum("ijj->ij", G).max(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            det = np.linalg.det(G)
            ok = det > 1e-8 * np.maximum(scale, 1e-300) ** q
        if ok.sum() < max(3, 2 * q):
            return self.start()
        Ginv = np.linalg.inv(G[ok])
        b = (Ginv @ c[ok][:, :, None])[:, :, 0]
        within = ee - float(np.einsum("ia,ia->", c[ok], b))
        dof = self.n - int(ok.sum()) * q - self.p
        if dof <= 0 or within <= 0:
            return self.start()
        sigma2 = within / dof
        D = (np.cov(b, rowvar=False).reshape(q, q) - sigma2 * Ginv.mean(axis=0)) / sigma2
        mask = np.zeros((q, q), dtype=bool)
        mask[self.rows, self.cols] = True
        mask |= mask.T
        D = np.where(mask, 0.5 * (D + D.T), 0.0)
        w, V = np.linalg.eigh(D)
        if not np.all(np.isfinite(w)) or w.max() <= 0:
            return self.start()
        w = np.maximum(w, 1e-4 * w.max())
        D = np.where(mask, (V * w) @ V.T, 0.0)
        try:
            Lam = np.linalg.cholesky(D)
        except np.linalg.LinAlgError:
            return self.start()
        theta = Lam[self.rows, self.cols]
        return theta if np.all(np.isfinite(theta)) else self.start()

    def Lambda(self, theta: np.ndarray) -> np.ndarray:
        """Λ from θ."""
        Lam = np.zeros((self.q, self.q))
        Lam[self.rows, self.cols] = theta
        return Lam

    # -- value -------------------------------------------------------------------
    def evaluate(self, theta: np.ndarray) -> Evaluation:
        """The profiled objective (and β̂, r², P) at ``theta``."""
        self.n_evaluations += 1
        theta = np.asarray(theta, dtype=float)
        Lam = self.Lambda(theta)
        K, logdet = factor(self.G, Lam)
        ldL2 = float(logdet.sum())
        m, q, p = self.m, self.q, self.p
        KZX = K @ self.ZtX if q > 2 else _stacked_KB(K, self.ZtX)
        KZy = _matvec(K, self.Zty)
        XtWX = self.XtX - self._ZtX_flat.T @ KZX.reshape(m * q, p)
        XtWy = self.Xty - self._ZtX_flat.T @ KZy.reshape(m * q)
        ytWy = self.yty - float(self.Zty.reshape(-1) @ KZy.reshape(-1))
        XtWX = 0.5 * (XtWX + XtWX.T)
        ev = Evaluation(theta=theta, Lam=Lam, K=K, ldL2=ldL2, ok=False, XtWX=XtWX)
        if not np.isfinite(ldL2):
            return ev
        try:
            R = np.linalg.cholesky(XtWX)
        except np.linalg.LinAlgError:
            return ev
        Ri = np.linalg.inv(R)
        P = Ri.T @ Ri
        beta = P @ XtWy
        r2 = ytWy - float(beta @ XtWy)
        if not (r2 > 0 and np.isfinite(r2)):
            return ev
        ldRX2 = 2.0 * float(np.log(np.diag(R)).sum())
        n = self.n
        dev_ml = ldL2 + n * (1.0 + math.log(2.0 * math.pi * r2 / n))
        if self.reml:
            nu = n - p
            obj = ldL2 + ldRX2 + nu * (1.0 + math.log(2.0 * math.pi * r2 / nu))
        else:
            obj = dev_ml
        ev.ok, ev.objective, ev.deviance_ml = True, obj, dev_ml
        ev.P, ev.beta, ev.r2, ev.ldRX2 = P, beta, r2, ldRX2
        return ev

    def objective(self, theta: np.ndarray) -> float:
        """The profiled objective (``inf`` where undefined)."""
        ev = self.evaluate(theta)
        return ev.objective if ev.ok else math.inf

    # -- derivative pieces ---------------------------------------------------------
    def _pieces(self, ev: Evaluation) -> None:
        """Mᵢ, sᵢ, Hᵢ and the three D-gradient sums Σ Mᵢ, Σ sᵢsᵢᵀ, Σ HᵢPHᵢᵀ."""
        if ev.M is not None:
            return
        G, K = self.G, ev.K
        m, q, p = self.m, self.q, self.p
        GK = G @ K if q > 2 else _stacked_KB(G, K)
        M = G - (GK @ G if q > 2 else _stacked_KB(GK, G))
        c = self.Zty - self.ZtX @ ev.beta
        s = c - _matvec(GK, c)
        H = self.ZtX - (GK @ self.ZtX if q > 2 else _stacked_KB(GK, self.ZtX))
        Msum = M.sum(axis=0)
        S = s.T @ s
        if self.reml:
            HP = (H.reshape(m * q, p) @ ev.P).reshape(m, q, p)
            HPH = np.tensordot(HP, H, axes=([0, 2], [0, 2]))
        else:
            HPH = np.zeros((q, q))
        ev.M, ev.s, ev.H = M, s, H
        ev.Gamma_parts = (Msum, S, HPH)

    def _E(self, Lam: np.ndarray) -> np.ndarray:
        """``E_k = ∂D/∂θ_k`` for every free element, shape (n_theta, q, q)."""
        E = np.zeros((self.n_theta, self.q, self.q))
        for k, (r, c) in enumerate(zip(self.rows, self.cols, strict=True)):
            E[k, r, :] += Lam[:, c]
            E[k, :, r] += Lam[:, c]
        return E

    def _F_trace(self, Gamma: np.ndarray) -> np.ndarray:
        """``tr(Γ F_kl)`` with ``F_kl = ∂²D/∂θ_k∂θ_l`` (Γ symmetric)."""
        r, c = self.rows, self.cols
        same = c[:, None] == c[None, :]
        return np.where(same, 2.0 * Gamma[r[:, None], r[None, :]], 0.0)

    def _theta_gradient(self, Gamma: np.ndarray, Lam: np.ndarray) -> np.ndarray:
        """``tr(Γ E_k)`` for symmetric Γ: ``2 (ΓΛ)[r_k, c_k]``."""
        return 2.0 * (Gamma @ Lam)[self.rows, self.cols]

    def gradient(self, ev: Evaluation) -> np.ndarray:
        """Analytic gradient of the profiled objective in θ."""
        self._pieces(ev)
        Msum, S, HPH = ev.Gamma_parts
        Gamma = Msum - (self.nu / ev.r2) * S - HPH
        return self._theta_gradient(0.5 * (Gamma + Gamma.T), ev.Lam)

    def objective_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Objective and gradient (``inf`` and zeros where undefined)."""
        ev = self.evaluate(theta)
        if not ev.ok:
            return math.inf, np.zeros(self.n_theta)
        return ev.objective, self.gradient(ev)

    def _second_pieces(self, ev: Evaluation, E: np.ndarray):
        """The D-second-derivative terms in the θ directions: T_ldL2, T_r2, T_ldRX2
        (each (k, l) matrix), without the ``tr(Γ F_kl)`` parts.

        Written as stacked matrix products (no einsum loops): ``X_flat @ Y_flatᵀ``
        sums ``Σᵢ tr(...)`` over patients in one BLAS call.
        """
        self._pieces(ev)
        M, s, H, P = ev.M, ev.s, ev.H, ev.P
        k = E.shape[0]
        m, q, p = H.shape
        ME = np.matmul(M[None], E[:, None])  # (k, m, q, q): Mᵢ E_k
        ME_flat = ME.reshape(k, -1)
        ME_T_flat = np.swapaxes(ME, 2, 3).reshape(k, -1)
        T_ld = -(ME_flat @ ME_T_flat.T)  # −Σᵢ tr(Mᵢ E_k Mᵢ E_l)
        v = np.matmul(s[None], np.swapaxes(E, 1, 2))  # (k, m, q): E_k sᵢ
        Mv = np.matmul(M[None], v[..., None])[..., 0]
        T_r2 = 2.0 * (v.reshape(k, -1) @ Mv.reshape(k, -1).T)
        u = v.reshape(k, m * q) @ H.reshape(m * q, p)  # (k, p)
        T_r2 -= 2.0 * (u @ P @ u.T)
        if self.reml:
            Q = self._HtH(H)
            B = (E.reshape(k, q * q) @ Q.reshape(q * q, p * p)).reshape(k, p, p)
            PB = np.matmul(P[None], B)
            T_rx = -(PB.reshape(k, -1) @ np.swapaxes(PB, 1, 2).reshape(k, -1).T)
            HP = (H.reshape(m * q, p) @ P).reshape(m, q, p)
            N = np.matmul(HP, np.swapaxes(H, 1, 2))  # (m, q, q): Hᵢ P Hᵢᵀ
            NE_T = np.swapaxes(np.matmul(N[None], E[:, None]), 2, 3).reshape(k, -1)
            T_rx += 2.0 * (NE_T @ ME_flat.T)  # [k, l] = 2 Σᵢ tr(E_k Mᵢ E_l Nᵢ)
        else:
            T_rx = np.zeros_like(T_ld)
        return T_ld, T_r2, T_rx, u

    @staticmethod
    def _HtH(H: np.ndarray) -> np.ndarray:
        """``Q[a, b] = Σᵢ Hᵢ[a]ᵀ Hᵢ[b]``, shape (q, q, p, p)."""
        q = H.shape[1]
        Q = np.empty((q, q, H.shape[2], H.shape[2]))
        for a in range(q):
            for b in range(a, q):
                Q[a, b] = H[:, a, :].T @ H[:, b, :]
                if b != a:
                    Q[b, a] = Q[a, b].T
        return Q

    def hessian(self, ev: Evaluation) -> np.ndarray:
        """Analytic Hessian of the profiled objective in θ."""
        E = self._E(ev.Lam)
        T_ld, T_r2, T_rx, _ = self._second_pieces(ev, E)
        Msum, S, HPH = ev.Gamma_parts
        nu, r2 = self.nu, ev.r2
        # first derivatives of r² in θ, for the log term's second derivative
        dr2 = -(E.reshape(E.shape[0], -1) @ S.ravel())
        Hf = T_ld + T_rx + nu * (T_r2 / r2 - np.outer(dr2, dr2) / r2**2)
        Gamma = Msum - (nu / r2) * S - HPH
        Hf = Hf + self._F_trace(0.5 * (Gamma + Gamma.T))
        return 0.5 * (Hf + Hf.T)

    # -- lmerTest's deviance in (θ, σ) -------------------------------------------
    def varpar_deviance(self, varpar: np.ndarray) -> float:
        """lmerTest's ``devfun_vp``: the (RE)ML deviance as a function of (θ, σ)."""
        theta, sigma = varpar[:-1], float(varpar[-1])
        ev = self.evaluate(theta)
        s2 = sigma**2
        dev = ev.ldL2 + ev.r2 / s2 + self.n * math.log(2 * math.pi * s2)
        if self.reml:
            dev += ev.ldRX2 - self.p * math.log(2 * math.pi * s2)
        return dev

    def varpar_gradient(self, varpar: np.ndarray) -> np.ndarray:
        """Gradient of :meth:`varpar_deviance`."""
        theta, sigma = varpar[:-1], float(varpar[-1])
        ev = self.evaluate(theta)
        self._pieces(ev)
        Msum, S, HPH = ev.Gamma_parts
        Gamma = Msum - S / sigma**2 - HPH
        g_theta = self._theta_gradient(0.5 * (Gamma + Gamma.T), ev.Lam)
        g_sigma = -2.0 * ev.r2 / sigma**3 + 2.0 * self.nu / sigma
        return np.append(g_theta, g_sigma)

    def varpar_hessian(self, ev: Evaluation, sigma: float) -> np.ndarray:
        """Analytic Hessian of :meth:`varpar_deviance` at (ev.theta, σ)."""
        E = self._E(ev.Lam)
        T_ld, T_r2, T_rx, _ = self._second_pieces(ev, E)
        Msum, S, HPH = ev.Gamma_parts
        s2 = sigma**2
        k = self.n_theta
        out = np.empty((k + 1, k + 1))
        Gamma = Msum - S / s2 - HPH
        out[:k, :k] = T_ld + T_r2 / s2 + T_rx + self._F_trace(0.5 * (Gamma + Gamma.T))
        dr2 = -(E.reshape(k, -1) @ S.ravel())
        out[:k, k] = out[k, :k] = -2.0 * dr2 / sigma**3
        out[k, k] = 6.0 * ev.r2 / sigma**4 - 2.0 * self.nu / s2
        return 0.5 * (out + out.T)

    def covbeta_jacobian(self, ev: Evaluation, sigma: float) -> tuple[np.ndarray, np.ndarray]:
        """``σ²(XᵀWX)⁻¹`` and its Jacobian in (θ, σ), shapes (p, p), (k+1, p, p)."""
        self._pieces(ev)
        P, H = ev.P, ev.H
        E = self._E(ev.Lam)
        k, q, p = self.n_theta, self.q, self.p
        Q = self._HtH(H)
        B = (E.reshape(k, q * q) @ Q.reshape(q * q, p * p)).reshape(k, p, p)  # −∂XᵀWX/∂θ_k
        J = np.empty((k + 1, p, p))
        J[:-1] = sigma**2 * np.matmul(np.matmul(P[None], B), P[None])
        J[-1] = 2.0 * sigma * P
        return sigma**2 * P, J


def _stacked_KB(K: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Stacked ``Kᵢ Bᵢ`` for (m, q, q) @ (m, q, r), q ≤ 2, written out."""
    q = K.shape[1]
    if q == 1:
        return K[:, :, :1] * B
    out = np.empty_like(B, shape=(B.shape[0], q, B.shape[2]))
    k00, k01 = K[:, 0, 0, None], K[:, 0, 1, None]
    k10, k11 = K[:, 1, 0, None], K[:, 1, 1, None]
    b0, b1 = B[:, 0, :], B[:, 1, :]
    out[:, 0, :] = k00 * b0 + k01 * b1
    out[:, 1, :] = k10 * b0 + k11 * b1
    return out


# ------------------------------------------------------------------------------
# the collapsed Bayesian likelihood
# ------------------------------------------------------------------------------
def marginal_loglik_grad(
    stats: GroupStatistics, beta: np.ndarray, L: np.ndarray, sigma: float
) -> tuple[float, np.ndarray, np.ndarray, float]:
    """``log p(y | β, L, σ)`` with the random effects integrated out, and its gradient.

    Parameters
    ----------
    stats : GroupStatistics
        Sufficient statistics (for the design the β refer to).
    beta : ndarray, shape (p,)
    L : ndarray, shape (q, q)
        Lower Cholesky factor of the random-effects covariance ``Σ_b = LLᵀ``.
    sigma : float
        Residual standard deviation.

    Returns
    -------
    loglik : float
    grad_beta : ndarray, shape (p,)
    grad_L : ndarray, shape (q, q)
        Gradient with respect to every element of ``L`` (the upper triangle is
        the gradient of a free extension; callers use the lower triangle).
    grad_sigma : float

    Notes
    -----
    With ``Λ = L/σ``, ``cᵢ = Zᵢᵀyᵢ − ZᵢᵀXᵢβ`` and ``Q = ‖y − Xβ‖² − Σ cᵢᵀKᵢcᵢ``:
    ``ℓ = −½ [n log 2πσ² + Σ log|Aᵢ| + Q/σ²]``. With ``Γ = ∂ℓ/∂D =
    −½ [Σ Mᵢ − Σ sᵢsᵢᵀ/σ²]``: ``∂ℓ/∂β = (Xᵀy − XᵀXβ − Σ ZᵢᵀXᵢᵀKᵢcᵢ)/σ²``,
    ``∂ℓ/∂L = 2ΓL/σ²`` and ``∂ℓ/∂σ = −n/σ + Q/σ³ − 2 tr(ΓD)/σ``.
    """
    sigma = float(sigma)
    s2 = sigma * sigma
    q = L.shape[0]
    Lam = L / sigma
    G = stats.ZtZ
    K, logdet = factor(G, Lam)
    c = stats.Zty - stats.ZtX @ beta
    Kc = _matvec(K, c)
    XtXb = stats.XtX @ beta
    rss = stats.yty_total - 2.0 * float(beta @ stats.Xty) + float(beta @ XtXb)
    Q = rss - float(np.einsum("ia,ia->", c, Kc))
    n = stats.n_obs
    loglik = -0.5 * (n * (LOG_2PI + math.log(s2)) + float(logdet.sum()) + Q / s2)
    m, _, p = stats.ZtX.shape
    g_beta = (stats.Xty - XtXb - stats.ZtX.reshape(m * q, p).T @ Kc.reshape(-1)) / s2
    GK = G @ K if q > 2 else _stacked_KB(G, K)
    Msum = (G - (GK @ G if q > 2 else _stacked_KB(GK, G))).sum(axis=0)
    s = c - _matvec(GK, c)
    S = s.T @ s
    Gamma = -0.5 * (Msum - S / s2)
    Gamma = 0.5 * (Gamma + Gamma.T)
    g_L = 2.0 * (Gamma @ L) / s2
    D = Lam @ Lam.T
    g_sigma = -n / sigma + Q / (s2 * sigma) - 2.0 * float(np.sum(Gamma * D)) / sigma
    return loglik, g_beta, g_L, g_sigma


class MarginalKernel:
    """:func:`marginal_loglik_grad` with the statistics laid out once for speed.

    NUTS calls the collapsed likelihood tens of thousands of times per fit; for
    one or two random effects per patient every per-patient quantity is kept
    as a contiguous vector over patients and the algebra is written out
    elementwise (as in :func:`factor`), otherwise the general stacked form is used.

    Parameters
    ----------
    stats : GroupStatistics
    """

    def __init__(self, stats: GroupStatistics) -> None:
        self.stats = stats
        q = stats.ZtX.shape[1]
        self.q = q
        self.n = int(stats.n_obs)
        self.XtX = np.ascontiguousarray(stats.XtX)
        self.Xty = np.ascontiguousarray(stats.Xty)
        self.yty = float(stats.yty_total)
        self.g = {(a, b): np.ascontiguousarray(stats.ZtZ[:, a, b])
                  for a in range(q) for b in range(q)}
        self.ZtX = [np.ascontiguousarray(stats.ZtX[:, a, :]) for a in range(q)]
        self.Zty = [np.ascontiguousarray(stats.Zty[:, a]) for a in range(q)]
        self.sum_g = stats.ZtZ.sum(axis=0)

    def __call__(self, beta: np.ndarray, L: np.ndarray, sigma: float
                 ) -> tuple[float, np.ndarray, np.ndarray, float]:
        """Log-likelihood and gradient (see :func:`marginal_loglik_grad`)."""
        if self.q > 2:
            return marginal_loglik_grad(self.stats, beta, L, sigma)
        sigma = float(sigma)
        s2 = sigma * sigma
        XtXb = self.XtX @ beta
        rss = self.yty - 2.0 * float(beta @ self.Xty) + float(beta @ XtXb)
        c0 = self.Zty[0] - self.ZtX[0] @ beta
        if self.q == 1:
            lam = L[0, 0] / sigma
            g00 = self.g[0, 0]
            a = 1.0 + lam * lam * g00
            k00 = lam * lam / a
            Kc0 = k00 * c0
            quad = float(c0 @ Kc0)
            logdet = float(np.log(a).sum())
            g_beta_re = self.ZtX[0].T @ Kc0
            gk00 = g00 * k00
            Msum = np.array([[self.sum_g[0, 0] - float(gk00 @ g00)]])
            s0 = c0 - gk00 * c0
            S = np.array([[float(s0 @ s0)]])
        else:
            c1 = self.Zty[1] - self.ZtX[1] @ beta
            l00, l10, l11 = L[0, 0] / sigma, L[1, 0] / sigma, L[1, 1] / sigma
            l01 = L[0, 1] / sigma
            g00, g01, g11 = self.g[0, 0], self.g[0, 1], self.g[1, 1]
            a00, a01, a11 = relative_precision_2x2(g00, g01, g11, l00, l01, l10, l11)
            det = a00 * a11 - a01 * a01
            inv = 1.0 / det
            i00, i01, i11 = a11 * inv, -a01 * inv, a00 * inv
            t00 = l00 * i00 + l01 * i01
            t01 = l00 * i01 + l01 * i11
            t10 = l10 * i00 + l11 * i01
            t11 = l10 * i01 + l11 * i11
            k00 = t00 * l00 + t01 * l01
            k01 = t00 * l10 + t01 * l11
            k11 = t10 * l10 + t11 * l11
            Kc0 = k00 * c0 + k01 * c1
            Kc1 = k01 * c0 + k11 * c1
            quad = float(c0 @ Kc0 + c1 @ Kc1)
            logdet = float(np.log(det).sum())
            g_beta_re = self.ZtX[0].T @ Kc0 + self.ZtX[1].T @ Kc1
            gk00 = g00 * k00 + g01 * k01
            gk01 = g00 * k01 + g01 * k11
            gk10 = g01 * k00 + g11 * k01
            gk11 = g01 * k01 + g11 * k11
            m00 = self.sum_g[0, 0] - float(gk00 @ g00 + gk01 @ g01)
            m01 = self.sum_g[0, 1] - float(gk00 @ g01 + gk01 @ g11)
            m11 = self.sum_g[1, 1] - float(gk10 @ g01 + gk11 @ g11)
            Msum = np.array([[m00, m01], [m01, m11]])
            s0 = c0 - (gk00 * c0 + gk01 * c1)
            s1 = c1 - (gk10 * c0 + gk11 * c1)
            x01 = float(s0 @ s1)
            S = np.array([[float(s0 @ s0), x01], [x01, float(s1 @ s1)]])
        Q = rss - quad
        n = self.n
        loglik = -0.5 * (n * (LOG_2PI + math.log(s2)) + logdet + Q / s2)
        g_beta = (self.Xty - XtXb - g_beta_re) / s2
        Gamma = -0.5 * (Msum - S / s2)
        g_L = 2.0 * (Gamma @ L) / s2
        D = (L @ L.T) / s2
        g_sigma = -n / sigma + Q / (s2 * sigma) - 2.0 * float(np.sum(Gamma * D)) / sigma
        return loglik, g_beta, g_L, g_sigma
