"""deploy/grafana/tierspayant.json: a Grafana dashboard whose panels are well formed, do
not overlap, read only series the app exposes, and together show every metric."""

from __future__ import annotations

import json
from typing import Any

from tests.unit.ops.support import (
    DEPLOY,
    PROMETHEUS_SERIES,
    exposed_names,
    family_names,
    metric_names,
)
from tierspayant import metrics

DASHBOARD = DEPLOY / "grafana" / "tierspayant.json"


def _dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def test_the_dashboard_is_importable() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"]
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "job"} <= variables
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in _panels():
        assert panel["type"] in {"timeseries", "stat", "table"}, panel["title"]
        assert panel["title"], panel["id"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_the_panels_fit_the_grid_without_overlapping() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in _dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_every_series_a_panel_reads_is_exposed_by_the_app() -> None:
    exposed = exposed_names()
    for panel in _panels():
        for target in panel["targets"]:
            read = metric_names(target["expr"])
            assert read, panel["title"]
            unknown = read - exposed - PROMETHEUS_SERIES
            assert not unknown, f"{panel['title']!r} reads {unknown}"
            assert 'job="$job"' in target["expr"] or read <= PROMETHEUS_SERIES, panel["title"]


def test_every_metric_of_the_app_is_on_the_dashboard() -> None:
    shown = {
        name
        for panel in _panels()
        for target in panel["targets"]
        for name in metric_names(target["expr"])
    }
    for family in metrics.REGISTRY.collect():
        assert shown & family_names(family), family.name
