"""Who a principal id is, for the security console and the incident notices: the
person's or the software's name, its kind, and the structure or insurer it acts for.

Principal ids are keys (``provider:AM/user:ID``, ``provider:AM/client:ID``,
``insurer:AMC/staff:ID``, ``operator/staff:ID``…); people read names. One call resolves
a whole screen's ids in a fixed number of queries (accounts, API clients, providers,
insurers), never one query per row. Nothing here is a beneficiary's identity: a member
account is named by its account number and insurer only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, or_, select

from tierspayant.domain import labels
from tierspayant.domain.structures import (
    NumberKind,
    StructureRef,
    structure_ref,
    unknown_structure,
)
from tierspayant.store.accounts_tables import accounts
from tierspayant.store.tables import api_clients, insurers, providers

# AM numbers are digits but for Corsica (2A, 2B); the numbers are matched as written.
_ACCOUNT = re.compile(r"^(?:provider:[^/]+|insurer:[^/]+|operator)/(user|staff|member):(\d{1,12})$")
_CLIENT = re.compile(r"^provider:([^/]+)/client:(.+)$")
_PROVIDER = re.compile(r"^provider:([^/]+)(?:/.*)?$")
_INSURER = re.compile(r"^insurer:([^/]+)/")
_OPERATOR_CLI = re.compile(r"^operator:(.+)$")
_MAX_IDS = 500  # one screen never shows more; beyond, ids stay unnamed


@dataclass(frozen=True, slots=True)
class InsurerRef:
    amc_number: str
    name: str | None = None

    @property
    def text(self) -> str:
        """``Mutuelle des Tilleuls (AMC 123456789)``."""
        reference = f"AMC {self.amc_number}"
        return f"{self.name} ({reference})" if self.name else reference


@dataclass(frozen=True, slots=True)
class PrincipalName:
    """A principal as people read it. ``kind`` is a ``principal_kind`` label code."""

    id: str
    kind: str
    person: str | None = None  # the person's or the software's name, if known
    structure: StructureRef | None = None
    insurer: InsurerRef | None = None

    @property
    def text(self) -> str:
        """« Marie Dupont, professionnel (portail) — Pharmacie des Lilas (FINESS …) »."""
        role = labels.label(labels.Kind.PRINCIPAL_KIND, self.kind)
        head = f"{self.person}, {role}" if self.person else role[:1].upper() + role[1:]
        where = self.organisation
        return f"{head} — {where}" if where else head

    @property
    def organisation(self) -> str | None:
        """The structure or insurer it acts for, named with its one number."""
        if self.structure is not None:
            return self.structure.text
        return self.insurer.text if self.insurer is not None else None


def _kind(principal_id: str, role: str | None) -> str:
    if principal_id.startswith("system:"):
        return "system"
    if principal_id.startswith("operator"):
        return "operator_staff"
    if principal_id.startswith("client:"):
        return "unknown_client"
    if principal_id.startswith("insurer:"):
        return "member" if role == "member" else "insurer_staff"
    if principal_id.startswith("provider:"):
        if role == "user":
            return "provider_user"
        if "/client:" in principal_id:
            return "provider_client"
        if principal_id.endswith("/file"):
            return "provider_file"
        return "provider"
    return "unknown"


def resolve_principals(conn: Connection, ids: Iterable[str | None]) -> dict[str, PrincipalName]:
    """Every id's name, kind and structure/insurer, in at most four queries."""
    wanted = sorted({i for i in ids if i})[:_MAX_IDS]
    account_ids: dict[str, int] = {}
    client_ids: dict[str, str] = {}
    ams: set[str] = set()
    amcs: set[str] = set()
    for pid in wanted:
        if found := _ACCOUNT.match(pid):
            account_ids[pid] = int(found.group(2))
        if found := _CLIENT.match(pid):
            client_ids[pid] = found.group(2)[:64]
        if found := _PROVIDER.match(pid):
            ams.add(found.group(1))
        if found := _INSURER.match(pid):
            amcs.add(found.group(1))
    people = _accounts(conn, set(account_ids.values()))
    labels = _clients(conn, set(client_ids.values()))
    structures = _providers_by_am(conn, ams)
    insurer_names = insurer_refs(conn, amcs)
    names: dict[str, PrincipalName] = {}
    for pid in wanted:
        match = _ACCOUNT.match(pid)
        role = match.group(1) if match else None
        person: str | None = None
        if match and pid in account_ids:
            person = _person(people.get(account_ids[pid]), role)
        elif pid in client_ids:
            person = labels.get(client_ids[pid])
        elif found := _OPERATOR_CLI.match(pid):
            person = found.group(1)
        provider = _PROVIDER.match(pid)
        insurer = _INSURER.match(pid)
        names[pid] = PrincipalName(
            pid,
            _kind(pid, role),
            person,
            structures.get(provider.group(1)) if provider else None,
            insurer_names.get(insurer.group(1)) if insurer else None,
        )
    return names


@dataclass(frozen=True, slots=True)
class _Account:
    display_name: str | None
    login: str | None
    rpps: str | None
    id: int


def _person(account: _Account | None, role: str | None) -> str | None:
    """A staff member's or professional's name; a member account is never named here."""
    if account is None:
        return None
    if role == "member":
        return f"compte n° {account.id}"
    if account.display_name:
        return account.display_name
    if account.rpps:
        return f"RPPS {account.rpps}"
    return account.login


def _accounts(conn: Connection, ids: set[int]) -> dict[int, _Account]:
    if not ids:
        return {}
    query = select(
        accounts.c.id, accounts.c.display_name, accounts.c.login, accounts.c.rpps, accounts.c.kind
    ).where(accounts.c.id.in_(ids))
    return {
        int(r.id): _Account(
            r.display_name,
            # A member's login is an e-mail address: personal data, never shown.
            None if r.kind == "member" else r.login,
            r.rpps,
            int(r.id),
        )
        for r in conn.execute(query)
    }


def _clients(conn: Connection, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    query = select(api_clients.c.client_id, api_clients.c.label).where(
        api_clients.c.client_id.in_(ids)
    )
    return {str(r.client_id): str(r.label) for r in conn.execute(query)}


def _providers_by_am(conn: Connection, ams: set[str]) -> dict[str, StructureRef]:
    if not ams:
        return {}
    query = select(
        providers.c.am_number, providers.c.finess, providers.c.siret, providers.c.name
    ).where(providers.c.am_number.in_(ams))
    return {
        str(r.am_number): structure_ref(r.finess, r.siret, r.am_number, r.name)
        for r in conn.execute(query)
    }


def resolve_structures(conn: Connection, numbers: Iterable[str | None]) -> dict[str, StructureRef]:
    """Each structure number (FINESS, SIRET or AM, as the guard keys it) with its name.

    Several professionals may share a FINESS or a SIRET: the structure takes the name of
    the first one registered. A number no provider holds keeps no name.
    """
    wanted = sorted({n for n in numbers if n})[:_MAX_IDS]
    if not wanted:
        return {}
    query = (
        select(providers.c.am_number, providers.c.finess, providers.c.siret, providers.c.name)
        .where(
            or_(
                providers.c.finess.in_(wanted),
                providers.c.siret.in_(wanted),
                providers.c.am_number.in_(wanted),
            )
        )
        .order_by(providers.c.id)
    )
    found: dict[str, StructureRef] = {}
    for r in conn.execute(query):
        for number, kind in ((r.finess, NumberKind.FINESS), (r.siret, NumberKind.SIRET),
                             (r.am_number, NumberKind.AM)):  # fmt: skip
            if number in wanted:
                found.setdefault(number, StructureRef(number, kind, r.name))
    return {n: found.get(n) or unknown_structure(n) for n in wanted}


def insurer_refs(conn: Connection, amcs: Iterable[str | None]) -> dict[str, InsurerRef]:
    """Each AMC number with its insurer's name (a number no insurer holds: unnamed)."""
    wanted = sorted({a for a in amcs if a})[:_MAX_IDS]
    if not wanted:
        return {}
    query = select(insurers.c.amc_number, insurers.c.name).where(insurers.c.amc_number.in_(wanted))
    named = {str(r.amc_number): str(r.name) for r in conn.execute(query)}
    return {a: InsurerRef(a, named.get(a)) for a in wanted}
