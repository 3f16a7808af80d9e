"""Run every benchmark with its same-run baseline; each prints JSON lines to stdout.

Usage: python bench/run_all.py [--quick] [--only NAME ...]

``--quick`` uses small sizes (a smoke run of each benchmark, about two minutes);
without it the sizes are those quoted in the issues' closing notes. The lines are also
appended to ``bench/results/<date>.jsonl``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> (full arguments, quick arguments); a benchmark absent from the tree is skipped.
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "bench_pricing": (["--lines", "200000"], ["--lines", "20000", "--repeat", "1"]),
    "bench_eligibility_http": (
        ["--beneficiaries", "30000", "--requests", "5000"],
        ["--beneficiaries", "3000", "--requests", "1000", "--rounds", "1"],
    ),
    "bench_import": (
        ["--rows", "100000", "--rows", "1000000", "--tracemalloc"],
        ["--rows", "20000"],
    ),
    "bench_adjudication": (
        ["--lines", "1000000", "--people", "20000", "--rounds", "3"],
        ["--lines", "20000"],
    ),
    "bench_payment": (["--lines", "1000000"], ["--lines", "20000"]),
    "bench_incident": ([], []),
    "bench_portal": ([], []),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    out = results / f"{dt.date.today().isoformat()}.jsonl"
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'src'}")
    failed = []
    for name, (full, quick) in BENCHMARKS.items():
        script = ROOT / "bench" / f"{name}.py"
        if (args.only and name not in args.only) or not script.exists():
            continue
        print(f"# {name}", file=sys.stderr, flush=True)
        run = subprocess.run(
            [sys.executable, str(script), *(quick if args.quick else full)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        sys.stderr.write(run.stderr)
        lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
        for line in lines:
            print(line, flush=True)
        with out.open("a", encoding="utf-8") as handle:
            handle.writelines(line + "\n" for line in lines)
        if run.returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
