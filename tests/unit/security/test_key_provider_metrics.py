"""Key-provider failures are counted (by operation) and still raised."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tierspayant import metrics
from tierspayant.security.crypto import new_data_keys, unwrap_data_keys, wrap_data_keys
from tierspayant.security.keys import LocalKeyring, UnwrapError


def _errors(operation: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "tierspayant_key_provider_errors_total", {"operation": operation}
    )
    return value or 0.0


def test_an_unwrap_failure_is_counted_and_raised(tmp_path: Path) -> None:
    keyring = LocalKeyring.create(tmp_path / "keyring.json", now=datetime(2026, 3, 16, tzinfo=UTC))
    blob = wrap_data_keys(keyring, "12345678", new_data_keys(1))
    before = _errors("unwrap")
    assert unwrap_data_keys(keyring, "12345678", 1, blob).version == 1
    assert _errors("unwrap") == before  # a success counts nothing
    with pytest.raises(UnwrapError):
        unwrap_data_keys(keyring, "87654321", 1, blob)  # another insurer's context
    assert _errors("unwrap") == before + 1
