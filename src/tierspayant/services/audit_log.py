"""Reading and verifying the audit log."""

from __future__ import annotations

from tierspayant.app.platform import Platform
from tierspayant.security.audit import VerifyReport, verify_chain
from tierspayant.store import audit


def verify(platform: Platform) -> VerifyReport:
    """Verify the whole chain in one streaming pass."""
    with platform.engine.connect() as conn:
        expected = audit.count_events(conn)
        return verify_chain(audit.iter_events(conn), expected_count=expected)
