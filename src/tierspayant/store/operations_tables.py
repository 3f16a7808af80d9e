"""Tables of this part of the platform (registered on the shared metadata)."""

from __future__ import annotations

from tierspayant.store.tables import metadata

__all__ = ["metadata"]
