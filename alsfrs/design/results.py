"""Result objects of trial design (the shared result contract)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from alsfrs.design.pilot import PilotParameters
from alsfrs.results import (
    Display,
    DisplayTable,
    ModelRecord,
    Payload,
    Result,
    diagnostics_frame,
)

__all__ = ["PowerSimulationResult", "SampleSizeResult", "clopper_pearson", "power_curve_figure"]

METHOD_NAMES = {
    "edland": "Ard & Edland (2011), attrition-weighted",
    "diggle": "Diggle et al. (2002)",
    "liuliang": "Liu & Liang (1997)",
    "hu": "Hu, Mackey & Thomas (2021)",
    "cprm": "Zhao & Edland CPRM (change to last visit)",
}


def _fmt_list(x: Sequence[float]) -> str:
    return ", ".join(f"{v:g}" for v in x)


class SampleSizeResult(Result):
    """Sample size, power or detectable effect for a two-arm slope comparison.

    Attributes
    ----------
    method, solved_for : str
        The formula, and what was solved for (``"n"``, ``"power"``, ``"effect"``).
    months, attrition : ndarray
        Visit times and the proportion whose last visit is each visit.
    alpha, power, ratio, effect : float
        Significance level, power, allocation ratio (treated / control) and the
        difference in slope (points per month, positive = slower decline).
    n_treatment, n_control : float
        Exact patients per arm (round up with :attr:`n_per_arm`).
    pilot : PilotParameters
    variance_factor : float
        ``K``: var(estimated effect) = K / n_treatment.
    """

    kind: ClassVar[str] = "sample_size"

    def __init__(self, *, method: str, solved_for: str, months: Any, attrition: Any,
                 alpha: float, power: float, ratio: float, effect: float, n_treatment: float,
                 n_control: float, pilot: PilotParameters, variance_factor: float,
                 alternative: str = "two-sided") -> None:
        self.method = method
        self.solved_for = solved_for
        self.months = np.asarray(months, dtype=float)
        self.attrition = np.asarray(attrition, dtype=float)
        self.alpha = float(alpha)
        self.power = float(power)
        self.ratio = float(ratio)
        self.effect = float(effect)
        self.n_treatment = float(n_treatment)
        self.n_control = float(n_control)
        self.pilot = pilot
        self.variance_factor = float(variance_factor)
        self.alternative = alternative

    # -- derived -------------------------------------------------------------------------
    @property
    def pct_slowing(self) -> float | None:
        """The effect as a proportion of the pilot's mean decline (None without a slope)."""
        s = self.pilot.slope
        return None if s is None or s == 0 else self.effect / abs(s)

    @property
    def n_per_arm(self) -> int:
        """Treated patients, rounded up."""
        return _ceil(self.n_treatment)

    @property
    def completing(self) -> float:
        """The proportion expected to complete the last visit."""
        return float(self.attrition[-1])

    @property
    def attrition_in_formula(self) -> bool:
        return self.method in ("edland", "hu", "cprm")

    def enrolled(self) -> tuple[int, int]:
        """Patients to enrol per arm (treatment, control), inflated for attrition when the
        formula assumes complete data ("diggle", "liuliang")."""
        f = 1.0 if self.attrition_in_formula else self.completing
        return _ceil(self.n_treatment / f), _ceil(self.n_control / f)

    def standard_error(self, n_per_arm: float | None = None) -> float:
        """Standard error of the estimated effect with ``n_per_arm`` treated patients."""
        n = self.n_treatment if n_per_arm is None else float(n_per_arm)
        scale = self._scale()
        return math.sqrt(self.variance_factor / n) / scale

    def _scale(self) -> float:
        return float(self.months[-1] - self.months[0]) if self.method == "cprm" else 1.0

    def _z(self) -> float:
        a = self.alpha / 2 if self.alternative == "two-sided" else self.alpha
        return float(stats.norm.ppf(1 - a))

    def power_at(self, n_per_arm: Any, effect: Any = None) -> np.ndarray:
        """Power by this result's formula for other sizes and effects (vectorised)."""
        n = np.asarray(n_per_arm, dtype=float)
        eff = self.effect if effect is None else np.asarray(effect, dtype=float)
        delta = np.abs(eff) * self._scale()
        return stats.norm.cdf(np.sqrt(n * delta**2 / self.variance_factor) - self._z())

    # -- contract ------------------------------------------------------------------------
    def summary(self) -> pd.DataFrame:
        et, ec = self.enrolled()
        nt, nc = self.n_treatment, self.n_control
        return pd.DataFrame(
            {"n_exact": [nt, nc, nt + nc],
             "n": [_ceil(nt), _ceil(nc), _ceil(nt) + _ceil(nc)],
             "n_enrolled": [et, ec, et + ec],
             "n_completing_expected": [nt * self.completing, nc * self.completing,
                                       (nt + nc) * self.completing]},
            index=pd.Index(["treatment", "control", "total"], name="arm"))

    def inputs(self) -> pd.DataFrame:
        """The design inputs, one row each (values as numbers or text)."""
        p = self.pilot
        rows = [
            ("method", self.method), ("solved for", self.solved_for),
            ("effect (points/month)", self.effect),
            ("slowing of the pilot decline", self.pct_slowing),
            ("pilot slope (points/month)", p.slope), ("power", self.power),
            ("alpha", self.alpha), ("alternative", self.alternative),
            ("allocation ratio (treated/control)", self.ratio),
            ("visit months", _fmt_list(self.months)),
            ("last visit at each visit (proportion)", _fmt_list(np.round(self.attrition, 6))),
            ("random intercept variance", p.sig2_i), ("random slope variance", p.sig2_s),
            ("intercept-slope covariance", p.cov_si), ("residual variance", p.sig2_e),
            ("pilot", p.source),
        ]
        return pd.DataFrame(rows, columns=["input", "value"]).set_index("input")

    def diagnostics(self) -> pd.DataFrame:
        rows: list[Sequence[Any]] = [
            ("variance_factor", self.variance_factor, "finite and > 0",
             bool(np.isfinite(self.variance_factor) and self.variance_factor > 0)),
            ("n_treatment", self.n_treatment, ">= 30 (normal approximation; below it the "
             "formula understates n)", self.n_treatment >= 30),
        ]
        if not self.attrition_in_formula and self.completing < 1:
            rows.append(("attrition_in_formula", False, "the formula uses the attrition pattern",
                         False, f"{self.method} assumes complete data; n_enrolled inflates n by "
                                f"1/{self.completing:g} instead"))
        return diagnostics_frame(rows)

    @property
    def model_spec(self) -> ModelRecord:
        return ModelRecord(formula=None, engine=f"formula:{self.method}", settings={
            "solved_for": self.solved_for, "alpha": self.alpha, "power": self.power,
            "ratio": self.ratio, "alternative": self.alternative,
            "months": self.months.tolist(), "attrition": self.attrition.tolist()})

    def _display(self) -> Display:
        pct = self.pct_slowing
        what = {"n": "Sample size", "power": "Power", "effect": "Detectable effect"}[
            self.solved_for]
        header = [
            ("method", METHOD_NAMES.get(self.method, self.method)),
            ("effect", f"{self.effect:.4g} points/month"
             + (f" ({100 * pct:.1f}% slowing of {self.pilot.slope:.3g}/month)"
                if pct is not None else "")),
            ("power", f"{self.power:.4f}"),
            ("alpha", f"{self.alpha:g} ({self.alternative})"),
            ("visits (months)", _fmt_list(self.months)),
            ("completing last visit", f"{100 * self.completing:.1f}%"),
            ("allocation", f"{self.ratio:g} : 1"),
        ]
        notes = []
        if not self.attrition_in_formula and self.completing < 1:
            notes.append(f"{self.method} assumes complete data; n_enrolled divides n by the "
                         f"proportion completing ({self.completing:g}).")
        return Display(title=f"{what} for the difference in ALSFRS-R slope", header=header,
                       tables=[DisplayTable("Patients", self.summary(), digits=2)], notes=notes)

    def _to_payload(self) -> Payload:
        return Payload(fields={
            "method": self.method, "solved_for": self.solved_for, "months": self.months,
            "attrition": self.attrition, "alpha": self.alpha, "power": self.power,
            "ratio": self.ratio, "effect": self.effect, "n_treatment": self.n_treatment,
            "n_control": self.n_control, "pilot": self.pilot.to_dict(),
            "variance_factor": self.variance_factor, "alternative": self.alternative})

    @classmethod
    def _from_payload(cls, payload: Payload) -> SampleSizeResult:
        f = dict(payload.fields)
        f["pilot"] = PilotParameters(**f["pilot"])
        return cls(**f)

    def __repr__(self) -> str:
        return (f"<SampleSizeResult {self.method}: n = {self.n_treatment:.2f} + "
                f"{self.n_control:.2f}, power {self.power:.3f}, effect {self.effect:.4g}>")

    # -- figure ----------------------------------------------------------------------------
    def power_curve(self, pct_slowing: Sequence[float] | None = None,
                    effects: Sequence[float] | None = None, n_max: float | None = None,
                    ax: Any = None) -> Any:
        """Power against patients per arm for several effect sizes (this formula).

        Parameters
        ----------
        pct_slowing : sequence of float, optional
            Effects as slowing proportions (default 0.15, 0.20, 0.25, 0.30 with a
            pilot slope).
        effects : sequence of float, optional
            Effects in points/month (default: 0.6, 0.8, 1, 1.2 × this effect
            when the pilot has no slope).
        n_max : float, optional
            Largest n per arm shown (default 2 × this n, at least 20).
        ax : matplotlib Axes, optional

        Returns
        -------
        matplotlib Figure
        """
        slope = self.pilot.slope
        if effects is None:
            if pct_slowing is None and slope:
                pct_slowing = [0.15, 0.20, 0.25, 0.30]
            if pct_slowing is not None:
                if not slope:
                    raise ValueError("pct_slowing needs a pilot slope")
                effects = [q * abs(slope) for q in pct_slowing]
                labels = [f"{100 * q:.0f}% slowing ({e:.3g}/month)"
                          for q, e in zip(pct_slowing, effects, strict=True)]
            else:
                effects = [f * self.effect for f in (0.6, 0.8, 1.0, 1.2)]
                labels = [f"{e:.3g} points/month" for e in effects]
        else:
            labels = [f"{e:.3g} points/month" for e in effects]
        n_max = n_max or max(20.0, 2 * self.n_treatment)
        n = np.linspace(2, n_max, 200)
        curves = {lab: self.power_at(n, e) for lab, e in zip(labels, effects, strict=True)}
        return power_curve_figure(n, curves, target=self.power if self.solved_for == "n"
                                  else None, ax=ax,
                                  title=f"Power by formula ({self.method}), alpha {self.alpha:g}")


def power_curve_figure(n: Any, curves: dict[str, Any], *, target: float | None = None,
                       intervals: dict[str, tuple[Any, Any]] | None = None, ax: Any = None,
                       title: str = "", markers: bool = False) -> Any:
    """Draw power curves (n per arm on x) on a new figure or ``ax``; return the figure."""
    from alsfrs.figures import new_figure

    if ax is None:
        fig = new_figure((6.5, 4.0))
        ax = fig.add_subplot(111)
    else:
        fig = ax.figure
    for lab, y in curves.items():
        line = ax.plot(n, y, marker="o" if markers else None, label=lab)[0]
        if intervals and lab in intervals:
            lo, hi = intervals[lab]
            ax.fill_between(n, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
    if target is not None:
        ax.axhline(target, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("patients per arm")
    ax.set_ylabel("power")
    ax.set_ylim(0, 1)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def _ceil(x: float) -> int:
    # guard against 68.00000000001 from floating point
    return math.ceil(x - 1e-9)


def clopper_pearson(k: Any, n: Any, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact binomial interval for k successes in n trials."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    a = 1 - level
    with np.errstate(invalid="ignore"):
        lo = np.where(k > 0, stats.beta.ppf(a / 2, k, n - k + 1), 0.0)
        hi = np.where(k < n, stats.beta.ppf(1 - a / 2, k + 1, n - k), 1.0)
    return lo, hi


class PowerSimulationResult(Result):
    """Power of a trial design by simulation.

    Attributes
    ----------
    trials : DataFrame
        One row per trial and grid cell: ``trial``, ``cell``, ``n_per_arm``,
        ``n_control``, ``effect``, ``estimate``, ``std_error``, ``p_value``,
        ``warning``, ``deaths``, ``completers``, ``visits``.
    pilot : PilotParameters
    settings : dict
    seed : int
    """

    kind: ClassVar[str] = "power_simulation"

    def __init__(self, trials: pd.DataFrame, pilot: PilotParameters, settings: dict[str, Any],
                 seed: int) -> None:
        self.trials = trials
        self.pilot = pilot
        self.settings = settings
        self.seed = int(seed)

    @property
    def alpha(self) -> float:
        return float(self.settings["alpha"])

    @property
    def power(self) -> float:
        """Simulated power (of the first grid cell)."""
        return float(self.summary()["power"].iloc[0])

    def summary(self) -> pd.DataFrame:
        """One row per grid cell: power with its 95% Monte Carlo (Clopper–Pearson)
        interval, bias, empirical SD and mean SE of the estimate, coverage of its 95%
        Wald interval, share of fits with warnings, mean share of deaths, and the
        Edland formula's power for the same design without deaths or missed visits."""
        tr = self.trials
        z = stats.norm.ppf(0.975)
        out = []
        for cell, g in tr.groupby("cell", sort=True):
            n1, n0, eff = int(g["n_per_arm"].iloc[0]), int(g["n_control"].iloc[0]), float(
                g["effect"].iloc[0])
            rej = (g["p_value"] < self.alpha).to_numpy()
            k, n = int(rej.sum()), len(g)
            lo, hi = clopper_pearson(k, n)
            est, se = g["estimate"].to_numpy(float), g["std_error"].to_numpy(float)
            ok = np.isfinite(est) & np.isfinite(se)
            is_slope = self.settings["analysis"] == "lmm"
            cover = (np.abs(est[ok] - eff) <= z * se[ok]).mean() if is_slope and ok.any() \
                else np.nan
            out.append({
                "cell": int(cell), "n_per_arm": n1, "n_control": n0, "effect": eff,
                "pct_slowing": eff / abs(self.pilot.slope) if self.pilot.slope else np.nan,
                "trials": n, "rejections": k, "power": k / n,
                "power_ci_lower_95": float(lo), "power_ci_upper_95": float(hi),
                "bias": float(est[ok].mean() - eff) if is_slope and ok.any() else np.nan,
                "empirical_sd": float(est[ok].std(ddof=1)) if is_slope and ok.sum() > 1
                else np.nan,
                "mean_std_error": float(se[ok].mean()) if is_slope and ok.any() else np.nan,
                "coverage_95": float(cover),
                "share_warnings": float(g["warning"].astype(bool).mean()),
                "share_dead": float((g["deaths"] / (n1 + n0)).mean()),
                "formula_power_edland": self._formula_power(n1, eff),
            })
        return pd.DataFrame(out).set_index("cell")

    def _formula_power(self, n1: int, effect: float) -> float:
        from alsfrs.design.formulas import power

        try:
            return power(self.pilot, n_per_arm=n1, effect=effect,
                         months=self.settings["months"], ratio=self.settings["ratio"],
                         attrition=self.settings["attrition"], alpha=self.alpha).power
        except ValueError:  # pragma: no cover - formula not applicable
            return float("nan")

    def diagnostics(self) -> pd.DataFrame:
        s = self.summary()
        worst_w = float(s["share_warnings"].max())
        rows: list[Sequence[Any]] = [
            ("share_warnings", worst_w, "< 0.05 of trials with fit warnings or failures",
             worst_w < 0.05),
            ("trials", int(s["trials"].min()), ">= 1000 per cell for a ±3% Monte Carlo interval",
             int(s["trials"].min()) >= 1000),
        ]
        if self.settings["analysis"] == "lmm":
            cov = float(s["coverage_95"].min())
            rows.append(("coverage_95", cov, "within the Monte Carlo range of 0.95",
                         abs(cov - 0.95) < 3 * math.sqrt(0.95 * 0.05 / s["trials"].min()),
                         "Wald interval of the slope difference"))
        return diagnostics_frame(rows)

    @property
    def model_spec(self) -> ModelRecord:
        formula = self.settings.get("lmm_formula") if self.settings["analysis"] == "lmm" else None
        return ModelRecord(formula=formula, engine=f"simulation:{self.settings['analysis']}",
                           settings=dict(self.settings), seed=self.seed)

    def _display(self) -> Display:
        st = self.settings
        header = [
            ("analysis", str(st["analysis"])),
            ("trials", f"{st['n_trials']:,} per cell (seed {self.seed})"),
            ("visits (months)", _fmt_list(st["months"])),
            ("death / IMV", "none" if st["death"] == "none" else
             f"joint-model hazard, HR {st['death_model']['hr_per_point']:g} per point lower "
             f"ALSFRS-R, baseline {st['baseline_hazard']:.4g}/month"),
            ("alpha", f"{self.alpha:g} (two-sided)"),
        ]
        cols = ["n_per_arm", "n_control", "effect", "power", "power_ci_lower_95",
                "power_ci_upper_95", "bias", "coverage_95", "share_warnings", "share_dead",
                "formula_power_edland"]
        return Display(title="Power by simulation", header=header,
                       tables=[DisplayTable("Power", self.summary()[cols], digits=3)],
                       notes=["formula_power_edland: Edland's formula for the same visits "
                              "and attrition, without deaths or missed visits."])

    def _to_payload(self) -> Payload:
        return Payload(fields={"pilot": self.pilot.to_dict(), "settings": self.settings,
                               "seed": self.seed}, tables={"trials": self.trials})

    @classmethod
    def _from_payload(cls, payload: Payload) -> PowerSimulationResult:
        f = payload.fields
        return cls(trials=payload.tables["trials"], pilot=PilotParameters(**f["pilot"]),
                   settings=dict(f["settings"]), seed=f["seed"])

    def __repr__(self) -> str:
        s = self.summary()
        return (f"<PowerSimulationResult {self.settings['analysis']}: {len(s)} cell(s), "
                f"power {s['power'].iloc[0]:.3f}>")

    def power_curve(self, formula: bool = True, ax: Any = None) -> Any:
        """Simulated power against n per arm, one line per effect, with 95% Monte Carlo
        bands (and Edland's formula, dashed grey, for the same design without deaths)."""
        s = self.summary()
        curves, bands, ns = {}, {}, {}
        for eff, g in s.groupby("effect", sort=True):
            g = g.sort_values("n_per_arm")
            pct = g["pct_slowing"].iloc[0]
            lab = f"{100 * pct:.0f}% slowing" if np.isfinite(pct) else f"{eff:.3g} points/month"
            ns[lab] = g["n_per_arm"].to_numpy()
            curves[lab] = g["power"].to_numpy()
            bands[lab] = (g["power_ci_lower_95"].to_numpy(), g["power_ci_upper_95"].to_numpy())
            if formula:
                curves[lab + " (formula)"] = g["formula_power_edland"].to_numpy()
        fig = None
        for lab, y in curves.items():
            base = lab.removesuffix(" (formula)")
            fig = power_curve_figure(ns[base], {lab: y}, ax=ax, markers=lab == base,
                                     intervals={lab: bands[lab]} if lab in bands else None,
                                     title=f"Power by simulation ({self.settings['analysis']})")
            ax = fig.axes[0]
            if lab != base:
                ax.get_lines()[-1].set(linestyle="--", linewidth=0.9)
        return fig
