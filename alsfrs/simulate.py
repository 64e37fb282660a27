"""Registry-like ALS cohorts with known truth.

:func:`simulate_cohort` draws a cohort shaped like the Swedish MND Quality
Registry study (Chourpiliadis et al., JAMA Netw Open 2025;8(6):e2514437):
patients with age, sex, site of onset and diagnostic delay; dispensing
histories of anxiolytics, hypnotics and antidepressants before diagnosis;
ALSFRS-R visits about every 12 weeks with jitter and missed visits (items and
total, whole numbers, floor at 0); and death or invasive ventilation with
informative dropout (faster decliners leave earlier). ``cohort.truth`` holds
every generating parameter.

The generating model for the ALSFRS-R total is the linear mixed model
``truth["formula"]``; items are derived from the total by a per-patient order in
which item points are lost (onset region first), so items always sum to the
total and each item only falls as the total falls.

Sources of the defaults are cited beside each field of :class:`Settings`
(``shared/domain.md``; tags: [V] read in the source, [I] inferred, [M] general
knowledge / assumption).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alsfrs.errors import Problem, ValidationError
from alsfrs.instrument import ITEM5A, ITEM5B, ITEM_COLUMNS, ITEMS, MAX_ITEM, MAX_TOTAL
from alsfrs.timeaxis import DAYS_PER_MONTH

__all__ = ["Settings", "simulate_case_control", "simulate_cohort", "simulate_tables"]

EXPOSURES = ("anxiolytic", "hypnotic", "antidepressant")

#: ATC codes drawn for each class, with weights. Anxiolytics/hypnotics follow
#: the Swedish new-user mix (Dahlén 2024: hydroxyzine 33%, Z-drugs 20%,
#: propiomazine 14%, benzodiazepines 13%) [V]; antidepressants a typical
#: SSRI-dominated mix [M].
ATC_MIX: dict[str, dict[str, float]] = {
    "anxiolytic": {"N05BB01": 0.45, "N05BA04": 0.25, "N05BA01": 0.2, "N05BA12": 0.1},
    "hypnotic": {"N05CF01": 0.4, "N05CF02": 0.15, "N05CM06": 0.25, "N05CD02": 0.1,
                 "N05CH01": 0.1},
    "antidepressant": {"N06AB06": 0.25, "N06AB04": 0.15, "N06AB10": 0.15, "N06AX11": 0.15,
                       "N06AX16": 0.1, "N06AA09": 0.08, "N06AX12": 0.06, "N06AX21": 0.06},
}
#: Codes of other classes that appear in dispensing registers (never counted).
OTHER_ATC = ("N05AN01", "N02BE01", "C07AB02", "N05AH04")


@dataclass
class Settings:
    """Generating parameters of :func:`simulate_cohort`; every field can be overridden.

    Times are in months since diagnosis unless stated; slopes in ALSFRS-R points
    per month.
    """

    # --- patients -----------------------------------------------------------------
    age_mean: float = 67.5  # Chourpiliadis 2025: mean age 67.5 [V]
    age_sd: float = 11.5  # ibid., SD 11.5 [V]
    male_fraction: float = 0.531  # ibid., 53.1% male [V]
    bulbar_fraction: float = 0.30  # about a third bulbar onset [M]
    delay_median_months: float = 9.8  # Dutch cohort: median diagnostic delay 9.8 months [V]
    delay_log_sd: float = 0.55  # spread of the delay (IQR about 7-14 months) [I]
    diagnosis_from: str = "2015-01-01"  # registry study window [V]
    diagnosis_to: str = "2023-07-01"
    study_end: str = "2024-01-01"  # administrative censoring [I]
    # --- exposures (ever use, >= 2 dispensings more than 12 months before diagnosis) --
    exposure_prevalence: dict[str, float] = field(default_factory=lambda: {
        "anxiolytic": 0.15, "hypnotic": 0.20, "antidepressant": 0.18})  # [M] assumption
    lag_noise_fraction: float = 0.15  # unexposed patients with dispensings only in the lag year [I]
    # --- ALSFRS-R trajectory (linear mixed model in months since diagnosis) ---------
    intercept: float = 39.5  # mean ALSFRS-R at diagnosis, reference patient at mean age:
    # PRO-ACT mixed model 37.5, Dutch median at diagnosis 41 [V]
    slope: float = -0.95  # reference (spinal, unexposed) slope; overall mean about
    # -1.0 to -1.1 points/month (Atassi 2014: 1.02; PRO-ACT MM -1.23) [V/I]
    age_effect: float = -0.05  # points per year of age at diagnosis, on the intercept [M]
    male_effect: float = 0.0  # on the intercept [M]
    bulbar_intercept: float = -1.0  # [M]
    bulbar_slope: float = -0.25  # bulbar onset declines faster [V: direction; M: size]
    exposure_slope: dict[str, float] = field(default_factory=lambda: {
        "anxiolytic": -0.15, "hypnotic": -0.05, "antidepressant": -0.20})
    # antidepressant users declined faster (Chourpiliadis 2025) [V: direction];
    # sizes are assumptions [I]; set all to 0 for "no exposure effect"
    sd_intercept: float = 5.2  # PRO-ACT mixed model, random-intercept SD 5.2 [V]
    sd_slope: float = 0.70  # PRO-ACT mixed model 0.70; true SD probably 0.7-1.0 [V/I]
    correlation: float = -0.2  # intercept-slope correlation [M]
    residual_sd: float = 1.68  # PRO-ACT mixed model residual SD 1.68 [V]
    # --- visits ---------------------------------------------------------------------
    visit_interval_months: float = 12 * 7 / DAYS_PER_MONTH  # about every 12 weeks [V]
    visit_jitter_months: float = 0.35  # [I]
    first_visit_max_months: float = 1.0  # first visit within a month of diagnosis [I]
    missed_visit_prob: float = 0.12  # [I]
    # --- death or invasive ventilation ----------------------------------------------
    weibull_shape: float = 1.3  # rising baseline hazard [I]
    weibull_scale_months: float = 80.0  # baseline scale, calibrated so that median survival
    # from diagnosis is about 20 months: median from onset about 30 months [V] minus a
    # diagnostic delay of about 10 [I] (the tests check the cohort's median)
    hazard_ratio: dict[str, float] = field(default_factory=lambda: {
        "anxiolytic": 1.52, "hypnotic": 1.23, "antidepressant": 1.72})  # Chourpiliadis 2025 [V]
    hazard_ratio_per_year_age: float = 1.03  # [M]
    hazard_ratio_bulbar: float = 1.3  # [M]
    hazard_ratio_per_point: float = 1.08  # per point lower current (true) ALSFRS-R: the
    # joint-model "current value" association, so fast decliners leave earliest
    # (van Eijk 2022) and few patients reach the floor [V: direction; I: size]
    loss_to_followup_per_month: float = 0.004  # [I]
    hazard_ratio_rem: float = 1.0  # hazard ratio of death/IMV for users of a non-REM-
    # suppressing antidepressant (their main drug; REM_SUPPRESSION "weak") relative to users
    # of a REM-suppressing one; Fowler 2025: 1.21 (1.02-1.43) [V]. Default 1.0: no class
    # effect (and the random stream of earlier versions is kept exactly)

    def validated(self) -> Settings:
        problems = []

        def bad(name: str, msg: str) -> None:
            problems.append(Problem(rule="bad_setting", message=f"{name}: {msg}", column=name))

        for name in ("age_sd", "delay_median_months", "sd_intercept", "sd_slope",
                     "residual_sd", "visit_interval_months", "weibull_shape",
                     "weibull_scale_months", "hazard_ratio_per_point", "hazard_ratio_rem"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                bad(name, f"must be a positive number, got {v!r}")
        for name in ("male_fraction", "bulbar_fraction", "missed_visit_prob",
                     "lag_noise_fraction"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and 0 <= v <= 1):
                bad(name, f"must be a probability in [0, 1], got {v!r}")
        if not -1 < self.correlation < 1:
            bad("correlation", f"must be in (-1, 1), got {self.correlation!r}")
        for dname in ("exposure_prevalence", "exposure_slope", "hazard_ratio"):
            d = getattr(self, dname)
            if not isinstance(d, dict) or set(d) != set(EXPOSURES):
                bad(dname, f"must be a dict with keys {', '.join(EXPOSURES)}, got {d!r}")
        if not problems:
            for k, v in self.exposure_prevalence.items():
                if not 0 <= v <= 1:
                    bad("exposure_prevalence", f"{k} prevalence must be in [0, 1], got {v!r}")
            for k, v in self.hazard_ratio.items():
                if not v > 0:
                    bad("hazard_ratio", f"{k} hazard ratio must be positive, got {v!r}")
        if problems:
            raise ValidationError(problems, context="the simulation settings")
        return self


def _settings(overrides: dict[str, Any]) -> Settings:
    names = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValidationError([
            Problem(rule="unknown_setting", column=k,
                    message=f"unknown simulation setting '{k}'; known settings: "
                    + ", ".join(sorted(names))) for k in unknown])
    s = Settings()
    for k, v in overrides.items():
        if isinstance(getattr(s, k), dict) and isinstance(v, dict):
            v = {**getattr(s, k), **v}
        setattr(s, k, v)
    return s.validated()


def _loss_order(rng: np.random.Generator, onset: np.ndarray) -> np.ndarray:
    """Per patient, the order in which the 48 item points are lost (item indices 0-11).

    Each item's four points are lost at increasing latent times (cumulative
    exponential gaps with a rate that is higher for the onset region), so
    bulbar-onset patients lose bulbar points first and spinal-onset patients
    limb points first; respiratory points tend to go last.
    """
    n = len(onset)
    domain = np.array([ITEMS.index(i) // 3 for i in ITEMS])  # 0 bulbar .. 3 respiratory
    base = np.array([1.0, 1.0, 1.0, 0.45])  # relative rate by domain [I]
    rate = np.tile(base[domain], (n, 1))
    bulbar = onset == "bulbar"
    rate[bulbar] *= np.where(domain == 0, 3.0, 0.8)
    limb = ~bulbar
    limb_region = rng.integers(1, 3, size=n)  # upper (fine motor) or lower (gross motor) limb
    for r in (1, 2):
        sel = limb & (limb_region == r)
        rate[sel] *= np.where(domain == r, 3.0, np.where(domain == 0, 0.5, 1.0))
    rate *= rng.lognormal(0.0, 0.3, size=(n, 12))
    gaps = rng.exponential(1.0, size=(n, 12, MAX_ITEM)) / rate[:, :, None]
    times = np.cumsum(gaps, axis=2).reshape(n, 12 * MAX_ITEM)
    item_of = np.repeat(np.arange(12), MAX_ITEM)
    order = np.argsort(times, axis=1, kind="stable")
    return item_of[order]


def simulate_tables(n_patients: int = 1000, seed: int | None = None, **overrides: Any
                    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Simulate the raw tables (visits, patients, dispensings) and the truth.

    The tables are in the canonical alsfrs formats that :func:`alsfrs.read_visits`,
    :func:`alsfrs.read_patients` and :func:`alsfrs.read_dispensings` read without a
    mapping. See :func:`simulate_cohort` for the parameters.
    """
    if not isinstance(n_patients, int | np.integer) or n_patients < 1:
        raise ValidationError(Problem(rule="bad_setting", column="n_patients",
                                      message=f"n_patients must be a positive integer, "
                                      f"got {n_patients!r}"))
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**32))
    s = _settings(overrides)
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    n = int(n_patients)
    pid = np.array([f"P{i:05d}" for i in range(1, n + 1)], dtype=object)

    # --- patients ------------------------------------------------------------------
    age = np.clip(rng.normal(s.age_mean, s.age_sd, n), 25, 95).round(1)
    male = rng.random(n) < s.male_fraction
    onset = np.where(rng.random(n) < s.bulbar_fraction, "bulbar", "spinal")
    delay = rng.lognormal(np.log(s.delay_median_months), s.delay_log_sd, n)
    d0, d1 = pd.Timestamp(s.diagnosis_from), pd.Timestamp(s.diagnosis_to)
    dx_days = rng.integers(0, (d1 - d0).days, n)
    dx = d0 + pd.to_timedelta(dx_days, unit="D")
    onset_date = dx - pd.to_timedelta(np.round(delay * DAYS_PER_MONTH), unit="D")
    delay = (dx - onset_date).days.to_numpy() / DAYS_PER_MONTH  # as the dates say

    exposed = {e: rng.random(n) < s.exposure_prevalence[e] for e in EXPOSURES}

    # --- random effects and trajectories --------------------------------------------
    cov = np.array([
        [s.sd_intercept**2, s.correlation * s.sd_intercept * s.sd_slope],
        [s.correlation * s.sd_intercept * s.sd_slope, s.sd_slope**2],
    ])
    u = rng.multivariate_normal(np.zeros(2), cov, size=n, method="cholesky")
    bulbar = onset == "bulbar"
    b0 = (s.intercept + s.age_effect * (age - s.age_mean) + s.male_effect * male
          + s.bulbar_intercept * bulbar + u[:, 0])
    b1 = s.slope + s.bulbar_slope * bulbar + u[:, 1]
    for e in EXPOSURES:
        b1 = b1 + s.exposure_slope[e] * exposed[e]

    # --- death or invasive ventilation (informative dropout) ------------------------
    # h_i(t) = Weibull(t) * exp(lp_i + log(HR per point) * (intercept - m_i(t))), with
    # m_i(t) = b0 + b1 t the patient's true ALSFRS-R: a joint longitudinal-survival model.
    lp = (np.log(s.hazard_ratio_per_year_age) * (age - s.age_mean)
          + np.log(s.hazard_ratio_bulbar) * bulbar)
    for e in EXPOSURES:
        lp = lp + np.log(s.hazard_ratio[e]) * exposed[e]
    main_ad = None
    rem_class = np.full(n, "", dtype=object)
    if s.hazard_ratio_rem != 1.0:
        # the main antidepressant of each user is drawn here (not in _dispensings) so that
        # its REM class can act on the hazard
        from alsfrs.exposure import rem_suppression

        codes = np.array(list(ATC_MIX["antidepressant"]))
        w = np.array(list(ATC_MIX["antidepressant"].values()))
        ex_ad = np.flatnonzero(exposed["antidepressant"])
        main_ad = rng.choice(codes, size=len(ex_ad), p=w / w.sum())
        cls = rem_suppression(pd.Series(main_ad)).fillna("").to_numpy(dtype=object)
        rem_class[ex_ad] = cls
        lp = lp + np.log(s.hazard_ratio_rem) * (rem_class == "weak")
    k = s.weibull_shape
    scale = s.weibull_scale_months
    t_event = _event_times(rng.exponential(1.0, n), lp, b0, b1, k, scale,
                           np.log(s.hazard_ratio_per_point), s.intercept)
    end_days = (pd.Timestamp(s.study_end) - dx).days.to_numpy()
    t_admin = end_days / DAYS_PER_MONTH
    t_lost = rng.exponential(1 / s.loss_to_followup_per_month, n)
    t_cens = np.minimum(t_admin, t_lost)
    died = t_event <= t_cens
    t_end = np.where(died, t_event, t_cens)
    end_date = dx + pd.to_timedelta(np.floor(t_end * DAYS_PER_MONTH), unit="D")
    t_end = (end_date - dx).days.to_numpy() / DAYS_PER_MONTH

    patients = pd.DataFrame({
        "patient_id": pid,
        "age_at_dx": age,
        "sex": np.where(male, "M", "F"),
        "onset_site": onset,
        "onset_date": onset_date.strftime("%Y-%m-%d"),
        "diagnosis_date": dx.strftime("%Y-%m-%d"),
        "death_imv": died.astype(int),
        "death_imv_date": end_date.strftime("%Y-%m-%d"),
    })

    # --- visits ---------------------------------------------------------------------
    kmax = int(np.ceil(np.max(t_end) / s.visit_interval_months)) + 2
    # registry patients have at least one visit: the first comes before death/IMV
    first = np.minimum(rng.uniform(0, s.first_visit_max_months, n), 0.5 * t_end)
    times = (first[:, None] + s.visit_interval_months * np.arange(kmax)[None, :]
             + rng.normal(0, s.visit_jitter_months, (n, kmax)) * (np.arange(kmax) > 0))
    days = np.round(times * DAYS_PER_MONTH)
    keep = (days / DAYS_PER_MONTH < t_end[:, None]) & (days >= 0)
    keep[:, 0] = True
    missed = rng.random((n, kmax)) < s.missed_visit_prob
    missed[:, 0] = False
    keep &= ~missed
    row_p, col_k = np.nonzero(keep)
    vdays = days[row_p, col_k]
    vmonths = vdays / DAYS_PER_MONTH
    mu = b0[row_p] + b1[row_p] * vmonths
    total = np.clip(np.round(mu + rng.normal(0, s.residual_sd, len(mu))), 0, MAX_TOTAL)
    total = total.astype(int)
    order = _loss_order(rng, onset)  # (n, 48) item index of each lost point
    onehot = np.zeros((n, 12 * MAX_ITEM + 1, 12), dtype=np.int8)
    onehot[np.arange(n)[:, None], np.arange(1, 12 * MAX_ITEM + 1)[None, :], order] = 1
    lost = np.cumsum(onehot, axis=1)  # lost[i, L, j]: points of item j lost when L are lost
    items = MAX_ITEM - lost[row_p, MAX_TOTAL - total]  # (visits, 12)
    swallow = items[:, 2]
    peg = pd.Series(swallow <= 1).groupby(row_p).cummax().to_numpy()  # gastrostomy stays
    vis = pd.DataFrame({
        "patient_id": pid[row_p],
        "visit_date": (dx[row_p] + pd.to_timedelta(vdays, unit="D")).strftime("%Y-%m-%d"),
    })
    for j, name in enumerate(i.name for i in ITEMS):
        if name == "cutting":  # item 5: form 5b once a gastrostomy is in place
            vis[ITEM5A] = pd.array(items[:, j], dtype="Int64")
            vis.loc[peg, ITEM5A] = pd.NA
            vis[ITEM5B] = pd.array(items[:, j], dtype="Int64")
            vis.loc[~peg, ITEM5B] = pd.NA
        else:
            vis[name] = items[:, j]
    vis = vis[["patient_id", "visit_date", *ITEM_COLUMNS]]
    vis["alsfrs_r"] = total

    # --- dispensings ----------------------------------------------------------------
    disp = _dispensings(rng, s, pid, dx, exposed, main_ad)

    fixed = {
        "(Intercept)": float(s.intercept - s.age_effect * s.age_mean),
        "months": float(s.slope),
        "anxiolytic": 0.0, "hypnotic": 0.0, "antidepressant": 0.0,
        "onset_sitebulbar": float(s.bulbar_intercept),
        "age_at_dx": float(s.age_effect),
        "sexM": float(s.male_effect),
        **{f"months:{e}": float(s.exposure_slope[e]) for e in EXPOSURES},
        "months:onset_sitebulbar": float(s.bulbar_slope),
    }
    truth = {
        "seed": int(seed),
        "n_patients": n,
        "settings": dataclasses.asdict(s),
        "formula": "alsfrs_r ~ months * (anxiolytic + hypnotic + antidepressant + onset_site)"
                   " + age_at_dx + sex + (months | patient_id)",
        "time_unit": f"months since diagnosis ({DAYS_PER_MONTH} days)",
        "fixed_effects": fixed,
        "exposure_slope_effects": {e: float(s.exposure_slope[e]) for e in EXPOSURES},
        "exposure_hazard_ratios": {e: float(s.hazard_ratio[e]) for e in EXPOSURES},
        "random_effects": {"sd_intercept": s.sd_intercept, "sd_slope": s.sd_slope,
                           "correlation": s.correlation},
        "residual_sd": s.residual_sd,
        "exposure_definition": {"lag_months": 12.0, "lookback_months": None,
                                "min_dispensings": 2},
        "exposed_fraction": {e: float(exposed[e].mean()) for e in EXPOSURES},
        "survival": {"model": "h(t) = (k/scale)(t/scale)^(k-1) exp(lp + log(HR per point)"
                              " * (intercept - b0_i - b1_i t))",
                     "weibull_shape": k, "weibull_scale_months": float(scale),
                     "hazard_ratios": dict(s.hazard_ratio),
                     "hazard_ratio_per_year_age": s.hazard_ratio_per_year_age,
                     "hazard_ratio_bulbar": s.hazard_ratio_bulbar,
                     "hazard_ratio_per_point": s.hazard_ratio_per_point},
        "hazard_ratio_rem": float(s.hazard_ratio_rem),
        "patient_effects": {
            "patient_id": pid.tolist(),
            "intercept": b0.round(10).tolist(),
            "slope": b1.round(10).tolist(),
            **{e: exposed[e].astype(int).tolist() for e in EXPOSURES},
            **({"rem_class": rem_class.tolist()} if main_ad is not None else {}),
        },
    }
    return vis, patients, disp, truth


def _event_times(e: np.ndarray, lp: np.ndarray, b0: np.ndarray, b1: np.ndarray, k: float,
                 scale: float, alpha: float, ref: float, horizon: float = 240.0,
                 step: float = 0.1) -> np.ndarray:
    """Invert the cumulative hazard numerically (midpoint rule on a fine grid)."""
    grid = np.arange(0.0, horizon + step, step)
    mid = grid[:-1] + step / 2
    base = (k / scale) * (mid / scale) ** (k - 1) * step
    out = np.full(len(e), horizon)
    for s in range(0, len(e), 2000):
        sl = slice(s, s + 2000)
        m = b0[sl, None] + b1[sl, None] * mid[None, :]
        inc = base[None, :] * np.exp(lp[sl, None] + alpha * (ref - m))
        H = np.concatenate([np.zeros((inc.shape[0], 1)), np.cumsum(inc, axis=1)], axis=1)
        idx = (H < e[sl, None]).sum(axis=1)  # first grid point with H >= e
        reached = idx <= len(mid)
        j = np.clip(idx - 1, 0, len(mid) - 1)
        rows = np.arange(inc.shape[0])
        frac = (e[sl] - H[rows, j]) / np.maximum(inc[rows, j], 1e-300)
        t = grid[j] + step * np.clip(frac, 0, 1)
        out[sl] = np.where(reached, t, horizon)
    return out


def _dispensings(rng: np.random.Generator, s: Settings, pid: np.ndarray, dx: pd.DatetimeIndex,
                 exposed: dict[str, np.ndarray], main_ad: np.ndarray | None = None
                 ) -> pd.DataFrame:
    """Dispensing histories that yield exactly the exposure flags under the default
    definition (>= 2 dispensings at least 12 months before diagnosis), plus the noise
    a register has: single dispensings, dispensings in the lag year or after
    diagnosis, and drugs of other classes."""
    rows_p: list[np.ndarray] = []
    rows_m: list[np.ndarray] = []
    rows_c: list[np.ndarray] = []
    n = len(pid)
    for e in EXPOSURES:
        codes = np.array(list(ATC_MIX[e]))
        w = np.array(list(ATC_MIX[e].values()))
        w = w / w.sum()
        ex = np.flatnonzero(exposed[e])
        k = 2 + rng.poisson(3.0, len(ex))  # dispensings in the window
        p = np.repeat(ex, k)
        start = rng.uniform(12.5, 120.0, len(ex))  # months before diagnosis
        m = np.repeat(start, k) + rng.uniform(0, 24, len(p))  # spread over up to 2 years
        m = np.maximum(m, 12.5)
        rows_p.append(p)
        rows_m.append(m)
        # patient-specific main drug with occasional switches
        main = (main_ad if e == "antidepressant" and main_ad is not None
                else rng.choice(codes, size=len(ex), p=w))
        c = np.repeat(main, k)
        switch = rng.random(len(p)) < 0.15
        c[switch] = rng.choice(codes, size=int(switch.sum()), p=w)
        rows_c.append(c)
        # noise among the unexposed: one dispensing in the window (below threshold)
        unexp = np.flatnonzero(~exposed[e])
        single = unexp[rng.random(len(unexp)) < 0.05]
        rows_p.append(single)
        rows_m.append(rng.uniform(12.5, 120.0, len(single)))
        rows_c.append(rng.choice(codes, size=len(single), p=w))
        # dispensings only in the lag year (prodromal use, not counted)
        lag = unexp[rng.random(len(unexp)) < s.lag_noise_fraction]
        kk = 1 + rng.poisson(1.5, len(lag))
        rows_p.append(np.repeat(lag, kk))
        rows_m.append(rng.uniform(0.5, 11.5, int(kk.sum())))
        rows_c.append(rng.choice(codes, size=int(kk.sum()), p=w))
        # dispensings after diagnosis (not counted)
        post = np.flatnonzero(rng.random(n) < 0.1)
        rows_p.append(post)
        rows_m.append(-rng.uniform(0.5, 12.0, len(post)))
        rows_c.append(rng.choice(codes, size=len(post), p=w))
    other = np.flatnonzero(rng.random(n) < 0.2)
    rows_p.append(other)
    rows_m.append(rng.uniform(0.5, 100.0, len(other)))
    rows_c.append(rng.choice(np.array(OTHER_ATC), size=len(other)))
    p = np.concatenate(rows_p)
    m = np.concatenate(rows_m)
    c = np.concatenate(rows_c)
    days_before = np.round(m * DAYS_PER_MONTH)
    date = dx[p] - pd.to_timedelta(days_before, unit="D")
    ddd = rng.choice([30.0, 50.0, 100.0], size=len(p), p=[0.3, 0.3, 0.4])
    out = pd.DataFrame({"patient_id": pid[p], "dispensing_date": date.strftime("%Y-%m-%d"),
                        "atc": c, "ddd": ddd, "_sort": date})
    return (out.sort_values(["patient_id", "_sort"], kind="stable").drop(columns="_sort")
            .reset_index(drop=True))


def simulate_cohort(n_patients: int = 1000, seed: int | None = None, **overrides: Any):
    """Simulate a registry-like ALS cohort with known truth.

    Parameters
    ----------
    n_patients
        Number of patients (the Swedish study had 1,057 cases).
    seed
        Seed of the random generator; the same seed gives the same cohort.
        ``None`` draws one (recorded in ``cohort.truth["seed"]``).
    **overrides
        Any field of :class:`Settings`, e.g. ``sd_slope=0.02``,
        ``exposure_slope={"antidepressant": 0.0}`` (dicts are merged with the
        defaults), or ``exposure_slope={e: 0.0 for e in ...}`` for "no exposure
        effect".

    Returns
    -------
    Cohort
        Built through the same readers and checks as real data, with every row
        used; ``cohort.truth`` holds every generating parameter, the generating
        formula and each patient's true intercept and slope.
    """
    from alsfrs.cohort import Cohort

    visits, patients, disp, truth = simulate_tables(n_patients, seed, **overrides)
    return Cohort(visits, patients, disp, truth=truth)


# ------------------------------------------------------------------------------------
# matched case-control studies
# ------------------------------------------------------------------------------------
#: Odds ratios of ALS by drug class and window before diagnosis (Chourpiliadis 2025).
#: [V]: hypnotics 0-1 y 6.10, anxiolytics 1-5 y 1.60, antidepressants > 5 y 1.21;
#: the other windows take the class's overall OR (anxiolytics 1.34, hypnotics 1.21,
#: antidepressants 1.26) [I].
CASE_CONTROL_ODDS_RATIOS: dict[str, float] = {
    "anxiolytic_0_1y": 1.34, "anxiolytic_1_5y": 1.60, "anxiolytic_5y_plus": 1.34,
    "hypnotic_0_1y": 6.10, "hypnotic_1_5y": 1.21, "hypnotic_5y_plus": 1.21,
    "antidepressant_0_1y": 1.26, "antidepressant_1_5y": 1.26, "antidepressant_5y_plus": 1.21,
}
#: Prevalence of exposure (>= 2 dispensings in the window) among population controls
#: of the reference profile (woman aged 67.5) [M] assumption.
CASE_CONTROL_PREVALENCE: dict[str, float] = {
    "anxiolytic_0_1y": 0.05, "anxiolytic_1_5y": 0.08, "anxiolytic_5y_plus": 0.10,
    "hypnotic_0_1y": 0.06, "hypnotic_1_5y": 0.10, "hypnotic_5y_plus": 0.12,
    "antidepressant_0_1y": 0.07, "antidepressant_1_5y": 0.10, "antidepressant_5y_plus": 0.12,
}


def simulate_case_control(n_cases: int = 1000, controls_per_case: int = 5,
                          seed: int | None = None, *, odds_ratios: dict[str, float] | None = None,
                          prevalence: dict[str, float] | None = None,
                          propensity_sd: float = 0.8, male_log_odds: float = -0.3,
                          age_log_odds_per_year: float = 0.01, max_window_months: float = 180.0):
    """Simulate a matched case-control study with known exposure odds ratios.

    Cases (age and sex as in Chourpiliadis 2025) each get ``controls_per_case``
    population controls of the same age (whole years) and sex, sharing the case's
    diagnosis date as index date. Everyone gets a dispensing history of
    anxiolytics (N05B), hypnotics (N05C) and antidepressants (N06A) in three
    windows before the index date (0-1, 1-5, > 5 years).

    The generating model: in the population, exposure in each class and window
    is Bernoulli with log-odds ``logit(prevalence) + male_log_odds · male +
    age_log_odds_per_year · (age - 67.5) + propensity_sd · z``, with one latent
    propensity ``z ~ N(0, 1)`` per person shared by all classes and windows
    (users of one class use others more). Controls are drawn from it; a case's
    exposures are drawn from it tilted by ``Π OR^exposed`` (exact rejection
    sampling), so the conditional likelihood of the matched sets is exactly the
    conditional logistic model with these odds ratios, mutually adjusted.

    Parameters
    ----------
    n_cases, controls_per_case : int
    seed : int, optional
    odds_ratios : dict, optional
        By column (``"hypnotic_0_1y"`` ...); merged with
        :data:`CASE_CONTROL_ODDS_RATIOS` (the study's published ORs).
    prevalence : dict, optional
        Exposure prevalence in controls of the reference profile; merged with
        :data:`CASE_CONTROL_PREVALENCE`.

    Returns
    -------
    CaseControlStudy
        ``.sets`` (``set_id, patient_id, case, index_date, age_at_index, sex``),
        ``.dispensings`` (canonical, dated), ``.truth`` (odds ratios, seed, model);
        ``.to_frame()`` adds the exposure columns by window; fit with
        :func:`alsfrs.fit_clogit`.
    """
    from alsfrs.survival.casecontrol import DEFAULT_WINDOWS, CaseControlStudy

    problems = []
    if not isinstance(n_cases, int | np.integer) or n_cases < 1:
        problems.append(Problem(rule="bad_setting", column="n_cases",
                                message=f"n_cases must be a positive integer, got {n_cases!r}"))
    if not isinstance(controls_per_case, int | np.integer) or controls_per_case < 1:
        problems.append(Problem(rule="bad_setting", column="controls_per_case",
                                message="controls_per_case must be a positive integer, got "
                                f"{controls_per_case!r}"))
    ors = {**CASE_CONTROL_ODDS_RATIOS, **(odds_ratios or {})}
    prev = {**CASE_CONTROL_PREVALENCE, **(prevalence or {})}
    for k in set(ors) | set(prev):
        if k not in CASE_CONTROL_ODDS_RATIOS:
            problems.append(Problem(rule="unknown_setting", column=k, message=(
                f"unknown exposure {k!r}; known: {', '.join(CASE_CONTROL_ODDS_RATIOS)}")))
    if not problems:
        for k, v in ors.items():
            if not (isinstance(v, int | float) and v > 0):
                problems.append(Problem(rule="bad_setting", column=k,
                                        message=f"odds ratio must be positive, got {v!r}"))
        for k, v in prev.items():
            if not (isinstance(v, int | float) and 0 < v < 1):
                problems.append(Problem(rule="bad_setting", column=k,
                                        message=f"prevalence must be in (0, 1), got {v!r}"))
    if problems:
        raise ValidationError(problems, context="the case-control simulation settings")
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**32))
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    s = Settings()
    names = list(CASE_CONTROL_ODDS_RATIOS)
    beta = np.log(np.array([ors[k] for k in names]))
    alpha = np.log(np.array([prev[k] / (1 - prev[k]) for k in names]))
    n, m = int(n_cases), int(controls_per_case)

    age = np.clip(np.round(rng.normal(s.age_mean, s.age_sd, n)), 30, 95)
    male = rng.random(n) < s.male_fraction
    d0, d1 = pd.Timestamp(s.diagnosis_from), pd.Timestamp(s.diagnosis_to)
    index = d0 + pd.to_timedelta(rng.integers(0, (d1 - d0).days, n), unit="D")

    def draw(a: np.ndarray, ml: np.ndarray) -> np.ndarray:
        z = rng.normal(0.0, 1.0, len(a))
        lo = (alpha[None, :] + male_log_odds * ml[:, None]
              + age_log_odds_per_year * (a[:, None] - s.age_mean) + propensity_sd * z[:, None])
        return (rng.random((len(a), len(names))) < 1 / (1 + np.exp(-lo))).astype(np.int8)

    # cases: rejection sampling from the tilted distribution
    case_x = np.zeros((n, len(names)), dtype=np.int8)
    todo = np.arange(n)
    bmax = float(np.sum(np.maximum(beta, 0)))
    while len(todo):
        rep = np.repeat(todo, 8)
        x = draw(age[rep], male[rep])
        acc = rng.random(len(rep)) < np.exp(x @ beta - bmax)
        first = pd.Series(np.flatnonzero(acc)).groupby(rep[acc]).first()
        case_x[first.index.to_numpy()] = x[first.to_numpy()]
        todo = np.setdiff1d(todo, first.index.to_numpy())
    ctrl_age = np.repeat(age, m)
    ctrl_male = np.repeat(male, m)
    ctrl_x = draw(ctrl_age, ctrl_male)

    set_id = np.concatenate([np.arange(1, n + 1), np.repeat(np.arange(1, n + 1), m)])
    is_case = np.concatenate([np.ones(n, int), np.zeros(n * m, int)])
    ages = np.concatenate([age, ctrl_age])
    males = np.concatenate([male, ctrl_male])
    X = np.vstack([case_x, ctrl_x])
    order = np.lexsort((1 - is_case, set_id))
    set_id, is_case, ages, males, X = (set_id[order], is_case[order], ages[order],
                                       males[order], X[order])
    pid = np.array([f"CC{i:07d}" for i in range(1, len(set_id) + 1)], dtype=object)
    idx_dates = index[set_id - 1]
    sets = pd.DataFrame({"set_id": set_id, "patient_id": pid, "case": is_case,
                         "index_date": idx_dates.strftime("%Y-%m-%d"),
                         "age_at_index": ages.astype(int), "sex": np.where(males, "M", "F")})

    # dispensing histories: exposed -> 2+ dispensings inside the window; plus noise
    windows = {"0_1y": (0.0, 12.0), "1_5y": (12.0, 60.0), "5y_plus": (60.0, max_window_months)}
    rows_p, rows_days, rows_c = [], [], []
    for j, col in enumerate(names):
        cls, win = col.split("_", 1)
        lo, hi = windows[win]
        lo_d, hi_d = int(np.floor(lo * DAYS_PER_MONTH)) + 1, int(np.ceil(hi * DAYS_PER_MONTH)) - 1
        codes = np.array(list(ATC_MIX[cls]))
        w = np.array(list(ATC_MIX[cls].values()))
        w = w / w.sum()
        ex = np.flatnonzero(X[:, j] == 1)
        k = 2 + rng.poisson(2.0, len(ex))
        p = np.repeat(ex, k)
        rows_p.append(p)
        rows_days.append(rng.integers(lo_d, hi_d + 1, len(p)))
        rows_c.append(rng.choice(codes, size=len(p), p=w))
        single = np.flatnonzero((X[:, j] == 0) & (rng.random(len(X)) < 0.04))
        rows_p.append(single)
        rows_days.append(rng.integers(lo_d, hi_d + 1, len(single)))
        rows_c.append(rng.choice(codes, size=len(single), p=w))
    other = np.flatnonzero(rng.random(len(X)) < 0.2)
    rows_p.append(other)
    rows_days.append(rng.integers(1, int(max_window_months * DAYS_PER_MONTH), len(other)))
    rows_c.append(rng.choice(np.array(OTHER_ATC), size=len(other)))
    p = np.concatenate(rows_p)
    days = np.concatenate(rows_days)
    dates = idx_dates[p] - pd.to_timedelta(days, unit="D")
    disp = pd.DataFrame({"patient_id": pid[p], "dispensing_date": dates.strftime("%Y-%m-%d"),
                         "atc": np.concatenate(rows_c), "_d": dates})
    disp = (disp.sort_values(["patient_id", "_d"], kind="stable").drop(columns="_d")
            .reset_index(drop=True))
    truth = {
        "seed": int(seed), "n_cases": n, "controls_per_case": m,
        "odds_ratios": {k: float(ors[k]) for k in names},
        "prevalence_reference": {k: float(prev[k]) for k in names},
        "windows_months": {k: [v[0], None if k == "5y_plus" else v[1]]
                           for k, v in windows.items()},
        "model": "P(case | set) proportional to prod OR^exposed (conditional logistic); "
                 "population exposure: logit P = logit(prevalence) + male_log_odds*male + "
                 "age_log_odds_per_year*(age-67.5) + propensity_sd*z, z ~ N(0,1) per person",
        "propensity_sd": propensity_sd, "male_log_odds": male_log_odds,
        "age_log_odds_per_year": age_log_odds_per_year,
        "formula": "case ~ " + " + ".join(names) + " + strata(set_id)",
    }
    return CaseControlStudy(sets=sets, dispensings=disp, windows=DEFAULT_WINDOWS, truth=truth)
