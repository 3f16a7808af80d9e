"""What the containment check costs each lookup (``services.containment.enforce``).

Run: ``.venv/bin/python bench/bench_containment.py [--lookups 20000]``.

On a fresh SQLite data directory: the check of a rights check with card proof, timed
over ``--lookups`` calls, first with no switch in force, then with two switches in force
that do not cover it (an insurer off, a route card-proof-only). The cost includes the
read of the switches in force, once a second per process (``REFRESH_SECONDS``). Prints
one JSON line: ``{"bench":"containment","none_us":…,"two_us":…}`` (microseconds per
lookup).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from tierspayant.app.platform import Platform, initialise
from tierspayant.config import load_settings
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services import containment

PRINCIPAL = Principal(
    "provider:752234567/client:bench",
    PrincipalKind.PROVIDER_CLIENT,
    AuthStrength.AAL2,
    structure="750012346",
)


def answer() -> None:
    """Stands for a rights check's answer function (its module names the route)."""


answer.__module__ = "tierspayant.services.eligibility"


def per_lookup(platform: Platform, lookups: int) -> float:
    started = time.perf_counter()
    for _ in range(lookups):
        containment.enforce(platform, PRINCIPAL, "75012345", answer, with_proof=True)
    return (time.perf_counter() - started) / lookups * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lookups", type=int, default=20_000)
    lookups = parser.parse_args().lookups
    with tempfile.TemporaryDirectory() as data_dir:
        platform = initialise(load_settings({"TIERSPAYANT_DATA_DIR": data_dir}))
        try:
            none = per_lookup(platform, lookups)
            for scope, mode in (("insurer:99999999", "off"), ("route:claims", "card_proof_only")):
                proposed = containment.propose(platform, "operator:a", scope, mode, "benchmark run")
                containment.approve(platform, "operator:b", proposed.id)
            two = per_lookup(platform, lookups)
        finally:
            platform.close()
    print(
        json.dumps(
            {"bench": "containment", "none_us": round(none, 2), "two_us": round(two, 2)},
            separators=(",", ":"),
        )
    )


if __name__ == "__main__":
    main()
