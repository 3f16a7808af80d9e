"""deploy/prometheus/alerts.yml: valid for promtool, its unit tests pass, every series it
reads is one the app exposes, and every alert says how bad it is and where its runbook is."""

from __future__ import annotations

import subprocess
from typing import Any

import yaml

from tests.unit.ops.support import (
    DEPLOY,
    OPERATIONS_DOC,
    PROMETHEUS_SERIES,
    anchors,
    exposed_names,
    metric_names,
    tool,
)

RULES = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests"
RUNBOOK = "https://tierspayant.example/docs/operations.md#"


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules() -> None:
    done = subprocess.run(
        [tool("promtool"), "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in done.stdout


def test_promtool_unit_tests_pass_and_cover_every_alert_both_ways() -> None:
    files = sorted(RULE_TESTS.glob("*.yml"))
    assert files
    fired: set[str] = set()
    silent: set[str] = set()
    for path in files:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case["alert_rule_test"]:
                (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    alerts = {rule["alert"] for rule in _rules()}
    assert fired == alerts, "an alert without a case that fires it"
    assert silent == alerts, "an alert without a case where it stays silent"
    done = subprocess.run(
        [tool("promtool"), "test", "rules", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_series_the_rules_read_is_exposed_by_the_app() -> None:
    exposed = exposed_names()
    for rule in _rules():
        read = metric_names(rule["expr"])
        assert read, rule["alert"]
        unknown = read - exposed - PROMETHEUS_SERIES
        assert not unknown, f"{rule['alert']} reads {unknown}, which the app does not expose"


def test_every_alert_has_a_severity_a_summary_and_a_runbook_section() -> None:
    known = anchors(OPERATIONS_DOC.read_text(encoding="utf-8"))
    names = [rule["alert"] for rule in _rules()]
    assert len(names) == len(set(names))
    for rule in _rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        url = rule["annotations"]["runbook_url"]
        assert url == RUNBOOK + rule["alert"].lower(), rule["alert"]
        assert url.removeprefix(RUNBOOK) in known, f"no section {rule['alert']} in operations.md"


def test_the_name_extraction_reads_names_not_labels_or_functions() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{route="/v1/x", le="+Inf"}[5m])))'
        ' > 0.5 and max by (job) (b) - time() < 21 * 86400 and up{job="x"} == 0'
    )
    assert metric_names(expr) == {"a_bucket", "b", "up"}
