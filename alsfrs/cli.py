"""The ``alsfrs`` command. The only module that prints.

Each subcommand is one ``_add_<name>(sub)`` function that declares its parser and
one ``cmd_<name>(args)`` that runs it; :data:`SUBCOMMANDS` lists the former in
the order of ``alsfrs --help``. Heavy modules (pandas, the engines) are imported
inside the commands, so ``alsfrs --help`` starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alsfrs.errors import Problem, ValidationError, format_problems

if TYPE_CHECKING:
    import pandas as pd

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
#: Exit status when the reader of our output went away (``alsfrs ... | head``): 128 + SIGPIPE.
EXIT_BROKEN_PIPE = 141


def _print_table(frame: pd.DataFrame, *, floatfmt: str = "{:,.3f}") -> None:
    import pandas as pd

    with pd.option_context("display.width", 120, "display.max_columns", 20,
                           "display.float_format", floatfmt.format):
        print(frame.to_string())


def _print_problems(err: ValidationError, limit: int | None = None) -> None:
    """Every problem of an error, rows breaking one rule in one column grouped."""
    head = f"{len(err.problems)} problem{'s' if len(err.problems) != 1 else ''}"
    print(f"{head}{' in ' + err.context if err.context else ''}:")
    for line in format_problems(err.problems, limit):
        print(f"  - {line}")


# -- simulate ------------------------------------------------------------------------
def cmd_simulate(args: argparse.Namespace) -> int:
    from alsfrs.simulate import simulate_tables

    if getattr(args, "case_control", False):
        return _simulate_case_control(args)
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


def _simulate_case_control(args: argparse.Namespace) -> int:
    from alsfrs.simulate import simulate_case_control

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    study = simulate_case_control(args.n_cases, args.controls_per_case, args.seed)
    study.sets.to_csv(out / "sets.csv", index=False)
    study.dispensings.to_csv(out / "dispensings.csv", index=False)
    (out / "truth.json").write_text(json.dumps(study.truth, indent=1) + "\n")
    print(f"simulated {args.n_cases} cases with {args.controls_per_case} matched controls each "
          f"(seed {study.truth['seed']}): {len(study.dispensings)} dispensings")
    for name in ("sets.csv", "dispensings.csv", "truth.json"):
        print(f"  wrote {out / name}")
    print("read with alsfrs.read_case_control(sets, dispensings); fit with "
          "alsfrs.fit_clogit(truth['formula'], study)")
    return EXIT_OK


# -- validate ------------------------------------------------------------------------
def _column_pair(text: str) -> tuple[str, str]:
    """``old=new`` from the command line."""
    old, eq, new = text.partition("=")
    if not eq or not old.strip() or not new.strip():
        raise argparse.ArgumentTypeError(f"expected OLD=NEW (e.g. pnr=patient_id), got {text!r}")
    return old.strip(), new.strip()


def _reader_options(args: argparse.Namespace | None, paths: Sequence[str | None]
                    ) -> list[dict[str, Any]]:
    """Reader keyword arguments for each file from --sep, --date-format and --columns.

    One ``--columns OLD=NEW`` applies to every file that has column OLD; naming a
    column that no file has is an error.
    """
    from alsfrs.io import read_columns

    sep = getattr(args, "sep", None)
    date_format = getattr(args, "date_format", None)
    pairs = dict(getattr(args, "columns", None) or [])
    options, used = [], set()
    for path in paths:
        opts: dict[str, Any] = {"sep": sep, "date_format": date_format}
        if pairs and path is not None:
            try:
                have = set(read_columns(path, sep=sep))
            except ValidationError:
                have = set()  # the reader reports the unreadable file
            mapping = {k: v for k, v in pairs.items() if k in have}
            used |= set(mapping)
            opts["columns"] = mapping or None
        options.append(opts)
    unknown = [k for k in pairs if k not in used]
    if unknown:
        raise ValidationError([Problem(
            rule="mapping_unknown_column", column=k,
            message=f"--columns names '{k}', which none of the files has") for k in unknown],
            context="the column mapping")
    return options


def _validate(visits: str, patients: str | None, dispensings: str | None,
              errors: str, args: argparse.Namespace | None = None,
              tables_out: dict | None = None,
              ) -> tuple[object | None, list[ValidationError]]:
    """Read every table, collecting all problems; then cross-check them as a Cohort.

    Input warnings (near-miss column names) are not printed as warnings: they are
    in the tables' notes, which ``validate`` prints.
    """
    import warnings

    from alsfrs.errors import InputWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        return _read_all(visits, patients, dispensings, errors, args,
                         {} if tables_out is None else tables_out)


def _read_all(visits: str, patients: str | None, dispensings: str | None,
              errors: str, args: argparse.Namespace | None, tables: dict,
              ) -> tuple[object | None, list[ValidationError]]:
    from alsfrs.cohort import Cohort
    from alsfrs.io import read_dispensings, read_patients, read_visits

    failures: list[ValidationError] = []
    options = _reader_options(args, [visits, patients, dispensings])
    for (key, path, reader), opts in zip((("visits", visits, read_visits),
                                          ("patients", patients, read_patients),
                                          ("dispensings", dispensings, read_dispensings)),
                                         options, strict=True):
        if path is None:
            continue
        try:
            tables[key] = reader(path, errors=errors, **opts)
        except ValidationError as exc:
            failures.append(exc)
            try:  # keep the valid rows, so the cross-table checks can still run
                tables[key] = reader(path, errors="exclude", **opts)
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


def _excluded_line(counts: dict[str, int]) -> str:
    n = sum(counts.values())
    by_table = ", ".join(f"{t} {k}" for t, k in counts.items() if k)
    return f"{n} input row{'s' if n != 1 else ''} excluded ({by_table})"


def _print_notes(tables: dict) -> None:
    notes = [n for t in tables.values() for n in getattr(t, "notes", [])]
    if notes:
        print("\nnotes:")
        for n in notes:
            print(f"  - {n}")


def cmd_validate(args: argparse.Namespace) -> int:
    from alsfrs.cohort import Cohort

    read: dict = {}
    result, failures = _validate(args.visits, args.patients, args.dispensings, args.errors,
                                 args, tables_out=read)
    if failures:
        n = sum(len(f.problems) for f in failures)
        print(f"INVALID: {n} problem{'s' if n != 1 else ''} found")
        for f in failures:
            _print_problems(f, limit=args.max_problems)
        _print_notes(read)
        empty = [p for f in failures for p in f.problems if p.rule == "no_usable_visits"]
        print(f"\nINVALID: {empty[0].message}" if empty else
              f"\nINVALID: {n} problem{'s' if n != 1 else ''}")
        return EXIT_INVALID
    if isinstance(result, Cohort):
        tables = result.tables
        n_excluded = result.exclusions.groupby("table").size().to_dict()
        counts = {t: int(n_excluded.get(t, 0)) for t in result.row_accounting().index}
        n_patients, n_visits = result.n_patients, result.n_visits
        head = f"{n_patients} patients, {n_visits} visits"
    else:
        tables = {"visits": result}
        counts = {"visits": len(result.exclusions)}
        n_visits = len(result.data)
        head = f"visits table {result.source}: {n_visits} visits"
    if n_visits == 0:  # nothing usable is never "valid"
        print("INVALID: no usable visits left: every visit was excluded")
        print("\nexcluded rows by reason:")
        _print_table(_exclusion_summary(result))
        _print_notes(tables)
        print(f"\nINVALID: no usable visits; {_excluded_line(counts)}")
        return EXIT_INVALID
    print(f"valid: {head}")
    if isinstance(result, Cohort):
        print("\nrow accounting (read = used + excluded):")
        _print_table(result.row_accounting())
        if len(result.exclusions):
            print("\nexcluded rows by reason:")
            _print_table(result.exclusion_summary().set_index(["table", "rule"]))
            if args.show_exclusions:
                print()
                _print_table(result.exclusions)
        if "dispensings" in result.tables:
            print("\ndispensings and the exposure window "
                  f"({result.exposure_definition['rule']}, lag "
                  f"{result.exposure_definition['lag_months']:g} months, at least "
                  f"{result.exposure_definition['min_dispensings']} dispensings):")
            _print_table(result.exposure_accounting())
        missing_onset = len(result.onset_unknown)
        if missing_onset:
            print(f"\npatients without symptom onset: {missing_onset} (no months since onset "
                  "nor ΔFS; onset-origin analyses leave them out)")
    else:
        t = result
        print(f"{t.n_input_rows} rows read, {len(t.data)} used, {len(t.exclusions)} excluded "
              "(give --patients for the cross-table checks)")
        if len(t.exclusions):
            _print_table(t.exclusions)
    _print_notes(tables)
    if sum(counts.values()):
        print(f"\nvalid: {head} used; {_excluded_line(counts)}")
    else:
        print("\nvalid: every input row is used.")
    return EXIT_OK


def _exclusion_summary(result: Any) -> pd.DataFrame:
    import pandas as pd

    ex = getattr(result, "exclusions", None)
    if ex is None or not len(ex):
        return pd.DataFrame(columns=["rows"])
    return ex.groupby(["table", "rule"]).size().rename("rows").to_frame()


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


#: The demo's survival model: death or invasive ventilation from diagnosis.
DEMO_SURVIVAL = ("Surv(months_to_death_imv, death_imv) ~ anxiolytic + hypnotic + antidepressant"
                 " + age_at_dx + onset_site")


def _hazard_text(hr: Any, truth: dict) -> Any:
    """The joint model's hazard ratios beside the simulated truth, as text columns."""
    import math

    import pandas as pd

    lo, hi = [c for c in hr.columns if c.startswith(("hr_lower", "hr_upper"))]
    true = dict(truth.get("exposure_hazard_ratios", {}))
    per_point = truth.get("survival", {}).get("hazard_ratio_per_point")
    if per_point:  # the simulator's HR per point *lost*: per point of current value, inverted
        true[next(t for t in hr.index if t.startswith("value("))] = 1 / float(per_point)
    rows = {t: {"HR": f"{r['hr']:.2f}", "95% interval": f"{r[lo]:.2f} to {r[hi]:.2f}",
                "truth": (f"{true[t]:.3f}" if t in true and not math.isnan(true[t]) else "")}
            for t, r in hr.iterrows()}
    return pd.DataFrame.from_dict(rows, orient="index")


def cmd_demo(args: argparse.Namespace) -> int:
    import warnings

    with warnings.catch_warnings():
        # NumPy/ArviZ arithmetic notes (e.g. R-hat of a constant) are not for the user here
        warnings.simplefilter("ignore", RuntimeWarning)
        return _demo(args)


def _demo(args: argparse.Namespace) -> int:
    import warnings

    from alsfrs.bayes import SamplingWarning
    from alsfrs.joint import fit_joint
    from alsfrs.report.html import write_report
    from alsfrs.report.tables import effect_sizes
    from alsfrs.spec import load_spec

    out = Path(args.out)
    t0 = time.perf_counter()
    print(f"alsfrs demo: a registry-like cohort of {args.n_patients} patients (seed {args.seed})")
    print(f"[1/6] simulating -> {out}/")
    ns = argparse.Namespace(n_patients=args.n_patients, seed=args.seed, out=str(out))
    cmd_simulate(ns)
    print("\n[2/6] validating the simulated files")
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
    print(f"\n[3/6] linear mixed model ({lmm_spec.name}): {lmm_spec.formula}")
    t = time.perf_counter()
    lmm = lmm_spec.fit_model(cohort)
    print(f"fitted in {time.perf_counter() - t:.2f} s; exposure effects on the slope:")
    _print_table(_effects_text(effect_sizes(lmm), slope_truth))

    bayes_spec = load_spec("bayes_slope")
    draws = args.draws or bayes_spec.fit.get("draws", 1000)
    print(f"\n[4/6] Bayesian model ({bayes_spec.name}, collapsed): {draws} draws x "
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

    joint_draws = args.draws or 500
    print(f"\n[5/6] joint model of ALSFRS-R and death or invasive ventilation: "
          f"{joint_draws} draws x 2 chains")
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SamplingWarning)
        joint = fit_joint(lmm_spec.formula, DEMO_SURVIVAL, cohort, seed=args.seed,
                          draws=joint_draws, tune=joint_draws, progressbar=not args.quiet)
    for w in caught:
        if issubclass(w.category, SamplingWarning):
            print(f"warning: {w.message}")
    print(f"sampled in {time.perf_counter() - t:.1f} s; hazard ratios (death or IMV):")
    _print_table(_hazard_text(joint.hazard_ratios(), truth))
    print(joint.association_in_words())

    print("\n[6/6] saving the fits and writing the report")
    lmm.save(out / "fit_lmm.zip")
    bayes.save(out / "fit_bayes.zip")
    joint.save(out / "fit_joint.zip")
    report = write_report({"Mixed model (REML)": lmm, "Bayesian (collapsed)": bayes,
                           "Joint model": joint},
                          out / "report.html", cohort=cohort,
                          title="alsfrs demo: psychiatric drug use, ALSFRS-R decline and "
                                "survival")
    for name in ("fit_lmm.zip", "fit_bayes.zip", "fit_joint.zip"):
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
        cohort, failures = _validate(args.visits, args.patients, args.dispensings, "raise",
                                     args)
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


# -- the parser: one function per subcommand --------------------------------------------
def _add_simulate(sub: Any) -> None:
    p = sub.add_parser("simulate", help="write a simulated cohort in the canonical CSV format",
                       description="Simulate a registry-like cohort and write visits.csv, "
                                   "patients.csv, dispensings.csv and truth.json.")
    p.add_argument("--n-patients", type=int, default=1000, help="patients (default 1000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--case-control", action="store_true",
                   help="write a matched case-control study instead (sets.csv, dispensings.csv, "
                        "truth.json)")
    p.add_argument("--n-cases", type=int, default=1000, help="cases (--case-control; 1000)")
    p.add_argument("--controls-per-case", type=int, default=5,
                   help="age- and sex-matched controls per case (--case-control; 5)")
    p.set_defaults(func=cmd_simulate)


def _add_reader_options(p: argparse.ArgumentParser) -> None:
    """--sep, --date-format and --columns, passed to every reader."""
    g = p.add_argument_group("reading the files")
    g.add_argument("--sep", help="field separator of the text files (default ',' or tab for "
                                 ".tsv; a ';', tab or '|' header is detected)")
    g.add_argument("--date-format", metavar="FORMAT",
                   help="format of the dates, e.g. %%d/%%m/%%Y (default ISO, YYYY-MM-DD)")
    g.add_argument("--columns", metavar="OLD=NEW", type=_column_pair, action="append",
                   help="read column OLD as the canonical column NEW, in every file that has "
                        "OLD (repeatable), e.g. --columns pnr=patient_id")


def _add_validate(sub: Any) -> None:
    p = sub.add_parser("validate", help="check visit, patient and dispensing files",
                       description="Read and cross-check the input files; print the row "
                                   "accounting and every problem. Exit status 1 on errors, "
                                   "and when no usable visit is left.")
    p.add_argument("visits", help="visits file (CSV or Parquet, alsfrs long format)")
    p.add_argument("--patients", help="patient table")
    p.add_argument("--dispensings", help="dispensing table")
    p.add_argument("--errors", choices=("raise", "exclude"), default="raise",
                   help="'raise': report bad rows as errors (default); 'exclude': set them "
                        "aside as exclusions with their reasons")
    p.add_argument("--max-problems", type=int, default=200,
                   help="problem lines to print per table (default 200)")
    p.add_argument("--show-exclusions", action="store_true", help="list every excluded row")
    _add_reader_options(p)
    p.set_defaults(func=cmd_validate)


def _add_demo(sub: Any) -> None:
    p = sub.add_parser("demo", help="simulate, validate, fit and report a registry-like cohort",
                       description="The end-to-end demonstration: simulate a cohort shaped like "
                                   "the Swedish registry study, validate it, fit the linear "
                                   "mixed model, the collapsed Bayesian model and the joint "
                                   "model of ALSFRS-R and death or invasive ventilation, print "
                                   "the effect sizes and hazard ratios beside the simulated "
                                   "truth, save the fits and write report.html.")
    p.add_argument("--out", default="alsfrs-demo", help="output folder (default alsfrs-demo)")
    p.add_argument("--n-patients", type=int, default=1000, help="patients (default 1000)")
    p.add_argument("--seed", type=int, default=2025, help="random seed (default 2025)")
    p.add_argument("--draws", type=int, default=None,
                   help="posterior draws and tuning steps per chain (default: the spec's)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)


def _add_report(sub: Any) -> None:
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
    _add_reader_options(p)
    p.set_defaults(func=cmd_report)


def _add_specs(sub: Any) -> None:
    p = sub.add_parser("specs", help="list the model specifications, or show one",
                       description="List the catalogue of named model specifications.")
    p.add_argument("name", nargs="?", help="a specification to show")
    p.set_defaults(func=cmd_specs)


def _add_design(sub: Any) -> None:
    from alsfrs.design.cli import add_parser

    add_parser(sub)


#: The subcommands, in the order ``alsfrs --help`` lists them; add yours here.
SUBCOMMANDS: list[Callable[[Any], None]] = [
    _add_simulate, _add_validate, _add_demo, _add_report, _add_specs, _add_design,
]


def build_parser() -> argparse.ArgumentParser:
    from alsfrs import __version__

    parser = argparse.ArgumentParser(
        prog="alsfrs",
        description="Model ALSFRS-R decline: validate visit data, simulate registry-like "
                    "cohorts, fit slope models.")
    parser.add_argument("--version", action="version", version=f"alsfrs {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def _run(argv: Sequence[str] | None) -> int:
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``alsfrs`` command; returns the exit status.

    When the reader of the output goes away (``alsfrs validate ... | head``) the
    command stops quietly with status 141 (128 + SIGPIPE), without a traceback.
    """
    try:
        code = _run(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at /dev/null so that fails silently
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # pragma: no cover - stdout without a file descriptor
            pass
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

__all__ = ["SUBCOMMANDS", "Problem", "build_parser", "main"]
