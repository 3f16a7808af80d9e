"""Parsed guarantee catalogues, by insurer and version, shared by the process."""

from __future__ import annotations

import json
import threading

from sqlalchemy import Connection

from tierspayant.app.caching import TtlCache
from tierspayant.domain.guarantees import Catalogue, Contract
from tierspayant.formats.catalogue import parse_catalogue
from tierspayant.store import insurers as store


class CatalogueCache:
    """Parsed catalogues by (insurer, version): parsing happens once per process."""

    def __init__(self, version_seconds: float = 0) -> None:
        self._parsed: dict[tuple[int, int], Catalogue] = {}
        self._lock = threading.Lock()
        # The newest version number is read again after ``version_seconds`` (an upload
        # by this process forgets it at once): see app/caching.py.
        self._versions: TtlCache[int, int] = TtlCache(version_seconds, max_entries=1_000)

    def forget(self, insurer_id: int) -> None:
        """Read the newest version again on next use (after an upload)."""
        self._versions.discard(insurer_id)

    def latest(self, conn: Connection, insurer_id: int) -> Catalogue | None:
        """The newest catalogue of an insurer, or None if it has none."""
        version = self._versions.get(insurer_id)
        if version is None:
            version = store.latest_catalogue_version(conn, insurer_id)
            if version is not None:
                self._versions.put(insurer_id, version)
        if version is None:
            return None
        key = (insurer_id, version)
        cached = self._parsed.get(key)
        if cached is not None:
            return cached
        document = store.catalogue_document(conn, insurer_id, version)
        parsed = parse_catalogue(json.loads(document))
        with self._lock:
            self._parsed[key] = parsed
        return parsed

    def contract(self, conn: Connection, insurer_id: int, code: str) -> Contract | None:
        """The contract ``code`` in the newest catalogue of an insurer."""
        catalogue = self.latest(conn, insurer_id)
        if catalogue is None:
            return None
        for contract in catalogue.contracts:
            if contract.code == code:
                return contract
        return None
