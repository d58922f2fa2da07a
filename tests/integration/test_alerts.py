"""The alerts (charts/kabin/files/alerts.yaml) and the Grafana dashboard: promtool
checks the rules and runs their unit tests (tests/alerts/), and every kabin metric
they query is one a running operator really exposes on /metrics.

promtool is built from the Go module proxy (hack/tools/build.sh).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support import command, eventually, free_port, go_tool, scrape

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "charts" / "kabin" / "files"
ALERTS = FILES / "alerts.yaml"
METRIC = re.compile(r"\b(kabin_[a-z_]+|process_[a-z_]+)\b")
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


@pytest.fixture(scope="session")
def promtool() -> str:
    return go_tool("promtool")


async def test_promtool_checks_the_rules_and_their_unit_tests_pass(promtool: str) -> None:
    checked = await command(promtool, "check", "rules", str(ALERTS))
    assert checked.code == 0, checked.out + checked.err
    assert "SUCCESS: 9 rules found" in checked.out
    tested = await command(
        promtool, "test", "rules", str(ROOT / "tests" / "alerts" / "kabin_test.yaml")
    )
    assert tested.code == 0, tested.out + tested.err


def _queried() -> dict[str, set[str]]:
    """The kabin and process metrics each alert and dashboard panel queries."""
    found: dict[str, set[str]] = {}
    for rule in yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]:
        found[rule["alert"]] = set(METRIC.findall(rule["expr"]))
    dashboard: dict[str, Any] = json.loads((FILES / "dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.setdefault(f"panel {panel['title']!r}", set()).update(
                METRIC.findall(target["expr"])
            )
    return found


async def test_every_metric_the_alerts_and_dashboard_query_is_exposed(
    operator_process: Any, promtool: str
) -> None:
    port = free_port()
    operator_process(KABIN_METRICS_PORT=str(port))

    async def reconciling() -> str:
        text = await scrape(port)
        assert "kabin_leading 1.0" in text
        return text

    text = await eventually(reconciling, timeout=60)
    exposed = set()
    for family in text_string_to_metric_families(text):
        exposed.add(family.name)
        if family.type == "counter":
            exposed.add(f"{family.name}_total")
        if family.type == "histogram":
            exposed.update(family.name + s for s in HISTOGRAM_SERIES)
    queried = _queried()
    assert len(queried) == 9 + 19  # every alert, every panel but the two rows
    missing = {where: names - exposed for where, names in queried.items() if names - exposed}
    assert not missing, f"queried but not exposed: {missing}"
    # promtool's lint of the exposition: names, units, help texts.
    linted = await command(promtool, "check", "metrics", stdin=text)
    assert linted.code == 0, linted.out + linted.err
