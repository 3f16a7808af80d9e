"""Fixtures of the portal tests: one seeded SQLite platform per test module, and the same
world on SQLite then on PostgreSQL for the tests whose reads must hold on both."""

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


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def engine_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """The portal world on SQLite, or on the module's PostgreSQL database."""
    if request.param == "sqlite":
        built = build_world(tmp_path_factory.mktemp("engine-world"))
    else:
        built = build_world(
            request.getfixturevalue("postgres_data_dir"),
            url=request.getfixturevalue("postgres_url"),
        )
    try:
        yield built
    finally:
        built.platform.close()
