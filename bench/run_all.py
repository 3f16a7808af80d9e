"""Run every benchmark with its same-run baseline; each prints JSON lines to stdout.

Usage: python bench/run_all.py [--quick] [--only NAME ...]

``--quick`` uses small sizes (a smoke run of each benchmark, about two minutes);
without it the sizes are those quoted in the issues' closing notes. The lines are also
appended to ``bench/results/<date>.jsonl``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_PG_2PROC = ["--engine", "postgres", "--workers", "2"]
# name -> (script, full arguments, quick arguments); a benchmark absent from the tree is
# skipped.
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "pricing": (
        "bench_pricing",
        ["--lines", "200000", "--rounds", "5"],
        ["--lines", "20000", "--rounds", "1"],
    ),
    "rights_check_sqlite": (
        "bench_eligibility_http",
        ["--beneficiaries", "30000", "--seconds", "10", "--rounds", "5"],
        ["--beneficiaries", "3000", "--seconds", "2", "--rounds", "1"],
    ),
    "rights_check_postgres_2proc": (
        "bench_eligibility_http",
        [*_PG_2PROC, "--beneficiaries", "30000", "--seconds", "10", "--rounds", "5"],
        [*_PG_2PROC, "--beneficiaries", "3000", "--seconds", "2", "--rounds", "1"],
    ),
    "import": (
        "bench_import",
        ["--rows", "100000", "--rows", "1000000", "--tracemalloc"],
        ["--rows", "20000"],
    ),
    "adjudication": (
        "bench_adjudication",
        ["--lines", "200000", "--people", "20000", "--rounds", "3"],
        ["--lines", "20000", "--rounds", "1"],
    ),
    # Issue 16's figure: PostgreSQL, two worker processes sharing the backlog.
    "adjudication_postgres_2proc": (
        "bench_adjudication",
        [*_PG_2PROC, "--lines", "200000", "--people", "20000", "--rounds", "3"],
        [*_PG_2PROC, "--lines", "20000", "--rounds", "1"],
    ),
    # Where a rights check's CPU goes, control by control (no ratio: its lines are in the
    # JSON output).
    "rights_check_parts": (
        "rights_check_parts",
        ["--checks", "20000", "--rounds", "3"],
        ["--beneficiaries", "3000", "--checks", "2000", "--rounds", "1"],
    ),
    # A day of volume: lines/s, the payment run's time and memory (no ratio: not in the
    # table of ratios, its line is in the JSON output).
    "day": (
        "bench_day",
        ["--lines", "200000"],
        ["--lines", "20000", "--people", "5000", "--pharmacies", "30", "--dentists", "5"],
    ),
    "payment": ("bench_payment", ["--lines", "1000000"], ["--lines", "20000"]),
    "incident": ("bench_incident", [], []),
    "portal": ("bench_portal", [], []),
}


def summary_rows(name: str, lines: list[str]) -> list[tuple[str, str, str, str]]:
    """(benchmark, detail, ratio, load) of each line that gives a ratio as a result: a
    summary line, or a line that is not one round among others."""
    rows = []
    for line in lines:
        data = json.loads(line)
        if "ratio" not in data or ("round" in data and not data.get("summary")):
            continue
        detail = ", ".join(
            f"{key}={data[key]}"
            for key in ("engine", "workers", "rows", "lines", "target")
            if key in data
        )
        load = data.get("load")
        rows.append((name, detail, str(data["ratio"]), " ".join(map(str, load)) if load else ""))
    return rows


HEADINGS = ("benchmark", "detail", "ratio", "load average")


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
    table: list[tuple[str, str, str, str]] = []
    for name, (script_name, full, quick) in BENCHMARKS.items():
        script = ROOT / "bench" / f"{script_name}.py"
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
        table.extend(summary_rows(name, lines))
        if run.returncode != 0:
            failed.append(name)
    # One table of ratios (target / same-run baseline), on stderr: stdout stays JSON lines.
    widths = [max([len(h)] + [len(r[i]) for r in table]) for i, h in enumerate(HEADINGS)]
    for row in (HEADINGS, *table):
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)), file=sys.stderr
        )
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
