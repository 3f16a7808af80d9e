"""Reading and verifying the audit log."""

from __future__ import annotations

from tierspayant.app.platform import Platform
from tierspayant.security.audit import (
    Checkpoint,
    VerifyFailure,
    VerifyReport,
    verify_chain,
    verify_checkpoint,
)
from tierspayant.services.checkpoints import (
    load_signing_key,
    read_checkpoint_file,
    signing_key_path,
)
from tierspayant.services.errors import ServiceError
from tierspayant.store import audit, audit_archives


def verify(platform: Platform) -> VerifyReport:
    """Verify the whole chain in one streaming pass.

    Once months were archived (``audit archiver``), the pass starts from the newest
    archived month's last hash and Merkle frontier, anchored by the signed checkpoint that
    covered it: the chain must reach that checkpoint with its hash and root, so a start
    point altered in the database does not verify."""
    with platform.engine.connect() as conn:
        archived = audit_archives.latest(conn)
        if archived is None:
            expected = audit.count_events(conn)
            return verify_chain(audit.iter_events(conn), expected_count=expected)
        anchor = _covering_checkpoint(platform, archived.checkpoint_file)
        if anchor is None or anchor.up_to_seq != archived.checkpoint_seq:
            return VerifyReport(False, 0, archived.last_seq, VerifyFailure.ANCHOR_MISMATCH)
        expected = audit.count_events(conn) + archived.last_seq
        return verify_chain(
            audit.iter_events(conn, after=archived.last_seq),
            expected_count=expected,
            anchor=anchor,
            start=archived.start(),
        )


def _covering_checkpoint(platform: Platform, file_name: str) -> Checkpoint | None:
    """The checkpoint named by the archive, if its file is there and validly signed by
    this installation's key."""
    settings = platform.settings
    path = settings.jobs.checkpoint_dir(settings.data_dir) / file_name
    if not path.is_file() or not signing_key_path(settings).is_file():
        return None
    try:
        file = read_checkpoint_file(path)
    except ServiceError:
        return None
    public_key = load_signing_key(settings).public_key()
    if not verify_checkpoint(public_key, file.checkpoint, file.signature):
        return None
    return file.checkpoint
