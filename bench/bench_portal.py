"""Portal page rendering under 30 concurrent users, against a bare Starlette route, same run.

Usage: python bench/bench_portal.py [--users 30] [--requests 600] [--rounds 1]

A fresh SQLite platform gets the demo catalogue, a few hundred synthetic beneficiaries,
one pharmacy, and logged-in sessions for ``--users`` people spread over the four portals
(professionals' sessions as the OpenID Connect callback opens them; staff and members
through password + TOTP enrolment). The server is the real application under uvicorn,
the client ``bench.loadgen`` (asyncio, keep-alive), one connection per user, each
request carrying its user's session cookie. Every portal page is measured alone, then
the bare route. Prints one JSON line per page and round, and a summary line with p95s.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import pyotp
from sqlalchemy import select

from bench.bench_eligibility_http import environment, free_port, serve
from bench.loadgen import LoadResult, build_request, run_load
from tierspayant.app.platform import Platform, initialise
from tierspayant.config import load_settings
from tierspayant.demo.accounts import demo_password
from tierspayant.demo.builder import DEMO_INSURERS, demo_catalogue, demo_providers
from tierspayant.demo.synthetic import write_beneficiaries_csv
from tierspayant.security.oidc import OidcIdentity
from tierspayant.services import accounts, enrolment, insurers, providers
from tierspayant.services.accounts import AccountKind
from tierspayant.store.tables import beneficiaries as table

PAGES: dict[str, tuple[AccountKind, str]] = {
    "provider_rights_form": (AccountKind.PROVIDER_USER, "/portail/prestataire/droits"),
    "provider_conventions": (AccountKind.PROVIDER_USER, "/portail/prestataire/conventions"),
    "insurer_dashboard": (AccountKind.INSURER_STAFF, "/portail/assureur/"),
    "member_history": (AccountKind.MEMBER, "/portail/adherent/"),
    "security_console": (AccountKind.OPERATOR_STAFF, "/portail/securite/"),
}


def _staff_sessions(
    platform: Platform, kind: AccountKind, count: int, insurer_id: int, member_ids: list[int]
) -> list[str]:
    tokens = []
    for index in range(count):
        login, password = f"{kind.value}.{index}@bench.example", demo_password()
        beneficiary = member_ids[index] if kind is AccountKind.MEMBER else None
        accounts.create_account(
            platform,
            kind,
            login,
            password,
            actor="bench",
            insurer_id=None if kind is AccountKind.OPERATOR_STAFF else insurer_id,
            beneficiary_id=beneficiary,
        )
        challenge = accounts.begin_login(platform, login, password)
        enrolment_ = accounts.enrol_totp(platform, challenge.challenge_id)
        code = pyotp.TOTP(enrolment_.secret).now()
        enrolled = accounts.confirm_totp(platform, challenge.challenge_id, code)
        tokens.append(enrolled.session.token)
    return tokens


def prepare(data_dir: Path, users: int, beneficiaries: int) -> dict[AccountKind, list[str]]:
    """Seed the platform; return session tokens per kind of account (``users`` in all)."""
    platform = initialise(load_settings(environment(data_dir)))
    amc, name, kind, catalogue_file = DEMO_INSURERS[0]
    insurer = insurers.add_insurer(platform, amc, name, kind, "bench")
    upload = insurers.upload_catalogue(platform, amc, demo_catalogue(catalogue_file), "bench")
    csv_path = data_dir / "beneficiaires.csv"
    write_beneficiaries_csv(
        csv_path,
        beneficiaries,
        seed=3,
        contracts=list(upload.contracts),
        start=date(datetime.now(UTC).year, 1, 1),
    )
    enrolment.import_beneficiaries(
        platform, amc, csv_path, mode="full", file_date=None, actor="bench"
    )
    with platform.engine.connect() as conn:
        member_ids = [int(i) for i in conn.execute(select(table.c.id).limit(users)).scalars()]
    spec = next(s for s in demo_providers(50, random.Random(1).randint(1, 99)) if s.rpps)
    pro = providers.add_provider(
        platform,
        providers.NewProvider(spec.am_number, spec.category.value, spec.name, rpps=spec.rpps),
        "bench",
    )
    providers.add_conventions(platform, pro.am_number, amc, None, date(2024, 1, 1), "bench")
    share = max(1, users // 4)
    identity = OidcIdentity(
        "https://psc.example", "bench", str(spec.rpps), "eidas2", ("pop",), datetime.now(UTC)
    )
    sessions: dict[AccountKind, list[str]] = {
        AccountKind.PROVIDER_USER: [
            accounts.login_oidc(platform, identity).token for _ in range(users - 3 * share)
        ]
    }
    for kind_ in (AccountKind.INSURER_STAFF, AccountKind.MEMBER, AccountKind.OPERATOR_STAFF):
        sessions[kind_] = _staff_sessions(platform, kind_, share, insurer.id, member_ids)
    platform.close()
    return sessions


def measure(
    label: str, port: int, requests: list[bytes], users: int, count: int, rounds: int
) -> list[LoadResult]:
    run_load(
        port,
        lambda i: requests[i % len(requests)],
        connections=users,
        requests=min(100, count),
        seconds=10,
    )  # warm-up
    results = []
    for index in range(rounds):
        result = run_load(
            port,
            lambda i: requests[i % len(requests)],
            connections=users,
            requests=count,
            seconds=60,
        )
        line = {
            "bench": "portal",
            "target": label,
            "round": index,
            **result.summary(),
            "p95_ms": round(result.percentile(95), 2),
        }
        print(json.dumps(line), flush=True)
        results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--requests", type=int, default=600, help="per page and round")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--beneficiaries", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        sessions = prepare(data_dir, args.users, args.beneficiaries)
        env = environment(data_dir)
        app_port, bare_port = free_port(), free_port()
        app, bare = serve("platform", app_port, env), serve("bare", bare_port, env)
        p95: dict[str, float] = {}
        rps: dict[str, float] = {}
        try:
            for label, (kind, path) in PAGES.items():
                requests = [
                    build_request("GET", path, b"", {"Cookie": f"tp_session={token}"})
                    for token in sessions[kind]
                ]
                results = measure(label, app_port, requests, args.users, args.requests, args.rounds)
                p95[label] = min(r.percentile(95) for r in results)
                rps[label] = max(r.rps for r in results)
                statuses = {s for r in results for s in r.statuses}
                assert statuses == {200}, f"{label}: {statuses}"
            hello = [build_request("GET", "/hello", b"", {})]
            base = measure(
                "bare_starlette", bare_port, hello, args.users, args.requests, args.rounds
            )
        finally:
            for process in (app, bare):
                process.terminate()
                process.wait(timeout=10)
        bare_p95 = min(r.percentile(95) for r in base)
        print(
            json.dumps(
                {
                    "bench": "portal",
                    "summary": True,
                    "users": args.users,
                    "pages_p95_ms": {k: round(v, 2) for k, v in p95.items()},
                    "worst_page_p95_ms": round(max(p95.values()), 2),
                    "bare_p95_ms": round(bare_p95, 2),
                    "pages_rps": {k: round(v, 1) for k, v in rps.items()},
                    "bare_rps": round(max(r.rps for r in base), 1),
                }
            )
        )


if __name__ == "__main__":
    main()
