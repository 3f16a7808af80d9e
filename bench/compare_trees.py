"""Run the same benchmarks on two source trees, alternately, and print both sets of figures.

A reorganisation must leave the figures within noise. On a noisy 2-core machine the only
fair comparison is one made in the same run: each round runs every benchmark on the
"before" tree, then on the "after" tree (the order flips every round), each with that
tree's own ``bench/`` script and package (``PYTHONPATH``). The JSON lines each benchmark
prints are tagged with the tree and the round and printed as they come; the summary line
of each benchmark gives, per tree, the median over rounds of every ratio it reported.

Usage:
  python bench/compare_trees.py --before ../old-checkout [--after .] [--rounds 2] [--only NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# name -> arguments: sizes large enough to be above the noise of one process start, small
# enough for a few rounds in about twenty minutes.
SUITE: dict[str, list[str]] = {
    "bench_pricing": ["--lines", "100000", "--repeat", "3"],
    "bench_eligibility_http": ["--beneficiaries", "3000", "--requests", "2000", "--rounds", "3"],
    "bench_import": ["--rows", "50000", "--engine", "both"],
    "bench_adjudication": ["--lines", "50000", "--engine", "both", "--rounds", "1"],
    "bench_payment": ["--lines", "50000", "--providers", "500"],
}


def run_one(tree: Path, name: str, args: list[str]) -> list[dict[str, Any]]:
    """One benchmark on one tree: its JSON lines (an ``error`` line if it failed)."""
    env = dict(os.environ, PYTHONPATH=f"{tree}{os.pathsep}{tree / 'src'}")
    done = subprocess.run(
        [sys.executable, str(tree / "bench" / f"{name}.py"), *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = []
    for text in done.stdout.splitlines():
        if text.startswith("{"):
            try:
                lines.append(json.loads(text))
            except json.JSONDecodeError:
                continue
    if done.returncode != 0:
        lines.append({"error": done.returncode, "stderr": done.stderr[-2000:]})
    return lines


def ratios(lines: list[dict[str, Any]]) -> dict[str, float]:
    """Every numeric field named like a ratio, keyed by the line's labels."""
    found: dict[str, float] = {}
    for line in lines:
        labels = "/".join(
            str(line[key])
            for key in ("benchmark", "bench", "engine", "target", "route", "rows", "lines")
            if key in line
        )
        for key, value in line.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            is_ratio = "ratio" in key and not key.startswith("target")
            if is_ratio or key in ("lines_per_s", "rows_per_s", "rps", "p99_ms"):
                found[f"{labels}:{key}"] = float(value)
        metric = line.get("metric")
        if isinstance(metric, str) and isinstance(line.get("value"), int | float):
            found[f"{labels}:{metric}"] = float(line["value"])
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=ROOT)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    collected: dict[str, dict[str, list[dict[str, float]]]] = {}
    for round_no in range(args.rounds):
        order = ("before", "after") if round_no % 2 == 0 else ("after", "before")
        for name, bench_args in SUITE.items():
            if args.only and name not in args.only:
                continue
            for tag in order:
                load = os.getloadavg()[0]
                lines = run_one(trees[tag], name, bench_args)
                for line in lines:
                    line.update(tree=tag, round=round_no, load_before=round(load, 2))
                    print(json.dumps(line), flush=True)
                per_tree = collected.setdefault(name, {"before": [], "after": []})
                per_tree[tag].append(ratios(lines))
    for name, per_tree in collected.items():
        summary: dict[str, Any] = {"benchmark": name, "summary": True}
        for tag, rounds in per_tree.items():
            keys = sorted({key for found in rounds for key in found})
            summary[tag] = {
                key: round(statistics.median(f[key] for f in rounds if key in f), 3) for key in keys
            }
        summary["load_average"] = round(os.getloadavg()[0], 2)
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
