"""What audit checkpoints were exported (the signed files themselves are the evidence)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from tierspayant.store.operations_tables import audit_checkpoints


def insert_checkpoint(
    conn: Connection,
    *,
    up_to_seq: int,
    last_hash: bytes,
    merkle_root: bytes,
    signed_at: datetime,
    key_id: str,
    file_name: str,
) -> None:
    """Remember one exported checkpoint (for the console and the jobs)."""
    conn.execute(
        audit_checkpoints.insert().values(
            up_to_seq=up_to_seq,
            last_hash=last_hash,
            merkle_root=merkle_root,
            signed_at=signed_at,
            key_id=key_id,
            file_name=file_name,
        )
    )
