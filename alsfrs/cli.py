"""The ``alsfrs`` command. The only module that prints."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from alsfrs.errors import Problem, ValidationError

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def _print_table(frame: pd.DataFrame, *, floatfmt: str = "{:,.3f}") -> None:
    with pd.option_context("display.width", 120, "display.max_columns", 20,
                           "display.float_format", floatfmt.format):
        print(frame.to_string())


def _print_problems(err: ValidationError, limit: int | None = None) -> None:
    problems = err.problems if limit is None else err.problems[:limit]
    head = f"{len(err.problems)} problem{'s' if len(err.problems) != 1 else ''}"
    print(f"{head}{' in ' + err.context if err.context else ''}:")
    for p in problems:
        print(f"  - {p}")
    if limit is not None and len(err.problems) > limit:
        print(f"  ... and {len(err.problems) - limit} more")


# -- simulate ------------------------------------------------------------------------
def cmd_simulate(args: argparse.Namespace) -> int:
    from alsfrs.simulate import simulate_tables

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    visits, patients, disp, truth = simulate_tables(args.n_patients, args.seed)
    visits.to_csv(out / "visits.csv", index=False)
    patients.to_csv(out / "patients.csv", index=False)
    disp.to_csv(out / "dispensings.csv", index=False)
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    print(f"simulated {args.n_patients} patients (seed {truth['seed']}): "
          f"{len(visits)} visits, {len(disp)} dispensings")
    for name in ("visits.csv", "patients.csv", "dispensings.csv", "truth.json"):
        print(f"  wrote {out / name}")
    return EXIT_OK


# -- validate ------------------------------------------------------------------------
def _validate(visits: str, patients: str | None, dispensings: str | None,
              errors: str) -> tuple[object | None, list[ValidationError]]:
    """Read every table, collecting all problems; then cross-check them as a Cohort."""
    from alsfrs.cohort import Cohort
    from alsfrs.io import read_dispensings, read_patients, read_visits

    failures: list[ValidationError] = []
    tables = {}
    for key, path, reader in (("visits", visits, read_visits),
                              ("patients", patients, read_patients),
                              ("dispensings", dispensings, read_dispensings)):
        if path is None:
            continue
        try:
            tables[key] = reader(path, errors=errors)
        except ValidationError as exc:
            failures.append(exc)
            try:  # keep the valid rows, so the cross-table checks can still run
                tables[key] = reader(path, errors="exclude")
            except ValidationError:
                pass
    if patients is None or "visits" not in tables or "patients" not in tables:
        return tables.get("visits"), failures
    try:
        cohort = Cohort(tables["visits"], tables["patients"], tables.get("dispensings"),
                        errors=errors)
    except ValidationError as exc:
        return None, [*failures, exc]
    return (None if failures else cohort), failures


def cmd_validate(args: argparse.Namespace) -> int:
    from alsfrs.cohort import Cohort

    result, failures = _validate(args.visits, args.patients, args.dispensings, args.errors)
    if failures:
        n = sum(len(f.problems) for f in failures)
        print(f"INVALID: {n} problem{'s' if n != 1 else ''} found")
        for f in failures:
            _print_problems(f, limit=args.max_problems)
        return EXIT_INVALID
    if isinstance(result, Cohort):
        print(f"valid: {result.n_patients} patients, {result.n_visits} visits")
        print("\nrow accounting (read = used + excluded):")
        _print_table(result.row_accounting())
        if len(result.exclusions):
            print("\nexcluded rows by reason:")
            _print_table(result.exclusion_summary().set_index(["table", "rule"]))
            if args.show_exclusions:
                print()
                _print_table(result.exclusions)
        else:
            print("\nevery input row is used.")
        if "dispensings" in result.tables:
            print("\ndispensings and the exposure window "
                  f"({result.exposure_definition['rule']}, lag "
                  f"{result.exposure_definition['lag_months']:g} months, at least "
                  f"{result.exposure_definition['min_dispensings']} dispensings):")
            _print_table(result.exposure_accounting())
    else:
        t = result
        print(f"valid visits table {t.source}: {t.n_input_rows} rows read, {len(t.data)} used, "
              f"{len(t.exclusions)} excluded (give --patients for the cross-table checks)")
        if len(t.exclusions):
            _print_table(t.exclusions)
    return EXIT_OK


# -- demo ----------------------------------------------------------------------------
def _effects_text(eff: pd.DataFrame, truth: dict | None) -> pd.DataFrame:
    cols = {"difference": "points/month", "ci_lower": "lower 95%", "ci_upper": "upper 95%",
            "percent_faster": "% faster", "standardised": "standardised"}
    shown = eff[list(cols)].rename(columns=cols)
    if "prob_faster" in eff and eff["prob_faster"].notna().any():
        shown["P(faster)"] = eff["prob_faster"]
    if truth:
        shown["truth"] = [truth.get(e, float("nan")) for e in eff.index]
    return shown


def cmd_demo(args: argparse.Namespace) -> int:
    import warnings

    with warnings.catch_warnings():
        # NumPy/ArviZ arithmetic notes (e.g. R-hat of a constant) are not for the user here
        warnings.simplefilter("ignore", RuntimeWarning)
        return _demo(args)


def _demo(args: argparse.Namespace) -> int:
    import warnings

    from alsfrs.bayes import SamplingWarning
    from alsfrs.report.html import write_report
    from alsfrs.report.tables import effect_sizes
    from alsfrs.spec import load_spec

    out = Path(args.out)
    t0 = time.perf_counter()
    print(f"alsfrs demo: a registry-like cohort of {args.n_patients} patients (seed {args.seed})")
    print(f"[1/5] simulating -> {out}/")
    ns = argparse.Namespace(n_patients=args.n_patients, seed=args.seed, out=str(out))
    cmd_simulate(ns)
    print("\n[2/5] validating the simulated files")
    cohort, failures = _validate(str(out / "visits.csv"), str(out / "patients.csv"),
                                 str(out / "dispensings.csv"), "raise")
    if failures:  # pragma: no cover - the simulator writes valid files
        for f in failures:
            _print_problems(f)
        return EXIT_INVALID
    _print_table(cohort.row_accounting())
    _print_table(cohort.describe(), floatfmt="{:,.2f}")
    truth = json.loads((out / "truth.json").read_text())
    cohort.truth = truth
    slope_truth = truth["exposure_slope_effects"]

    lmm_spec = load_spec("linear_slope")
    print(f"\n[3/5] linear mixed model ({lmm_spec.name}): {lmm_spec.formula}")
    t = time.perf_counter()
    lmm = lmm_spec.fit_model(cohort)
    print(f"fitted in {time.perf_counter() - t:.2f} s; exposure effects on the slope:")
    _print_table(_effects_text(effect_sizes(lmm), slope_truth))

    bayes_spec = load_spec("bayes_slope")
    draws = args.draws or bayes_spec.fit.get("draws", 1000)
    print(f"\n[4/5] Bayesian model ({bayes_spec.name}, collapsed): {draws} draws x "
          f"{bayes_spec.fit.get('chains', 2)} chains")
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SamplingWarning)
        bayes = bayes_spec.fit_model(cohort, seed=args.seed, draws=draws,
                                     tune=args.draws or bayes_spec.fit.get("tune", 1000),
                                     progressbar=not args.quiet)
    for w in caught:
        if issubclass(w.category, SamplingWarning):
            print(f"warning: {w.message}")
    print(f"sampled in {time.perf_counter() - t:.1f} s; exposure effects on the slope:")
    _print_table(_effects_text(effect_sizes(bayes), slope_truth))

    print("\n[5/5] saving the fits and writing the report")
    lmm.save(out / "fit_lmm.zip")
    bayes.save(out / "fit_bayes.zip")
    report = write_report({"Mixed model (REML)": lmm, "Bayesian (collapsed)": bayes},
                          out / "report.html", cohort=cohort,
                          title="alsfrs demo: psychiatric drug use and ALSFRS-R decline")
    for name in ("fit_lmm.zip", "fit_bayes.zip"):
        print(f"  wrote {out / name}")
    print(f"  wrote {report}")
    print(f"\ndone in {time.perf_counter() - t0:.1f} s")
    return EXIT_OK


# -- report --------------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    from alsfrs.persist import load_result
    from alsfrs.report.html import write_report

    results = {}
    for path in args.fits:
        r = load_result(path)
        results[Path(path).stem] = r
    cohort = None
    if args.visits:
        cohort, failures = _validate(args.visits, args.patients, args.dispensings, "raise")
        if failures:
            for f in failures:
                _print_problems(f)
            return EXIT_INVALID
    path = write_report(results, args.out, cohort=cohort, title=args.title,
                        show_ids=args.show_ids)
    print(f"wrote {path}")
    return EXIT_OK


# -- specs ---------------------------------------------------------------------------
def cmd_specs(args: argparse.Namespace) -> int:
    from alsfrs.spec import available_specs, load_spec

    if args.name:
        spec = load_spec(args.name)
        for k, v in spec.to_dict().items():
            print(f"{k:<12} {v}")
        return EXIT_OK
    for name in available_specs():
        spec = load_spec(name)
        print(f"{name:<20} [{spec.engine}] {spec.description}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from alsfrs import __version__

    parser = argparse.ArgumentParser(
        prog="alsfrs",
        description="Model ALSFRS-R decline: validate visit data, simulate registry-like "
                    "cohorts, fit slope models.")
    parser.add_argument("--version", action="version", version=f"alsfrs {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("simulate", help="write a simulated cohort in the canonical CSV format",
                       description="Simulate a registry-like cohort and write visits.csv, "
                                   "patients.csv, dispensings.csv and truth.json.")
    p.add_argument("--n-patients", type=int, default=1000, help="patients (default 1000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("validate", help="check visit, patient and dispensing files",
                       description="Read and cross-check the input files; print the row "
                                   "accounting and every problem. Exit status 1 on errors.")
    p.add_argument("visits", help="visits file (CSV or Parquet, alsfrs long format)")
    p.add_argument("--patients", help="patient table")
    p.add_argument("--dispensings", help="dispensing table")
    p.add_argument("--errors", choices=("raise", "exclude"), default="raise",
                   help="'raise': report bad rows as errors (default); 'exclude': set them "
                        "aside as exclusions with their reasons")
    p.add_argument("--max-problems", type=int, default=200,
                   help="problems to print per table (default 200)")
    p.add_argument("--show-exclusions", action="store_true", help="list every excluded row")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("demo", help="simulate, validate, fit and report a registry-like cohort",
                       description="The end-to-end demonstration: simulate a cohort shaped like "
                                   "the Swedish registry study, validate it, fit the linear "
                                   "mixed model and the collapsed Bayesian model, print the "
                                   "effect sizes, save the fits and write report.html.")
    p.add_argument("--out", default="alsfrs-demo", help="output folder (default alsfrs-demo)")
    p.add_argument("--n-patients", type=int, default=1000, help="patients (default 1000)")
    p.add_argument("--seed", type=int, default=2025, help="random seed (default 2025)")
    p.add_argument("--draws", type=int, default=None,
                   help="posterior draws and tuning steps per chain (default: the spec's)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("report", help="write an HTML report from saved fits",
                       description="Write one self-contained HTML report from fits saved with "
                                   "result.save(); optionally with the data section.")
    p.add_argument("fits", nargs="+", help="saved fit files")
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.add_argument("--title", default="alsfrs report", help="report title")
    p.add_argument("--visits", help="visits file, for the data section")
    p.add_argument("--patients", help="patient table, for the data section")
    p.add_argument("--dispensings", help="dispensing table, for the data section")
    p.add_argument("--show-ids", action="store_true",
                   help="show patient identifiers (off by default)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("specs", help="list the model specifications, or show one",
                       description="List the catalogue of named model specifications.")
    p.add_argument("name", nargs="?", help="a specification to show")
    p.set_defaults(func=cmd_specs)

    from alsfrs.design.cli import add_parser as add_design_parser

    add_design_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except ValidationError as exc:
        _print_problems(exc)
        return EXIT_INVALID


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

__all__ = ["Problem", "build_parser", "main"]
