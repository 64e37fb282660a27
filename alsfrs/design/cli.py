"""``alsfrs design ...``: sample size by formula and power by simulation from the shell.

Registered on the main parser by :func:`add_parser`; like :mod:`alsfrs.cli`, this
module prints (and nothing else in ``alsfrs.design`` does).
"""

from __future__ import annotations

import argparse
from typing import Any

from alsfrs.errors import Problem, ValidationError

__all__ = ["add_parser"]


def _pilot(args: argparse.Namespace) -> Any:
    params = {k: getattr(args, k) for k in ("sig2_i", "sig2_s", "cov_si", "sig2_e", "slope",
                                            "intercept") if getattr(args, k) is not None}
    if args.pilot and params:
        raise ValidationError(Problem(rule="conflicting_parameters",
                                      message="give --pilot or the variance parameters, "
                                              "not both"))
    if args.pilot:
        from alsfrs.persist import load_result

        return load_result(args.pilot)
    if not params:
        raise ValidationError(Problem(rule="missing_parameter",
                                      message="give --pilot FILE (a saved fit) or "
                                              "--sig2-s and --sig2-e (and --sig2-i, --cov-si, "
                                              "--slope)"))
    return params


def _attrition(values: list[float] | None) -> Any:
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _effect_kw(args: argparse.Namespace, many: bool) -> dict[str, Any]:
    if (args.slowing is None) == (args.effect is None):
        raise ValidationError(Problem(rule="bad_setting", column="effect",
                                      message="give exactly one of --slowing or --effect"))
    if args.slowing is not None:
        return {"pct_slowing": args.slowing if many else args.slowing[0]}
    return {"effect": args.effect if many else args.effect[0]}


def cmd_sample_size(args: argparse.Namespace) -> int:
    from alsfrs.design.formulas import METHODS, sample_size

    pilot = _pilot(args)
    methods = METHODS if args.method == "all" else (args.method,)
    rows = []
    first = None
    for m in methods:
        if m == "diggle" and args.ratio != 1:
            continue
        if m == "hu" and args.months[0] != 0:
            continue
        r = sample_size(pilot, months=args.months, power=args.power, method=m,
                        attrition=_attrition(args.attrition), ratio=args.ratio, alpha=args.alpha,
                        time=args.time, **_effect_kw(args, False))
        first = first or r
        s = r.summary()
        rows.append({"method": m, "n_treatment_exact": r.n_treatment,
                     "n_control_exact": r.n_control, "n_treatment": int(s.loc["treatment", "n"]),
                     "n_control": int(s.loc["control", "n"]),
                     "n_enrolled_total": int(s.loc["total", "n_enrolled"])})
    assert first is not None
    first.print_summary()
    if len(rows) > 1:
        print("\nAll methods")
        print("-----------")
        import pandas as pd

        with pd.option_context("display.width", 120, "display.float_format", "{:,.2f}".format):
            print(pd.DataFrame(rows).set_index("method").to_string())
    if args.save:
        first.save(args.save)
        print(f"\nwrote {args.save}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from alsfrs.design.simulate import DeathModel, simulate_power

    pilot = _pilot(args)
    death: Any = "none"
    if args.death == "joint":
        death = DeathModel(proportion_dead=args.proportion_dead, hr_per_point=args.hr_per_point)
    executor = None
    if args.workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        executor = ProcessPoolExecutor(args.workers)
    try:
        r = simulate_power(pilot, n_per_arm=args.n_per_arm, months=args.months,
                           n_trials=args.trials, analysis=args.analysis, death=death,
                           attrition=_attrition(args.attrition), missed_visit=args.missed_visit,
                           ratio=args.ratio, alpha=args.alpha, seed=args.seed,
                           executor=executor, batch_size=args.batch_size,
                           progress=not args.quiet, time=args.time, **_effect_kw(args, True))
    finally:
        if executor is not None:
            executor.shutdown()
    r.print_summary()
    if args.save:
        r.save(args.save)
        print(f"\nwrote {args.save}")
    return 0


def _common(p: argparse.ArgumentParser, many: bool) -> None:
    g = p.add_argument_group("pilot (a saved fit, or the parameters)")
    g.add_argument("--pilot", help="a fit saved with result.save() (LMM or Bayesian)")
    g.add_argument("--time", help="the pilot's time term (default: its random slope)")
    for name, h in (("sig2-i", "random-intercept variance"), ("sig2-s", "random-slope variance"),
                    ("cov-si", "intercept-slope covariance"), ("sig2-e", "residual variance"),
                    ("slope", "mean slope of the control arm (points/month)"),
                    ("intercept", "mean ALSFRS-R at baseline (simulation)")):
        g.add_argument(f"--{name}", type=float, dest=name.replace("-", "_"), help=h)
    nargs = "+" if many else 1
    p.add_argument("--slowing", type=float, nargs=nargs,
                   help="effect as a proportion of the pilot's decline (0.25 = 25%% slower)")
    p.add_argument("--effect", type=float, nargs=nargs,
                   help="effect as a difference in slope, points/month")
    p.add_argument("--months", type=float, nargs="+", default=[0, 3, 6, 9, 12],
                   help="visit times (default 0 3 6 9 12)")
    p.add_argument("--attrition", type=float, nargs="+",
                   help="one number: the proportion not completing, spread evenly over the "
                        "visits; or one proportion per visit whose last visit it is (sum 1)")
    p.add_argument("--ratio", type=float, default=1.0, help="treated / control (default 1)")
    p.add_argument("--alpha", type=float, default=0.05, help="two-sided level (default 0.05)")
    p.add_argument("--save", help="save the result to this file")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``design`` (with ``sample-size`` and ``simulate``) to the main subparsers."""
    design = sub.add_parser("design", help="trial design: sample size and power",
                            description="Sample size by formula (longpower's methods) and "
                                        "power by simulation, from a pilot fit.")
    dsub = design.add_subparsers(dest="design_command", metavar="DESIGN_COMMAND")
    design.set_defaults(func=lambda a: (design.print_help(), 2)[1])

    p = dsub.add_parser("sample-size", help="patients per arm by formula",
                        description="Patients per arm to detect a slowing of ALSFRS-R decline.")
    _common(p, many=False)
    p.add_argument("--power", type=float, default=0.8, help="power (default 0.8)")
    p.add_argument("--method", default="edland",
                   choices=("edland", "diggle", "liuliang", "hu", "cprm", "all"),
                   help="formula (default edland; 'all' prints every method)")
    p.set_defaults(func=cmd_sample_size)

    p = dsub.add_parser("simulate", help="power by simulating trials",
                        description="Simulate trials from the pilot (optionally with death as "
                                    "informative dropout) and analyse each one.")
    _common(p, many=True)
    p.add_argument("--n-per-arm", type=int, nargs="+", required=True, help="treated patients")
    p.add_argument("--trials", type=int, default=1000, help="trials per cell (default 1000)")
    p.add_argument("--analysis", choices=("lmm", "cafs"), default="lmm")
    p.add_argument("--death", choices=("none", "joint"), default="none")
    p.add_argument("--proportion-dead", type=float, default=0.25,
                   help="controls dying by the last visit with --death joint (default 0.25)")
    p.add_argument("--hr-per-point", type=float, default=1.08,
                   help="hazard ratio per point lower ALSFRS-R (default 1.08)")
    p.add_argument("--missed-visit", type=float, default=0.0, help="probability (default 0)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    p.add_argument("--batch-size", type=int, default=20, help="trials per task (default 20)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_simulate)
    return design
