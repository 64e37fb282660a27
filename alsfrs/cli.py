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
def cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    t0 = time.perf_counter()
    print(f"alsfrs demo: a registry-like cohort of {args.n_patients} patients (seed {args.seed})")
    print(f"[1/3] simulating -> {out}/")
    ns = argparse.Namespace(n_patients=args.n_patients, seed=args.seed, out=str(out))
    cmd_simulate(ns)
    print("\n[2/3] validating the simulated files")
    cohort, failures = _validate(str(out / "visits.csv"), str(out / "patients.csv"),
                                 str(out / "dispensings.csv"), "raise")
    if failures:  # pragma: no cover - the simulator writes valid files
        for f in failures:
            _print_problems(f)
        return EXIT_INVALID
    _print_table(cohort.row_accounting())
    print("\n[3/3] the cohort")
    _print_table(cohort.describe(), floatfmt="{:,.2f}")
    truth = json.loads((out / "truth.json").read_text())
    print("\nsimulated truth, exposure effects on the ALSFRS-R slope (points/month):")
    for k, v in truth["exposure_slope_effects"].items():
        print(f"  {k:<15} {v:+.2f}")
    print(f"\ndone in {time.perf_counter() - t0:.1f} s")
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

    p = sub.add_parser("demo", help="simulate, validate and analyse a registry-like cohort",
                       description="The end-to-end demonstration on a simulated cohort.")
    p.add_argument("--out", default="alsfrs-demo", help="output folder (default alsfrs-demo)")
    p.add_argument("--n-patients", type=int, default=1000, help="patients (default 1000)")
    p.add_argument("--seed", type=int, default=2025, help="random seed (default 2025)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("specs", help="list the model specifications, or show one",
                       description="List the catalogue of named model specifications.")
    p.add_argument("name", nargs="?", help="a specification to show")
    p.set_defaults(func=cmd_specs)
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
