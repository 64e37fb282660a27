"""Risk-set sums of the Cox partial likelihood, vectorised (Efron and Breslow ties).

For every stratum and every distinct event time ``t_k`` with ``d_k`` events
the risk set is ``{i : start_i < t_k <= stop_i}`` (right-censored data have
``start = -inf``). With risk scores ``r_i = exp(x_i β)``, the sums over the risk
set ``S0, S1, S2`` and over the events ``E0, E1, E2`` are read off reverse
cumulative sums (rows sorted by stop, minus rows sorted by start), so one
evaluation costs ``O(n p²)`` after one sort.

Efron's approximation treats the ``d`` tied events as ``d`` *pseudo-events*
``l = 0 … d-1`` with denominator ``S0 - (l/d) E0`` (and likewise for the
means); Breslow's is the same with the fraction ``f = l/d`` set to 0. Every
quantity below — log partial likelihood, score, information, score residuals,
the hazard increments of the baseline hazard (R's ``survfit.coxph``), and the
sums of the ``cox.zph`` score test — is a sum over pseudo-events, following
R survival's ``coxfit6``/``agfit4``, ``coxscore2``/``agscore2`` and ``zph1``/``zph2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Pseudo:
    """Quantities per pseudo-event at one β (time order within strata)."""

    stratum: np.ndarray  # (J,)
    time: np.ndarray  # (J,)
    k: np.ndarray  # (J,) index of the distinct event time (global)
    f: np.ndarray  # (J,) Efron fraction l/d (0 for Breslow)
    h: np.ndarray  # (J,) hazard increment 1/den on the shifted scale
    xbar: np.ndarray  # (J, p) weighted mean of x (centred X)
    cov: np.ndarray | None  # (J, p, p) weighted covariance of x (centred X)
    shift: float  # r_i used here = exp(eta_i - shift), eta on centred X


class RiskSets:
    """Sorting and indexing of one survival data set, reused at every β.

    Parameters
    ----------
    stop, event, start, strata : arrays
        As in :class:`alsfrs.survival.frame.SurvivalData`.
    X : ndarray (n, p)
        Covariates (centred here by their column means).
    """

    def __init__(self, stop: np.ndarray, event: np.ndarray, start: np.ndarray | None,
                 strata: np.ndarray, X: np.ndarray) -> None:
        self.n, self.p = X.shape
        self.stop = np.asarray(stop, dtype=float)
        self.start = None if start is None else np.asarray(start, dtype=float)
        self.event = np.asarray(event).astype(bool)
        self.strata = np.asarray(strata, dtype=np.intp)
        self.means = X.mean(axis=0) if self.n else np.zeros(self.p)
        self.X = X - self.means
        self.groups = []
        for s in np.unique(self.strata):
            rows = np.flatnonzero(self.strata == s)
            o_stop = rows[np.argsort(self.stop[rows], kind="stable")]
            o_start = (None if self.start is None
                       else rows[np.argsort(self.start[rows], kind="stable")])
            ev = rows[self.event[rows]]
            ev = ev[np.argsort(self.stop[ev], kind="stable")]
            times, _first, d = np.unique(self.stop[ev], return_index=True, return_counts=True)
            self.groups.append({"s": int(s), "rows": rows, "o_stop": o_stop,
                                "o_start": o_start, "ev": ev, "times": times, "d": d})
        # global list of distinct event times
        self.k_stratum = np.concatenate([np.full(len(g["times"]), g["s"]) for g in self.groups]
                                        ) if self.groups else np.zeros(0, np.intp)
        self.k_time = (np.concatenate([g["times"] for g in self.groups]) if self.groups
                       else np.zeros(0))
        self.k_d = (np.concatenate([g["d"] for g in self.groups]) if self.groups
                    else np.zeros(0, np.intp))
        off = 0
        for g in self.groups:
            g["k0"] = off
            off += len(g["times"])
        self.n_events = int(self.event.sum())

    # -- core ------------------------------------------------------------------------
    def pseudo(self, beta: np.ndarray, ties: str, second: bool = True
               ) -> tuple[float, np.ndarray, np.ndarray, Pseudo]:
        """Log partial likelihood, score, information and the pseudo-events at ``beta``."""
        X = self.X
        p = self.p
        eta = X @ beta if p else np.zeros(self.n)
        shift = float(eta.max()) if self.n else 0.0
        r = np.exp(eta - shift)
        efron = ties == "efron"
        parts = []
        for g in self.groups:
            t = g["times"]
            if len(t) == 0:
                continue
            o = g["o_stop"]
            ro = r[o]
            xo = X[o]
            s0c = _rcum(ro)
            s1c = _rcum(ro[:, None] * xo)
            a = np.searchsorted(self.stop[o], t, side="left")
            S0, S1 = s0c[a], s1c[a]
            if second:
                s2c = _rcum(ro[:, None, None] * xo[:, :, None] * xo[:, None, :])
                S2 = s2c[a]
            if g["o_start"] is not None:
                o2 = g["o_start"]
                ro2, xo2 = r[o2], X[o2]
                a2 = np.searchsorted(self.start[o2], t, side="left")  # start >= t: not at risk
                S0 = S0 - _rcum(ro2)[a2]
                S1 = S1 - _rcum(ro2[:, None] * xo2)[a2]
                if second:
                    S2 = S2 - _rcum(ro2[:, None, None] * xo2[:, :, None] * xo2[:, None, :])[a2]
            ev = g["ev"]
            starts = np.concatenate(([0], np.cumsum(g["d"])[:-1]))
            re, xe = r[ev], X[ev]
            E0 = np.add.reduceat(re, starts)
            E1 = np.add.reduceat(re[:, None] * xe, starts, axis=0)
            d = g["d"]
            kk = np.repeat(np.arange(len(t)), d)
            f = (np.arange(len(kk)) - np.repeat(starts, d)) / np.repeat(d, d) if efron else \
                np.zeros(len(kk))
            den = S0[kk] - f * E0[kk]
            M1 = (S1[kk] - f[:, None] * E1[kk]) / den[:, None]
            cov = None
            if second:
                E2 = np.add.reduceat(re[:, None, None] * xe[:, :, None] * xe[:, None, :], starts,
                                     axis=0)
                M2 = (S2[kk] - f[:, None, None] * E2[kk]) / den[:, None, None]
                cov = M2 - M1[:, :, None] * M1[:, None, :]
            parts.append((np.full(len(kk), g["s"]), t[kk], g["k0"] + kk, f, 1.0 / den, M1, cov,
                          np.log(den)))
        if parts:
            cat = [np.concatenate([pp[i] for pp in parts]) for i in (0, 1, 2, 3, 4, 5, 7)]
            covs = np.concatenate([pp[6] for pp in parts]) if second else None
        else:
            cat = [np.zeros(0)] * 5 + [np.zeros((0, p)), np.zeros(0)]
            covs = np.zeros((0, p, p)) if second else None
        st, tt, kk, f, h, xbar, logden = cat
        loglik = float(eta[self.event].sum() - shift * len(h) - logden.sum())
        # note: logden is on the shifted scale: log den_true = logden + shift
        score = X[self.event].sum(axis=0) - xbar.sum(axis=0)
        info = covs.sum(axis=0) if second else np.zeros((p, p))
        return loglik, score, info, Pseudo(st.astype(np.intp), tt, kk.astype(np.intp), f, h,
                                           xbar, covs, shift)

    def score_residuals(self, beta: np.ndarray, ps: Pseudo) -> np.ndarray:
        """Score residuals per row (R's ``residuals(fit, type = "score")``)."""
        X = self.X
        eta = X @ beta
        r = np.exp(eta - ps.shift)
        out = np.zeros_like(X)
        for g in self.groups:
            sel = ps.stratum == g["s"]
            rows = g["rows"]
            if not sel.any():
                continue
            tj, hj, xj, fj, kj = ps.time[sel], ps.h[sel], ps.xbar[sel], ps.f[sel], ps.k[sel]
            cumH = np.concatenate(([0.0], np.cumsum(hj)))
            cumXH = np.concatenate((np.zeros((1, self.p)), np.cumsum(hj[:, None] * xj, axis=0)))
            J = np.searchsorted(tj, self.stop[rows], side="right")
            H = cumH[J]
            XH = cumXH[J]
            if self.start is not None:
                J0 = np.searchsorted(tj, self.start[rows], side="right")
                H = H - cumH[J0]
                XH = XH - cumXH[J0]
            xr = X[rows]
            res = -r[rows][:, None] * (xr * H[:, None] - XH)
            # events: + x_i - mean_l xbar_kl, and back the Efron fraction of their own time
            ev = self.event[rows]
            if ev.any():
                K = len(g["times"])
                kl = kj - g["k0"]
                cnt = np.bincount(kl, minlength=K).astype(float)
                mean_xbar = np.zeros((K, self.p))
                np.add.at(mean_xbar, kl, xj)
                mean_xbar /= cnt[:, None]
                A = np.bincount(kl, weights=fj * hj, minlength=K)
                B = np.zeros((K, self.p))
                np.add.at(B, kl, (fj * hj)[:, None] * xj)
                er = rows[ev]
                ke = np.searchsorted(g["times"], self.stop[er])
                res[ev] += (X[er] - mean_xbar[ke]
                            + r[er][:, None] * (X[er] * A[ke][:, None] - B[ke]))
            out[rows] = res
        return out


def _rcum(a: np.ndarray) -> np.ndarray:
    """Reverse cumulative sum with a trailing zero: out[j] = sum(a[j:])."""
    out = np.zeros((a.shape[0] + 1, *a.shape[1:]))
    out[:-1] = np.cumsum(a[::-1], axis=0)[::-1]
    return out
