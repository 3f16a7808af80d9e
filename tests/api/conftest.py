"""Fixtures of the HTTP tests: worlds of real data behind the real app (``world.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.world import ENGINE_PARAMS, World, build_world, close_world


@pytest.fixture(scope="module", params=ENGINE_PARAMS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """A relaxed-guard world, once on SQLite and once on PostgreSQL."""
    built = build_world(str(request.param), request, tmp_path_factory)
    try:
        yield built
    finally:
        close_world(built)


@pytest.fixture(scope="module")
def sqlite_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """A relaxed-guard world on SQLite only (for tests whose subject is not the database)."""
    built = build_world("sqlite", request, tmp_path_factory)
    try:
        yield built
    finally:
        close_world(built)
