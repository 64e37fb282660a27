"""Cold start of the command line and of ``import alsfrs``.

Times, in fresh interpreters, ``python -c pass`` (the floor), ``import alsfrs``,
``alsfrs --help`` (``python -m alsfrs.cli --help``), ``import pandas`` (what the
help used to need at least) and the first use of a flat name that loads the
engines (``alsfrs.fit_lmm``). Prints the median of ``--repeat`` runs and each as
a ratio to the floor.

    python benchmarks/startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "python -c pass (floor)": ["-c", "pass"],
    "import alsfrs": ["-c", "import alsfrs"],
    "alsfrs --help": ["-m", "alsfrs.cli", "--help"],
    "import pandas": ["-c", "import pandas"],
    "alsfrs.fit_lmm (loads the LMM engine)": ["-c", "import alsfrs; alsfrs.fit_lmm"],
}


def wall(args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    n = parser.parse_args().repeat
    results = {name: statistics.median(wall(a) for _ in range(n)) for name, a in CASES.items()}
    floor = results["python -c pass (floor)"]
    print(f"| case | median wall (s), {n} runs | × floor |")
    print("|---|---:|---:|")
    for name, t in results.items():
        print(f"| {name} | {t:.3f} | {t / floor:.1f} |")


if __name__ == "__main__":
    main()
