"""Readiness (``/readyz``) and the start-up checks of ``tierspayant doctor``.

:func:`readiness` asks a running platform whether it can serve: its database answers,
its schema is at the newest migration, Redis answers (when configured), its key provider
can unwrap the operator's data keys stored in the database, and its audit writer is
running. Each check is named; the answer says which failed, never why (the reason goes
to the log, for the operator).

:func:`diagnose` checks a configuration before a platform is opened (settings, data
directory, keyring, database, migrations, Redis, TLS) and returns one problem per thing
to fix, each with a French sentence saying what to do. It migrates and writes nothing.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import structlog
from sqlalchemy import Engine

from tierspayant import metrics
from tierspayant.app.platform import Platform
from tierspayant.config import SettingError, Settings, load_settings
from tierspayant.security.keys import KeyProvider, KeyringError, LocalKeyring
from tierspayant.store import health
from tierspayant.store.db import is_initialised, make_engine
from tierspayant.store.keys import OPERATOR_SCOPE, DataKeyCache

log = structlog.get_logger(__name__)

DATABASE = "database"
MIGRATIONS = "migrations"
REDIS = "redis"
KEYS = "keys"
AUDIT_WRITER = "audit_writer"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool


@dataclass(frozen=True, slots=True)
class Readiness:
    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(check.name for check in self.checks if not check.ok)


def _probe(name: str, probe: Callable[[], bool]) -> Check:
    try:
        ok = probe()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; logged
        log.warning("readiness.check_failed", check=name, error=type(exc).__name__)
        return Check(name, False)
    if not ok:
        log.warning("readiness.check_failed", check=name)
    return Check(name, ok)


def _fresh_provider(platform: Platform) -> KeyProvider:
    """The local keyring read again from its file (a deleted or replaced file shows up
    here, not at the next restart); any other provider (an HSM) as it is."""
    provider = platform.key_provider
    if isinstance(provider, LocalKeyring):
        return LocalKeyring.load(provider.path)
    return provider


def _unwraps(engine: Engine, provider: KeyProvider) -> bool:
    """Whether ``provider`` unwraps the operator's active data keys stored in the database."""
    with engine.connect() as conn:
        DataKeyCache(provider).active(conn, OPERATOR_SCOPE)
    return True


def readiness(platform: Platform) -> Readiness:
    """Run every readiness check of ``platform`` (see the module's docstring)."""
    engine = platform.engine

    def database() -> bool:
        health.ping(engine)
        return True

    checks = [
        _probe(DATABASE, database),
        _probe(MIGRATIONS, lambda: health.at_head(engine)),
    ]
    redis_url = platform.settings.redis_url
    if redis_url is not None:

        def redis() -> bool:
            health.ping_redis(redis_url)
            return True

        checks.append(_probe(REDIS, redis))
    checks.append(_probe(KEYS, lambda: _unwraps(engine, _fresh_provider(platform))))
    checks.append(_probe(AUDIT_WRITER, platform.audit_writer.alive))
    for check in checks:  # the alert rules read these (docs/operations.md, "Alerts")
        metrics.READINESS_CHECK.labels(check.name).set(1 if check.ok else 0)
    return Readiness(tuple(checks))


# --- tierspayant doctor --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    check: str
    message: str  # French: what is wrong and what to do


def _sqlite_file(url: str) -> Path | None:
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1]
    return None if not path or path == ":memory:" else Path(path)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _data_dir(settings: Settings) -> list[Problem]:
    data_dir = settings.data_dir
    if not data_dir.exists():
        return [
            Problem(
                "data_dir",
                f"Le répertoire de données {data_dir} n'existe pas : lancez "
                "« tierspayant init » ou corrigez TIERSPAYANT_DATA_DIR.",
            )
        ]
    if not data_dir.is_dir():
        return [
            Problem(
                "data_dir",
                f"{data_dir} n'est pas un répertoire : corrigez TIERSPAYANT_DATA_DIR.",
            )
        ]
    problems = []
    if not os.access(data_dir, os.W_OK | os.X_OK):
        problems.append(
            Problem(
                "data_dir",
                f"Le répertoire de données {data_dir} n'est pas accessible en écriture : "
                "donnez-le à l'utilisateur du service (chown).",
            )
        )
    if _mode(data_dir) & 0o077:
        problems.append(
            Problem(
                "data_dir",
                f"Le répertoire de données {data_dir} est ouvert aux autres utilisateurs "
                f"(mode {_mode(data_dir):04o}) : exécutez « chmod 700 {data_dir} ».",
            )
        )
    return problems


def _keyring(settings: Settings) -> tuple[LocalKeyring | None, list[Problem]]:
    path = settings.keyring_path
    if not path.exists():
        return None, [
            Problem(
                KEYS,
                f"Aucun trousseau en {path} : restaurez-le depuis sa sauvegarde, ou lancez "
                "« tierspayant init » sur une plateforme neuve.",
            )
        ]
    problems = []
    if path.is_file() and _mode(path) & 0o077:
        problems.append(
            Problem(
                KEYS,
                f"Le trousseau {path} est lisible par d'autres utilisateurs "
                f"(mode {_mode(path):04o}) : exécutez « chmod 600 {path} ».",
            )
        )
    try:
        keyring = _load_quietly(path)  # its mode is reported above
    except KeyringError as exc:
        problems.append(
            Problem(
                KEYS,
                f"Le trousseau {path} est illisible ({exc.code}) : restaurez-le depuis sa "
                "sauvegarde.",
            )
        )
        return None, problems
    return keyring, problems


def _load_quietly(path: Path) -> LocalKeyring:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LocalKeyring.load(path)


def _database(settings: Settings, keyring: LocalKeyring | None) -> list[Problem]:
    sqlite_file = _sqlite_file(settings.database_url)
    if sqlite_file is not None and not sqlite_file.exists():
        return [
            Problem(
                DATABASE,
                f"La base SQLite {sqlite_file} n'existe pas : lancez « tierspayant init ».",
            )
        ]
    where = settings.database_url.split("@")[-1]
    engine = make_engine(settings.database_url, pool=False)
    try:
        try:
            health.ping(engine)
        except Exception as exc:  # noqa: BLE001 - reported as a problem to fix
            return [
                Problem(
                    DATABASE,
                    f"La base de données {where} ne répond pas ({type(exc).__name__}) : "
                    "démarrez-la ou corrigez TIERSPAYANT_DATABASE_URL.",
                )
            ]
        if not is_initialised(engine):
            return [
                Problem(
                    MIGRATIONS,
                    f"La base de données {where} n'a pas de schéma : lancez « tierspayant init ».",
                )
            ]
        problems = []
        if not health.at_head(engine):
            problems.append(
                Problem(
                    MIGRATIONS,
                    f"Le schéma de {where} n'est pas à la dernière migration : lancez "
                    "« tierspayant init » (il applique les migrations manquantes).",
                )
            )
        if keyring is not None:
            try:
                _unwraps(engine, keyring)
            except LookupError:
                problems.append(
                    Problem(
                        KEYS,
                        "La base n'a pas de clés de données de l'opérateur : lancez "
                        "« tierspayant init ».",
                    )
                )
            except Exception as exc:  # noqa: BLE001 - reported as a problem to fix
                problems.append(
                    Problem(
                        KEYS,
                        f"Le trousseau {settings.keyring_path} ne déchiffre pas les clés de "
                        f"cette base ({type(exc).__name__}) : ce n'est pas le trousseau de "
                        "cette base ; restaurez celui qui lui correspond.",
                    )
                )
        return problems
    finally:
        engine.dispose()


def _redis(settings: Settings) -> list[Problem]:
    if settings.redis_url is None:
        return []
    try:
        health.ping_redis(settings.redis_url)
    except Exception as exc:  # noqa: BLE001 - reported as a problem to fix
        where = urlsplit(settings.redis_url).hostname or "?"
        port = urlsplit(settings.redis_url).port or 6379
        return [
            Problem(
                REDIS,
                f"Redis ({where}:{port}) ne répond pas ({type(exc).__name__}) : démarrez-le "
                "ou corrigez TIERSPAYANT_REDIS_URL.",
            )
        ]
    return []


def _tls(settings: Settings) -> list[Problem]:
    if not settings.sessions.portal_tls:
        if settings.host not in _LOOPBACK:
            return [
                Problem(
                    "tls",
                    f"Les portails sont servis sans TLS sur {settings.host} : placez un "
                    "mandataire inverse TLS devant, écoutez sur 127.0.0.1 "
                    "(TIERSPAYANT_HOST) et définissez TIERSPAYANT_PORTAL_TLS=1.",
                )
            ]
        return []
    problems = []
    if settings.host not in _LOOPBACK:
        problems.append(
            Problem(
                "tls",
                f"TIERSPAYANT_PORTAL_TLS=1 mais le serveur écoute en clair sur "
                f"{settings.host} : écoutez sur 127.0.0.1 (TIERSPAYANT_HOST) derrière le "
                "mandataire inverse TLS.",
            )
        )
    oidc = settings.oidc
    if oidc is not None and urlsplit(oidc.redirect_uri).scheme != "https":
        problems.append(
            Problem(
                "tls",
                "TIERSPAYANT_OIDC_REDIRECT_URI n'est pas en https alors que les portails "
                "sont servis en TLS : donnez son adresse https.",
            )
        )
    return problems


def diagnose(env: Mapping[str, str] | None = None) -> list[Problem]:
    """Every problem of the configuration in ``env`` (default: the environment)."""
    try:
        settings = load_settings(env)
    except SettingError as exc:
        return [
            Problem(
                "settings",
                f"Le réglage {exc.variable} est invalide : corrigez-le ({exc.code}).",
            )
        ]
    except SystemExit as exc:
        return [Problem("settings", f"Réglages refusés : corrigez-les ({exc.code}).")]
    keyring, key_problems = _keyring(settings)
    return [
        *_data_dir(settings),
        *key_problems,
        *_database(settings, keyring),
        *_redis(settings),
        *_tls(settings),
    ]
