"""A simulated month of demo traffic through the scheduler: the payment delay it achieves.

Run: ``.venv/bin/python bench/bench_scheduler.py [--beneficiaries 3000] [--per-tick 4]``.

On a fresh SQLite database, with the platform's clock simulated (stepped, never slept):
the demo data set is built on 1 December 2026 (its November is paid and billed), then
the clock steps hour by hour through December 2026 to Tuesday 5 January 2027. Each hour
from 08:00 to 20:00 in Paris (every day, weekends and holidays too: pharmacies open),
each demo insurer receives ``--per-tick`` invoices from the demo providers through the
claims service (``demo/claims.py``); then one :class:`~tierspayant.jobs.scheduler.Scheduler`
tick adjudicates and runs whatever is due (payment run at the 16:00 cut-off of each
TARGET2 business day, billing of November and December, nightly jobs).

Prints JSON lines: one per group (``ensemble``, then each insurer) with the invoices paid
in the simulated month and their delay from received to transfer executed, in TARGET2
business days (``median``, ``p95``, ``worst``, ``next_day_share_bp``), and a last line
with the jobs run and the run time. The goal: every accepted invoice paid by the next
business day (``worst`` ≤ 1).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from tierspayant.app.platform import initialise
from tierspayant.config import load_settings
from tierspayant.demo.builder import DEMO_INSURERS, build_demo, demo_providers
from tierspayant.demo.claims import build_demo_claims
from tierspayant.jobs.scheduler import Scheduler
from tierspayant.services.delays import delay_report
from tierspayant.services.insurers import list_insurers
from tierspayant.services.providers import provider_by_am

START = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)  # 06:00 in Paris
END = datetime(2027, 1, 5, 22, 0, tzinfo=UTC)
SEED = 2024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beneficiaries", type=int, default=3_000)
    parser.add_argument("--providers", type=int, default=40)
    parser.add_argument("--per-tick", type=int, default=4, help="invoices per insurer per hour")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tp-bench-sched-") as tmp:
        work = Path(tmp)
        data = work / "data"
        settings = load_settings(
            {
                "TIERSPAYANT_DATA_DIR": str(data),
                "TIERSPAYANT_DATABASE_URL": f"sqlite:///{data / 'tierspayant.sqlite3'}",
            }
        )
        platform = initialise(settings)
        moment = [START]
        platform.clock = lambda: moment[0]
        build_demo(
            platform,
            beneficiaries=args.beneficiaries,
            providers_count=args.providers,
            seed=SEED,
            files_dir=work / "files",
            claims=300,
        )
        with platform.engine.connect() as conn:
            provider_ids = [
                provider_by_am(conn, spec.am_number).id
                for spec in demo_providers(args.providers, SEED)
            ]
        scheduler = Scheduler(platform, checkpoint_dir=data / "checkpoints")
        jobs: Counter[str] = Counter()
        received = 0
        tick = 0
        while moment[0] <= END:
            paris_hour = (moment[0].hour + 1) % 24  # winter time all along
            if 8 <= paris_hour <= 20:
                today = moment[0].date()
                for index, (amc, *_) in enumerate(DEMO_INSURERS):
                    received += build_demo_claims(
                        platform,
                        beneficiaries_csv=work / "files" / f"beneficiaries_{amc}.csv",
                        insurer_amc=amc,
                        provider_ids=provider_ids,
                        month=today,
                        count=args.per_tick,
                        seed=100_000 + tick * 10 + index,
                    )
            result = scheduler.tick()
            for key in result.ran:
                jobs[key.split(":")[0]] += 1
            if result.failed:
                print(json.dumps({"failed": result.failed, "at": moment[0].isoformat()}))
            moment[0] += timedelta(hours=1)
            tick += 1
        report = delay_report(platform, since=date(2026, 12, 1))
        names = {i.amc_number: i.name for i in list_insurers(platform)}
        platform.close()
    if report.overall is None:
        print(json.dumps({"bench": "scheduler", "error": "no invoice paid"}))
        return 1
    print(json.dumps({"bench": "scheduler", "groupe": "ensemble", **asdict(report.overall)}))
    for amc, summary in report.by_insurer.items():
        line = {"bench": "scheduler", "groupe": "assureur", "amc": amc, "nom": names.get(amc)}
        print(json.dumps({**line, **asdict(summary)}))
    print(
        json.dumps(
            {
                "bench": "scheduler",
                "received": received,
                "jobs": dict(sorted(jobs.items())),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
