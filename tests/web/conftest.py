"""Fixtures of the portal tests: one seeded SQLite platform per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.web.world import World, build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = build_world(tmp_path_factory.mktemp("portal"), members=2)
    try:
        yield built
    finally:
        built.platform.close()
